package cli

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gildhq/gild/agentproto"
)

func TestParseTTL(t *testing.T) {
	for in, want := range map[string]time.Duration{"24h": 24 * time.Hour, "90m": 90 * time.Minute, "7d": 7 * 24 * time.Hour, "90d": 90 * 24 * time.Hour} {
		if got, err := parseTTL("--expires-in", in); err != nil || got != want {
			t.Errorf("parseTTL(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for in, want := range map[string]string{"": "give a duration", "soon": "give a duration", "0h": "must expire in the future",
		"-1h": "must expire in the future", "0d": "must expire in the future", "91d": "at most 90d", "xd": "give a duration"} {
		if _, err := parseTTL("--expires-in", in); err == nil || !strings.Contains(err.Error(), "--expires-in") || !strings.Contains(err.Error(), want) {
			t.Errorf("parseTTL(%q): %v; want an error naming --expires-in with %q", in, err, want)
		}
	}
}

func TestMachineUsageErrors(t *testing.T) {
	wantUsage(t, []struct {
		args  []string
		wants []string
	}{
		{[]string{"machine", "token"}, []string{"name what the token enrolls: -g RG-ID for a new machine, or a VM or machine ID"}},
		{[]string{"machine", "token", testVM, "-g", testRG}, []string{"give either -g RG-ID (a new machine) or a VM or machine ID"}},
		{[]string{"machine", "token", "-g", testVM}, []string{"is a Microsoft.Compute/virtualMachines, not a resource group ID"}},
		{[]string{"machine", "token", testRG}, []string{"is a Microsoft.Resources/resourceGroups, not a Microsoft.Compute/virtualMachines or Microsoft.HybridCompute/machines"}},
		{[]string{"machine", "token", "api-1"}, []string{"is a name: give its resource group"}},
		{[]string{"machine", "token", "-g", testRG, "--expires-in", "forever"}, []string{`--expires-in "forever": give a duration`}},
		{[]string{"machine", "token", "a", "b"}, []string{"gild machine token takes a VM or machine ID"}},
		{[]string{"machine", "list", "-g", testRG, "--scope", "/"}, []string{"give one"}},
		{[]string{"machine", "list", "extra"}, []string{"gild machine list takes no arguments"}},
	})
}

// TestMachineTokenRequest tests what token sends and prints against a stand-in server.
func TestMachineTokenRequest(t *testing.T) {
	answer := func(target string) http.HandlerFunc {
		return jsonReply(200, `{"token":"gild-enroll-abc123","target":"`+target+`","expiresOn":"2026-11-25T10:00:00Z"}`)
	}
	f := newFakeAPI(t, map[string]http.HandlerFunc{
		"POST " + testRG + "/providers/Microsoft.HybridCompute/enrollmentTokens": answer(testRG),
		"POST " + testVM + "/enrollmentToken":                                    answer(testVM),
		"POST " + testHyb + "/enrollmentToken":                                   answer(testHyb),
	})
	r := f.run(t, "", "machine", "token", "-g", testRG, "--expires-in", "2h")
	if r.code != 0 {
		t.Fatalf("machine token -g: %s", r)
	}
	reqs := f.requests("POST", testRG+"/providers/Microsoft.HybridCompute/enrollmentTokens")
	if len(reqs) != 1 || !reflect.DeepEqual(decode[map[string]any](t, reqs[0].Body), map[string]any{"expiresInHours": float64(2)}) {
		t.Errorf("machine token -g sent %+v", reqs)
	}
	for _, want := range []string{"token ", "gild-enroll-abc123", "target ", testRG, "expires ", "2026-11-25T10:00:00Z",
		"\n  gild-agent enroll --server " + f.URL + " --token gild-enroll-abc123\n"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("machine token lacks %q:\n%s", want, r.stdout)
		}
	}
	if !strings.Contains(r.stderr, "is a loopback address") {
		t.Errorf("machine token does not warn that %s is a loopback address: %s", f.URL, r)
	}

	// Enrolling an existing VM or hybrid machine again; the default expiry; days.
	r = f.run(t, "", "machine", "token", testVM, "-o", "json")
	if r.code != 0 || decode[enrollmentToken](t, r.stdout).Target != testVM {
		t.Errorf("machine token VM -o json: %s", r)
	}
	if reqs := f.requests("POST", testVM+"/enrollmentToken"); len(reqs) != 1 || reqs[0].Body != `{"expiresInHours":24}` {
		t.Errorf("machine token VM sent %+v", reqs)
	}
	r = f.run(t, "", "machine", "token", testHyb, "--expires-in", "7d")
	if reqs := f.requests("POST", testHyb+"/enrollmentToken"); r.code != 0 || len(reqs) != 1 || reqs[0].Body != `{"expiresInHours":168}` {
		t.Errorf("machine token hybrid machine: %s %+v", r, reqs)
	}

	// An answer that is not a token is a failure, not an empty line.
	f.set("POST "+testVM+"/enrollmentToken", jsonReply(200, `{}`))
	if r := f.run(t, "", "machine", "token", testVM); r.code != exitError || !strings.Contains(r.stderr, "not an enrollment token") {
		t.Errorf("machine token with an empty answer: %s", r)
	}
}

// postAgent POSTs an agent protocol message and decodes the answer; it returns the status.
func postAgent(t *testing.T, url, credential string, body, out any) int {
	t.Helper()
	data, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if credential != "" {
		req.Header.Set("Authorization", "Bearer "+credential)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK && out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("POST %s: %v\n%s", url, err, raw)
		}
	}
	if resp.StatusCode != http.StatusOK {
		t.Logf("POST %s: %d %s", url, resp.StatusCode, raw)
	}
	return resp.StatusCode
}

