package cli

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gildhq/gild/server"
)

// harness is a real gild server on a loopback port with a fresh SQLite store, and a CLI
// environment of its own (config directory, home, variables) to drive it with.
type harness struct {
	t         *testing.T
	url       string
	dataDir   string
	adminFile string
	env       map[string]string
}

func newHarness(t *testing.T, configure ...func(*server.Config)) *harness {
	t.Helper()
	dataDir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	cfg := server.Config{
		DataDir: dataDir,
		Addr:    "127.0.0.1:0",
		Logger:  slog.New(slog.DiscardHandler),
		Ready:   func(addr string) { ready <- addr },
		// Tests that do not boot VMs keep them as records: a VM from a test's fake image
		// would otherwise spin in its firmware for the rest of the run.
		NoVMs: true,
	}
	for _, c := range configure {
		c(&cfg)
	}
	go func() { done <- server.Run(ctx, cfg) }()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("server stopped before it was ready: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("server was not ready after 30s")
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server.Run: %v", err)
		}
	})
	return &harness{
		t:         t,
		url:       "http://" + addr,
		dataDir:   dataDir,
		adminFile: filepath.Join(dataDir, server.AdminTokenFile),
		env: map[string]string{
			"HOME":            t.TempDir(),
			"XDG_CONFIG_HOME": t.TempDir(),
		},
	}
}

type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return "exit " + strconv.Itoa(r.code) + "\n--- stdout:\n" + r.stdout + "--- stderr:\n" + r.stderr
}

// run runs the CLI with args and the harness's environment plus extra variables.
func (h *harness) runEnv(extra map[string]string, stdin string, args ...string) result {
	h.t.Helper()
	var stdout, stderr strings.Builder
	getenv := func(k string) string {
		if v, ok := extra[k]; ok {
			return v
		}
		return h.env[k]
	}
	code := Run(context.Background(), args, Env{Stdin: strings.NewReader(stdin), Stdout: &stdout, Stderr: &stderr, Getenv: getenv})
	return result{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

func (h *harness) run(args ...string) result {
	h.t.Helper()
	return h.runEnv(nil, "", args...)
}

// ok runs the CLI and fails the test unless it succeeds.
func (h *harness) ok(stdin string, args ...string) result {
	h.t.Helper()
	r := h.runEnv(nil, stdin, args...)
	if r.code != 0 {
		h.t.Fatalf("gild %s: %s", strings.Join(args, " "), r)
	}
	return r
}

// fails runs the CLI and fails the test unless it exits with code and stderr has every want.
func (h *harness) fails(extra map[string]string, stdin string, code int, wants []string, args ...string) result {
	h.t.Helper()
	r := h.runEnv(extra, stdin, args...)
	if r.code != code {
		h.t.Fatalf("gild %s: want exit %d: %s", strings.Join(args, " "), code, r)
	}
	for _, w := range wants {
		if !strings.Contains(r.stderr, w) {
			h.t.Errorf("gild %s: stderr lacks %q: %s", strings.Join(args, " "), w, r)
		}
	}
	return r
}

func (h *harness) login() {
	h.t.Helper()
	r := h.ok("", "login", "--server", h.url, "--token-file", h.adminFile)
	if !strings.Contains(r.stdout, "Logged in to "+h.url+" as admin.") {
		h.t.Fatalf("login output: %s", r)
	}
}

func TestWhoami(t *testing.T) {
	h := newHarness(t)
	h.login()
	r := h.ok("", "whoami")
	for _, want := range []string{"PRINCIPAL", "admin", "Owner", "/"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("whoami lacks %q:\n%s", want, r.stdout)
		}
	}
	if !strings.Contains(h.ok("", "whoami", "-o", "json").stdout, `"principalId": "admin"`) {
		t.Error("whoami -o json lacks the principal")
	}
}

const (
	mgContoso = "/providers/Microsoft.Management/managementGroups/contoso"
	mgTeams   = "/providers/Microsoft.Management/managementGroups/contoso-teams"
	vmAPI1    = "/subscriptions/payments/resourceGroups/prod/providers/Microsoft.Compute/virtualMachines/api-1"
	vmSearch  = "/subscriptions/search/resourceGroups/prod/providers/Microsoft.Compute/virtualMachines/idx-1"
	vmBody    = `{"location":"local","tags":{"serviceModel":"cattle"},"properties":{"hardwareProfile":{"vmSize":"Standard_B2s"},
	  "storageProfile":{"imageReference":{"publisher":"Debian","offer":"debian-12","sku":"12-gen2","version":"latest"}}}}`
)

// seed makes the sample hierarchy through the CLI.
func (h *harness) seed() {
	h.t.Helper()
	h.ok(`{"properties":{"displayName":"Contoso"}}`, "put", mgContoso, "-f", "-")
	h.ok(`{"properties":{"details":{"parent":{"id":"`+mgContoso+`"}}}}`, "put", mgTeams, "-f", "-")
	for _, sub := range []string{"payments", "search"} {
		h.ok(`{"properties":{"managementGroupId":"`+mgTeams+`"}}`, "put", "/subscriptions/"+sub, "-f", "-")
		for _, rg := range []string{"prod", "dev"} {
			h.ok(`{"location":"local"}`, "put", "/subscriptions/"+sub+"/resourceGroups/"+rg, "-f", "-")
		}
	}
	h.ok(vmBody, "put", vmAPI1, "-f", "-")
	h.ok(vmBody, "put", vmSearch, "-f", "-")
}

func decode[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("output is not the JSON expected: %v\n%s", err, s)
	}
	return v
}

