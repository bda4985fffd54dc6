package pipeline

import (
	"encoding/json"
	"reflect"
	"testing"
)

// Templates come from users: no input may panic a parser, and whatever ParseTemplate
// accepts it accepts again, unchanged, from its own output.
func FuzzParseTemplate(f *testing.F) {
	f.Add([]byte(`{"source":{"type":"PlatformImage","publisher":"Debian","offer":"debian-12","sku":"12"},"distribute":[{"type":"SharedImage","galleryImageId":"` + def + `","runOutputName":"x"}]}`))
	f.Add([]byte(`{"source":{"type":"Url","url":"https://x/d.raw","checksum":"sha256:` + "00000000000000000000000000000000000000000000000000000000000000ff" + `"},"validate":{"sourceValidationOnly":true}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		p, err := ParseTemplate(raw)
		if err != nil {
			return
		}
		out, _ := json.Marshal(p)
		again, err := ParseTemplate(out)
		if err != nil || !reflect.DeepEqual(p, again) {
			t.Fatalf("accepted %s but not its own output %s: %v", raw, out, err)
		}
	})
}

func FuzzParseYAML(f *testing.F) {
	f.Add([]byte(exampleYAML))
	f.Add([]byte("source: {url: file:///d.qcow2, checksum: 'sha256:00'}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = ParseYAML(data, readFiles(map[string]string{"files/motd": "hi"}))
	})
}
