package policy

import (
	"bytes"
	"compress/gzip"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

var aliasUpdate = flag.Bool("update-aliases", false, "regenerate the Azure part of alias_gild.go from the alias catalogue")

// aliasCatalogue finds Azure's alias catalogue (GILD_ALIAS_CATALOGUE, or the shared copy
// next to the repository), or skips the test.
func aliasCatalogue(t testing.TB) string {
	t.Helper()
	path := os.Getenv("GILD_ALIAS_CATALOGUE")
	if path == "" {
		path = filepath.Join("..", "..", "shared", "azure-policy", "aliases.csv.gz")
	}
	if _, err := os.Stat(path); err != nil {
		t.Skipf("alias catalogue not found at %s (set GILD_ALIAS_CATALOGUE to its path): %v", path, err)
	}
	return path
}

func aliasTable(t testing.TB, csv string) *AliasTable {
	t.Helper()
	tab, err := LoadAliases(strings.NewReader(csv))
	if err != nil {
		t.Fatalf("LoadAliases: %v", err)
	}
	return tab
}

func aliasGzip(t testing.TB, s string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// A fragment of the catalogue, with its CRLF line ends and the namespace-level rows.
const aliasTestCSV = "alias,path\r\n" +
	"Microsoft.Compute/virtualMachines/sku.name,properties.hardwareProfile.vmSize\r\n" +
	"Microsoft.Compute/virtualMachines/storageProfile.dataDisks[*].managedDisk.id,properties.storageProfile.dataDisks[*].managedDisk.id\r\n" +
	"\r\n" +
	"Microsoft.Compute/imagePublisher,properties.storageProfile.imageReference.publisher\r\n" +
	"Microsoft.Compute/imageSku,properties.storageProfile.imageReference.sku\r\n" +
	"Microsoft.Compute/imagePublisher,properties.virtualMachineProfile.storageProfile.imageReference.publisher\r\n" +
	"Microsoft.Compute/imageSku,properties.virtualMachineProfile.storageProfile.imageReference.sku\r\n" +
	"Microsoft.Compute/imagePublisher,properties.creationData.imageReference.id\r\n" +
	"Microsoft.Compute/imageSku,properties.creationData.imageReference.id\r\n" +
	"Microsoft.Sql/auditingSettings.state,properties.state\r\n" +
	"Microsoft.Sql/auditingSettings.state,properties.state\r\n" +
	"Microsoft.HybridCompute/imageSKU,properties.osVersion\r\n"

func TestLoadAliases(t *testing.T) {
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"csv", []byte(aliasTestCSV)},
		{"gzip", aliasGzip(t, aliasTestCSV)},
		{"no header, LF", []byte(strings.ReplaceAll(strings.TrimPrefix(aliasTestCSV, "alias,path\r\n"), "\r", ""))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tab, err := LoadAliases(bytes.NewReader(tc.data))
			if err != nil {
				t.Fatalf("LoadAliases: %v", err)
			}
			if tab.Len() != 6 {
				t.Errorf("Len = %d, want 6 (%q)", tab.Len(), tab.Names())
			}
			a, ok := tab.Lookup("microsoft.compute/IMAGEPUBLISHER")
			if !ok || a.Name != "Microsoft.Compute/imagePublisher" || len(a.Paths()) != 3 || len(a.Types()) != 0 {
				t.Fatalf("imagePublisher = %+v, %v", a, ok)
			}
			if a, _ := tab.Lookup("Microsoft.Sql/auditingSettings.state"); a == nil || len(a.Paths()) != 1 {
				t.Errorf("a repeated namespace-level row should be recorded once: %+v", a)
			}
			vmSize, _ := tab.Lookup("Microsoft.Compute/virtualMachines/SKU.NAME")
			if vmSize == nil || !reflect.DeepEqual(vmSize.Types(), []string{"Microsoft.Compute/virtualMachines"}) {
				t.Errorf("sku.name types = %v", vmSize)
			}
		})
	}
}

