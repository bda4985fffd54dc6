package resource_test

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/gildhq/gild/resource"
)

// IDs used across the tests, one of each shape the design's resource-ID table names.
const (
	idMG        = "/providers/Microsoft.Management/managementGroups/contoso"
	idSub       = "/subscriptions/payments"
	idRG        = "/subscriptions/payments/resourceGroups/prod"
	idVM        = "/subscriptions/payments/resourceGroups/prod/providers/Microsoft.Compute/virtualMachines/api-1"
	idGallery   = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/galleries/g"
	idImage     = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/galleries/g/images/i"
	idVersion   = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/galleries/g/images/i/versions/1.0.0"
	idGuestVM   = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm"
	idGuestConf = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm/providers/Microsoft.GuestConfiguration/guestConfigurationAssignments/a"
	idMGPolicy  = "/providers/Microsoft.Management/managementGroups/mg/providers/Microsoft.Authorization/policyDefinitions/p"
	idTenantPol = "/providers/Microsoft.Authorization/policyDefinitions/p"
	idSubPolicy = "/subscriptions/s/providers/Microsoft.Authorization/policyDefinitions/p"
)

// TestParseRoundTrip checks that every shape of ID parses into the right structure, prints
// back in the caller's spelling (scope keywords canonical) and keys in lower case.
func TestParseRoundTrip(t *testing.T) {
	tests := []struct {
		in      string
		str     string // String(); "" means the input itself
		key     string // Key(); "" means strings.ToLower(str)
		want    resource.ID
		kind    resource.Kind
		typ     string
		name    string
		full    string
		parent  string
		scope   string
		isScope bool
	}{
		{
			in: "/", want: resource.Root, kind: resource.KindRoot, typ: resource.TypeTenant,
			parent: "/", scope: "/", isScope: true,
		},
		{
			in: idMG, want: resource.ID{ManagementGroup: "contoso"}, kind: resource.KindManagementGroup,
			typ: resource.TypeManagementGroup, name: "contoso", full: "contoso", parent: "/", scope: idMG, isScope: true,
		},
		{
			in: idSub, want: resource.ID{Subscription: "payments"}, kind: resource.KindSubscription,
			typ: resource.TypeSubscription, name: "payments", full: "payments", parent: "/", scope: idSub, isScope: true,
		},
		{
			in: idRG, want: resource.ID{Subscription: "payments", ResourceGroup: "prod"}, kind: resource.KindResourceGroup,
			typ: resource.TypeResourceGroup, name: "prod", full: "prod", parent: idSub, scope: idRG, isScope: true,
		},
		{
			in: idVM,
			want: resource.ID{Subscription: "payments", ResourceGroup: "prod", Providers: []resource.Segment{
				{Namespace: "Microsoft.Compute", Types: []string{"virtualMachines"}, Names: []string{"api-1"}},
			}},
			kind: resource.KindResource, typ: "Microsoft.Compute/virtualMachines", name: "api-1", full: "api-1",
			parent: idRG, scope: idRG,
		},
		{
			in: idVersion,
			want: resource.ID{Subscription: "s", ResourceGroup: "rg", Providers: []resource.Segment{
				{Namespace: "Microsoft.Compute", Types: []string{"galleries", "images", "versions"}, Names: []string{"g", "i", "1.0.0"}},
			}},
			kind: resource.KindResource, typ: "Microsoft.Compute/galleries/images/versions", name: "1.0.0", full: "g/i/1.0.0",
			parent: idImage, scope: "/subscriptions/s/resourceGroups/rg",
		},
		{
			// An extension resource: its parent is the VM it sits on; its full name stays
			// within its own provider segment.
			in: idGuestConf,
			want: resource.ID{Subscription: "s", ResourceGroup: "rg", Providers: []resource.Segment{
				{Namespace: "Microsoft.Compute", Types: []string{"virtualMachines"}, Names: []string{"vm"}},
				{Namespace: "Microsoft.GuestConfiguration", Types: []string{"guestConfigurationAssignments"}, Names: []string{"a"}},
			}},
			kind: resource.KindResource, typ: "Microsoft.GuestConfiguration/guestConfigurationAssignments", name: "a", full: "a",
			parent: idGuestVM, scope: "/subscriptions/s/resourceGroups/rg",
		},
		{
			in: idMGPolicy,
			want: resource.ID{ManagementGroup: "mg", Providers: []resource.Segment{
				{Namespace: "Microsoft.Authorization", Types: []string{"policyDefinitions"}, Names: []string{"p"}},
			}},
			kind: resource.KindResource, typ: "Microsoft.Authorization/policyDefinitions", name: "p", full: "p",
			parent: "/providers/Microsoft.Management/managementGroups/mg", scope: "/providers/Microsoft.Management/managementGroups/mg",
		},
		{
			// A tenant-level resource must not be mistaken for a management group.
			in: idTenantPol,
			want: resource.ID{Providers: []resource.Segment{
				{Namespace: "Microsoft.Authorization", Types: []string{"policyDefinitions"}, Names: []string{"p"}},
			}},
			kind: resource.KindResource, typ: "Microsoft.Authorization/policyDefinitions", name: "p", full: "p",
			parent: "/", scope: "/",
		},
		{
			// Keywords in any case; String gives them canonical, names as written.
			in:   "/SUBSCRIPTIONS/x/RESOURCEGROUPS/y",
			str:  "/subscriptions/x/resourceGroups/y",
			want: resource.ID{Subscription: "x", ResourceGroup: "y"}, kind: resource.KindResourceGroup,
			typ: resource.TypeResourceGroup, name: "y", full: "y", parent: "/subscriptions/x", scope: "/subscriptions/x/resourceGroups/y", isScope: true,
		},
		{
			in:   "/PROVIDERS/microsoft.management/MANAGEMENTGROUPS/Root-Group",
			str:  "/providers/Microsoft.Management/managementGroups/Root-Group",
			want: resource.ID{ManagementGroup: "Root-Group"}, kind: resource.KindManagementGroup,
			typ: resource.TypeManagementGroup, name: "Root-Group", full: "Root-Group", parent: "/",
			scope: "/providers/Microsoft.Management/managementGroups/Root-Group", isScope: true,
		},
		{
			// One trailing slash is accepted and dropped.
			in: "/subscriptions/s/", str: "/subscriptions/s",
			want: resource.ID{Subscription: "s"}, kind: resource.KindSubscription,
			typ: resource.TypeSubscription, name: "s", full: "s", parent: "/", scope: "/subscriptions/s", isScope: true,
		},
		{
			// Provider namespace, types and names keep the caller's spelling in String,
			// and Key lower-cases all of it.
			in:  "/subscriptions/Pay/resourcegroups/Prod/providers/microsoft.COMPUTE/VirtualMachines/API-1",
			str: "/subscriptions/Pay/resourceGroups/Prod/providers/microsoft.COMPUTE/VirtualMachines/API-1",
			key: "/subscriptions/pay/resourcegroups/prod/providers/microsoft.compute/virtualmachines/api-1",
			want: resource.ID{Subscription: "Pay", ResourceGroup: "Prod", Providers: []resource.Segment{
				{Namespace: "microsoft.COMPUTE", Types: []string{"VirtualMachines"}, Names: []string{"API-1"}},
			}},
			kind: resource.KindResource, typ: "microsoft.COMPUTE/VirtualMachines", name: "API-1", full: "API-1",
			parent: "/subscriptions/Pay/resourceGroups/Prod", scope: "/subscriptions/Pay/resourceGroups/Prod",
		},
		{
			in:   "/subscriptions/Zürich.(eu)_1",
			want: resource.ID{Subscription: "Zürich.(eu)_1"}, kind: resource.KindSubscription,
			typ: resource.TypeSubscription, name: "Zürich.(eu)_1", full: "Zürich.(eu)_1", parent: "/", scope: "/subscriptions/Zürich.(eu)_1", isScope: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			id, err := resource.Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !reflect.DeepEqual(id, tt.want) {
				t.Errorf("Parse = %#v, want %#v", id, tt.want)
			}
			str := tt.str
			if str == "" {
				str = tt.in
			}
			key := tt.key
			if key == "" {
				key = strings.ToLower(str)
			}
			check := func(what, got, want string) {
				t.Helper()
				if got != want {
					t.Errorf("%s = %q, want %q", what, got, want)
				}
			}
			check("String", id.String(), str)
			check("Key", id.Key(), key)
			check("Type", id.Type(), tt.typ)
			check("Name", id.Name(), tt.name)
			check("FullName", id.FullName(), tt.full)
			check("Parent", id.Parent().String(), tt.parent)
			check("Scope", id.Scope().String(), tt.scope)
			if id.Kind() != tt.kind {
				t.Errorf("Kind = %v, want %v", id.Kind(), tt.kind)
			}
			if id.IsScope() != tt.isScope {
				t.Errorf("IsScope = %v, want %v", id.IsScope(), tt.isScope)
			}
			if id.IsRoot() != (tt.kind == resource.KindRoot) {
				t.Errorf("IsRoot = %v for kind %v", id.IsRoot(), tt.kind)
			}
			// The printed form parses back to the same thing.
			again, err := resource.Parse(id.String())
			if err != nil {
				t.Fatalf("Parse(String()) = %v", err)
			}
			if !reflect.DeepEqual(again, id) {
				t.Errorf("Parse(String()) = %#v, want %#v", again, id)
			}
			// So does the lower-case key, and it is Equal to the original.
			lower, err := resource.Parse(id.Key())
			if err != nil {
				t.Fatalf("Parse(Key()) = %v", err)
			}
			if !lower.Equal(id) || lower.Key() != id.Key() {
				t.Errorf("Parse(Key()) = %v, not Equal to %v", lower, id)
			}
		})
	}
}