type resourceJSON struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	Type       string            `json:"type"`
	Location   string            `json:"location"`
	Tags       map[string]string `json:"tags"`
	ETag       string            `json:"etag"`
	Properties map[string]any    `json:"properties"`
}

type listJSON struct {
	Value    []resourceJSON `json:"value"`
	NextLink string         `json:"nextLink"`
}

func ids(l listJSON) []string {
	out := make([]string, len(l.Value))
	for i, r := range l.Value {
		out[i] = r.ID
	}
	return out
}

func TestLoginSavesConfig(t *testing.T) {
	h := newHarness(t)
	h.fails(nil, "", exitError, []string{"run gild login"}, "list", "/")
	h.login()
	path := filepath.Join(h.env["XDG_CONFIG_HOME"], "gild", "config.json")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("config mode %v, want 0600", fi.Mode().Perm())
	}
	di, err := os.Stat(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if di.Mode().Perm() != 0o700 {
		t.Errorf("config directory mode %v, want 0700", di.Mode().Perm())
	}
	data, _ := os.ReadFile(path)
	cfg := decode[config](t, string(data))
	if cfg.Server != h.url || cfg.TokenFile != h.adminFile {
		t.Errorf("config = %+v, want server %s and token file %s", cfg, h.url, h.adminFile)
	}
	if strings.Contains(string(data), "gild_") {
		t.Error("the config holds the token itself; it must hold only the file's path")
	}
	// The saved login works, and the variables override it.
	h.ok("", "list", "/")
	h.fails(map[string]string{"GILD_TOKEN": "gild_not-a-real-token"}, "", exitError, []string{"AuthenticationFailed: "}, "list", "/")
	h.fails(map[string]string{"GILD_SERVER": "http://127.0.0.1:1"}, "", exitError, []string{"cannot reach gild at http://127.0.0.1:1"}, "list", "/")

	// A token the server refuses is not saved.
	bad := filepath.Join(t.TempDir(), "bad.token")
	if err := os.WriteFile(bad, []byte("gild_nope\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h.fails(nil, "", exitError, []string{"refused the token", "AuthenticationFailed"}, "login", "--server", h.url, "--token-file", bad)
	data2, _ := os.ReadFile(path)
	if string(data2) != string(data) {
		t.Errorf("a failed login changed the config:\n%s", data2)
	}
	h.fails(nil, "", exitUsage, []string{"needs both --server URL and --token-file FILE"}, "login", "--server", h.url)
}

func TestResourceCommands(t *testing.T) {
	h := newHarness(t)
	h.login()

	r := h.ok(`{"properties":{"displayName":"Contoso"}}`, "put", mgContoso, "-f", "-")
	if !strings.HasPrefix(r.stdout, "Created "+mgContoso+"\n") {
		t.Errorf("put of a new resource: %s", r)
	}
	r = h.ok(`{"properties":{"displayName":"Contoso Ltd"}}`, "put", mgContoso, "-f", "-")
	if !strings.HasPrefix(r.stdout, "Updated "+mgContoso+"\n") {
		t.Errorf("put of an existing resource: %s", r)
	}
	h.seed()

	// A body from a file.
	bodyFile := filepath.Join(t.TempDir(), "vm.json")
	if err := os.WriteFile(bodyFile, []byte(vmBody), 0o600); err != nil {
		t.Fatal(err)
	}
	vm2 := strings.Replace(vmAPI1, "api-1", "api-2", 1)
	h.ok("", "put", vm2, "-f", bodyFile, "-o", "json")

	// get, as a table and as the API's JSON.
	r = h.ok("", "get", vmAPI1)
	for _, want := range []string{"id ", vmAPI1, "type ", "Microsoft.Compute/virtualMachines", "location ", "local", "tags ", "serviceModel=cattle",
		"etag ", "createdBy ", "admin", "lastModifiedAt ", "properties:\n{\n  \"hardwareProfile\": {", `"publisher": "Debian"`} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("get table lacks %q:\n%s", want, r.stdout)
		}
	}
	r = h.ok("", "get", vmAPI1, "--output", "json")
	vm := decode[resourceJSON](t, r.stdout)
	if vm.ID != vmAPI1 || vm.Location != "local" || vm.Tags["serviceModel"] != "cattle" || vm.ETag == "" {
		t.Errorf("get json: %+v", vm)
	}
	if !strings.Contains(r.stdout, "\n  \"name\": \"api-1\",\n") {
		t.Errorf("get json is not pretty-printed:\n%s", r.stdout)
	}

	// list: table, json, every type, the special collections.
	r = h.ok("", "list", "/", "--type", "Microsoft.Resources/subscriptions")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "NAME") || !strings.Contains(lines[0], "TYPE") ||
		!strings.Contains(lines[0], "LOCATION") || !strings.Contains(lines[0], "ID") ||
		!strings.Contains(lines[1], "/subscriptions/payments") || !strings.Contains(lines[2], "/subscriptions/search") {
		t.Errorf("list subscriptions:\n%s", r.stdout)
	}
	r = h.ok("", "list", "/", "--type", "Microsoft.Management/managementGroups", "-o", "json")
	if got := ids(decode[listJSON](t, r.stdout)); strings.Join(got, " ") != mgContoso+" "+mgTeams {
		t.Errorf("list management groups: %v", got)
	}
	r = h.ok("", "list", "/subscriptions/payments", "--type", "Microsoft.Resources/resourceGroups", "-o", "json")
	if got := ids(decode[listJSON](t, r.stdout)); len(got) != 2 {
		t.Errorf("list resource groups: %v", got)
	}
	r = h.ok("", "list", "/subscriptions/payments", "--type", "Microsoft.Compute/virtualMachines", "-o", "json")
	if got := ids(decode[listJSON](t, r.stdout)); strings.Join(got, " ") != vmAPI1+" "+vm2 {
		t.Errorf("list VMs in payments: %v", got)
	}
	r = h.ok("", "list", mgContoso, "--type", "Microsoft.Compute/virtualMachines", "-o", "json")
	if got := ids(decode[listJSON](t, r.stdout)); len(got) != 3 {
		t.Errorf("a management group's listing must include the VMs of its subscriptions: %v", got)
	}
	r = h.ok("", "list", "/subscriptions/payments/resourceGroups/prod")
	if !strings.Contains(r.stdout, "api-1") || !strings.Contains(r.stdout, "api-2") || strings.Contains(r.stdout, "idx-1") {
		t.Errorf("list everything in a resource group:\n%s", r.stdout)
	}

	// Paging: all pages by default, one page with --top, and the next with --skip-token.
	all := decode[listJSON](t, h.ok("", "list", "/", "-o", "json").stdout)
	if len(all.Value) < 10 || all.NextLink != "" {
		t.Fatalf("list / gave %d resources, nextLink %q", len(all.Value), all.NextLink)
	}
	var paged []string
	page := decode[listJSON](t, h.ok("", "list", "/", "--top", "3", "-o", "json").stdout)
	paged = append(paged, ids(page)...)
	if len(page.Value) != 3 || page.NextLink == "" {
		t.Fatalf("--top 3 gave %d resources, nextLink %q", len(page.Value), page.NextLink)
	}
	for page.NextLink != "" {
		page = decode[listJSON](t, h.ok("", "list", "/", "--top", "3", "--skip-token", skipToken(page.NextLink), "-o", "json").stdout)
		paged = append(paged, ids(page)...)
	}
	if strings.Join(paged, " ") != strings.Join(ids(all), " ") {
		t.Errorf("pages of 3 give\n%v\nbut one listing gives\n%v", paged, ids(all))
	}
	r = h.ok("", "list", "/", "--top", "2")
	if n := len(strings.Split(strings.TrimSpace(r.stdout), "\n")); n != 3 {
		t.Errorf("--top 2 table has %d lines:\n%s", n, r.stdout)
	}
	if !strings.Contains(r.stderr, "gild list / --top 2 --skip-token ") {
		t.Errorf("--top 2 does not say how to get the next page: %s", r)
	}

	// patch merges.
	r = h.ok(`{"tags":{"owner":"payments"}}`, "patch", vmAPI1, "-f", "-", "-o", "json")
	patched := decode[resourceJSON](t, r.stdout)
	if patched.Tags["owner"] != "payments" || patched.Tags["serviceModel"] != "cattle" || patched.ETag == vm.ETag {
		t.Errorf("patch: %+v", patched)
	}

	// ETags: a stale If-Match is refused with 409 and changes nothing; the current one works.
	r = h.fails(nil, `{"location":"local"}`, exitError, []string{"gild: PreconditionFailed: ", "(target: " + vmAPI1 + ")"},
		"put", vmAPI1, "-f", "-", "--if-match", vm.ETag)
	if after := decode[resourceJSON](t, h.ok("", "get", vmAPI1, "-o", "json").stdout); after.ETag != patched.ETag {
		t.Errorf("a refused put changed the ETag from %s to %s", patched.ETag, after.ETag)
	}
	h.ok(vmBody, "put", vmAPI1, "-f", "-", "--if-match", patched.ETag)
	h.fails(nil, vmBody, exitError, []string{"PreconditionFailed"}, "put", vmAPI1, "-f", "-", "--if-none-match", "*")
	h.fails(nil, vmBody, exitUsage, []string{"--if-none-match takes '*'"}, "put", vmAPI1, "-f", "-", "--if-none-match", "abc")

	// delete says whether it deleted anything.
	r = h.ok("", "delete", vm2)
	if r.stdout != "Deleted "+vm2+"\n" {
		t.Errorf("delete: %s", r)
	}
	r = h.ok("", "delete", vm2)
	if !strings.Contains(r.stdout, "does not exist; nothing was deleted") {
		t.Errorf("delete of a missing resource: %s", r)
	}
	r = h.ok("", "delete", vm2, "-o", "json")
	if d := decode[deleteResult](t, r.stdout); d.Deleted || d.ID != vm2 {
		t.Errorf("delete json: %s", r.stdout)
	}
	h.fails(nil, "", exitError, []string{"gild: ResourceNotFound: ", "(target: " + vm2 + ")"}, "get", vm2)
}