func TestLoadAliasesQuotedAndTyped(t *testing.T) {
	tab := aliasTable(t, "# a comment\n"+
		`"Microsoft.Test/things/a","properties.a"`+"\n"+
		`Microsoft.Test/ns,properties.x,Microsoft.Test/things`+"\n"+
		` Microsoft.Test/ns , properties.y , Microsoft.Test/others `+"\n")
	a, ok := tab.Lookup("Microsoft.Test/things/a")
	if !ok || a.Paths()[0].String() != "properties.a" {
		t.Fatalf("quoted row: %+v %v", a, ok)
	}
	ns, _ := tab.Lookup("microsoft.test/NS")
	if got := ns.Types(); !reflect.DeepEqual(got, []string{"Microsoft.Test/things", "Microsoft.Test/others"}) {
		t.Errorf("Types = %q", got)
	}
	for typ, want := range map[string]string{
		"Microsoft.Test/things": "properties.x",
		"microsoft.test/OTHERS": "properties.y",
	} {
		if p, ok := ns.PathFor(typ, nil); !ok || p.String() != want {
			t.Errorf("PathFor(%q) = %q, %v, want %q", typ, p, ok, want)
		}
	}
	if _, ok := ns.PathFor("Microsoft.Test/unrelated", nil); ok {
		t.Errorf("a typed alias should not apply to another type")
	}
	if p, ok := ns.PathFor("", nil); !ok || p.String() != "properties.x" {
		t.Errorf("PathFor with no type = %q, %v, want the first path", p, ok)
	}
}

func TestLoadAliasesErrors(t *testing.T) {
	tests := []struct {
		name, in string
		line     int
		msg      string
	}{
		{"one field", "alias,path\nMicrosoft.A/b/c,properties.c\nMicrosoft.A/b/d\n", 3, "got 1 field"},
		{"four fields", "Microsoft.A/b/c,properties.c,Microsoft.A/b,extra\n", 1, "got 4 field"},
		{"no namespace", "\n\nvmSize,properties.vmSize\n", 3, "not of the form Namespace/name"},
		{"empty path", "Microsoft.A/b/c,\n", 1, "empty path"},
		{"bad path", "Microsoft.A/b/c,properties..c\n", 1, "empty segment"},
		{"bad bracket", "Microsoft.A/b/c,properties.c[*\n", 1, "unclosed ["},
		{"bad type", "Microsoft.A/b,properties.c,nosuchtype\n", 1, "not a resource type"},
		{"unclosed quote", "Microsoft.A/b/c,\"properties.c\n", 1, "unclosed double quote"},
		{"space in name", "Microsoft.A/b/c d,properties.c\n", 1, "holds"},
		{"header later", "Microsoft.A/b/c,properties.c\nalias,path\n", 2, "not of the form"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadAliases(strings.NewReader(tt.in))
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("error = %v, want an *Error", err)
			}
			if pe.Code != CodeParse || pe.Location != fmt.Sprintf("line %d", tt.line) || !strings.Contains(pe.Message, tt.msg) {
				t.Errorf("error = %q (code %s, location %q), want line %d and %q", err, pe.Code, pe.Location, tt.line, tt.msg)
			}
		})
	}
	// gzip errors and file errors name the file.
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.csv.gz")
	if err := os.WriteFile(bad, aliasGzip(t, "Microsoft.A/b/c,properties.c\nbroken\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadAliasFile(bad); err == nil || !strings.Contains(err.Error(), bad+":2:") {
		t.Errorf("LoadAliasFile error = %v, want it to name %s:2", err, bad)
	}
	if _, err := LoadAliasFile(filepath.Join(dir, "missing.csv")); err == nil || !strings.Contains(err.Error(), "missing.csv") {
		t.Errorf("missing file error = %v", err)
	}
	truncated := aliasGzip(t, aliasTestCSV)
	if _, err := LoadAliases(bytes.NewReader(truncated[:len(truncated)/2])); err == nil {
		t.Errorf("a truncated gzip stream should fail")
	}
	if tab, err := LoadAliases(strings.NewReader("")); err != nil || tab.Len() != 0 {
		t.Errorf("an empty catalogue: %v, %d aliases", err, tab.Len())
	}
}

