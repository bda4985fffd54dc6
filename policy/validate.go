package policy

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// File kinds Validate recognises.
const (
	KindDefinition = "definition"
	KindInitiative = "initiative"
	KindParameters = "parameters" // *.parameters.json: parameter declarations
	KindRule       = "rule"       // *.rules.json: a bare rule, with its sibling's parameters
)

// FileResult is what validating one file found.
type FileResult struct {
	Path     string   `json:"path"`
	Kind     string   `json:"kind"`
	Errors   []*Error `json:"errors,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
}

// OK reports whether the file has no error.
func (r FileResult) OK() bool { return len(r.Errors) == 0 }

// Validate checks policy files and folders (recursively): every definition compiles,
// every initiative parses and its members' parameters fit the definitions they name (when
// those are among the files). In a folder laid out as Azure's samples are, a
// *.parameters.json file holds parameter declarations and a *.rules.json file a bare rule
// whose parameters are in the sibling *.parameters.json; each is checked as what it is.
func Validate(paths []string, aliases *AliasTable) ([]FileResult, error) {
	var files []string
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("validate: %w", err)
		}
		if !fi.IsDir() {
			files = append(files, p)
			continue
		}
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() && strings.EqualFold(filepath.Ext(path), ".json") {
				files = append(files, path)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("validate: %w", err)
		}
	}
	sort.Strings(files)
	v := &validator{aliases: aliases, defs: map[string]*Definition{}}
	results := make([]FileResult, 0, len(files))
	var initiatives []int
	for _, f := range files {
		r := v.file(f)
		if r.Kind == KindInitiative && v.lastSet != nil {
			initiatives = append(initiatives, len(results))
			v.sets = append(v.sets, v.lastSet)
		}
		results = append(results, r)
	}
	for i, idx := range initiatives {
		v.crossCheck(&results[idx], v.sets[i])
	}
	return results, nil
}

type validator struct {
	aliases *AliasTable
	defs    map[string]*Definition // by lower-cased ID and name
	sets    []*SetDefinition
	lastSet *SetDefinition
}

func (v *validator) file(path string) FileResult {
	r := FileResult{Path: path}
	v.lastSet = nil
	data, err := os.ReadFile(path)
	if err != nil {
		r.Kind = KindDefinition
		r.Errors = []*Error{errorf(CodeParse, "", "%v", err)}
		return r
	}
	lower := strings.ToLower(filepath.Base(path))
	switch {
	case strings.HasSuffix(lower, ".parameters.json"):
		r.Kind = KindParameters
		_, err := ParseParameters(data)
		r.Errors = asErrors(err)
	case strings.HasSuffix(lower, ".rules.json"):
		r.Kind = KindRule
		def, err := ParseDefinition(data)
		if err != nil {
			r.Errors = asErrors(err)
			return r
		}
		sibling := path[:len(path)-len(".rules.json")] + ".parameters.json"
		if pdata, err := os.ReadFile(sibling); err == nil {
			ps, err := ParseParameters(pdata)
			if err != nil {
				r.Warnings = append(r.Warnings, "the parameters in "+filepath.Base(sibling)+" do not parse, so parameter names were not checked")
			}
			def.Parameters = ps
		} else {
			r.Warnings = append(r.Warnings, "no "+filepath.Base(sibling)+" beside it: the rule is checked as if it declared no parameters")
		}
		_, err = Compile(def, CompileOptions{Aliases: v.aliases})
		r.Errors = asErrors(err)
	default:
		doc, err := decodeDocument(data)
		if err != nil {
			r.Kind = KindDefinition
			r.Errors = asErrors(err)
			return r
		}
		if isInitiative(doc) {
			r.Kind = KindInitiative
			set, err := ParseSetDefinition(data)
			r.Errors = asErrors(err)
			v.lastSet = set
			return r
		}
		r.Kind = KindDefinition
		def, err := ParseDefinition(data)
		if err != nil {
			r.Errors = asErrors(err)
			return r
		}
		if def.Parameters == nil {
			// Azure's samples keep a definition's parameters in a sibling file, to be passed
			// with it when it is created.
			if ps, ok := siblingParameters(path); ok {
				def.Parameters = ps
			}
		}
		_, err = Compile(def, CompileOptions{Aliases: v.aliases})
		r.Errors = asErrors(err)
		if def.ID != "" {
			v.defs[strings.ToLower(def.ID)] = def
		}
		if def.Name != "" {
			v.defs[strings.ToLower(def.Name)] = def
		}
	}
	return r
}

// siblingParameters reads X.parameters.json beside X.json.
func siblingParameters(path string) (Parameters, bool) {
	base := strings.TrimSuffix(path, filepath.Ext(path))
	data, err := os.ReadFile(base + ".parameters.json")
	if err != nil {
		return nil, false
	}
	ps, err := ParseParameters(data)
	return ps, err == nil
}

func isInitiative(doc any) bool {
	m, ok := doc.(map[string]any)
	if !ok {
		return false
	}
	if p, ok := lookupKey(m, "properties").(map[string]any); ok {
		m = p
	}
	_, ok = lookupKey(m, "policyDefinitions").([]any)
	return ok
}

// crossCheck checks an initiative against the definitions it names: each member's
// parameters exist in its definition, required ones are given, and the initiative's own
// parameter references are declared.
func (v *validator) crossCheck(r *FileResult, s *SetDefinition) {
	if s == nil {
		return
	}
	scope := CompileScope{Parameters: func(name string) bool { _, ok := s.Parameters.Lookup(name); return ok }}
	for i, m := range s.Members {
		loc := fmt.Sprintf("policyDefinitions[%d]", i)
		for _, name := range sortedKeys(m.Parameters) {
			scope.Location = loc + ".parameters." + name + ".value"
			if _, err := CompileValue(m.Parameters[name], scope); err != nil {
				r.Errors = append(r.Errors, asErrors(err)...)
			}
		}
		def, ok := v.defs[strings.ToLower(m.DefinitionID)]
		if !ok {
			def, ok = v.defs[strings.ToLower(lastSegment(m.DefinitionID))]
		}
		if !ok {
			r.Warnings = append(r.Warnings, fmt.Sprintf("%s: definition %s is not among the validated files; its parameters were not checked", loc, m.DefinitionID))
			continue
		}
		for _, name := range sortedKeys(m.Parameters) {
			if _, ok := def.Parameters.Lookup(name); !ok {
				r.Errors = append(r.Errors, errorf(CodeUnknownParameter, loc+".parameters."+name, "definition %s declares no parameter %q", m.DefinitionID, name))
			}
		}
		for _, name := range def.Parameters.Names() {
			if _, given := lookupKeyOK(m.Parameters, name); !given && !def.Parameters[name].HasDefault {
				r.Errors = append(r.Errors, errorf(CodeParameterValue, loc+".parameters", "definition %s needs a value for parameter %q, which has no default", m.DefinitionID, name))
			}
		}
	}
}

func asErrors(err error) []*Error {
	switch e := err.(type) {
	case nil:
		return nil
	case Errors:
		return e
	case *Error:
		return []*Error{e}
	}
	return []*Error{errorf(CodeInvalid, "", "%v", err)}
}
