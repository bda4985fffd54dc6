package web_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// The browser test's organisation: two teams, each a subscription with one resource group,
// under one management group whose policy assignment wants every VM tagged serviceModel
// pet or cattle, and says where the wiki explains it.
const (
	bMG       = "/providers/Microsoft.Management/managementGroups/corp"
	bSubA     = "/subscriptions/payments" // team A
	bSubB     = "/subscriptions/retail"   // team B
	bRGA      = bSubA + "/resourceGroups/pay-prod"
	bRGB      = bSubB + "/resourceGroups/shop-prod"
	bVMType   = "Microsoft.Compute/virtualMachines"
	bAssign   = bMG + "/providers/Microsoft.Authorization/policyAssignments/service-model"
	bWikiURL  = "https://wiki.example.com/policies/service-model"
	bWikiHost = "wiki.example.com"
	// bWikiTitle is the heading of the wiki page the test serves at bWikiURL.
	bWikiTitle = "Service models: pets and cattle"
	// bMessage is the assignment's non-compliance message, with the wiki's URL in it.
	bMessage = "Tag every VM serviceModel=pet or serviceModel=cattle; see " + bWikiURL + " for which."
)

// The VMs: team A's pay-db-1 carries a service model the policy does not know.
var (
	bVMGood1 = bRGA + "/providers/" + bVMType + "/pay-api-1"
	bVMBad   = bRGA + "/providers/" + bVMType + "/pay-db-1"
	bVMGood2 = bRGB + "/providers/" + bVMType + "/shop-web-1"
	bVMGood3 = bRGB + "/providers/" + bVMType + "/shop-web-2"
)