func TestAliasNamespaceLevelPathFor(t *testing.T) {
	vm := mustJSON(t, `{"type": "Microsoft.Compute/virtualMachines", "properties": {"storageProfile": {
		"imageReference": {"publisher": "Canonical", "sku": "22_04-lts"}}}}`)
	vmFromDisk := mustJSON(t, `{"type": "Microsoft.Compute/virtualMachines", "properties": {"storageProfile": {
		"osDisk": {"createOption": "Attach"}}}}`)
	vmss := mustJSON(t, `{"type": "Microsoft.Compute/virtualMachineScaleSets", "properties": {"virtualMachineProfile": {
		"storageProfile": {"imageReference": {"publisher": "MicrosoftWindowsServer"}}}}}`)
	disk := mustJSON(t, `{"type": "Microsoft.Compute/disks", "properties": {"creationData": {"createOption": "FromImage",
		"imageReference": {"id": "/Subscriptions/x/Providers/Microsoft.Compute/Locations/westus/Publishers/Canonical/ArtifactTypes/VMImage/Offers/o/Skus/s/Versions/1"}}}}`)
	emptyDisk := mustJSON(t, `{"type": "Microsoft.Compute/disks", "properties": {"creationData": {"createOption": "Empty"}}}`)

	catalogue := aliasTable(t, aliasTestCSV)
	tables := map[string]*AliasTable{
		"gild's table":           DefaultAliases(),
		"csv catalogue":          catalogue,
		"gild's merged with csv": DefaultAliases().Merge(catalogue),
		"csv merged with gild's": catalogue.Merge(DefaultAliases()),
	}
	tests := []struct {
		alias    string
		resource any
		want     string
		value    any
	}{
		{"Microsoft.Compute/imagePublisher", vm, "properties.storageProfile.imageReference.publisher", "Canonical"},
		{"microsoft.compute/imageSKU", vm, "properties.storageProfile.imageReference.sku", "22_04-lts"},
		{"Microsoft.Compute/imagePublisher", vmFromDisk, "properties.storageProfile.imageReference.publisher", nil},
		{"Microsoft.Compute/imagePublisher", vmss, "properties.virtualMachineProfile.storageProfile.imageReference.publisher", "MicrosoftWindowsServer"},
		{"Microsoft.Compute/imagePublisher", disk, "properties.creationData.imageReference.id", "/Subscriptions/x/Providers/Microsoft.Compute/Locations/westus/Publishers/Canonical/ArtifactTypes/VMImage/Offers/o/Skus/s/Versions/1"},
		{"Microsoft.Compute/imageSku", emptyDisk, "properties.creationData.imageReference.id", nil},
	}
	for name, tab := range tables {
		for _, tt := range tests {
			typ := tt.resource.(map[string]any)["type"].(string)
			a, ok := tab.Lookup(tt.alias)
			if !ok {
				t.Errorf("%s: no alias %s", name, tt.alias)
				continue
			}
			p, ok := a.PathFor(typ, tt.resource)
			if !ok || p.String() != tt.want {
				t.Errorf("%s: %s on a %s = %q, %v; want %q", name, tt.alias, typ, p, ok, tt.want)
				continue
			}
			if v, _ := p.Get(tt.resource); v != tt.value {
				t.Errorf("%s: %s on a %s selects %v, want %v", name, tt.alias, typ, v, tt.value)
			}
		}
	}

	// gild's table knows the types, so it does not need the resource to choose.
	a, _ := DefaultAliases().Lookup("Microsoft.Compute/imagePublisher")
	if got := a.Types(); !reflect.DeepEqual(got, []string{"Microsoft.Compute/virtualMachines", "Microsoft.Compute/virtualMachineScaleSets", "Microsoft.Compute/disks"}) {
		t.Errorf("imagePublisher types = %q", got)
	}
	if p, ok := a.PathFor("Microsoft.Compute/virtualMachineScaleSets", nil); !ok || !strings.HasPrefix(p.String(), "properties.virtualMachineProfile.") {
		t.Errorf("VMSS path without a resource = %q, %v", p, ok)
	}
	if _, ok := a.PathFor("Microsoft.Storage/storageAccounts", nil); ok {
		t.Errorf("imagePublisher should not apply to storage accounts")
	}
	// A type-specific alias does not apply to another type: Azure reads it as absent.
	vmSize, _ := DefaultAliases().Lookup("Microsoft.Compute/virtualMachines/sku.name")
	if _, ok := vmSize.PathFor("Microsoft.HybridCompute/machines", nil); ok {
		t.Errorf("a VM alias should not apply to a hybrid machine")
	}
	if p, ok := vmSize.PathFor("MICROSOFT.COMPUTE/VIRTUALMACHINES", nil); !ok || p.String() != "properties.hardwareProfile.vmSize" {
		t.Errorf("sku.name = %q, %v", p, ok)
	}
	// The csv alone has only untyped rows for imagePublisher: they apply to any type,
	// chosen by the resource's shape.
	ca, _ := catalogue.Lookup("Microsoft.Compute/imagePublisher")
	if p, ok := ca.PathFor("Microsoft.Compute/somethingElse", nil); !ok || p.String() != "properties.storageProfile.imageReference.publisher" {
		t.Errorf("untyped rows, no resource: %q, %v (want the first)", p, ok)
	}
	if p, ok := ca.PathFor("", emptyDisk); !ok || p.String() != "properties.creationData.imageReference.id" {
		t.Errorf("untyped rows choose by the longest existing prefix: %q, %v", p, ok)
	}
}

