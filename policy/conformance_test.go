package policy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// corpusDir is Azure's published definitions, beside the repository (../shared).
var corpusDir = filepath.Join("..", "..", "shared", "azure-policy")

func corpus(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(corpusDir); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("the Azure Policy corpus is missing at %s; CI runs with ../shared beside the clone", corpusDir)
		}
		t.Skipf("the Azure Policy corpus is not at %s; clone beside ../shared to run the conformance tests", corpusDir)
	}
	return corpusDir
}

// TestCorpusCompilesWithCatalogue is the conformance bar: with Azure's alias catalogue,
// every definition and initiative in the corpus compiles.
func TestCorpusCompilesWithCatalogue(t *testing.T) {
	dir := corpus(t)
	catalogue, err := LoadAliasFile(filepath.Join(dir, "aliases.csv.gz"))
	if err != nil {
		t.Fatal(err)
	}
	results, err := Validate([]string{dir}, DefaultAliases().Merge(catalogue))
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, r := range results {
		counts[r.Kind]++
		for _, e := range r.Errors {
			t.Errorf("%s: %s", r.Path, e)
		}
	}
	if counts[KindDefinition] < 250 || counts[KindInitiative] < 20 {
		t.Fatalf("validated only %v; is the corpus complete?", counts)
	}
	t.Logf("validated %v", counts)
}

// TestCorpusCompilesWithBuiltInAliases checks that without a catalogue every definition
// that uses only types gild models compiles: the only errors allowed are unknown aliases
// of other types.
func TestCorpusCompilesWithBuiltInAliases(t *testing.T) {
	dir := corpus(t)
	results, err := Validate([]string{dir}, DefaultAliases())
	if err != nil {
		t.Fatal(err)
	}
	compiled, foreign := 0, 0
	for _, r := range results {
		if r.Kind != KindDefinition && r.Kind != KindRule {
			for _, e := range r.Errors {
				t.Errorf("%s: %s", r.Path, e)
			}
			continue
		}
		onlyForeign := len(r.Errors) > 0
		for _, e := range r.Errors {
			if e.Code != CodeUnknownAlias || namesGildType(e.Message) {
				t.Errorf("%s: %s", r.Path, e)
				onlyForeign = false
			}
		}
		switch {
		case len(r.Errors) == 0:
			compiled++
		case onlyForeign:
			foreign++
		}
	}
	t.Logf("%d definitions compile with gild's aliases alone; %d use aliases of types gild does not model", compiled, foreign)
	if compiled < 100 {
		t.Fatalf("only %d definitions compile with the built-in aliases", compiled)
	}
}

// gildTypes are the resource types gild models; an unknown alias of one of them is a gap
// in the built-in table.
var gildTypes = []string{
	"Microsoft.Compute/virtualMachines/", "Microsoft.HybridCompute/machines/", "Microsoft.Compute/galleries/",
	"Microsoft.Compute/disks/", "Microsoft.VirtualMachineImages/imageTemplates/",
	"Microsoft.GuestConfiguration/guestConfigurationAssignments/", "Microsoft.Resources/subscriptions/",
	"Microsoft.Resources/resourceGroups/",
}

func namesGildType(msg string) bool {
	// The message quotes the alias first: unknown alias "X" ...
	i := strings.Index(msg, "\"")
	j := strings.Index(msg[i+1:], "\"")
	if i < 0 || j < 0 {
		return false
	}
	alias := strings.ToLower(msg[i+1 : i+1+j])
	for _, t := range gildTypes {
		if strings.HasPrefix(alias, strings.ToLower(t)) {
			return true
		}
	}
	return false
}