// TestDashboardInBrowser drives the dashboard in a real headless Chromium, as a person
// would: sign in, read the overview, drill from a team to its non-compliant VM and the
// reasons, follow the wiki link, filter a list, and sign in as another team that must not
// see the first team's VM. It saves screenshots of the main pages as artifacts.
func TestDashboardInBrowser(t *testing.T) {
	exe := findChromium(t)
	shots := screenshotDir(t)
	t.Logf("screenshots go to %s", shots)

	// The wiki the non-compliance message points at: the browser resolves wiki.example.com
	// to this server, so following the link really lands on a page.
	var wikiHits atomic.Int32
	wiki := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/policies/service-model" || r.Host != bWikiHost {
			http.NotFound(w, r)
			return
		}
		wikiHits.Add(1)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, "<!doctype html><title>wiki</title><h1 id=wiki-title>%s</h1><p>Pets are patched in place; cattle are rebuilt.</p>", bWikiTitle)
	}))
	t.Cleanup(wiki.Close)

	e := newEnv(t)
	seedBrowserOrg(e)
	tokA := e.token("Reader", bSubA)
	tokB := e.token("Reader", bSubB)

	b := startBrowser(t, exe, shots, e.url, "MAP "+bWikiHost+" "+strings.TrimPrefix(wiki.URL, "https://"))

	// 1. Signing in: the dashboard sends an anonymous browser to the sign-in form, and back.
	resp := b.open("/ui/")
	if got := b.path(); got != "/ui/sign-in" || resp.Status != http.StatusOK {
		b.fatalf("opening /ui/ without a session: at %s with %d, want the sign-in page", got, resp.Status)
	}
	b.shot("01-sign-in")
	b.signIn(e.admin, "/ui/")

	// 2. The overview's figures are the seeded ones: four VMs, one non-compliant.
	b.wantText("#overall-pct", "75 %")
	b.wantText("#noncompliant-resources", "1")
	b.wantText("#resources-total", "4")
	if got := b.column("teams", 0); !sameElements(got, "payments", "retail") {
		b.fatalf("teams on the overview = %q, want payments and retail", got)
	}
	if got := b.row("teams", "payments"); !slices.Equal(got, []string{"payments", "50 %", "1", "2"}) {
		b.fatalf("team payments on the overview = %q, want 50 %%, 1 non-compliant of 2", got)
	}
	if got := b.row("teams", "retail"); !slices.Equal(got, []string{"retail", "100 %", "0", "2"}) {
		b.fatalf("team retail on the overview = %q, want 100 %%, 0 non-compliant of 2", got)
	}
	b.shot("02-overview")

	// 3. Drill down: the team's row, its non-compliant resources, the VM.
	b.click(`#teams td[title="` + bSubA + `"] a`)
	if q := b.query(); q.Get("scope") != bSubA {
		b.fatalf("the team's row led to %s, want the overview narrowed to %s", b.location(), bSubA)
	}
	b.wantText("h1", "Compliance in payments")
	b.wantText("#overall-pct", "50 %")
	b.wantText("#noncompliant-resources", "1")
	b.wantText("#resources-total", "2")
	b.shot("03-team-overview")

	b.click("#noncompliant-resources")
	if got := b.path(); got != "/ui/resources" {
		b.fatalf("the non-compliant card led to %s, want the resource list", b.location())
	}
	if q := b.query(); q.Get("scope") != bSubA || q.Get("resources.state") != "NonCompliant" {
		b.fatalf("the non-compliant card led to %s, want the list of payments filtered to NonCompliant", b.location())
	}
	if got := b.column("resources", 0); !slices.Equal(got, []string{"pay-db-1"}) {
		b.fatalf("team payments' non-compliant resources = %q, want pay-db-1", got)
	}
	b.shot("04-resources-noncompliant")

	b.click(`#resources a[href$="/pay-db-1"]`)
	if got, _ := url.PathUnescape(b.path()); got != "/ui/resource"+bVMBad {
		b.fatalf("the VM's row led to %s, want its page", b.location())
	}
	if h1 := b.text("h1"); !strings.HasPrefix(h1, "pay-db-1") || !strings.Contains(h1, "NonCompliant") {
		b.fatalf("the VM's page is headed %q, want pay-db-1 and its state NonCompliant", h1)
	}
	if page := b.bodyText(); !strings.Contains(page, bMessage) {
		b.fatalf("the VM's page does not show the assignment's message %q:\n%s", bMessage, page)
	}
	// The reason, in one row of a table: which field, what the policy wants, what the VM has.
	rows := b.rows("")
	if !slices.ContainsFunc(rows, func(r []string) bool {
		return slices.Contains(r, "tags['serviceModel']") && slices.Contains(r, "snowflake") &&
			slices.ContainsFunc(r, func(c string) bool { return strings.Contains(c, "pet") && strings.Contains(c, "cattle") })
	}) {
		b.fatalf("no row on the VM's page gives the reason (field tags['serviceModel'], expected pet or cattle, actual snowflake); rows: %q", rows)
	}
	b.shot("05-vm")

	// 4. The wiki link in the message is a link to the message's URL, and following it
	// lands on the wiki's page.
	wikiLink := `a[href="` + bWikiURL + `"]`
	if n := b.count(wikiLink); n < 1 {
		b.fatalf("the VM's page has no link to %s; its links: %q", bWikiURL, b.links())
	}
	resp = b.click(wikiLink)
	if resp.Status != http.StatusOK || resp.URL != bWikiURL || b.location() != bWikiURL {
		b.fatalf("following the wiki link: %d from %s, at %s; want 200 from %s", resp.Status, resp.URL, b.location(), bWikiURL)
	}
	b.wantText("#wiki-title", bWikiTitle)
	if wikiHits.Load() != 1 {
		b.fatalf("the wiki served %d pages, want 1", wikiHits.Load())
	}

	// 5. Filter a list: the resource list, narrowed to one subscription with its filter,
	// then searched.
	b.open("/ui/resources")
	if got := b.column("resources", 0); !sameElements(got, "pay-api-1", "pay-db-1", "shop-web-1", "shop-web-2") {
		b.fatalf("resources = %q, want all four VMs", got)
	}
	b.shot("06-resources")
	b.do(chromedp.SetValue(chromedp.CSS(`select[name="resources.subscription"]`), "retail"))
	b.click(`form[aria-label="Filter Resources"] button[type=submit]`)
	if q := b.query(); q.Get("resources.subscription") != "retail" {
		b.fatalf("filtering by subscription led to %s", b.location())
	}
	if got := b.column("resources", 0); !sameElements(got, "shop-web-1", "shop-web-2") {
		b.fatalf("resources in subscription retail = %q, want shop-web-1 and shop-web-2", got)
	}
	b.wantText("#resources-title .count", "2 of 4")
	b.do(chromedp.SendKeys(chromedp.CSS(`input[name="resources.q"]`), "web-2"))
	b.click(`form[aria-label="Filter Resources"] button[type=submit]`)
	if got := b.column("resources", 0); !slices.Equal(got, []string{"shop-web-2"}) {
		b.fatalf("resources in retail matching web-2 = %q, want shop-web-2", got)
	}
	if q := b.query(); q.Get("resources.subscription") != "retail" || q.Get("resources.q") != "web-2" {
		b.fatalf("the search lost the filter: %s", b.location())
	}
	// On the overview, the teams list's search works the same way.
	b.open("/ui/")
	b.do(chromedp.SendKeys(chromedp.CSS(`input[name="teams.q"]`), "retail"))
	b.click(`form[aria-label="Filter Teams (subscriptions)"] button[type=submit]`)
	if got := b.column("teams", 0); !slices.Equal(got, []string{"retail"}) {
		b.fatalf("teams matching retail = %q", got)
	}
	if got := b.column("groups", 1); !sameElements(got, "pay-prod", "shop-prod") {
		b.fatalf("searching the teams list changed the resource groups list: %q", got)
	}

	// 6. The other pages open and draw.
	b.open("/ui/policies")
	b.wantStatus(http.StatusOK)
	if page := b.bodyText(); !strings.Contains(page, "VMs carry a service model") {
		b.fatalf("the policies page does not list the assignment:\n%s", page)
	}
	b.shot("07-policies")
	// The assignment's page lists the VM with its reason and links the message's wiki URL.
	b.click(`#assignments a[href^="/ui/assignment/"]`)
	b.wantText("h1", "VMs carry a service model")
	// A row for each reason: Resource, Subscription, Resource group, Policy, Field,
	// Expected, Actual, ...
	rows = b.rows("noncompliant")
	if !slices.ContainsFunc(rows, func(r []string) bool {
		return len(r) > 6 && r[0] == "pay-db-1" && r[4] == "tags['serviceModel']" && strings.Contains(r[5], "cattle") && r[6] == "snowflake"
	}) {
		b.fatalf("the assignment's non-compliant rows = %q, want pay-db-1's tags['serviceModel'], expected pet or cattle, actual snowflake", rows)
	}
	if got := slices.Compact(b.column("noncompliant", 0)); !slices.Equal(got, []string{"pay-db-1"}) {
		b.fatalf("the assignment's non-compliant resources = %q, want pay-db-1", got)
	}
	if n := b.count(`#noncompliance-message a[href="` + bWikiURL + `"]`); n != 1 {
		b.fatalf("the assignment's message links %s %d times, want once; links: %q", bWikiURL, n, b.links())
	}
	b.shot("08-assignment")
	b.open("/ui/images")
	b.wantStatus(http.StatusOK)
	b.shot("09-images")
	b.open("/ui/fleet")
	b.wantStatus(http.StatusOK)
	if page := b.bodyText(); !strings.Contains(page, "pay-api-1") || !strings.Contains(page, "pay-db-1") ||
		!strings.Contains(page, "shop-web-1") || !strings.Contains(page, "shop-web-2") {
		b.fatalf("the fleet page does not list every VM:\n%s", page)
	}
	b.shot("10-fleet")

	// 7. A phone-sized window draws the overview too.
	b.do(chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateScale(2)))
	b.open("/ui/")
	b.wantText("#overall-pct", "75 %")
	b.shot("11-overview-phone")
	b.do(chromedp.ResetViewport())

	// 8. Sign out, and in as team B: team A's VM is nowhere, and its page is not found.
	b.click(`form.signout button[type=submit]`)
	if got := b.path(); got != "/ui/sign-in" {
		b.fatalf("signing out ended at %s", b.location())
	}
	if resp := b.open("/ui/resources"); b.path() != "/ui/sign-in" {
		b.fatalf("after signing out /ui/resources answered %d at %s", resp.Status, b.location())
	}
	// Signing in again goes back to the page the browser asked for.
	b.signIn(tokB, "/ui/resources")
	b.open("/ui/")
	b.wantText("#overall-pct", "100 %")
	b.wantText("#noncompliant-resources", "0")
	b.wantText("#resources-total", "2")
	if got := b.column("teams", 0); !slices.Equal(got, []string{"retail"}) {
		b.fatalf("team B's overview lists teams %q, want only retail", got)
	}
	b.notIn("team B's overview", "payments", "pay-prod", "pay-db-1", "pay-api-1")
	b.open("/ui/resources")
	if got := b.column("resources", 0); !sameElements(got, "shop-web-1", "shop-web-2") {
		b.fatalf("team B's resources = %q, want shop-web-1 and shop-web-2", got)
	}
	b.notIn("team B's resource list", "payments", "pay-db-1")
	b.open("/ui/resources?resources.q=pay-db-1")
	if got := b.column("resources", 0); len(got) != 0 {
		b.fatalf("team B's search for pay-db-1 found %q", got)
	}
	resp = b.open("/ui/resource" + bVMBad)
	if resp.Status != http.StatusNotFound {
		b.fatalf("team B opening team A's VM: %d, want 404", resp.Status)
	}
	b.wantText("h1", "Not Found")
	b.notIn("team B's view of team A's VM", "snowflake", bWikiURL)
	b.shot("12-other-team-vm")
	b.open("/ui/policies")
	b.notIn("team B's policies page", "pay-db-1")
	// The assignment sits above both teams; its page shows team B only its own resources.
	b.click(`#assignments a[href^="/ui/assignment/"]`)
	b.wantText("h1", "VMs carry a service model")
	b.notIn("team B's view of the assignment", "pay-db-1", "payments")
	// Team A's scope, asked for by address, shows nothing of team A.
	b.open("/ui/?scope=" + url.QueryEscape(bSubA))
	b.notIn("team B's view of team A's overview", "pay-db-1", "pay-prod")
	if b.count("#resources-total") > 0 {
		b.wantText("#resources-total", "0")
	}
	b.open("/ui/fleet")
	b.notIn("team B's fleet page", "pay-db-1", "pay-api-1")
	// Team B's own VM opens.
	if resp := b.open("/ui/resource" + bVMGood3); resp.Status != http.StatusOK {
		b.fatalf("team B opening its own VM: %d", resp.Status)
	}

	// And the other way round: team A sees its own and not team B's.
	b.click(`form.signout button[type=submit]`)
	b.signIn(tokA, "/ui/")
	b.wantText("#resources-total", "2")
	b.open("/ui/resources")
	if got := b.column("resources", 0); !sameElements(got, "pay-api-1", "pay-db-1") {
		b.fatalf("team A's resources = %q", got)
	}
	if resp := b.open("/ui/resource" + bVMGood2); resp.Status != http.StatusNotFound {
		b.fatalf("team A opening team B's VM: %d, want 404", resp.Status)
	}
}