func TestAPIErrors(t *testing.T) {
	h := newHarness(t)
	h.login()
	h.seed()

	// Several problems come back as details, one per line.
	r := h.fails(nil, `{"location":"local","bogus":1,"tags":{"a":1}}`, exitError,
		[]string{"gild: InvalidRequestContent: the request body is invalid (2 problems; see details)\n",
			"\n  - InvalidRequestContent: tag \"a\" must have a string value, not a JSON number (target: tags['a'])\n",
			"\n  - InvalidRequestContent: unknown field \"bogus\"", "(target: bogus)\n"},
		"put", vmAPI1, "-f", "-")
	if r.stdout != "" {
		t.Errorf("a failed put wrote to stdout: %q", r.stdout)
	}
	h.fails(nil, `{"location":`, exitError, []string{"gild: InvalidRequestContent: the request body is not valid JSON"}, "put", vmAPI1, "-f", "-")
	h.fails(nil, "", exitError, []string{"InvalidResourceType", `did you mean "Microsoft.Compute/virtualMachines"`},
		"list", "/subscriptions/payments", "--type", "Microsoft.Compute/virtualMachinez")
	h.fails(nil, "", exitError, []string{"gild: ResourceHasDescendants: ", "(target: /subscriptions/payments)"}, "delete", "/subscriptions/payments")
	h.fails(nil, `{"location":"local"}`, exitError, []string{"gild: ParentResourceNotFound: ", "(target: /subscriptions/payments/resourceGroups/nope)"},
		"put", "/subscriptions/payments/resourceGroups/nope/providers/Microsoft.Compute/virtualMachines/x", "-f", "-")

	// Mistakes caught before any request are usage errors.
	h.fails(nil, "", exitUsage, []string{`gild: invalid --output "yaml": use table or json`}, "get", vmAPI1, "--output", "yaml")
	h.fails(nil, "", exitUsage, []string{`invalid --output "xml"`}, "-o", "xml", "list", "/")
	h.fails(nil, "", exitUsage, []string{`unknown command "frob"`}, "frob")
	h.fails(nil, "", exitUsage, []string{"unknown flag: --frob"}, "get", vmAPI1, "--frob")
	h.fails(nil, "", exitUsage, []string{"gild get takes one resource ID (got 0"}, "get")
	h.fails(nil, "", exitUsage, []string{"expected 'providers' at part 1"}, "get", "/subscripshuns/x")
	h.fails(nil, "", exitUsage, []string{"a body is required"}, "put", vmAPI1)
	h.fails(nil, "", exitUsage, []string{"not an RFC 3339 time"}, "audit", "--since", "yesterday")
	h.fails(nil, "", exitError, []string{"read body: open /nonexistent/body.json"}, "put", vmAPI1, "-f", "/nonexistent/body.json")
}