// TestParseRejects checks that malformed IDs fail with InvalidResourceId, the ID as target
// and a message that names the problem.
func TestParseRejects(t *testing.T) {
	long := strings.Repeat("a", 261)
	tests := []struct {
		in      string
		mention []string // substrings the message must contain
	}{
		{"", []string{"must start with '/'"}},
		{"subscriptions/s", []string{"must start with '/'"}},
		{"//", []string{"part 1 is empty"}},
		{"/subscriptions//resourceGroups/rg", []string{"part 2 is empty"}},
		{"/subscriptions/s//", []string{"part 3 is empty"}},
		{"/subscriptions/x/foo", []string{"expected 'providers' at part 3", `"foo"`}},
		{"/resourceGroups/rg", []string{"expected 'providers' at part 1"}},
		{"/subscriptions/s/resources/x", []string{"expected 'providers' at part 3"}},
		{"/subscriptions/s/providers", []string{"needs a namespace and a type"}},
		{"/subscriptions/s/providers/Microsoft.Compute", []string{"needs a resource type"}},
		{"/subscriptions/s/providers/Compute/virtualMachines/vm", []string{`"Compute"`, "not a resource provider namespace"}},
		{"/subscriptions/s/providers/Microsoft..Compute/virtualMachines/vm", []string{"not a resource provider namespace"}},
		{"/subscriptions/s/providers/Microsoft.Com-pute/virtualMachines/vm", []string{"not a resource provider namespace"}},
		{"/subscriptions/s/providers/Microsoft.Compute/virtual-machines/vm", []string{`"virtual-machines"`, "not a resource type name"}},
		{"/subscriptions/s/providers/Microsoft.Compute/1vms/vm", []string{`"1vms"`, "not a resource type name"}},
		{"/subscriptions/s/providers/Microsoft.Compute/" + strings.Repeat("t", 65) + "/vm", []string{"not a resource type name"}},
		{"/subscriptions/s/providers/Microsoft.Compute/virtualMachines/a:b", []string{"virtualMachines", `':'`, "may not contain"}},
		{"/subscriptions/s/providers/Microsoft.Compute/virtualMachines/a?b", []string{`'?'`}},
		{"/subscriptions/s/providers/Microsoft.Compute/virtualMachines/a%20b", []string{`'%'`}},
		{"/subscriptions/s/providers/Microsoft.Compute/virtualMachines/a\x00b", []string{"may not contain"}},
		{"/subscriptions/s/providers/Microsoft.Compute/virtualMachines/..", []string{"'.' and '..' are not names"}},
		{"/subscriptions/s/providers/Microsoft.Compute/virtualMachines/ vm", []string{"leading or trailing spaces"}},
		{"/subscriptions/s/providers/Microsoft.Compute/virtualMachines/" + long, []string{"longer than 260 characters"}},
		{"/subscriptions/" + strings.Repeat("s", 91), []string{"subscription name", "longer than 90 characters"}},
		{"/subscriptions/pay ments", []string{"subscription name", `' '`}},
		{"/subscriptions/s/resourceGroups/prod.", []string{"resource group name", "must not end with '.'"}},
		{"/subscriptions/s/resourceGroups/a+b", []string{"resource group name", `'+'`}},
		{"/providers/Microsoft.Management/managementGroups/a!b", []string{"management group name", `'!'`}},
		{"/providers/Microsoft.Management/managementGroups/mg/subscriptions/s", []string{"management group or a subscription, not both"}},
		{"/providers/Microsoft.Management/managementGroups/mg/resourceGroups/rg", []string{"not both"}},
		{"/subscriptions/s/providers/Microsoft.Compute/virtualMachines/\xff", []string{"not valid UTF-8"}},
		{"/" + strings.Repeat("a", resource.MaxIDLength), []string{"longer than 4096 characters"}},
		// Collections are paths, not resource IDs.
		{"/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines", []string{"collection of Microsoft.Compute/virtualMachines", "a name is missing"}},
		{"/subscriptions", []string{"collection of Microsoft.Resources/subscriptions"}},
		{"/subscriptions/s/resourceGroups/rg/resources", []string{"every resource in /subscriptions/s/resourceGroups/rg"}},
		// 'ſ' folds to 's' under strings.EqualFold, but keywords are ASCII.
		{"/ſubscriptions/s", []string{"expected 'providers' at part 1"}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			id, err := resource.Parse(tt.in)
			if err == nil {
				t.Fatalf("Parse = %v, want an error", id)
			}
			var e *resource.Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T is not a *resource.Error", err)
			}
			if e.Code != resource.CodeInvalidResourceID {
				t.Errorf("code = %q, want %q", e.Code, resource.CodeInvalidResourceID)
			}
			if e.Target != tt.in {
				t.Errorf("target = %q, want the ID", e.Target)
			}
			for _, m := range tt.mention {
				if !strings.Contains(e.Message, m) {
					t.Errorf("message %q does not mention %q", e.Message, m)
				}
			}
			if !reflect.DeepEqual(id, resource.ID{}) {
				t.Errorf("a failed Parse returned %#v, want the zero ID", id)
			}
		})
	}
}