// enroll enrolls an agent with token, as gild-agent enroll does.
func enroll(t *testing.T, h *harness, token, name string) agentproto.EnrollResponse {
	t.Helper()
	var resp agentproto.EnrollResponse
	req := agentproto.EnrollRequest{Version: agentproto.Version, Token: token, Name: name, Facts: agentproto.Facts{
		Hostname: name, Kernel: "6.1.0-28-amd64", AgentVersion: "0.9.0", Architecture: "x86_64",
		OSRelease: map[string]string{"ID": "debian", "VERSION_ID": "12", "PRETTY_NAME": "Debian GNU/Linux 12 (bookworm)"}}}
	if code := postAgent(t, h.url+agentproto.PathEnroll, "", req, &resp); code != http.StatusOK || resp.Credential == "" {
		t.Fatalf("enroll %s: %d %+v", name, code, resp)
	}
	return resp
}

// fleetWired skips the test when the server does not serve enrollment tokens yet.
func fleetWired(t *testing.T, r result) {
	t.Helper()
	if r.code != 0 && (strings.Contains(r.stderr, "MethodNotAllowed") || strings.Contains(r.stderr, "InvalidResourceType")) {
		t.Skipf("the test server does not serve enrollment tokens: server.Run does not pass a fleet.Service to api.Options.Fleet yet (%s)", strings.TrimSpace(r.stderr))
	}
}