// seedBrowserOrg makes the organisation the browser test reads.
func seedBrowserOrg(e *env) {
	e.t.Helper()
	e.put(e.admin, bMG, map[string]any{"properties": map[string]any{"displayName": "Corp"}})
	for _, s := range []string{bSubA, bSubB} {
		e.put(e.admin, s, map[string]any{"properties": map[string]any{"managementGroupId": bMG}})
	}
	for _, rg := range []string{bRGA, bRGB} {
		e.put(e.admin, rg, map[string]any{"location": "local"})
	}
	e.put(e.admin, bAssign, map[string]any{"properties": map[string]any{
		"displayName":           "VMs carry a service model",
		"policyDefinitionId":    "/providers/Microsoft.Authorization/policyDefinitions/gild-service-model-tag",
		"parameters":            map[string]any{"effect": map[string]any{"value": "Audit"}},
		"nonComplianceMessages": []any{map[string]any{"message": bMessage}},
	}})
	vm := func(model string) map[string]any {
		return map[string]any{
			"location": "local",
			"tags":     map[string]string{"serviceModel": model},
			"properties": map[string]any{
				"hardwareProfile": map[string]any{"vmSize": "Standard_B2s"},
				"storageProfile": map[string]any{"imageReference": map[string]any{
					"publisher": "Debian", "offer": "debian-12", "sku": "12", "version": "latest"}},
			},
		}
	}
	e.put(e.admin, bVMGood1, vm("cattle"))
	e.put(e.admin, bVMBad, vm("snowflake"))
	e.put(e.admin, bVMGood2, vm("pet"))
	e.put(e.admin, bVMGood3, vm("cattle"))
}

