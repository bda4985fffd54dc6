package policy

// The YAML case corpus: testdata/cases/*.yaml, each case a definition, a resource and what
// Azure would decide, with the documentation statement the case checks. A case goes
// through the same steps as `gild policy test`: ParseDefinition, Compile, Prepare, Decide.
//
// Case format (every key but name, doc, definition and expect is optional):
//
//	- name: unique-kebab-name
//	  doc: "page.md: the documented statement, in our own words"
//	  definition: {...}        # a full resource, its properties, or a bare {if, then}
//	  aliases: ["alias,path"]  # extra alias rows merged over the built-in table
//	  parameters: {name: value}
//	  resource: {...}
//	  related: [{...}]
//	  context: {requestContext: {...}, resourceGroup: {...}, subscription: {...}, policy: {...}}
//	  now: 2026-11-24T12:00:00Z
//	  expect:
//	    effect: deny
//	    compliant: false
//	    reasons: 1 | [{subject: ..., operator: ..., negated: ..., phrase: ...}]
//	    operations: [{operation: ..., field: ..., value: ...}]
//	    existence: {type: ..., name: ..., scope: ...}
//	    conflictEffect: deny
//	    compileError: policy_unknown_alias
//	    prepareError: policy_parameter_value
//	    errorContains: text the compile or prepare error must contain
//	    evaluationError: true  # evaluation fails, which Azure treats as an implicit deny

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// corpusCaseDir holds the case files, one per topic.
const corpusCaseDir = "testdata/cases"

// corpusMinCases is the size the corpus must keep.
const corpusMinCases = 170

// corpusDefaultNow is the evaluation time of a case that gives none, so that no case
// depends on the clock.
var corpusDefaultNow = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

type corpusCase struct {
	Name       string       `yaml:"name"`
	Doc        string       `yaml:"doc"`
	Definition yaml.Node    `yaml:"definition"`
	Aliases    []string     `yaml:"aliases"`
	Parameters yaml.Node    `yaml:"parameters"`
	Resource   yaml.Node    `yaml:"resource"`
	Related    yaml.Node    `yaml:"related"`
	Context    yaml.Node    `yaml:"context"`
	Now        string       `yaml:"now"`
	Expect     corpusExpect `yaml:"expect"`

	file string
	line int
}

type corpusExpect struct {
	Effect         *string   `yaml:"effect"`
	Compliant      *bool     `yaml:"compliant"`
	Reasons        yaml.Node `yaml:"reasons"`
	Operations     yaml.Node `yaml:"operations"`
	Existence      yaml.Node `yaml:"existence"`
	ConflictEffect string    `yaml:"conflictEffect"`
	CompileError   string    `yaml:"compileError"`
	PrepareError   string    `yaml:"prepareError"`
	ErrorContains  string    `yaml:"errorContains"`
	// EvaluationError says the evaluation fails (Azure: an implicit deny, so the effect
	// applies). Without it, a case whose evaluation fails fails, so that an error cannot
	// pass for a match.
	EvaluationError bool `yaml:"evaluationError"`
}

var corpusNameRE = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)

func TestCaseCorpus(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(corpusCaseDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no case files in %s", corpusCaseDir)
	}
	sort.Strings(files)
	seen := map[string]string{}
	total := 0
	var counts []string
	for _, f := range files {
		cases := loadCorpusFile(t, f)
		counts = append(counts, fmt.Sprintf("%s: %d", filepath.Base(f), len(cases)))
		for _, c := range cases {
			total++
			where := fmt.Sprintf("%s:%d", c.file, c.line)
			if prev, dup := seen[c.Name]; dup {
				t.Errorf("%s: case name %q is already used at %s", where, c.Name, prev)
				continue
			}
			seen[c.Name] = where
			t.Run(c.Name, func(t *testing.T) {
				t.Logf("%s: %s", where, c.Doc)
				runCorpusCase(t, c)
			})
		}
	}
	t.Logf("%d cases (%s)", total, strings.Join(counts, ", "))
	if total < corpusMinCases {
		t.Errorf("the corpus has %d cases; it must keep at least %d", total, corpusMinCases)
	}
}