// TestMachineEnrollment is the flow against the real server: a token for a resource
// group, an agent that enrolls with it, the hybrid machine in machine list.
func TestMachineEnrollment(t *testing.T) {
	h := newHarness(t)
	h.login()
	h.ok(`{"properties":{}}`, "put", "/subscriptions/payments", "-f", "-")
	h.ok(`{"location":"local"}`, "put", testRG, "-f", "-")

	r := h.run("machine", "token", "-g", testRG, "--expires-in", "1h")
	fleetWired(t, r)
	if r.code != 0 || !strings.Contains(r.stdout, "gild-agent enroll --server "+h.url+" --token gild-enroll-") {
		t.Fatalf("machine token -g: %s", r)
	}
	tok := decode[enrollmentToken](t, h.ok("", "machine", "token", "-g", testRG, "-o", "json").stdout)
	if !strings.HasPrefix(tok.Token, "gild-enroll-") || !strings.EqualFold(tok.Target, testRG) {
		t.Fatalf("machine token -o json: %+v", tok)
	}
	if exp, err := time.Parse(time.RFC3339, tok.ExpiresOn); err != nil || exp.Sub(time.Now()) < 23*time.Hour || exp.Sub(time.Now()) > 25*time.Hour {
		t.Errorf("the default expiry is not 24h from now: %q, %v", tok.ExpiresOn, err)
	}
	en := enroll(t, h, tok.Token, "sap-01")
	if !strings.EqualFold(en.MachineID, testHyb) {
		t.Fatalf("enrolled as %s, want %s", en.MachineID, testHyb)
	}

	r = h.ok("", "machine", "list", "-g", testRG)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "NAME") || !strings.Contains(lines[0], "OS") || !strings.Contains(lines[0], "AGENT") || !strings.Contains(lines[0], "STATUS") {
		t.Fatalf("machine list:\n%s", r)
	}
	for _, want := range []string{"sap-01", "Debian GNU/Linux 12 (bookworm)", "0.9.0", "Connected"} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("machine list row lacks %q: %q", want, lines[1])
		}
	}
	l := decode[listJSON](t, h.ok("", "machine", "list", "--scope", "/subscriptions/payments", "-o", "json").stdout)
	if len(l.Value) != 1 || !strings.EqualFold(l.Value[0].ID, testHyb) || l.Value[0].Properties["agentVersion"] != "0.9.0" {
		t.Errorf("machine list -o json: %+v", l)
	}

	// A token for the machine enrolls it again.
	tok = decode[enrollmentToken](t, h.ok("", "machine", "token", testHyb, "-o", "json").stdout)
	if again := enroll(t, h, tok.Token, ""); !strings.EqualFold(again.MachineID, testHyb) || again.Credential == en.Credential {
		t.Errorf("re-enrolled as %+v", again)
	}
	// A token is good once.
	var resp agentproto.EnrollResponse
	req := agentproto.EnrollRequest{Version: agentproto.Version, Token: tok.Token, Facts: agentproto.Facts{Hostname: "sap-01"}}
	if code := postAgent(t, h.url+agentproto.PathEnroll, "", req, &resp); code == http.StatusOK {
		t.Error("an enrollment token worked twice")
	}
	h.fails(nil, "", exitError, []string{"enrollment token: ", "ResourceNotFound"}, "machine", "token", "-g", "/subscriptions/payments/resourceGroups/nope")
}

// TestMachineListFake tests machine list's table against a stand-in server: the OS
// falls back to osName osVersion when there is no osSku.
func TestMachineListFake(t *testing.T) {
	f := newFakeAPI(t, map[string]http.HandlerFunc{
		testRGList(): jsonReply(200, `{"value":[
			{"id":"`+testHyb+`","name":"sap-01","type":"Microsoft.HybridCompute/machines","properties":{"osSku":"Debian GNU/Linux 12 (bookworm)","agentVersion":"0.9.0","status":"Connected"}},
			{"id":"`+testRG+`/providers/Microsoft.HybridCompute/machines/old-1","name":"old-1","properties":{"osName":"rhel","osVersion":"8.9","agentVersion":"0.8.1","status":"Disconnected"}}]}`),
	})
	r := f.run(t, "", "machine", "list", "-g", testRG)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 0 || len(lines) != 3 {
		t.Fatalf("machine list: %s", r)
	}
	if f := strings.Fields(lines[1]); f[0] != "sap-01" || !strings.Contains(lines[1], "Debian GNU/Linux 12 (bookworm)") || f[len(f)-2] != "0.9.0" || f[len(f)-1] != "Connected" {
		t.Errorf("row 1: %q", lines[1])
	}
	if f := strings.Fields(lines[2]); len(f) != 5 || f[0] != "old-1" || f[1] != "rhel" || f[2] != "8.9" || f[4] != "Disconnected" {
		t.Errorf("row 2: %q", lines[2])
	}
}

func testRGList() string {
	return "GET " + testRG + "/providers/Microsoft.HybridCompute/machines"
}