// findChromium finds the browser; without one the test skips, unless
// GILD_REQUIRE_BROWSER=1 (as make test sets), when it fails.
func findChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "no chromium, chromium-browser or google-chrome on PATH: the dashboard's browser test needs Debian's chromium (apt-get install chromium fonts-dejavu-core, or make deps)"
	if os.Getenv("GILD_REQUIRE_BROWSER") == "1" {
		t.Fatal(msg + "; GILD_REQUIRE_BROWSER=1 makes that a failure")
	}
	t.Skip(msg)
	return ""
}

// screenshotDir is where screenshots go: $GILD_ARTIFACTS, or .artifacts/screenshots at
// the repository's root.
func screenshotDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("GILD_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("..", ".artifacts", "screenshots")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		t.Fatal(err)
	}
	// A failure's screenshot from an earlier run would mislead.
	if err := os.Remove(filepath.Join(abs, "failure.png")); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return abs
}

// chromeTab is one browser tab on the dashboard.
type chromeTab struct {
	t     *testing.T
	ctx   context.Context
	base  string
	shots string
	last  *network.Response
}

// stepTimeout bounds each action, so that a missing element fails the test with its name
// rather than at the end of the whole test's time.
const stepTimeout = 20 * time.Second

// startBrowser starts a headless Chromium for the test; it is killed when the test ends,
// and after two minutes in any case.
func startBrowser(t *testing.T, exe, shots, base, hostRules string) *chromeTab {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox, // CI runs the tests as root
		chromedp.DisableGPU,
		chromedp.WindowSize(1280, 900),
		chromedp.Flag("no-proxy-server", true),
		chromedp.Flag("host-resolver-rules", hostRules),
		chromedp.IgnoreCertErrors, // the wiki is an httptest TLS server
		chromedp.Flag("lang", "en-GB"),
	)
	ctx, cancelTime := context.WithTimeout(context.Background(), 2*time.Minute)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	bctx, cancelBrowser := chromedp.NewContext(allocCtx, chromedp.WithErrorf(t.Logf))
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc() // kills the browser and waits for it
		cancelTime()
	})
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("starting %s: %v", exe, err)
	}
	return &chromeTab{t: t, ctx: bctx, base: base, shots: shots}
}

