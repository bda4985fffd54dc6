package gild

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/gildhq/gild"

// layers orders gild's packages: a package may import only packages of a lower layer, so
// imports point down and never up. A new package must be placed here before it builds a
// green test, which is the point: where it sits is a design decision.
var layers = map[string]int{
	"spelling": -1, // below everything: any package may suggest what a user meant
	"resource": 0, "atomicfile": 0, "policy": 0, "check": 0, "agentproto": 0,
	"access": 1, "store": 1, "blob": 1, "blob/cloud": 1, "agent": 1, "builder": 1, "guestconfig": 1,
	"store/sqldb": 2, "store/sqlite": 3, "store/postgres": 3, "store/postgres/pgtest": 2, "store/storetest": 2,
	"gallery": 2, "compliance": 2, "fleet": 2, "builder/debian": 2, "builder/disk": 2, "builder/qemu": 2,
	"controlplane": 4, "vm": 4, "pipeline": 4,
	"jobs": 5,
	"api":  6,
	// The dashboard links to the API (its version, its log endpoints) and never the reverse.
	"web":      7,
	"server":   8,
	"cli":      9,
	"cmd/gild": 10, "cmd/gild-agent": 10,
	".": 10, // this package, whose tests look at all the others
}

// stdlibOnly packages may import nothing outside the standard library (and, for the agent
// side, each other): they are the ones untrusted input and small binaries depend on.
var stdlibOnly = map[string][]string{
	"spelling":    nil,
	"resource":    {"spelling"},
	"atomicfile":  nil,
	"policy":      {"spelling"},
	"check":       {"spelling"},
	"agentproto":  nil,
	"agent":       {"check", "agentproto"},
	"guestconfig": {"check", "agentproto", "spelling"},
}

type pkg struct {
	dir     string // relative to the module root, "." for the root
	name    string
	docs    []string // files with a package doc comment
	imports map[string]bool
}

func loadPackages(t *testing.T) map[string]*pkg {
	t.Helper()
	pkgs := map[string]*pkg{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			base := d.Name()
			if path != "." && (strings.HasPrefix(base, ".") || strings.HasPrefix(base, "_") || base == "testdata" || base == "bin" || base == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ParseComments|parser.ImportsOnly)
		if err != nil {
			return err
		}
		dir := filepath.ToSlash(filepath.Dir(path))
		p := pkgs[dir]
		if p == nil {
			p = &pkg{dir: dir, name: f.Name.Name, imports: map[string]bool{}}
			pkgs[dir] = p
		}
		if f.Doc != nil && strings.TrimSpace(f.Doc.Text()) != "" {
			p.docs = append(p.docs, filepath.Base(path))
		}
		for _, imp := range f.Imports {
			ip, _ := strconv.Unquote(imp.Path.Value)
			p.imports[ip] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(pkgs) < 5 {
		t.Fatalf("found only %d packages; is the test running at the module root?", len(pkgs))
	}
	return pkgs
}

// layerOf finds the layer of a package directory: its own entry, or its nearest parent's
// (builder/qemu sits with builder).
func layerOf(dir string) (int, bool) {
	for d := dir; ; d = filepath.ToSlash(filepath.Dir(d)) {
		if l, ok := layers[d]; ok {
			return l, true
		}
		if d == "." || d == "/" {
			return 0, false
		}
	}
}

func TestEveryPackageHasOneDoc(t *testing.T) {
	for dir, p := range loadPackages(t) {
		switch {
		case len(p.docs) == 0:
			t.Errorf("package %s (%s) has no package doc comment", p.name, dir)
		case len(p.docs) > 1:
			sort.Strings(p.docs)
			t.Errorf("package %s (%s) has package docs in %d files (%s); keep one", p.name, dir, len(p.docs), strings.Join(p.docs, ", "))
		}
	}
}

func TestPackageDocsNameThePackage(t *testing.T) {
	fset := token.NewFileSet()
	for dir, p := range loadPackages(t) {
		if p.name == "main" {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, p.docs[0]), nil, parser.ParseComments|parser.PackageClauseOnly)
		if err != nil || len(p.docs) == 0 {
			continue
		}
		if !strings.HasPrefix(f.Doc.Text(), "Package "+p.name+" ") {
			t.Errorf("%s/%s: the package doc should start with \"Package %s \"", dir, p.docs[0], p.name)
		}
	}
}

func TestImportsPointDown(t *testing.T) {
	for dir, p := range loadPackages(t) {
		from, ok := layerOf(dir)
		if !ok {
			t.Errorf("package %s is not placed in the layers of arch_test.go; decide where it sits", dir)
			continue
		}
		for imp := range p.imports {
			if !strings.HasPrefix(imp, module+"/") {
				continue
			}
			target := strings.TrimPrefix(imp, module+"/")
			to, ok := layerOf(target)
			if !ok {
				t.Errorf("%s imports %s, which is not placed in the layers", dir, target)
				continue
			}
			if to >= from && !strings.HasPrefix(target, dir+"/") {
				t.Errorf("%s (layer %d) imports %s (layer %d): imports must point down", dir, from, target, to)
			}
		}
	}
}

func TestStandardLibraryOnly(t *testing.T) {
	pkgs := loadPackages(t)
	for dir, allowed := range stdlibOnly {
		p, ok := pkgs[dir]
		if !ok {
			continue // not written yet
		}
		for imp := range p.imports {
			if !strings.Contains(strings.SplitN(imp, "/", 2)[0], ".") {
				continue // standard library
			}
			ok := false
			for _, a := range allowed {
				ok = ok || imp == module+"/"+a
			}
			if !ok {
				t.Errorf("%s may import only the standard library%s, but imports %s", dir, listOr(allowed), imp)
			}
		}
	}
}

func listOr(allowed []string) string {
	if len(allowed) == 0 {
		return ""
	}
	return " and " + strings.Join(allowed, ", ")
}

// TestAgentStaysSmall checks the agent binary's whole dependency graph: it runs on every
// VM, so it never links the store, the server or a database driver.
func TestAgentStaysSmall(t *testing.T) {
	if _, err := os.Stat("cmd/gild-agent"); err != nil {
		t.Skip("cmd/gild-agent does not exist yet; this test guards it once it does")
	}
	out, err := exec.Command("go", "list", "-deps", "./cmd/gild-agent").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	forbidden := []string{module + "/store", module + "/server", module + "/controlplane", module + "/api",
		"modernc.org/sqlite", "github.com/jackc/pgx", "database/sql"}
	for _, dep := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if dep == f || strings.HasPrefix(dep, f+"/") {
				t.Errorf("gild-agent depends on %s", dep)
			}
		}
	}
}
