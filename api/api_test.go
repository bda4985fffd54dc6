package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gildhq/gild/api"
	"github.com/gildhq/gild/blob"
	"github.com/gildhq/gild/compliance"
	"github.com/gildhq/gild/controlplane"
	"github.com/gildhq/gild/fleet"
	"github.com/gildhq/gild/gallery"
	"github.com/gildhq/gild/pipeline"
	"github.com/gildhq/gild/store"
	"github.com/gildhq/gild/store/sqlite"
)

// env is a real API over a real SQLite file, served on a loopback port.
type env struct {
	t        testing.TB
	url      string
	admin    string
	st       store.Store
	cp       *controlplane.Service
	policies *compliance.Service
	gallery  *gallery.Service
	pipeline *pipeline.Service
	fleet    *fleet.Service
	// steps makes the steps of a template run; tests set it.
	steps func(b *pipeline.Build) []pipeline.Step
	// regions holds the folders of the image regions local, west and east.
	regions string
}

func newEnv(t testing.TB, engine ...func(*compliance.Options)) *env {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, sqlite.URL(filepath.Join(t.TempDir(), "gild.db")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cp, err := controlplane.New(ctx, st, controlplane.Options{})
	if err != nil {
		t.Fatal(err)
	}
	regionDir := t.TempDir()
	var regions []*blob.Region
	for _, name := range []string{"local", "west", "east"} {
		r, err := blob.Open(ctx, name, blob.FileURL(filepath.Join(regionDir, name)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		regions = append(regions, r)
	}
	images, err := gallery.New(st, gallery.Options{Regions: regions, ShareKey: []byte("0123456789abcdef0123456789abcdef"), ReconcileInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	images.SetWriter(controlplane.SystemWriter{Service: cp})
	machines, err := fleet.New(st, fleet.Options{Configurations: fleet.BuiltinConfigurations{}, ReportInterval: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	machines.SetWriter(controlplane.SystemWriter{Service: cp})
	engineOptions := compliance.Options{Enrichers: []compliance.Enricher{images.Enrich, machines.Enrich}}
	for _, f := range engine {
		f(&engineOptions)
	}
	policies, err := compliance.NewService(ctx, compliance.New(engineOptions), st, cp.Tree)
	if err != nil {
		t.Fatal(err)
	}
	policies.SetWriter(controlplane.SystemWriter{Service: cp})
	images.SetReevaluate(policies.Enqueue)
	machines.SetReevaluate(policies.Enqueue)
	e := &env{t: t, admin: "", st: st, cp: cp, policies: policies, gallery: images, fleet: machines, regions: regionDir}
	builds, err := pipeline.New(st, controlplane.SystemWriter{Service: cp}, pipeline.Options{Dir: t.TempDir(),
		Steps: func(b *pipeline.Build) []pipeline.Step { return e.steps(b) }})
	if err != nil {
		t.Fatal(err)
	}
	e.pipeline = builds
	cp.SetHooks(controlplane.Chain(images, builds, machines, policies))
	runCtx, stop := context.WithCancel(ctx)
	t.Cleanup(stop)
	go policies.Run(runCtx)
	go machines.Run(runCtx)
	done := make(chan struct{})
	go func() { images.Run(runCtx); close(done) }()
	t.Cleanup(func() { stop(); <-done; builds.Wait() })
	var admin string
	if _, err := cp.Bootstrap(ctx, func(s string) error { admin = s; return nil }); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.New(cp, api.Options{MaxBody: 64 << 10, Compliance: policies, Gallery: images, Pipeline: builds, Fleet: machines}))
	t.Cleanup(srv.Close)
	e.url, e.admin = srv.URL, admin
	return e
}

type response struct {
	status int
	header http.Header
	body   map[string]any
	raw    []byte
}

func (r response) errCode() string {
	e, _ := r.body["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

func (r response) errField(f string) string {
	e, _ := r.body["error"].(map[string]any)
	s, _ := e[f].(string)
	return s
}

func (e *env) do(token, method, path string, body any, hdr ...string) response {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	u := e.url + path
	if !strings.Contains(path, "api-version=") && !strings.HasPrefix(path, "/healthz") && !strings.HasPrefix(path, "/metrics") {
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		u += sep + "api-version=" + api.Version
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := response{status: resp.StatusCode, header: resp.Header, raw: raw}
	if len(raw) > 0 {
		_ = json.Unmarshal(raw, &out.body)
	}
	return out
}

func (e *env) must(token, method, path string, body any, want int) response {
	e.t.Helper()
	r := e.do(token, method, path, body)
	if r.status != want {
		e.t.Fatalf("%s %s: status %d, want %d; body %s", method, path, r.status, want, r.raw)
	}
	return r
}

const (
	mgCorp   = "/providers/Microsoft.Management/managementGroups/contoso"
	subPay   = "/subscriptions/payments"
	subFind  = "/subscriptions/search"
	rgPay    = subPay + "/resourceGroups/prod"
	rgFind   = subFind + "/resourceGroups/prod"
	vmType   = "Microsoft.Compute/virtualMachines"
	vmPay    = rgPay + "/providers/" + vmType + "/api-1"
	vmFind   = rgFind + "/providers/" + vmType + "/idx-1"
	vmsOfAll = "/providers/" + vmType
)

func vmBody(publisher string) map[string]any {
	return map[string]any{
		"location": "local",
		"tags":     map[string]string{"serviceModel": "cattle"},
		"properties": map[string]any{
			"hardwareProfile": map[string]any{"vmSize": "Standard_B2s"},
			"storageProfile": map[string]any{"imageReference": map[string]any{
				"publisher": publisher, "offer": "debian-12", "sku": "12", "version": "latest"}},
		},
	}
}

// seed makes a management group, two team subscriptions in it, a resource group in each
// and a VM in each.
func (e *env) seed() {
	e.t.Helper()
	e.must(e.admin, "PUT", mgCorp, map[string]any{"properties": map[string]any{"displayName": "Contoso"}}, 201)
	for _, s := range []string{subPay, subFind} {
		e.must(e.admin, "PUT", s, map[string]any{"properties": map[string]any{"managementGroupId": mgCorp}}, 201)
	}
	for _, rg := range []string{rgPay, rgFind} {
		e.must(e.admin, "PUT", rg, map[string]any{"location": "local"}, 201)
	}
	e.must(e.admin, "PUT", vmPay, vmBody("Debian"), 201)
	e.must(e.admin, "PUT", vmFind, vmBody("Debian"), 201)
}

func (e *env) token(role, scope string) string {
	e.t.Helper()
	r := e.must(e.admin, "POST", "/providers/Gild.Identity/tokens", map[string]any{"role": role, "scope": scope}, 201)
	tok, _ := r.body["token"].(string)
	if tok == "" {
		e.t.Fatalf("no token in %s", r.raw)
	}
	return tok
}

func ids(r response) []string {
	var out []string
	vals, _ := r.body["value"].([]any)
	for _, v := range vals {
		out = append(out, v.(map[string]any)["id"].(string))
	}
	return out
}

func TestCreateGetReplaceDelete(t *testing.T) {
	e := newEnv(t)
	e.seed()
	r := e.must(e.admin, "GET", strings.ToUpper(vmPay[:14])+vmPay[14:], nil, 200) // IDs compare case-insensitively
	if r.body["id"] != vmPay || r.body["name"] != "api-1" || r.body["type"] != vmType {
		t.Fatalf("envelope: %s", r.raw)
	}
	etag := r.header.Get("ETag")
	if etag == "" || r.body["etag"] == nil {
		t.Fatalf("no ETag: %v %s", r.header, r.raw)
	}
	sd, _ := r.body["systemData"].(map[string]any)
	if sd["createdBy"] != controlplane.AdminPrincipal {
		t.Fatalf("systemData: %s", r.raw)
	}
	// Replace with the right ETag, then the stale one is refused.
	r2 := e.do(e.admin, "PUT", vmPay, vmBody("Canonical"), "If-Match", etag)
	if r2.status != 200 {
		t.Fatalf("PUT with current ETag: %d %s", r2.status, r2.raw)
	}
	r3 := e.do(e.admin, "PUT", vmPay, vmBody("RedHat"), "If-Match", etag)
	if r3.status != 409 || r3.errCode() != "PreconditionFailed" {
		t.Fatalf("PUT with stale ETag: %d %s", r3.status, r3.raw)
	}
	if got := e.must(e.admin, "GET", vmPay, nil, 200).body["properties"].(map[string]any)["storageProfile"].(map[string]any)["imageReference"].(map[string]any)["publisher"]; got != "Canonical" {
		t.Fatalf("stale write changed the resource: publisher %v", got)
	}
	// If-None-Match: * refuses to overwrite.
	if r := e.do(e.admin, "PUT", vmPay, vmBody("X"), "If-None-Match", "*"); r.status != 409 {
		t.Fatalf("If-None-Match on existing: %d %s", r.status, r.raw)
	}
	// PATCH merges tags and properties.
	p := e.must(e.admin, "PATCH", vmPay, map[string]any{"tags": map[string]any{"owner": "team-pay"}}, 200)
	tags := p.body["tags"].(map[string]any)
	if tags["owner"] != "team-pay" || tags["serviceModel"] != "cattle" {
		t.Fatalf("PATCH did not merge tags: %s", p.raw)
	}
	e.must(e.admin, "DELETE", vmPay, nil, 200)
	e.must(e.admin, "GET", vmPay, nil, 404)
	e.must(e.admin, "DELETE", vmPay, nil, 204)
}

func TestParentsMustExist(t *testing.T) {
	e := newEnv(t)
	r := e.do(e.admin, "PUT", vmPay, vmBody("Debian"))
	if r.status != 404 || r.errCode() != "ParentResourceNotFound" || r.errField("target") != rgPay {
		t.Fatalf("VM without resource group: %d %s", r.status, r.raw)
	}
	r = e.do(e.admin, "PUT", subPay, map[string]any{"properties": map[string]any{"managementGroupId": mgCorp}})
	if r.status != 400 || r.errField("target") != "properties.managementGroupId" {
		t.Fatalf("subscription in a missing group: %d %s", r.status, r.raw)
	}
}

// TestTeamTokenScope is the acceptance case: a Reader for one subscription gets 404
// on another subscription's VM, does not see it in lists, and gets 403 on writes inside its
// own scope.
func TestTeamTokenScope(t *testing.T) {
	e := newEnv(t)
	e.seed()
	reader := e.token("Reader", subPay)

	e.must(reader, "GET", vmPay, nil, 200)
	if r := e.do(reader, "GET", vmFind, nil); r.status != 404 || r.errCode() != "ResourceNotFound" {
		t.Fatalf("other team's VM: %d %s", r.status, r.raw)
	}
	e.must(reader, "GET", subFind, nil, 404)
	e.must(reader, "GET", mgCorp, nil, 404)

	for _, path := range []string{vmsOfAll, "/subscriptions/payments/providers/" + vmType, "/resources"} {
		got := ids(e.must(reader, "GET", path, nil, 200))
		for _, id := range got {
			if strings.Contains(strings.ToLower(id), "/subscriptions/search") {
				t.Fatalf("list %s shows %s to the payments reader: %v", path, id, got)
			}
		}
	}
	if got := ids(e.must(reader, "GET", vmsOfAll, nil, 200)); len(got) != 1 || got[0] != vmPay {
		t.Fatalf("reader's VMs: %v", got)
	}
	if got := ids(e.must(reader, "GET", "/subscriptions", nil, 200)); len(got) != 1 || got[0] != subPay {
		t.Fatalf("reader's subscriptions: %v", got)
	}
	if got := ids(e.must(e.admin, "GET", vmsOfAll, nil, 200)); len(got) != 2 {
		t.Fatalf("admin's VMs: %v", got)
	}
	e.must(reader, "GET", "/subscriptions/search/providers/"+vmType, nil, 404)
	e.must(reader, "GET", mgCorp+"/providers/"+vmType, nil, 200) // filtered to payments

	// Writes inside its scope: 403; outside: 404, so nothing is learnt about them.
	if r := e.do(reader, "PUT", vmPay, vmBody("X")); r.status != 403 || r.errCode() != "AuthorizationFailed" {
		t.Fatalf("reader PUT in own scope: %d %s", r.status, r.raw)
	}
	if r := e.do(reader, "DELETE", vmPay, nil); r.status != 403 {
		t.Fatalf("reader DELETE in own scope: %d %s", r.status, r.raw)
	}
	if r := e.do(reader, "PUT", vmFind, vmBody("X")); r.status != 404 {
		t.Fatalf("reader PUT outside its scope: %d %s", r.status, r.raw)
	}
	if r := e.do(reader, "PUT", rgPay+"/providers/Microsoft.Authorization/roleAssignments/x",
		map[string]any{"properties": map[string]any{"roleDefinitionId": "Owner", "principalId": "me"}}); r.status != 403 {
		t.Fatalf("reader granting itself Owner: %d %s", r.status, r.raw)
	}
	// The audit log is for owners.
	if r := e.do(reader, "GET", subPay+"/providers/Gild.Audit/events", nil); r.status != 403 {
		t.Fatalf("reader reading the audit log: %d %s", r.status, r.raw)
	}
}

func TestInheritanceThroughManagementGroups(t *testing.T) {
	e := newEnv(t)
	e.seed()
	contributor := e.token("Contributor", mgCorp)
	e.must(contributor, "GET", vmFind, nil, 200)
	e.must(contributor, "PUT", rgPay+"/providers/"+vmType+"/api-2", vmBody("Debian"), 201)
	// Contributors cannot grant access.
	if r := e.do(contributor, "PUT", subPay+"/providers/Microsoft.Authorization/roleAssignments/x",
		map[string]any{"properties": map[string]any{"roleDefinitionId": "Reader", "principalId": "someone"}}); r.status != 403 {
		t.Fatalf("contributor granting a role: %d %s", r.status, r.raw)
	}
	// Moving a subscription out of the group takes the contributor's access with it.
	e.must(e.admin, "PUT", subFind, map[string]any{"properties": map[string]any{}}, 200)
	e.must(contributor, "GET", vmFind, nil, 404)

	publisher := e.token("Image Publisher", rgPay)
	e.must(publisher, "PUT", rgPay+"/providers/Microsoft.Compute/galleries/corp", map[string]any{"location": "local"}, 201)
	if r := e.do(publisher, "PUT", rgPay+"/providers/"+vmType+"/api-3", vmBody("Debian")); r.status != 403 {
		t.Fatalf("image publisher creating a VM: %d %s", r.status, r.raw)
	}
}

// TestBadInputChangesNothing sends each kind of bad request and checks the answer names the
// problem and the store did not change.
func TestBadInputChangesNothing(t *testing.T) {
	e := newEnv(t)
	e.seed()
	before, err := e.st.LastSeq(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	big := `{"location":"local","properties":{"x":"` + strings.Repeat("a", 70<<10) + `"}}`
	cases := []struct {
		name, method, path, body string
		status                   int
		code, target, mention    string
	}{
		{"malformed JSON", "PUT", vmPay, `{"location": "local",, }`, 400, "InvalidRequestContent", "", "line 1"},
		{"truncated JSON", "PUT", vmPay, `{"location": "local"`, 400, "InvalidRequestContent", "", "ends too early"},
		{"wrong field type", "PUT", vmPay, `{"location": 5}`, 400, "InvalidRequestContent", "location", "string"},
		{"unknown field", "PUT", vmPay, `{"location":"local","propertes":{}}`, 400, "InvalidRequestContent", "propertes", "unknown field"},
		{"missing location", "PUT", vmPay, `{"properties":{}}`, 400, "InvalidRequestContent", "location", "required"},
		{"unknown type", "PUT", rgPay + "/providers/Microsoft.Compute/virtualMachine/x", `{"location":"local"}`, 400, "InvalidResourceType", "", "virtualMachines"},
		{"unparseable ID", "PUT", "/subscriptions/payments/resourceGroups/prod/widgets/x", `{}`, 400, "InvalidResourceId", "", "providers"},
		{"bad name", "PUT", rgPay + "/providers/" + vmType + "/a%3Fb", `{"location":"local"}`, 400, "InvalidResourceId", "", "?"},
		{"oversize body", "PUT", vmPay, big, 413, "RequestEntityTooLarge", "", "limit"},
		{"body type mismatch", "PUT", vmPay, `{"type":"Microsoft.Compute/disks","location":"local"}`, 400, "InvalidRequestContent", "type", "does not match"},
		{"properties not an object", "PUT", vmPay, `{"location":"local","properties":[1]}`, 400, "InvalidRequestContent", "properties", "object"},
		{"PATCH malformed", "PATCH", vmPay, `{"tags":`, 400, "InvalidRequestContent", "", "JSON"},
		{"VM at subscription scope", "PUT", subPay + "/providers/" + vmType + "/x", `{"location":"local"}`, 400, "InvalidResourceType", "", "resource group"},
		{"bad token request", "POST", "/providers/Gild.Identity/tokens", `{"role":"Boss","scope":"/"}`, 400, "InvalidParameter", "role", "Boss"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.do(e.admin, c.method, c.path, c.body)
			if r.status != c.status || r.errCode() != c.code {
				t.Fatalf("got %d %s, want %d %s", r.status, r.raw, c.status, c.code)
			}
			if c.target != "" && r.errField("target") != c.target {
				t.Errorf("target %q, want %q (%s)", r.errField("target"), c.target, r.raw)
			}
			if !strings.Contains(r.errField("message"), c.mention) {
				t.Errorf("message %q does not mention %q", r.errField("message"), c.mention)
			}
		})
	}
	after, err := e.st.LastSeq(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Fatalf("bad requests changed the store: change sequence %d -> %d", before, after)
	}
	if got := e.must(e.admin, "GET", vmPay, nil, 200).body["location"]; got != "local" {
		t.Fatalf("VM changed: %v", got)
	}
}

func TestProtocolErrors(t *testing.T) {
	e := newEnv(t)
	e.seed()
	if r := e.do("", "GET", vmPay, nil); r.status != 401 || r.header.Get("WWW-Authenticate") == "" {
		t.Fatalf("no token: %d %s", r.status, r.raw)
	}
	if r := e.do("gild_not-a-real-token", "GET", vmPay, nil); r.status != 401 || r.errCode() != "AuthenticationFailed" {
		t.Fatalf("bad token: %d %s", r.status, r.raw)
	}
	if r := e.do(e.admin, "GET", vmPay+"?api-version=", nil); r.status != 400 || r.errCode() != "MissingApiVersionParameter" {
		t.Fatalf("no api-version: %d %s", r.status, r.raw)
	}
	if r := e.do(e.admin, "GET", vmPay+"?api-version=yesterday", nil); r.status != 400 || r.errField("target") != "api-version" {
		t.Fatalf("bad api-version: %d %s", r.status, r.raw)
	}
	if r := e.do(e.admin, "POST", vmPay, `{}`); r.status != 405 {
		t.Fatalf("POST on a resource: %d %s", r.status, r.raw)
	}
	if r := e.do(e.admin, "PUT", vmPay, `{}`, "Content-Type", "text/plain"); r.status != 415 {
		t.Fatalf("text body: %d %s", r.status, r.raw)
	}
	if r := e.do(e.admin, "GET", "/healthz", nil); r.status != 200 || r.body["status"] != "ok" {
		t.Fatalf("healthz: %d %s", r.status, r.raw)
	}
	if r := e.do("", "GET", "/metrics", nil); r.status != 200 || !bytes.Contains(r.raw, []byte("gild_http_requests_total")) {
		t.Fatalf("metrics: %d %.300s", r.status, r.raw)
	}
}

func TestDeleteRules(t *testing.T) {
	e := newEnv(t)
	e.seed()
	// A subscription with resource groups, a group with subscriptions: refused, naming them.
	if r := e.do(e.admin, "DELETE", subPay, nil); r.status != 409 || !strings.Contains(r.errField("message"), "resourceGroups/prod") {
		t.Fatalf("delete non-empty subscription: %d %s", r.status, r.raw)
	}
	if r := e.do(e.admin, "DELETE", mgCorp, nil); r.status != 409 || !strings.Contains(r.errField("message"), "payments") {
		t.Fatalf("delete non-empty group: %d %s", r.status, r.raw)
	}
	// A resource group takes its resources along, each in the audit log.
	e.must(e.admin, "PUT", rgPay+"/providers/Microsoft.Compute/galleries/g", map[string]any{"location": "local"}, 201)
	e.must(e.admin, "PUT", rgPay+"/providers/Microsoft.Compute/galleries/g/images/i", definitionBody("Contoso"), 201)
	if r := e.do(e.admin, "DELETE", rgPay+"/providers/Microsoft.Compute/galleries/g", nil); r.status != 409 {
		t.Fatalf("delete gallery with images: %d %s", r.status, r.raw)
	}
	e.must(e.admin, "DELETE", rgPay, nil, 200)
	for _, id := range []string{vmPay, rgPay + "/providers/Microsoft.Compute/galleries/g/images/i"} {
		e.must(e.admin, "GET", id, nil, 404)
	}
	audit := e.must(e.admin, "GET", subPay+"/providers/Gild.Audit/events", nil, 200)
	deletes := 0
	for _, v := range audit.body["value"].([]any) {
		ev := v.(map[string]any)
		if ev["action"] == "DELETE" {
			deletes++
			if ev["principal"] != controlplane.AdminPrincipal || ev["beforeETag"] == "" {
				t.Errorf("audit entry: %v", ev)
			}
		}
	}
	if deletes != 4 {
		t.Fatalf("audit has %d deletes, want 4 (VM, image, gallery, resource group): %s", deletes, audit.raw)
	}
	e.must(e.admin, "DELETE", subPay, nil, 200)
}

func TestManagementGroupTree(t *testing.T) {
	e := newEnv(t)
	e.seed()
	child := "/providers/Microsoft.Management/managementGroups/teams"
	e.must(e.admin, "PUT", child, map[string]any{"properties": map[string]any{"details": map[string]any{"parent": map[string]any{"id": mgCorp}}}}, 201)
	r := e.do(e.admin, "PUT", mgCorp, map[string]any{"properties": map[string]any{"details": map[string]any{"parent": map[string]any{"id": child}}}})
	if r.status != 400 || !strings.Contains(r.errField("message"), "cycle") {
		t.Fatalf("cycle: %d %s", r.status, r.raw)
	}
	e.must(e.admin, "PUT", subFind, map[string]any{"properties": map[string]any{"managementGroupId": child}}, 200)
	owner := e.token("Owner", mgCorp)
	e.must(owner, "GET", vmFind, nil, 200) // through contoso → teams → search
	if got := ids(e.must(owner, "GET", "/providers/Microsoft.Management/managementGroups", nil, 200)); len(got) != 2 {
		t.Fatalf("groups visible to the contoso owner: %v", got)
	}
}

// TestConcurrentWritersOverHTTP runs read-modify-write loops from several clients with
// If-Match: every conflict is detected and no increment is lost.
func TestConcurrentWritersOverHTTP(t *testing.T) {
	e := newEnv(t)
	e.seed()
	const workers, each = 6, 15
	var wg sync.WaitGroup
	var mu sync.Mutex
	conflicts := 0
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for done := 0; done < each; {
				r := e.do(e.admin, "GET", vmPay, nil)
				n, _ := r.body["tags"].(map[string]any)["n"].(string)
				var cur int
				fmt.Sscan(n, &cur)
				body := vmBody("Debian")
				body["tags"] = map[string]string{"n": fmt.Sprint(cur + 1)}
				put := e.do(e.admin, "PUT", vmPay, body, "If-Match", r.header.Get("ETag"))
				switch put.status {
				case 200:
					done++
				case 409:
					mu.Lock()
					conflicts++
					mu.Unlock()
				default:
					t.Errorf("PUT: %d %s", put.status, put.raw)
					return
				}
			}
		}()
	}
	wg.Wait()
	got := e.must(e.admin, "GET", vmPay, nil, 200).body["tags"].(map[string]any)["n"]
	if got != fmt.Sprint(workers*each) {
		t.Fatalf("counter = %v, want %d (conflicts seen: %d)", got, workers*each, conflicts)
	}
	t.Logf("%d conflicts detected", conflicts)
}

func TestListPaging(t *testing.T) {
	e := newEnv(t)
	e.seed()
	for i := 0; i < 25; i++ {
		e.must(e.admin, "PUT", fmt.Sprintf("%s/providers/%s/vm-%02d", rgPay, vmType, i), vmBody("Debian"), 201)
	}
	seen := map[string]bool{}
	next := rgPay + "/providers/" + vmType + "?$top=10"
	pages := 0
	for next != "" {
		r := e.must(e.admin, "GET", next, nil, 200)
		for _, id := range ids(r) {
			if seen[id] {
				t.Fatalf("%s listed twice", id)
			}
			seen[id] = true
		}
		pages++
		link, _ := r.body["nextLink"].(string)
		next = strings.TrimPrefix(link, e.url)
	}
	if len(seen) != 26 || pages != 3 {
		t.Fatalf("listed %d VMs in %d pages, want 26 in 3", len(seen), pages)
	}
}

func TestAuditPagingAndWhoami(t *testing.T) {
	e := newEnv(t)
	e.seed()
	// Newest first, two at a time, following nextLink back to the first entry.
	var seqs []float64
	next := "/providers/Gild.Audit/events?order=newest&$top=2"
	for pages := 0; next != ""; pages++ {
		if pages > 20 {
			t.Fatal("audit paging does not end")
		}
		r := e.must(e.admin, "GET", next, nil, 200)
		for _, v := range r.body["value"].([]any) {
			seqs = append(seqs, v.(map[string]any)["seq"].(float64))
		}
		link, _ := r.body["nextLink"].(string)
		next = strings.TrimPrefix(link, e.url)
	}
	// The seed wrote 7 resources after the first token and its role assignment.
	if len(seqs) != 9 {
		t.Fatalf("paged through %d audit entries, want 9: %v", len(seqs), seqs)
	}
	for i := 1; i < len(seqs); i++ {
		if seqs[i] >= seqs[i-1] {
			t.Fatalf("not newest first: %v", seqs)
		}
	}
	if r := e.do(e.admin, "GET", "/providers/Gild.Audit/events?order=sideways", nil); r.status != 400 || r.errField("target") != "order" {
		t.Fatalf("bad order: %d %s", r.status, r.raw)
	}

	me := e.must(e.admin, "GET", "/providers/Gild.Identity/self", nil, 200)
	if me.body["principalId"] != controlplane.AdminPrincipal || len(me.body["roleAssignments"].([]any)) != 1 {
		t.Fatalf("whoami: %s", me.raw)
	}
	// Revoking a token takes the role assignment made with it away.
	created := e.must(e.admin, "POST", "/providers/Gild.Identity/tokens", map[string]any{"role": "Reader", "scope": subPay}, 201)
	reader := created.body["token"].(string)
	raID := created.body["roleAssignmentId"].(string)
	if got := e.must(reader, "GET", "/providers/Gild.Identity/self", nil, 200); got.body["tokenId"] != created.body["id"] {
		t.Fatalf("reader whoami: %s", got.raw)
	}
	e.must(e.admin, "DELETE", "/providers/Gild.Identity/tokens/"+created.body["id"].(string), nil, 200)
	e.must(e.admin, "GET", raID, nil, 404)
	if r := e.do(reader, "GET", vmPay, nil); r.status != 401 {
		t.Fatalf("revoked token: %d %s", r.status, r.raw)
	}
}

func TestErrorWording(t *testing.T) {
	e := newEnv(t)
	e.seed()
	r := e.do(e.admin, "PUT", vmPay, vmBody("Debian"), "If-Match", `"1"`)
	msg := r.errField("message")
	if r.status != 409 || !strings.Contains(msg, "ETag") || strings.Contains(msg, "store:") {
		t.Fatalf("stale ETag: %d %q", r.status, msg)
	}
	r = e.do(e.admin, "GET", subPay+"/providers/Microsoft.Compute/virtualMachinez", nil)
	if r.status != 400 || r.errField("target") != subPay+"/providers/Microsoft.Compute/virtualMachinez" || !strings.Contains(r.errField("message"), "virtualMachines") {
		t.Fatalf("list of a misspelt type: %d %s", r.status, r.raw)
	}
}
