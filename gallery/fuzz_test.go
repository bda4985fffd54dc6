package gallery

import (
	"encoding/json"
	"testing"
	"time"
)

// The gallery's parsers take what clients send; none may panic, and what they accept must
// survive a round trip through JSON unchanged.
func FuzzParseVersionProperties(f *testing.F) {
	f.Add([]byte(`{"publishingProfile":{"targetRegions":[{"name":"local","regionalReplicaCount":2}],"excludeFromLatest":true,"endOfLifeDate":"2027-01-01T00:00:00Z"},"storageProfile":{"osDiskImage":{"sha256":"` + "aa" + `","sizeInBytes":10},"source":{"id":"/subscriptions/s/resourceGroups/r/providers/Microsoft.Compute/galleries/g/images/d/versions/1.0.0"}}}`))
	f.Add([]byte(`{"storageProfile":{"osDiskImage":{"sha256":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","sizeInBytes":1,"format":"RAW"},"source":{"marketplaceImage":{"publisher":"Debian","offer":"debian-12","sku":"12"}}}}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		p, err := ParseVersionProperties(raw, func(n string) bool { return n == "local" || n == "west" })
		if err != nil {
			return
		}
		again, err := ParseVersionProperties(marshalProps(p), func(string) bool { return true })
		if err != nil {
			t.Fatalf("accepted %s, then refused its own output: %v", raw, err)
		}
		a, _ := json.Marshal(p)
		b, _ := json.Marshal(again)
		if string(a) != string(b) {
			t.Fatalf("round trip changed it:\n%s\n%s", a, b)
		}
	})
}

func FuzzParseDefinition(f *testing.F) {
	f.Add([]byte(`{"identifier":{"publisher":"p","offer":"o","sku":"s"},"osType":"Linux","osState":"Generalized","recommended":{"vCPUs":{"min":1,"max":4}},"lifecyclePolicy":{"keepNewest":3,"retainAtLeast":1}}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		p, err := ParseDefinition(raw)
		if err != nil {
			return
		}
		if _, err := ParseDefinition(marshalProps(p)); err != nil {
			t.Fatalf("accepted %s, then refused its own output: %v", raw, err)
		}
	})
}

func FuzzOpenShare(f *testing.F) {
	s := &Service{opts: Options{ShareKey: []byte("0123456789abcdef0123456789abcdef")}, now: func() time.Time { return t0 }}
	f.Add("eyJ2IjoiL3N1YnNjcmlwdGlvbnMvcyIsImUiOjF9.sig")
	f.Add("")
	f.Fuzz(func(t *testing.T, token string) {
		if _, _, err := s.OpenShare(token); err == nil {
			t.Fatalf("a forged token was accepted: %q", token)
		}
	})
}