func TestTokensRolesAndAccess(t *testing.T) {
	h := newHarness(t)
	h.login()
	h.seed()

	// A Reader token for one subscription, as a table: the secret is shown once.
	r := h.ok("", "token", "create", "--role", "Reader", "--scope", "/subscriptions/payments", "--description", "payments dashboard")
	for _, want := range []string{"This is the only time its secret is shown", "\n  gild_", "principal ", "role ", "Reader at /subscriptions/payments",
		"roleAssignment ", "/subscriptions/payments/providers/Microsoft.Authorization/roleAssignments/tok-", "description ", "payments dashboard"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("token create lacks %q:\n%s", want, r.stdout)
		}
	}
	// And as JSON, which is the API's object.
	r = h.ok("", "token", "create", "--role", "Reader", "--scope", "/subscriptions/payments", "-o", "json", "--expires-in-days", "7")
	tok := decode[struct {
		ID             string `json:"id"`
		PrincipalID    string `json:"principalId"`
		Secret         string `json:"token"`
		RoleAssignment string `json:"roleAssignmentId"`
		ExpiresAt      string `json:"expiresAt"`
	}](t, r.stdout)
	if !strings.HasPrefix(tok.Secret, "gild_") || tok.ID == "" || tok.PrincipalID == "" || tok.RoleAssignment == "" || tok.ExpiresAt == "" {
		t.Fatalf("token create json: %s", r.stdout)
	}
	reader := map[string]string{"GILD_TOKEN": tok.Secret}

	// The reader sees its subscription and nothing else.
	r = h.runEnv(reader, "", "list", "/", "-o", "json")
	if r.code != 0 {
		t.Fatalf("reader list /: %s", r)
	}
	for _, id := range ids(decode[listJSON](t, r.stdout)) {
		if !strings.HasPrefix(strings.ToLower(id), "/subscriptions/payments") {
			t.Errorf("the payments reader sees %s", id)
		}
	}
	if r := h.runEnv(reader, "", "get", vmAPI1); r.code != 0 {
		t.Errorf("reader get in its scope: %s", r)
	}
	h.fails(reader, "", exitError, []string{"gild: ResourceNotFound: ", "(target: " + vmSearch + ")"}, "get", vmSearch)
	h.fails(reader, "", exitError, []string{"ResourceNotFound"}, "list", "/subscriptions/search")
	h.fails(reader, vmBody, exitError, []string{"gild: AuthorizationFailed: ", "Microsoft.Compute/virtualMachines/write", "(target: " + vmAPI1 + ")"}, "put", vmAPI1, "-f", "-")
	h.fails(reader, "", exitError, []string{"AuthorizationFailed"}, "delete", vmAPI1)
	h.fails(reader, "", exitError, []string{"AuthorizationFailed", "Gild.Audit/events/read"}, "audit")

	// A secret written to a file, mode 0600, and not printed.
	secretFile := filepath.Join(t.TempDir(), "reader.token")
	r = h.ok("", "token", "create", "--role", "Reader", "--scope", "/subscriptions/search", "--secret-file", secretFile)
	if strings.Contains(r.stdout, "gild_") || !strings.Contains(r.stdout, secretFile) {
		t.Errorf("token create --secret-file:\n%s", r.stdout)
	}
	if fi, err := os.Stat(secretFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("secret file: %v %v", fi, err)
	}
	if r := h.runEnv(nil, "", "get", vmSearch, "--token-file", secretFile); r.code != 0 {
		t.Errorf("the token from --secret-file does not work: %s", r)
	}

	// token list and revoke.
	r = h.ok("", "token", "list")
	if !strings.Contains(r.stdout, tok.ID) || !strings.Contains(r.stdout, "created on first start") || strings.Contains(r.stdout, "gild_") {
		t.Errorf("token list:\n%s", r.stdout)
	}
	r = h.ok("", "token", "revoke", tok.ID)
	if r.stdout != "Revoked token "+tok.ID+"\n" {
		t.Errorf("token revoke: %s", r)
	}
	h.fails(reader, "", exitError, []string{"AuthenticationFailed"}, "get", vmAPI1)
	list := decode[struct {
		Value []struct {
			ID        string  `json:"id"`
			RevokedAt *string `json:"revokedAt"`
		} `json:"value"`
	}](t, h.ok("", "token", "list", "-o", "json").stdout)
	found := false
	for _, v := range list.Value {
		if v.ID == tok.ID {
			found = true
			if v.RevokedAt == nil {
				t.Errorf("token %s is listed as not revoked", tok.ID)
			}
		}
	}
	if !found {
		t.Errorf("revoked token %s is not listed", tok.ID)
	}
	h.fails(nil, "", exitUsage, []string{"--role and --scope go together"}, "token", "create", "--role", "Reader")
	h.fails(nil, "", exitError, []string{"InvalidParameter", "does not exist"}, "token", "create", "--role", "Janitor", "--scope", "/")

	// role assign, list, remove, definitions.
	r = h.ok("", "role", "assign", "--role", "Contributor", "--principal", "bob", "--scope", "/subscriptions/search", "--name", "bob-search")
	raID := "/subscriptions/search/providers/Microsoft.Authorization/roleAssignments/bob-search"
	if !strings.Contains(r.stdout, "Assigned Contributor to bob at /subscriptions/search") || !strings.Contains(r.stdout, raID) {
		t.Errorf("role assign:\n%s", r.stdout)
	}
	r = h.ok("", "role", "assign", "--role", "Reader", "--principal", "carol", "--scope", mgTeams, "-o", "json")
	random := decode[resourceJSON](t, r.stdout)
	if len(random.Name) != 36 || random.Properties["roleDefinitionId"] != "/providers/Microsoft.Authorization/roleDefinitions/Reader" {
		t.Errorf("role assign with a random name: %s", r.stdout)
	}
	r = h.ok("", "role", "list", "--scope", "/subscriptions/search")
	if !strings.Contains(r.stdout, "bob-search") || !strings.Contains(r.stdout, "Contributor") || strings.Contains(r.stdout, "carol") {
		t.Errorf("role list in search:\n%s", r.stdout)
	}
	r = h.ok("", "role", "list")
	for _, want := range []string{"NAME", "ROLE", "PRINCIPAL", "SCOPE", "admin", "Owner", "bob", "carol", mgTeams} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("role list lacks %q:\n%s", want, r.stdout)
		}
	}
	bob := map[string]string{}
	bobTok := decode[struct {
		Secret string `json:"token"`
	}](t, h.ok("", "token", "create", "--principal", "bob", "-o", "json").stdout)
	bob["GILD_TOKEN"] = bobTok.Secret
	if r := h.runEnv(bob, `{"location":"local"}`, "put", "/subscriptions/search/resourceGroups/bobs", "-f", "-"); r.code != 0 {
		t.Errorf("bob, a Contributor on search, cannot create a resource group there: %s", r)
	}
	r = h.ok("", "role", "remove", raID)
	if r.stdout != "Removed "+raID+"\n" {
		t.Errorf("role remove: %s", r)
	}
	h.fails(bob, `{"location":"local"}`, exitError, []string{"ResourceNotFound"}, "put", "/subscriptions/search/resourceGroups/bobs2", "-f", "-")
	h.fails(nil, "", exitUsage, []string{"not a role assignment"}, "role", "remove", "/subscriptions/search")
	h.fails(nil, "", exitUsage, []string{"needs --role, --principal, --scope"}, "role", "assign")
	h.fails(nil, "", exitError, []string{"InvalidRequestContent", "properties.roleDefinitionId"}, "role", "assign", "--role", "Janitor", "--principal", "x", "--scope", "/")
	r = h.ok("", "role", "definitions")
	for _, want := range []string{"Owner", "Contributor", "Reader", "Image Publisher", "Policy Contributor"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("role definitions lacks %q:\n%s", want, r.stdout)
		}
	}
}

