package compliance

import (
	"embed"
	"encoding/json"
	"path"
	"sort"
	"strings"
	"sync"

	"github.com/gildhq/gild/resource"
)

// builtinFS holds gild's own policy definitions for its domain: approved galleries, image
// lifecycle, versions behind latest, the serviceModel tag, the cattle refresh cycle and
// the tattoo. They live at the root, as Azure's built-ins do.
//
//go:embed builtin/*.json
var builtinFS embed.FS

var builtinOnce = sync.OnceValue(func() []*resource.Resource {
	entries, err := builtinFS.ReadDir("builtin")
	if err != nil {
		panic("compliance: embedded built-in definitions: " + err.Error())
	}
	var out []*resource.Resource
	for _, e := range entries {
		data, err := builtinFS.ReadFile(path.Join("builtin", e.Name()))
		if err != nil {
			panic("compliance: embedded built-in definitions: " + err.Error())
		}
		var doc struct {
			Properties json.RawMessage `json:"properties"`
		}
		if err := json.Unmarshal(data, &doc); err != nil {
			panic("compliance: built-in definition " + e.Name() + ": " + err.Error())
		}
		name := strings.TrimSuffix(e.Name(), ".json")
		id := resource.Root.Child(TypeDefinition, name)
		out = append(out, &resource.Resource{ID: id.String(), Name: name, Type: TypeDefinition, Properties: doc.Properties})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
})

// builtinDefinitions returns gild's built-in definitions as resources.
func builtinDefinitions() []*resource.Resource { return builtinOnce() }

// BuiltinDefinitions returns copies of gild's built-in definitions, for the API to list.
func BuiltinDefinitions() []*resource.Resource {
	var out []*resource.Resource
	for _, r := range builtinOnce() {
		out = append(out, r.Clone())
	}
	return out
}