// TestParseLimits pins the exact boundaries: the longest allowed names and ID parse.
func TestParseLimits(t *testing.T) {
	ok := []string{
		"/subscriptions/" + strings.Repeat("s", 90),
		"/subscriptions/s/providers/Microsoft.Compute/virtualMachines/" + strings.Repeat("v", 260),
		"/subscriptions/s/providers/Microsoft.Compute/" + strings.Repeat("t", 64) + "/vm",
		"/subscriptions/s/providers/Microsoft.Compute/virtualMachines/a b",     // inner space
		"/subscriptions/s/providers/Microsoft.Compute/virtualMachines/名前",      // any letters
		"/subscriptions/s/providers/Microsoft.Compute/virtualMachines/.hidden", // dot not alone
		"/subscriptions/s/providers/Microsoft.Compute/virtualMachines/providers",
	}
	// The longest ID: exactly MaxIDLength bytes.
	base := "/subscriptions/s/providers/Microsoft.Compute/virtualMachines/"
	var b strings.Builder
	b.WriteString(base)
	for b.Len() < resource.MaxIDLength-len("/x/")-200 {
		b.WriteString(strings.Repeat("n", 200) + "/t/")
	}
	b.WriteString(strings.Repeat("n", resource.MaxIDLength-b.Len()))
	ok = append(ok, b.String())
	for _, s := range ok {
		if _, err := resource.Parse(s); err != nil {
			t.Errorf("Parse(%.80q...) = %v, want it accepted", s, err)
		}
	}
	if n := len(ok[len(ok)-1]); n != resource.MaxIDLength {
		t.Fatalf("test bug: longest ID is %d bytes", n)
	}
	if _, err := resource.Parse(ok[len(ok)-1] + "n"); err == nil {
		t.Errorf("an ID of %d bytes was accepted", resource.MaxIDLength+1)
	}
}