func TestAudit(t *testing.T) {
	h := newHarness(t)
	h.login()
	start := time.Now().UTC().Add(-time.Second).Format(time.RFC3339)
	h.seed()
	h.ok(`{"tags":{"owner":"payments"}}`, "patch", vmAPI1, "-f", "-")

	r := h.ok("", "audit")
	for _, want := range []string{"SEQ", "PRINCIPAL", "ACTION", "RESOURCE", "token/create", "PUT", "PATCH", vmAPI1, "admin"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("audit lacks %q:\n%s", want, r.stdout)
		}
	}
	type auditJSON struct {
		Value []struct {
			Seq        int64  `json:"seq"`
			Principal  string `json:"principal"`
			Action     string `json:"action"`
			ResourceID string `json:"resourceId"`
			BeforeETag string `json:"beforeETag"`
			AfterETag  string `json:"afterETag"`
		} `json:"value"`
	}
	a := decode[auditJSON](t, h.ok("", "audit", "/subscriptions/payments", "--since", start, "-o", "json").stdout)
	var patch bool
	for _, e := range a.Value {
		if !strings.HasPrefix(e.ResourceID, "/subscriptions/payments") {
			t.Errorf("audit of payments shows %s", e.ResourceID)
		}
		if e.Action == "PATCH" && e.ResourceID == vmAPI1 && e.BeforeETag != "" && e.AfterETag != "" && e.Principal == "admin" {
			patch = true
		}
	}
	if !patch {
		t.Errorf("audit of payments lacks the PATCH of %s with both ETags: %+v", vmAPI1, a.Value)
	}
	newest := decode[auditJSON](t, h.ok("", "audit", "--top", "2", "-o", "json").stdout)
	if len(newest.Value) != 2 || newest.Value[0].Action != "PATCH" || newest.Value[0].Seq <= newest.Value[1].Seq {
		t.Errorf("audit --top 2 should give the 2 newest entries, newest first: %+v", newest.Value)
	}
	if a := decode[auditJSON](t, h.ok("", "audit", "--top", "2", "--oldest", "-o", "json").stdout); len(a.Value) != 2 || a.Value[0].Action != "token/create" {
		t.Errorf("audit --oldest --top 2 should start with the first token: %+v", a.Value)
	}
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	if a := decode[auditJSON](t, h.ok("", "audit", "--since", future, "-o", "json").stdout); len(a.Value) != 0 {
		t.Errorf("audit --since the future gave %d entries", len(a.Value))
	}
}