func TestAliasMerge(t *testing.T) {
	base := aliasTable(t, "Microsoft.T/x/a,properties.a\nMicrosoft.T/ns,properties.p,Microsoft.T/x\nMicrosoft.T/ns,properties.q,Microsoft.T/y\n")
	over := aliasTable(t, "Microsoft.T/X/A,properties.a2\nMicrosoft.T/ns,properties.q2,microsoft.t/Y\nMicrosoft.T/ns,properties.p\nMicrosoft.T/ns,properties.r\nMicrosoft.T/z/b,properties.b\n")
	m := base.Merge(over)
	if m.Len() != 3 {
		t.Fatalf("Len = %d, want 3: %q", m.Len(), m.Names())
	}
	a, _ := m.Lookup("microsoft.t/x/a")
	if p, _ := a.PathFor("Microsoft.T/x", nil); a.Name != "Microsoft.T/X/A" || p.String() != "properties.a2" {
		t.Errorf("same alias and type: other should win; got %s → %q", a.Name, p)
	}
	ns, _ := m.Lookup("Microsoft.T/ns")
	var got []string
	for _, p := range ns.paths {
		got = append(got, p.typ+"="+p.text)
	}
	want := []string{"Microsoft.T/x=properties.p", "microsoft.t/Y=properties.q2", "=properties.r"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("merged paths = %q, want %q", got, want)
	}
	// The inputs are unchanged.
	if a, _ := base.Lookup("Microsoft.T/x/a"); a.Paths()[0].String() != "properties.a" {
		t.Errorf("Merge changed its receiver")
	}
	if base.Len() != 2 || over.Len() != 3 {
		t.Errorf("Merge changed the tables' sizes")
	}
	var nilTab *AliasTable
	if nilTab.Merge(base) != base || base.Merge(nil) != base || nilTab.Merge(nil).Len() != 0 {
		t.Errorf("Merge with nil tables")
	}
	if _, ok := nilTab.Lookup("x/y"); ok || nilTab.Suggest("x/y") != "" {
		t.Errorf("a nil table has no aliases")
	}
}

func TestAliasLookupCaseInsensitive(t *testing.T) {
	tab := DefaultAliases()
	for _, name := range []string{
		"Microsoft.Compute/imageSku", "Microsoft.Compute/imageSKU", "microsoft.compute/imagesku",
		"Microsoft.HybridCompute/imageSKU", "Microsoft.HybridCompute/imageSku",
		"Microsoft.Compute/virtualMachines/sku.name", "MICROSOFT.COMPUTE/VIRTUALMACHINES/SKU.NAME",
		"Gild.Compute/virtualMachines/image.versionsBehind", "gild.compute/virtualmachines/IMAGE.VERSIONSBEHIND",
	} {
		if _, ok := tab.Lookup(name); !ok {
			t.Errorf("Lookup(%q) failed", name)
		}
	}
	a, _ := tab.Lookup("microsoft.hybridcompute/imagesku")
	if a.Name != "Microsoft.HybridCompute/imageSKU" {
		t.Errorf("canonical spelling = %q", a.Name)
	}
	if n := testing.AllocsPerRun(100, func() { tab.Lookup("Microsoft.Compute/virtualMachines/storageProfile.osDisk.osType") }); n != 0 {
		t.Errorf("Lookup allocates %v times", n)
	}
	if _, ok := tab.Lookup("Microsoft.Compute/virtualMachines/noSuchThing"); ok {
		t.Errorf("found an alias that does not exist")
	}
}