// TestParsePathCollections checks the collection forms the API lists by.
func TestParsePathCollections(t *testing.T) {
	tests := []struct {
		in         string
		id         string
		collection string
	}{
		{"/subscriptions", "/", resource.TypeSubscription},
		{"/subscriptions/", "/", resource.TypeSubscription},
		{"/subscriptions/s/resourceGroups", "/subscriptions/s", resource.TypeResourceGroup},
		{"/providers/Microsoft.Management/managementGroups", "/", resource.TypeManagementGroup},
		{"/subscriptions/s/providers/Microsoft.Compute/virtualMachines", "/subscriptions/s", "Microsoft.Compute/virtualMachines"},
		{"/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines", "/subscriptions/s/resourceGroups/rg", "Microsoft.Compute/virtualMachines"},
		// A child collection lies under its parent resource, which must not be lost.
		{idGallery + "/images", idGallery, "Microsoft.Compute/galleries/images"},
		{idImage + "/versions", idImage, "Microsoft.Compute/galleries/images/versions"},
		{idGuestVM + "/providers/Microsoft.GuestConfiguration/guestConfigurationAssignments", idGuestVM, "Microsoft.GuestConfiguration/guestConfigurationAssignments"},
		{"/providers/Microsoft.Management/managementGroups/mg/providers/Microsoft.Authorization/policyDefinitions", "/providers/Microsoft.Management/managementGroups/mg", "Microsoft.Authorization/policyDefinitions"},
		{"/providers/Microsoft.Authorization/policyDefinitions", "/", "Microsoft.Authorization/policyDefinitions"},
		{"/resources", "/", resource.AllTypes},
		{"/subscriptions/s/resources", "/subscriptions/s", resource.AllTypes},
		{"/subscriptions/s/resourceGroups/rg/RESOURCES", "/subscriptions/s/resourceGroups/rg", resource.AllTypes},
		{"/providers/Microsoft.Management/managementGroups/mg/resources", "/providers/Microsoft.Management/managementGroups/mg", resource.AllTypes},
		// Not collections: single resources.
		{idVM, idVM, ""},
		{"/", "/", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			p, err := resource.ParsePath(tt.in)
			if err != nil {
				t.Fatalf("ParsePath: %v", err)
			}
			if p.ID.String() != tt.id || p.Collection != tt.collection {
				t.Errorf("ParsePath = {%s %q}, want {%s %q}", p.ID, p.Collection, tt.id, tt.collection)
			}
		})
	}
}