func TestServe(t *testing.T) {
	// A free port, closed again for serve to take: a race with other programs, but only
	// for an instant on a loopback address.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dataDir := filepath.Join(t.TempDir(), "data")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, []string{"serve", "--data", dataDir, "--addr", addr, "--log-level", "debug"},
			Env{Stdout: io.Discard, Stderr: &stderr, Getenv: func(string) string { return "" }})
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case code := <-done:
			t.Fatalf("serve exited with %d: %s", code, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve is not healthy after 30s: %s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	fi, err := os.Stat(filepath.Join(dataDir, server.AdminTokenFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("admin token: %v, %v", fi, err)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("serve exited with %d after its context ended: %s", code, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
	}
	if !strings.Contains(stderr.String(), "level=INFO msg=\"gild is serving\"") {
		t.Errorf("serve's log is not slog text on stderr:\n%s", stderr.String())
	}

	var out strings.Builder
	if code := Run(context.Background(), []string{"serve", "--log-level", "loud"}, Env{Stderr: &out}); code != exitUsage {
		t.Errorf("serve --log-level loud: exit %d: %s", code, out.String())
	}
}

// syncBuffer is a strings.Builder safe for the server's goroutines to write to.
type syncBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestCollectionPath(t *testing.T) {
	for _, tc := range []struct{ scope, typ, want string }{
		{"/", "", "/resources"},
		{"/", "Microsoft.Resources/subscriptions", "/subscriptions"},
		{"/", "microsoft.resources/SUBSCRIPTIONS", "/subscriptions"},
		{"/", "Microsoft.Management/managementGroups", "/providers/Microsoft.Management/managementGroups"},
		{"/", "Microsoft.Compute/virtualMachines", "/providers/Microsoft.Compute/virtualMachines"},
		{"/subscriptions/payments", "Microsoft.Resources/resourceGroups", "/subscriptions/payments/resourceGroups"},
		{"/subscriptions/payments/", "", "/subscriptions/payments/resources"},
		{"/subscriptions/payments", "Microsoft.Compute/virtualMachines", "/subscriptions/payments/providers/Microsoft.Compute/virtualMachines"},
		{mgContoso, "Microsoft.Resources/subscriptions", mgContoso + "/providers/Microsoft.Resources/subscriptions"},
		{"/subscriptions/p/resourceGroups/rg/providers/Microsoft.Compute/galleries/g", "Microsoft.Compute/galleries/images",
			"/subscriptions/p/resourceGroups/rg/providers/Microsoft.Compute/galleries/g/providers/Microsoft.Compute/galleries/images"},
	} {
		got, err := collectionPath(tc.scope, tc.typ)
		if err != nil || got != tc.want {
			t.Errorf("collectionPath(%q, %q) = %q, %v; want %q", tc.scope, tc.typ, got, err, tc.want)
		}
	}
	for _, tc := range []struct{ scope, typ string }{{"subscriptions/x", ""}, {"/", "virtualMachines"}, {"/", "/Microsoft.Compute/x"}} {
		var ue *usageError
		if _, err := collectionPath(tc.scope, tc.typ); !errors.As(err, &ue) {
			t.Errorf("collectionPath(%q, %q): %v, want a usage error", tc.scope, tc.typ, err)
		}
	}
}

func TestDecodeError(t *testing.T) {
	err := decodeError(http.StatusBadGateway, []byte("<html>bad gateway</html>"))
	var ae *APIError
	if !errors.As(err, &ae) || ae.Code != "BadGateway" || ae.Status != 502 || !strings.Contains(ae.Message, "bad gateway") {
		t.Errorf("non-JSON error: %#v", err)
	}
	err = decodeError(http.StatusConflict, []byte(`{"error":{"code":"Conflict","message":"m","target":"t","details":[{"code":"X","message":"y"}]}}`))
	if !errors.As(err, &ae) || ae.Error() != "Conflict: m (target: t)" || len(ae.Details) != 1 || ae.Details[0].summary() != "X: y" {
		t.Errorf("ARM error: %#v", err)
	}
	var b strings.Builder
	printError(&b, err)
	if b.String() != "gild: Conflict: m (target: t)\n  - X: y\n" {
		t.Errorf("printError: %q", b.String())
	}
}

func TestQuoteETag(t *testing.T) {
	for in, want := range map[string]string{"12": `"12"`, `"12"`: `"12"`, "*": "*", `W/"12"`: `W/"12"`} {
		if got := quoteETag(in); got != want {
			t.Errorf("quoteETag(%q) = %q, want %q", in, got, want)
		}
	}
}
