package guestconfig

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/gildhq/gild/check"
)

// Problem is one thing wrong with an input, at its JSON path
// ("properties.guestConfiguration.configurationParameter[2].name").
type Problem struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

// InvalidError lists every problem of an input at once, so that its author fixes them in
// one round. An API answers it with 400 and the problems as the error's details.
type InvalidError struct {
	Problems []Problem
}

func (e *InvalidError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.Message
		if p.Path != "" {
			lines[i] = p.Path + ": " + p.Message
		}
	}
	return strings.Join(lines, "\n")
}

type problems []Problem

func (ps *problems) add(at, format string, args ...any) {
	*ps = append(*ps, Problem{Path: at, Message: fmt.Sprintf(format, args...)})
}

// under moves problems under a prefix path.
func (ps problems) under(prefix string) problems {
	out := make(problems, len(ps))
	for i, p := range ps {
		out[i] = p
		switch {
		case p.Path == "":
			out[i].Path = prefix
		case strings.HasPrefix(p.Path, "["):
			out[i].Path = prefix + p.Path
		default:
			out[i].Path = prefix + "." + p.Path
		}
	}
	return out
}

func (ps problems) err() error {
	if len(ps) == 0 {
		return nil
	}
	return &InvalidError{Problems: ps}
}

// Render puts parameter values into c's checks and returns the check set, in the form
// check.Parse reads and validated by it. A parameter is named by its Azure name or its
// short name, in any case; one that is not given has its default. The values go into
// JSON strings properly escaped, so quotes and line breaks in a value are just text. The
// error, an *InvalidError, names every unknown or repeated parameter and every value that
// makes a check invalid, at paths such as "configurationParameter[2].value".
func Render(c *Configuration, params []NameValue) (json.RawMessage, error) {
	out, ps := render(c, params)
	if err := ps.err(); err != nil {
		return nil, err
	}
	return out, nil
}

func render(c *Configuration, params []NameValue) (json.RawMessage, problems) {
	var ps problems
	if c.ImageBaseline {
		for i := range params {
			ps.add(fmt.Sprintf("configurationParameter[%d].name", i), "configuration %s runs the image's own checks and has no parameters", c.Name)
		}
		return nil, ps
	}
	values := map[string]string{}
	given := map[string]int{} // short → index in params
	for i, nv := range params {
		at := fmt.Sprintf("configurationParameter[%d]", i)
		p := c.parameter(nv.Name)
		if p == nil {
			ps.add(at+".name", "%s", unknownParameter(c, nv.Name))
			continue
		}
		if j, dup := given[p.Short]; dup {
			ps.add(at+".name", "%q is parameter %s, already given at configurationParameter[%d]", nv.Name, p.Short, j)
			continue
		}
		given[p.Short] = i
		values[p.Short] = nv.Value
	}
	if len(ps) > 0 {
		return nil, ps
	}
	for _, p := range c.Parameters {
		if _, ok := values[p.Short]; !ok {
			values[p.Short] = p.Default
		}
	}
	var doc any
	dec := json.NewDecoder(bytes.NewReader(c.Checks))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		ps.add("", "configuration %s has checks that are not valid JSON: %v", c.Name, err)
		return nil, ps
	}
	origins := map[string][]string{} // a check path → the parameters substituted there
	doc = substitute(doc, "checks", values, origins)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		ps.add("", "configuration %s: %v", c.Name, err)
		return nil, ps
	}
	set, err := check.Parse(buf.Bytes())
	if err != nil {
		var cps check.Problems
		if !errors.As(err, &cps) {
			ps.add("", "configuration %s: %v", c.Name, err)
			return nil, ps
		}
		paths := make([]string, 0, len(origins))
		for path := range origins {
			paths = append(paths, path)
		}
		sort.Strings(paths)
		for _, cp := range cps {
			blamed := false
			for _, path := range paths {
				if cp.Path != path && !strings.HasPrefix(cp.Path, path+".") {
					continue
				}
				for _, short := range origins[path] {
					if i, ok := given[short]; ok {
						blamed = true
						ps.add(fmt.Sprintf("configurationParameter[%d].value", i), "%q makes %s invalid: %s", values[short], cp.Path, cp.Message)
					}
				}
			}
			if !blamed {
				ps.add("", "configuration %s with its defaults: %s", c.Name, cp.String())
			}
		}
		return nil, ps
	}
	out, err := json.Marshal(set)
	if err != nil {
		ps.add("", "configuration %s: %v", c.Name, err)
		return nil, ps
	}
	return out, nil
}

// unknownParameter says that name is none of c's parameters, with the nearest one.
func unknownParameter(c *Configuration, name string) string {
	msg := fmt.Sprintf("%q is not a parameter of configuration %s", name, c.Name)
	if len(c.Parameters) == 0 {
		return msg + ", which has none"
	}
	if s := nearest(name, c.parameterNames()); s != "" {
		msg += fmt.Sprintf("; did you mean %q?", s)
	}
	return msg
}

// substitute returns v with the placeholders of its strings replaced by values, and
// records which parameters went where.
func substitute(v any, at string, values map[string]string, origins map[string][]string) any {
	switch v := v.(type) {
	case string:
		return placeholder.ReplaceAllStringFunc(v, func(m string) string {
			short := m[2 : len(m)-1]
			value, ok := values[short]
			if !ok {
				return m
			}
			origins[at] = append(origins[at], short)
			return value
		})
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = substitute(e, fmt.Sprintf("%s[%d]", at, i), values, origins)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = substitute(e, at+"."+k, values, origins)
		}
		return out
	default:
		return v
	}
}

// ParameterHash is what Azure's policies compare an assignment's parameterHash with:
// base64 (standard, padded) of "name=value" pairs joined by ",", in the order given.
// A policy builds it with base64(concat('<name>', '=', parameters('x'), ',', ...)) over
// Azure's full parameter names in its own order, which the assignments it deploys follow.
func ParameterHash(params []NameValue) string {
	var b strings.Builder
	for i, p := range params {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(p.Name)
		b.WriteByte('=')
		b.WriteString(p.Value)
	}
	return base64.StdEncoding.EncodeToString([]byte(b.String()))
}