func TestDefaultAliases(t *testing.T) {
	tab := DefaultAliases()
	if tab != DefaultAliases() {
		t.Fatal("DefaultAliases should build once")
	}
	vm := pathBenchVM()
	vm["properties"].(map[string]any)["gild"] = map[string]any{
		"image":        map[string]any{"lifecycleState": "Aged", "versionsBehind": int64(2)},
		"tattoo":       map[string]any{"sourceSku": "12"},
		"serviceModel": "cattle",
	}
	hybrid := map[string]any{"type": "Microsoft.HybridCompute/machines", "properties": map[string]any{
		"osName": "linux", "osVersion": "6.1", "gild": map[string]any{"serviceModel": "pet"}}}
	tests := []struct {
		alias    string
		resource map[string]any
		want     any
	}{
		{"Microsoft.Compute/virtualMachines/sku.name", vm, "Standard_D2s_v5"},
		{"Microsoft.Compute/imagePublisher", vm, "gild"},
		{"Microsoft.Compute/imageOffer", vm, "debian"},
		{"Microsoft.Compute/imageSku", vm, "12-hardened"},
		{"Microsoft.Compute/imageVersion", vm, "1.4.0"},
		{"Microsoft.Compute/imageId", vm, "/subscriptions/payments/resourceGroups/img/providers/Microsoft.Compute/galleries/corp/images/debian-12-hardened/versions/1.4.0"},
		{"Microsoft.Compute/licenseType", vm, nil},
		{"Microsoft.Compute/virtualMachines/storageProfile.osDisk.osType", vm, "Linux"},
		{"Microsoft.Compute/virtualMachines/imagePublisher", vm, "gild"},
		{"Gild.Compute/virtualMachines/image.lifecycleState", vm, "Aged"},
		{"Gild.Compute/virtualMachines/image.versionsBehind", vm, int64(2)},
		{"Gild.Compute/virtualMachines/tattoo.sourceSku", vm, "12"},
		{"Gild.Compute/virtualMachines/serviceModel", vm, "cattle"},
		{"Gild.Compute/virtualMachines/refresh.ageDays", vm, nil},
		{"Microsoft.HybridCompute/imageOffer", hybrid, "linux"},
		{"Microsoft.HybridCompute/imageSKU", hybrid, "6.1"},
		{"Gild.HybridCompute/machines/serviceModel", hybrid, "pet"},
		{"Gild.Compute/virtualMachines/serviceModel", hybrid, nil}, // not this type
	}
	for _, tt := range tests {
		a, ok := tab.Lookup(tt.alias)
		if !ok {
			t.Errorf("no alias %s", tt.alias)
			continue
		}
		var got any
		if p, ok := a.PathFor(tt.resource["type"].(string), tt.resource); ok {
			got, _ = p.Get(tt.resource)
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s = %v, want %v", tt.alias, got, tt.want)
		}
	}
	// Every Gild alias names properties.gild.<its property>.
	for _, g := range aliasGildComputed {
		for _, prop := range g.props {
			a, ok := tab.Lookup(g.prefix + "/" + prop)
			if !ok {
				t.Fatalf("missing %s/%s", g.prefix, prop)
			}
			if p, ok := a.PathFor(g.typ, nil); !ok || p.String() != "properties.gild."+prop {
				t.Errorf("%s → %q", a.Name, p)
			}
		}
	}
	// Each modelled type has aliases (resource groups and subscriptions have none in Azure).
	types := map[string]int{}
	for _, n := range tab.Names() {
		a, _ := tab.Lookup(n)
		for _, typ := range a.Types() {
			types[typ]++
		}
	}
	for _, typ := range []string{
		"Microsoft.Compute/virtualMachines", "Microsoft.Compute/disks", "Microsoft.Compute/galleries",
		"Microsoft.Compute/galleries/images", "Microsoft.Compute/galleries/images/versions",
		"Microsoft.HybridCompute/machines", "Microsoft.VirtualMachineImages/imageTemplates",
		"Microsoft.GuestConfiguration/guestConfigurationAssignments",
	} {
		if types[typ] < 10 {
			t.Errorf("%s has only %d aliases", typ, types[typ])
		}
	}
	t.Logf("gild's table: %d aliases; per type %v", tab.Len(), types)
}