// fatalf fails the test, with a screenshot of the page as it was.
func (b *chromeTab) fatalf(format string, args ...any) {
	b.t.Helper()
	msg := fmt.Sprintf(format, args...)
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	if loc, err := chromedp.Run(ctx, chromedp.Location()); err == nil {
		msg += "\n(at " + loc + ")"
	}
	if png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
		p := filepath.Join(b.shots, "failure.png")
		if os.WriteFile(p, png, 0o644) == nil {
			msg += "\n(screenshot: " + p + ")"
		}
	}
	b.t.Fatal(msg)
}

// inBrowser runs one action with the step's time limit.
func inBrowser[T any](b *chromeTab, a chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.fatalf("browser: %v", err)
	}
	return v
}

func (b *chromeTab) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	inBrowser(b, chromedp.Steps(steps...))
}

// jsValue runs JavaScript in the page (the DevTools protocol's, which the pages' CSP
// does not stop) and decodes its value.
func jsValue[T any](b *chromeTab, expr string) T {
	b.t.Helper()
	return inBrowser(b, chromedp.Evaluate[T](expr))
}

// open navigates to a dashboard path and waits for the page.
func (b *chromeTab) open(path string) *network.Response {
	b.t.Helper()
	resp := inBrowser(b, chromedp.NavigateResponse(b.base+path))
	if resp == nil {
		b.fatalf("opening %s: no response", path)
	}
	b.last = resp
	return resp
}

// click clicks the first element sel matches and waits for the page it leads to.
func (b *chromeTab) click(sel string) *network.Response {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(sel)))
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && b.count(sel) == 0 {
			b.fatalf("clicking %s: there is no such element", sel)
		}
		b.fatalf("clicking %s: %v", sel, err)
	}
	if resp == nil {
		b.fatalf("clicking %s: no page", sel)
	}
	b.last = resp
	return resp
}

func (b *chromeTab) wantStatus(status int) {
	b.t.Helper()
	if b.last.Status != int64(status) {
		b.fatalf("%s answered %d, want %d:\n%s", b.last.URL, b.last.Status, status, b.bodyText())
	}
}