func loadCorpusFile(t *testing.T, path string) []*corpusCase {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(doc.Content) != 1 || doc.Content[0].Kind != yaml.SequenceNode {
		t.Fatalf("%s: a case file is a YAML list of cases", path)
	}
	var out []*corpusCase
	for _, item := range doc.Content[0].Content {
		// Decode each case on its own, strictly, so that a misspelt key fails loudly
		// instead of leaving an expectation unchecked.
		raw, err := yaml.Marshal(item)
		if err != nil {
			t.Fatalf("%s:%d: %v", path, item.Line, err)
		}
		dec := yaml.NewDecoder(strings.NewReader(string(raw)))
		dec.KnownFields(true)
		c := &corpusCase{}
		if err := dec.Decode(c); err != nil {
			t.Errorf("%s:%d: %v", path, item.Line, err)
			continue
		}
		c.file, c.line = filepath.Base(path), item.Line
		out = append(out, c)
	}
	return out
}

// check reports what makes a case unusable: a case must say which documented statement it
// checks and expect something checkable.
func (c *corpusCase) check() []string {
	var problems []string
	if !corpusNameRE.MatchString(c.Name) {
		problems = append(problems, fmt.Sprintf("name %q is not kebab-case", c.Name))
	}
	if strings.TrimSpace(c.Doc) == "" {
		problems = append(problems, "no doc: say which Azure documentation statement the case checks, and the page")
	} else if !strings.Contains(c.Doc, ".md") {
		problems = append(problems, "doc does not name the documentation page (a .md file)")
	}
	if c.Definition.Kind == 0 {
		problems = append(problems, "no definition")
	}
	e := c.Expect
	switch {
	case e.CompileError != "" && e.PrepareError != "":
		problems = append(problems, "expect has both compileError and prepareError")
	case e.CompileError != "" || e.PrepareError != "":
		if e.Effect != nil || e.Compliant != nil || e.Reasons.Kind != 0 || e.Operations.Kind != 0 || e.Existence.Kind != 0 {
			problems = append(problems, "a case that expects an error expects no decision")
		}
	default:
		if e.Effect == nil || e.Compliant == nil {
			problems = append(problems, "expect needs effect and compliant (or compileError or prepareError)")
		}
		if e.ErrorContains != "" {
			problems = append(problems, "errorContains needs compileError or prepareError")
		}
		if c.Resource.Kind == 0 {
			problems = append(problems, "no resource to decide on")
		}
	}
	return problems
}