func TestAliasSuggest(t *testing.T) {
	tab := DefaultAliases()
	tests := []struct{ in, want string }{
		{"Microsoft.Compute/imagePublsher", "Microsoft.Compute/imagePublisher"},
		{"Microsoft.Compute/imageSkus", "Microsoft.Compute/imageSku"},
		{"Microsoft.Compute/virtualMachine/sku.name", "Microsoft.Compute/virtualMachines/sku.name"},
		{"Microsoft.Compute/virtualMachines/storageProfile.osDisk.ostype2", "Microsoft.Compute/virtualMachines/storageProfile.osDisk.osType"},
		{"Microsoft.Compte/virtualMachines/sku.name", "Microsoft.Compute/virtualMachines/sku.name"},
		{"Gild.Compute/virtualMachines/image.versionBehind", "Gild.Compute/virtualMachines/image.versionsBehind"},
		{"Microsoft.Compute/virtualMachines/completelyDifferentThing", ""},
		{"Microsoft.Nothing/x/y", ""},
		{"", ""},
	}
	for _, tt := range tests {
		if got := tab.Suggest(tt.in); got != tt.want {
			t.Errorf("Suggest(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestAliasEditDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		max  int
		want int
	}{
		{"kitten", "sitting", 5, 3},
		{"kitten", "sitting", 2, 3},
		{"", "abc", 5, 3},
		{"abc", "", 1, 2},
		{"same", "same", 0, 0},
		{"abcdef", "abcxef", 1, 1},
		{"flaw", "lawn", 2, 2},
	} {
		if got := aliasEditDistance(tc.a, tc.b, tc.max); got != tc.want {
			t.Errorf("aliasEditDistance(%q, %q, %d) = %d, want %d", tc.a, tc.b, tc.max, got, tc.want)
		}
	}
	// The banded, bounded distance agrees with the plain one on every pair of short strings
	// over a small alphabet, for every bound.
	full := func(a, b string) int {
		prev := make([]int, len(b)+1)
		for j := range prev {
			prev[j] = j
		}
		for i := 1; i <= len(a); i++ {
			cur := make([]int, len(b)+1)
			cur[0] = i
			for j := 1; j <= len(b); j++ {
				cost := 1
				if a[i-1] == b[j-1] {
					cost = 0
				}
				cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			}
			prev = cur
		}
		return prev[len(b)]
	}
	var words []string
	var gen func(prefix string, n int)
	gen = func(prefix string, n int) {
		words = append(words, prefix)
		if n == 0 {
			return
		}
		for _, c := range "ab" {
			gen(prefix+string(c), n-1)
		}
	}
	gen("", 5)
	words = append(words, "abcdef", "badcfe", "kitten", "sitting", "microsoft.compute/x")
	for _, a := range words {
		for _, b := range words {
			want := full(a, b)
			for max := 0; max <= 7; max++ {
				got := aliasEditDistance(a, b, max)
				if (want <= max && got != want) || (want > max && got != max+1) {
					t.Fatalf("aliasEditDistance(%q, %q, %d) = %d; the distance is %d", a, b, max, got, want)
				}
			}
		}
	}
}

func TestLoadFullCatalogue(t *testing.T) {
	path := aliasCatalogue(t)
	start := time.Now()
	tab, err := LoadAliasFile(path)
	elapsed := time.Since(start)
	if err != nil {
		t.Fatalf("LoadAliasFile: %v", err)
	}
	t.Logf("loaded %d aliases from %s in %v", tab.Len(), path, elapsed)
	if tab.Len() < 60000 {
		t.Errorf("only %d aliases", tab.Len())
	}
	start = time.Now()
	got := tab.Suggest("Microsoft.Network/networkSecurityGroups/securityRules[*].destinationPortRangee")
	first := time.Since(start)
	start = time.Now()
	got2 := tab.Suggest("Microsoft.Netwrk/virtualNetworks/subnets[*].networkSecurityGroup.id")
	second := time.Since(start)
	t.Logf("Suggest: %q in %v (with building the index), %q in %v (searching every alias)", got, first, got2, second)
	if got != "Microsoft.Network/networkSecurityGroups/securityRules[*].destinationPortRange" {
		t.Errorf("Suggest = %q", got)
	}
	if got2 != "Microsoft.Network/virtualNetworks/subnets[*].networkSecurityGroup.id" {
		t.Errorf("Suggest = %q", got2)
	}
	merged := DefaultAliases().Merge(tab)
	if merged.Len() < tab.Len() {
		t.Errorf("merged table is smaller than the catalogue")
	}
	// Namespace-level aliases keep gild's types after the merge.
	a, _ := merged.Lookup("Microsoft.Compute/imageOffer")
	if len(a.Types()) != 3 || len(a.Paths()) != 3 {
		t.Errorf("merged imageOffer: types %q, %d paths", a.Types(), len(a.Paths()))
	}
}

func BenchmarkLoadAliases(b *testing.B) {
	data, err := os.ReadFile(aliasCatalogue(b))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := LoadAliases(bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
}

// aliasGildAzureTypes are the resource types whose catalogue aliases gild's table carries:
// the types gild models and their children that related-resource policies look at.
var aliasGildAzureTypes = []string{
	"Microsoft.Compute/virtualMachines",
	"Microsoft.Compute/virtualMachines/extensions",
	"Microsoft.Compute/virtualMachines/runCommands",
	"Microsoft.Compute/virtualMachineScaleSets", // namespace-level aliases only, see below
	"Microsoft.Compute/disks",
	"Microsoft.Compute/galleries",
	"Microsoft.Compute/galleries/images",
	"Microsoft.Compute/galleries/images/versions",
	"Microsoft.HybridCompute/machines",
	"Microsoft.HybridCompute/machines/extensions",
	"Microsoft.HybridCompute/machines/runCommands",
	"Microsoft.HybridCompute/machines/licenseProfiles",
	"Microsoft.VirtualMachineImages/imageTemplates",
	"Microsoft.GuestConfiguration/guestConfigurationAssignments",
	"Microsoft.Resources/subscriptions",
	"Microsoft.Resources/resourceGroups",
}

// aliasNamespaceRowType says which type a namespace-level catalogue row is for, from its
// path: the catalogue lists the virtual machine path, then the scale set's, then the disk's.
func aliasNamespaceRowType(name, path string) string {
	ns, _, _ := strings.Cut(name, "/")
	switch strings.ToLower(ns) {
	case "microsoft.compute":
		switch {
		case strings.HasPrefix(path, "properties.virtualMachineProfile."):
			return "Microsoft.Compute/virtualMachineScaleSets"
		case strings.HasPrefix(path, "properties.creationData."):
			return "Microsoft.Compute/disks"
		}
		return "Microsoft.Compute/virtualMachines"
	case "microsoft.hybridcompute":
		return "Microsoft.HybridCompute/machines"
	}
	return ""
}

// aliasCatalogueRows reads the catalogue's rows in order.
func aliasCatalogueRows(t *testing.T, path string) [][2]string {
	t.Helper()
	tab, err := LoadAliasFile(path) // validates every row first
	if err != nil {
		t.Fatal(err)
	}
	_ = tab
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err == nil {
		var buf bytes.Buffer
		if _, err := buf.ReadFrom(zr); err != nil {
			t.Fatal(err)
		}
		data = buf.Bytes()
	}
	var rows [][2]string
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		name, p, ok := strings.Cut(line, ",")
		if !ok || strings.EqualFold(name, "alias") {
			continue
		}
		rows = append(rows, [2]string{name, p})
	}
	return rows
}

// TestAliasGildTableMatchesCatalogue checks that gild's table follows Azure's catalogue
// exactly for the types it carries (every alias, every path), and with -update-aliases
// regenerates it.
func TestAliasGildTableMatchesCatalogue(t *testing.T) {
	rows := aliasCatalogueRows(t, aliasCatalogue(t))
	sections := map[string][]string{}
	want := map[string]bool{} // "alias|path|type", lower case
	for _, r := range rows {
		name, path := r[0], r[1]
		typ := aliasTypeOf(name)
		short := name[strings.LastIndexByte(name, '/')+1:]
		if typ == "" {
			if typ = aliasNamespaceRowType(name, path); typ == "" {
				continue
			}
			short = name
		}
		idx := slices.IndexFunc(aliasGildAzureTypes, func(s string) bool { return strings.EqualFold(s, typ) })
		if idx < 0 {
			continue
		}
		typ = aliasGildAzureTypes[idx]
		if short != name && strings.EqualFold(typ, "Microsoft.Compute/virtualMachineScaleSets") {
			// gild does not model scale sets: it carries their paths of the namespace-level
			// aliases only, so that a policy written for both picks the right one.
			continue
		}
		want[strings.ToLower(name+"|"+path+"|"+typ)] = true
		row := short
		if short == name || path != "properties."+short {
			row += "," + path
		}
		if !slices.Contains(sections[typ], row) {
			sections[typ] = append(sections[typ], row)
		}
	}

	if *aliasUpdate {
		var b strings.Builder
		b.WriteString("\n")
		for _, typ := range aliasGildAzureTypes {
			if len(sections[typ]) == 0 {
				continue
			}
			// Namespace-level rows first, then the type's own, each in catalogue order.
			rows := sections[typ]
			slices.SortStableFunc(rows, func(a, b string) int {
				an, bn := strings.Contains(strings.SplitN(a, ",", 2)[0], "/"), strings.Contains(strings.SplitN(b, ",", 2)[0], "/")
				switch {
				case an && !bn:
					return -1
				case bn && !an:
					return 1
				}
				return 0
			})
			fmt.Fprintf(&b, "[%s]\n", typ)
			for _, r := range rows {
				b.WriteString(r)
				b.WriteString("\n")
			}
		}
		src, err := os.ReadFile("alias_gild.go")
		if err != nil {
			t.Fatal(err)
		}
		const begin, end = "const aliasAzureTable = `", "`\n\n// END GENERATED"
		i, j := bytes.Index(src, []byte(begin)), bytes.Index(src, []byte(end))
		if i < 0 || j < i {
			t.Fatal("alias_gild.go lacks the generated block's markers")
		}
		out := append([]byte{}, src[:i+len(begin)]...)
		out = append(out, b.String()...)
		out = append(out, src[j:]...)
		if err := os.WriteFile("alias_gild.go", out, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("regenerated alias_gild.go: %d bytes of table; rebuild and rerun without -update-aliases", b.Len())
		return
	}

	b := newAliasBuilder(0)
	if err := aliasReadCompact(b, aliasAzureTable); err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, a := range b.byName {
		for _, p := range a.paths {
			key := strings.ToLower(a.Name + "|" + p.text + "|" + p.typ)
			have[key] = true
			if !want[key] {
				t.Errorf("gild's table has %s → %s for %s, which the catalogue does not", a.Name, p.text, p.typ)
			}
		}
	}
	for key := range want {
		if !have[key] {
			t.Errorf("gild's table lacks the catalogue's %s (run with -update-aliases)", key)
		}
	}
	t.Logf("gild's table carries %d catalogue rows in %d bytes", len(have), len(aliasAzureTable))
}

// TestAliasCorpusCoverage checks the aliases Azure's built-in and sample definitions use:
// each is in the full catalogue (case-insensitively), and each that belongs to a type gild
// carries is in gild's own table, so that such definitions compile without --aliases.
func TestAliasCorpusCoverage(t *testing.T) {
	catPath := aliasCatalogue(t)
	corpus := filepath.Dir(catPath)
	full, err := LoadAliasFile(catPath)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`"field"\s*:\s*"([^"\[][^"]*)"|(?:field|current)\('([^']+/[^']*)'\)`)
	used := map[string]string{} // alias → a file using it
	err = filepath.WalkDir(corpus, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".json") {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range re.FindAllStringSubmatch(string(data), -1) {
			name := m[1] + m[2]
			if _, ok := BuiltinField(name); ok || !strings.Contains(name, "/") {
				continue
			}
			used[name] = path
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	gild := DefaultAliases()
	inGild := 0
	for name, file := range used {
		if _, ok := full.Lookup(name); !ok {
			t.Errorf("%s uses %q, which the catalogue lacks", file, name)
		}
		typ := aliasTypeOf(name)
		if typ == "" {
			typ = aliasNamespaceRowType(name, "")
		}
		carried := slices.ContainsFunc(aliasGildAzureTypes, func(s string) bool { return strings.EqualFold(s, typ) }) &&
			!strings.EqualFold(typ, "Microsoft.Compute/virtualMachineScaleSets")
		if !carried {
			continue
		}
		inGild++
		if _, ok := gild.Lookup(name); !ok {
			t.Errorf("%s uses %q, which gild's table lacks", file, name)
		}
	}
	t.Logf("the corpus uses %d aliases, %d of them of types gild carries", len(used), inGild)
}

// TestAliasTableConcurrent runs lookups, suggestions (whose index is built on first use)
// and path choices from many goroutines; run with -race.
func TestAliasTableConcurrent(t *testing.T) {
	tab := DefaultAliases().Merge(aliasTable(t, aliasTestCSV))
	vm := pathBenchVM()
	done := make(chan struct{})
	for i := 0; i < 8; i++ {
		go func() {
			defer func() { done <- struct{}{} }()
			for j := 0; j < 50; j++ {
				a, ok := tab.Lookup("Microsoft.Compute/imagePublisher")
				if !ok {
					t.Error("lookup failed")
					return
				}
				if p, ok := a.PathFor("Microsoft.Compute/virtualMachines", vm); !ok {
					t.Error("no path")
				} else if v, _ := p.Get(vm); v != "gild" {
					t.Errorf("publisher = %v", v)
				}
				if tab.Suggest("Microsoft.Compute/imagePublsher") != "Microsoft.Compute/imagePublisher" {
					t.Error("bad suggestion")
				}
			}
		}()
	}
	for i := 0; i < 8; i++ {
		<-done
	}
}

// BenchmarkSuggestCatalogue measures a "did you mean" search over Azure's whole catalogue,
// which a compile error with an unknown alias pays once.
func BenchmarkSuggestCatalogue(b *testing.B) {
	path := filepath.Join(corpusDir, "aliases.csv.gz")
	tab, err := LoadAliasFile(path)
	if err != nil {
		b.Skipf("no catalogue: %v", err)
	}
	tab.Suggest("warm-up")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tab.Suggest("Microsoft.Netwrk/virtualNetworks/subnets[*].networkSecurityGroup.id")
	}
}