// TestContains checks containment by ID, including the segment boundary.
func TestContains(t *testing.T) {
	tests := []struct {
		outer, inner string
		want         bool
	}{
		{"/", idVM, true},
		{"/", "/", true},
		{"/", idMGPolicy, true},
		{idSub, idSub, true},
		{idSub, idRG, true},
		{idSub, idVM, true},
		{idRG, idVM, true},
		{"/SUBSCRIPTIONS/PAYMENTS", idVM, true}, // case-insensitive
		{idVM, idVM, true},
		{idGallery, idVersion, true},
		{idImage, idVersion, true},
		{idGuestVM, idGuestConf, true},
		{"/providers/Microsoft.Management/managementGroups/mg", idMGPolicy, true},
		{"/subscriptions/s", idSubPolicy, true},
		// Segment boundaries: a name that is a prefix of another name.
		{"/subscriptions/pay", "/subscriptions/payments", false},
		{"/subscriptions/pay", "/subscriptions/payments/resourceGroups/rg", false},
		{"/subscriptions/s/resourceGroups/rg", "/subscriptions/s/resourceGroups/rg2", false},
		{idGuestVM, idGuestVM + "2", false},
		// Not upward, not sideways.
		{idVM, idRG, false},
		{idSub, "/", false},
		{idVersion, idImage, false},
		{"/subscriptions/a", "/subscriptions/b/resourceGroups/rg", false},
		// A management group contains nothing by ID alone except what is written under it:
		// its subscriptions come from a Hierarchy.
		{"/providers/Microsoft.Management/managementGroups/mg", "/subscriptions/s", false},
		{"/providers/Microsoft.Management/managementGroups/mg", idTenantPol, false},
	}
	for _, tt := range tests {
		t.Run(tt.outer+" ⊇ "+tt.inner, func(t *testing.T) {
			if got := resource.MustParse(tt.outer).Contains(resource.MustParse(tt.inner)); got != tt.want {
				t.Errorf("Contains = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestAncestors checks the ID-only ancestors of every kind: nearest first, ending at the
// scope the ID lies in.
func TestAncestors(t *testing.T) {
	tests := []struct {
		id   string
		want []string
	}{
		{"/", nil},
		{idMG, nil},
		{idSub, nil},
		{idRG, []string{idSub}},
		{idVM, []string{idRG, idSub}},
		{idVersion, []string{idImage, idGallery, "/subscriptions/s/resourceGroups/rg", "/subscriptions/s"}},
		{idGuestConf, []string{idGuestVM, "/subscriptions/s/resourceGroups/rg", "/subscriptions/s"}},
		{idMGPolicy, []string{"/providers/Microsoft.Management/managementGroups/mg"}},
		{idSubPolicy, []string{"/subscriptions/s"}},
		{idTenantPol, []string{"/"}},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			if got := ids(resource.MustParse(tt.id).Ancestors()); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Ancestors = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestParentChain walks Parent from each ID to the root; each step must be contained by
// the next and the walk must end (the root is its own parent).
func TestParentChain(t *testing.T) {
	for _, s := range []string{idVersion, idGuestConf, idMGPolicy, idTenantPol, idSubPolicy, idMG, "/"} {
		id := resource.MustParse(s)
		for steps := 0; !id.IsRoot(); steps++ {
			p := id.Parent()
			if !p.Contains(id) {
				t.Errorf("%s: parent %s does not contain it", id, p)
			}
			if steps > 10 {
				t.Fatalf("%s: Parent never reaches the root", s)
			}
			id = p
		}
		if p := id.Parent(); !p.IsRoot() {
			t.Errorf("Parent of the root = %s", p)
		}
		// The scope of what Parent returns is in Parse's form, so it compares DeepEqual.
		if !reflect.DeepEqual(id, resource.Root) {
			t.Errorf("%s: walk ended at %#v, want Root", s, id)
		}
	}
}

// TestChild checks that Child builds the IDs Parse would give.
func TestChild(t *testing.T) {
	tests := []struct {
		parent, typ, name string
		want              string
	}{
		{"/", resource.TypeManagementGroup, "mg", "/providers/Microsoft.Management/managementGroups/mg"},
		{"/", resource.TypeSubscription, "s", "/subscriptions/s"},
		{"/subscriptions/s", resource.TypeResourceGroup, "rg", "/subscriptions/s/resourceGroups/rg"},
		{"/", "Microsoft.Authorization/policyDefinitions", "p", idTenantPol},
		{"/providers/Microsoft.Management/managementGroups/mg", "Microsoft.Authorization/policyDefinitions", "p", idMGPolicy},
		{"/subscriptions/s", "Microsoft.Authorization/policyDefinitions", "p", idSubPolicy},
		{"/subscriptions/s/resourceGroups/rg", "Microsoft.Compute/galleries", "g", idGallery},
		{idGallery, "images", "i", idImage},
		{idImage, "versions", "1.0.0", idVersion},
		// Fully qualified nested types name a child of a resource of the parent type.
		{idGallery, "Microsoft.Compute/galleries/images", "i", idImage},
		{idImage, "microsoft.compute/Galleries/images/versions", "1.0.0", idVersion},
		// A qualified type under a resource makes an extension resource.
		{idGuestVM, "Microsoft.GuestConfiguration/guestConfigurationAssignments", "a", idGuestConf},
		// A nested type whose parent chain does not match is not appended to the wrong
		// parent: galleries/images under a VM must not become virtualMachines/vm/images/i.
		{idGuestVM, "Microsoft.Compute/galleries/images", "i", idGuestVM + "/providers/Microsoft.Compute/galleries//images/i"},
	}
	for _, tt := range tests {
		t.Run(tt.parent+" + "+tt.typ, func(t *testing.T) {
			parent := resource.MustParse(tt.parent)
			before := parent.String()
			got := parent.Child(tt.typ, tt.name)
			if got.String() != tt.want {
				t.Errorf("Child = %s, want %s", got, tt.want)
			}
			if parent.String() != before {
				t.Errorf("Child changed its receiver to %s", parent)
			}
			if want, err := resource.Parse(tt.want); err == nil {
				if !reflect.DeepEqual(got, want) {
					t.Errorf("Child = %#v, want Parse's %#v", got, want)
				}
				if !got.Parent().Equal(parent) {
					t.Errorf("Child(...).Parent() = %s, want %s", got.Parent(), parent)
				}
			}
		})
	}
}

// TestChildDoesNotAlias makes sure two children of one parent do not share storage: a
// classic append-aliasing bug would make the second overwrite the first.
func TestChildDoesNotAlias(t *testing.T) {
	gallery := resource.MustParse(idGallery)
	a := gallery.Child("images", "a")
	b := gallery.Child("images", "b")
	if a.Name() != "a" || b.Name() != "b" || gallery.Name() != "g" {
		t.Errorf("children aliased: a=%s b=%s gallery=%s", a, b, gallery)
	}
	img := resource.MustParse(idImage)
	p := img.Parent()
	_ = p.Child("images", "other")
	if img.String() != idImage {
		t.Errorf("Child of Parent changed the original to %s", img)
	}
}

// TestEqualAndKey checks that Equal ignores case and agrees with Key, even for letters
// that strings.EqualFold and strings.ToLower fold differently.
func TestEqualAndKey(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{idVM, strings.ToUpper(idVM[:1]) + strings.ToUpper(idVM[1:]), true},
		{"/subscriptions/s", "/SUBSCRIPTIONS/S/", true},
		{idMG, "/providers/microsoft.management/managementgroups/CONTOSO", true},
		{"/subscriptions/a", "/subscriptions/b", false},
		{"/", "/subscriptions/a", false},
		// U+017F 'ſ' EqualFolds to 's' but lower-cases to itself.
		{"/subscriptions/s/providers/A.B/t/s", "/subscriptions/s/providers/A.B/t/ſ", false},
		// U+212A Kelvin sign lower-cases to 'k'.
		{"/subscriptions/s/providers/A.B/t/k", "/subscriptions/s/providers/A.B/t/\u212a", true},
	}
	for _, tt := range tests {
		t.Run(tt.a+" = "+tt.b, func(t *testing.T) {
			a, b := resource.MustParse(tt.a), resource.MustParse(tt.b)
			if got := a.Equal(b); got != tt.want {
				t.Errorf("Equal = %v, want %v", got, tt.want)
			}
			if got := a.Key() == b.Key(); got != tt.want {
				t.Errorf("keys equal = %v, want %v (%q, %q)", got, tt.want, a.Key(), b.Key())
			}
		})
	}
}

// TestZeroIDIsRoot: the zero ID is the root and prints as "/".
func TestZeroIDIsRoot(t *testing.T) {
	var id resource.ID
	if !id.IsRoot() || id.String() != "/" || id.Key() != "/" || !id.Equal(resource.Root) {
		t.Errorf("zero ID = %q kind %v", id.String(), id.Kind())
	}
}

func TestConstructors(t *testing.T) {
	tests := []struct {
		got  resource.ID
		want string
	}{
		{resource.ManagementGroupID("contoso"), idMG},
		{resource.SubscriptionID("payments"), idSub},
		{resource.ResourceGroupID("payments", "prod"), idRG},
	}
	for _, tt := range tests {
		if !reflect.DeepEqual(tt.got, resource.MustParse(tt.want)) {
			t.Errorf("%#v, want Parse(%q)", tt.got, tt.want)
		}
	}
}

func TestMustParsePanics(t *testing.T) {
	defer func() {
		r := recover()
		err, ok := r.(error)
		if !ok || resource.CodeOf(err) != resource.CodeInvalidResourceID {
			t.Errorf("MustParse panicked with %v, want an InvalidResourceId error", r)
		}
	}()
	resource.MustParse("not an id")
	t.Error("MustParse did not panic")
}

func TestKindString(t *testing.T) {
	for k, want := range map[resource.Kind]string{
		resource.KindRoot: "root", resource.KindManagementGroup: "managementGroup",
		resource.KindSubscription: "subscription", resource.KindResourceGroup: "resourceGroup",
		resource.KindResource: "resource",
	} {
		if got := fmt.Sprint(k); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", int(k), got, want)
		}
	}
}

func ids(list []resource.ID) []string {
	if len(list) == 0 {
		return nil
	}
	out := make([]string, len(list))
	for i, id := range list {
		out[i] = id.String()
	}
	return out
}