func runCorpusCase(t *testing.T, c *corpusCase) {
	if problems := c.check(); len(problems) > 0 {
		for _, p := range problems {
			t.Error(p)
		}
		return
	}
	aliases := DefaultAliases()
	if len(c.Aliases) > 0 {
		extra, err := LoadAliases(strings.NewReader(strings.Join(c.Aliases, "\n")))
		if err != nil {
			t.Fatalf("aliases: %v", err)
		}
		aliases = aliases.Merge(extra)
	}
	defJSON, err := json.Marshal(mustValue(t, &c.Definition, "definition"))
	if err != nil {
		t.Fatal(err)
	}
	e := c.Expect
	def, err := ParseDefinition(defJSON)
	var pol *Policy
	if err == nil {
		pol, err = Compile(def, CompileOptions{Aliases: aliases})
	}
	if e.CompileError != "" {
		expectCorpusError(t, "compile", err, e.CompileError, e.ErrorContains)
		return
	}
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	params := map[string]any{}
	if c.Parameters.Kind != 0 {
		m, ok := mustValue(t, &c.Parameters, "parameters").(map[string]any)
		if !ok {
			t.Fatal("parameters must be a mapping of name to value")
		}
		params = m
	}
	prep, err := pol.Prepare(params)
	if e.PrepareError != "" {
		expectCorpusError(t, "prepare", err, e.PrepareError, e.ErrorContains)
		return
	}
	if err != nil {
		t.Fatalf("prepare: %v", err)
	}
	res, ok := mustValue(t, &c.Resource, "resource").(map[string]any)
	if !ok {
		t.Fatal("resource must be a mapping")
	}
	in := &Input{Resource: res, Now: corpusDefaultNow}
	if c.Now != "" {
		if in.Now, err = time.Parse(time.RFC3339Nano, c.Now); err != nil {
			t.Fatalf("now: %v", err)
		}
	}
	if c.Context.Kind != 0 {
		ctx, ok := mustValue(t, &c.Context, "context").(map[string]any)
		if !ok {
			t.Fatal("context must be a mapping")
		}
		for k, v := range ctx {
			m, ok := v.(map[string]any)
			if !ok {
				t.Fatalf("context.%s must be a mapping", k)
			}
			switch k {
			case "requestContext":
				in.RequestContext = m
			case "resourceGroup":
				in.ResourceGroup = m
			case "subscription":
				in.Subscription = m
			case "policy":
				in.Policy = m
			default:
				t.Fatalf("context.%s: the keys are requestContext, resourceGroup, subscription and policy", k)
			}
		}
	}
	var related []map[string]any
	if c.Related.Kind != 0 {
		list, ok := mustValue(t, &c.Related, "related").([]any)
		if !ok {
			t.Fatal("related must be a list of resources")
		}
		for i, r := range list {
			m, ok := r.(map[string]any)
			if !ok {
				t.Fatalf("related[%d] must be a mapping", i)
			}
			related = append(related, m)
		}
	}
	d, err := prep.Decide(in, related)
	if err != nil {
		t.Fatalf("decide: %v", err)
	}
	explain := func() string {
		var b strings.Builder
		for _, r := range d.Reasons {
			b.WriteString("\n    ")
			b.WriteString(r.String())
		}
		return b.String()
	}
	failed := false
	for _, r := range d.Reasons {
		failed = failed || strings.HasPrefix(r.Phrase, "evaluation failed")
	}
	if failed != e.EvaluationError {
		t.Errorf("evaluation failed = %v, want %v; reasons:%s", failed, e.EvaluationError, explain())
	}
	if d.Effect != *e.Effect {
		t.Errorf("effect = %q, want %q; reasons:%s", d.Effect, *e.Effect, explain())
	}
	if d.Compliant != *e.Compliant {
		t.Errorf("compliant = %v, want %v; reasons:%s", d.Compliant, *e.Compliant, explain())
	}
	if e.Reasons.Kind != 0 {
		checkCorpusReasons(t, mustValue(t, &e.Reasons, "expect.reasons"), d.Reasons)
	}
	if e.Operations.Kind != 0 {
		checkCorpusOperations(t, mustValue(t, &e.Operations, "expect.operations"), d.Operations)
	}
	if e.Existence.Kind != 0 {
		checkCorpusExistence(t, mustValue(t, &e.Existence, "expect.existence"), d.Existence)
	}
	if e.ConflictEffect != "" && prep.ConflictEffect() != e.ConflictEffect {
		t.Errorf("conflictEffect = %q, want %q", prep.ConflictEffect(), e.ConflictEffect)
	}
}

func expectCorpusError(t *testing.T, stage string, err error, code, contains string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s succeeded; want an error with code %s", stage, code)
	}
	found := false
	for _, x := range asErrors(err) {
		found = found || x.Code == code
	}
	if !found {
		t.Errorf("%s error %q has no error with code %s", stage, err, code)
	}
	if contains != "" && !strings.Contains(err.Error(), contains) {
		t.Errorf("%s error %q does not contain %q", stage, err, contains)
	}
}

func checkCorpusReasons(t *testing.T, want any, got []Reason) {
	t.Helper()
	switch w := want.(type) {
	case int64:
		if int64(len(got)) != w {
			t.Errorf("%d reasons, want %d: %v", len(got), w, got)
		}
	case []any:
		for i, item := range w {
			m, ok := item.(map[string]any)
			if !ok {
				t.Fatalf("expect.reasons[%d] must be a mapping", i)
			}
			if !corpusReasonFound(m, got) {
				t.Errorf("no reason matches %v; reasons: %v", m, got)
			}
		}
	default:
		t.Fatalf("expect.reasons is a number or a list, not %s", TypeName(want))
	}
}