// signIn signs in through the form on the sign-in page the browser is at (or opens it),
// and checks that it lands on want.
func (b *chromeTab) signIn(token, want string) {
	b.t.Helper()
	if b.path() != "/ui/sign-in" {
		b.open("/ui/sign-in")
	}
	b.do(chromedp.SendKeys(chromedp.ID("token"), token))
	resp := b.click(`form[action="/ui/sign-in"] button[type=submit]`)
	if got := b.url().RequestURI(); got != want || resp.Status != http.StatusOK {
		b.fatalf("signing in ended at %s with %d, want %s:\n%s", got, resp.Status, want, b.bodyText())
	}
}

func (b *chromeTab) location() string {
	b.t.Helper()
	return inBrowser(b, chromedp.Location())
}

func (b *chromeTab) url() *url.URL {
	b.t.Helper()
	u, err := url.Parse(b.location())
	if err != nil {
		b.fatalf("location: %v", err)
	}
	return u
}

// path is the current page's path, escaped as the address bar has it.
func (b *chromeTab) path() string { b.t.Helper(); return b.url().EscapedPath() }

func (b *chromeTab) query() url.Values { b.t.Helper(); return b.url().Query() }

// text is the visible text of the first element sel matches, trimmed.
func (b *chromeTab) text(sel string) string {
	b.t.Helper()
	return strings.TrimSpace(inBrowser(b, chromedp.Text(chromedp.CSS(sel))))
}

func (b *chromeTab) wantText(sel, want string) {
	b.t.Helper()
	if b.count(sel) == 0 {
		b.fatalf("the page has no %s (want it to read %q)", sel, want)
	}
	if got := b.text(sel); got != want {
		b.fatalf("%s reads %q, want %q", sel, got, want)
	}
}

// count is how many elements sel matches now.
func (b *chromeTab) count(sel string) int {
	b.t.Helper()
	return jsValue[int](b, fmt.Sprintf(`document.querySelectorAll(%q).length`, sel))
}

func (b *chromeTab) bodyText() string {
	b.t.Helper()
	return jsValue[string](b, `document.body.innerText`)
}

// notIn fails when the page says any of words.
func (b *chromeTab) notIn(what string, words ...string) {
	b.t.Helper()
	// The page's source too: a title attribute or a link shows what the text hides.
	page := b.bodyText() + "\n" + jsValue[string](b, `document.documentElement.outerHTML`)
	for _, w := range words {
		if strings.Contains(page, w) {
			b.fatalf("%s shows %q:\n%s", what, w, b.bodyText())
		}
	}
}

// column is the text of column i of every row of the table with id name.
func (b *chromeTab) column(name string, i int) []string {
	b.t.Helper()
	return jsValue[[]string](b, fmt.Sprintf(
		`Array.from(document.querySelectorAll('table#%s > tbody > tr'), tr => tr.cells[%d] ? tr.cells[%d].innerText.trim() : '')`, name, i, i))
}

// row is the text of the cells of the table's row whose first cell reads first.
func (b *chromeTab) row(name, first string) []string {
	b.t.Helper()
	return jsValue[[]string](b, fmt.Sprintf(
		`(() => { const tr = Array.from(document.querySelectorAll('table#%s > tbody > tr')).find(tr => tr.cells[0].innerText.trim() === %q); return tr ? Array.from(tr.cells, c => c.innerText.trim()) : []; })()`, name, first))
}

// rows is the text of every cell of the table with id name, row by row; of every table's
// body rows when name is "".
func (b *chromeTab) rows(name string) [][]string {
	b.t.Helper()
	sel := "table > tbody > tr"
	if name != "" {
		sel = "table#" + name + " > tbody > tr"
	}
	return jsValue[[][]string](b, fmt.Sprintf(
		`Array.from(document.querySelectorAll(%q), tr => Array.from(tr.cells, c => c.innerText.trim()))`, sel))
}

// links are the page's links, for messages.
func (b *chromeTab) links() []string {
	b.t.Helper()
	return jsValue[[]string](b, `Array.from(document.querySelectorAll('a[href]'), a => a.getAttribute('href'))`)
}

// shot saves a full-page screenshot as name.png.
func (b *chromeTab) shot(name string) {
	b.t.Helper()
	png := inBrowser(b, chromedp.FullScreenshot(100))
	if err := os.WriteFile(filepath.Join(b.shots, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// sameElements reports whether got holds exactly want, in any order.
func sameElements(got []string, want ...string) bool {
	g := slices.Clone(got)
	w := slices.Clone(want)
	slices.Sort(g)
	slices.Sort(w)
	return slices.Equal(g, w)
}