func corpusReasonFound(want map[string]any, got []Reason) bool {
	for _, r := range got {
		ok := true
		for k, v := range want {
			switch k {
			case "subject":
				ok = ok && strings.EqualFold(r.Subject, fmt.Sprint(v))
			case "operator":
				ok = ok && strings.EqualFold(r.Operator, fmt.Sprint(v))
			case "phrase":
				ok = ok && r.Phrase == fmt.Sprint(v)
			case "negated":
				ok = ok && r.Negated == v
			case "actual":
				ok = ok && reflect.DeepEqual(r.Actual, v)
			default:
				return false
			}
		}
		if ok {
			return true
		}
	}
	return false
}

func checkCorpusOperations(t *testing.T, want any, got []Operation) {
	t.Helper()
	list, ok := want.([]any)
	if !ok {
		t.Fatal("expect.operations must be a list")
	}
	if len(list) != len(got) {
		t.Errorf("%d operations %v, want %d", len(got), got, len(list))
		return
	}
	for i, item := range list {
		m, ok := item.(map[string]any)
		if !ok {
			t.Fatalf("expect.operations[%d] must be a mapping", i)
		}
		g := got[i]
		if op, _ := m["operation"].(string); op != g.Operation {
			t.Errorf("operations[%d].operation = %q, want %q", i, g.Operation, op)
		}
		if f, _ := m["field"].(string); !strings.EqualFold(f, g.Field) {
			t.Errorf("operations[%d].field = %q, want %q", i, g.Field, f)
		}
		if v, has := m["value"]; has && !reflect.DeepEqual(v, g.Value) {
			t.Errorf("operations[%d].value = %#v, want %#v", i, g.Value, v)
		}
	}
}

func checkCorpusExistence(t *testing.T, want any, got *ExistenceCheck) {
	t.Helper()
	m, ok := want.(map[string]any)
	if !ok {
		t.Fatal("expect.existence must be a mapping")
	}
	if got == nil {
		t.Errorf("no existence check; want %v", m)
		return
	}
	fields := map[string]string{"type": got.Type, "name": got.Name, "scope": got.Scope,
		"resourceGroupName": got.ResourceGroupName, "evaluationDelay": got.EvaluationDelay}
	for k, v := range m {
		g, known := fields[k]
		if !known {
			t.Fatalf("expect.existence.%s: the keys are type, name, scope, resourceGroupName, evaluationDelay", k)
		}
		if !strings.EqualFold(g, fmt.Sprint(v)) {
			t.Errorf("existence.%s = %q, want %q", k, g, v)
		}
	}
}

// mustValue converts a YAML node to the package's value model. YAML is read as JSON
// would be: integers are int64, and a timestamp stays the string it was written as.
func mustValue(t *testing.T, n *yaml.Node, what string) any {
	t.Helper()
	v, err := yamlValue(n)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return Normalize(v)
}

func yamlValue(n *yaml.Node) (any, error) {
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return yamlValue(n.Content[0])
	case yaml.AliasNode:
		return yamlValue(n.Alias)
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			v, err := yamlValue(c)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case yaml.MappingNode:
		out := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Kind != yaml.ScalarNode {
				return nil, fmt.Errorf("line %d: a mapping key must be a scalar", k.Line)
			}
			if _, dup := out[k.Value]; dup {
				return nil, fmt.Errorf("line %d: key %q twice", k.Line, k.Value)
			}
			v, err := yamlValue(n.Content[i+1])
			if err != nil {
				return nil, err
			}
			out[k.Value] = v
		}
		return out, nil
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return nil, nil
		case "!!bool":
			var b bool
			err := n.Decode(&b)
			return b, err
		case "!!int":
			var i int64
			if err := n.Decode(&i); err != nil {
				var f float64
				err = n.Decode(&f)
				return f, err
			}
			return i, nil
		case "!!float":
			var f float64
			err := n.Decode(&f)
			return f, err
		default: // !!str, !!timestamp, !!binary: the text as written
			return n.Value, nil
		}
	}
	return nil, fmt.Errorf("line %d: unsupported YAML node", n.Line)
}
