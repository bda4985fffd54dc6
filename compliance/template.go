package compliance

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/gildhq/gild/policy"
	"github.com/gildhq/gild/resource"
)

// templateResource is one resource a deployIfNotExists template deploys, evaluated: the ID
// it has in gild and its body.
type templateResource struct {
	ID   resource.ID
	Body *resource.Resource
}

// templateEnv evaluates a deployment template's expressions: parameters() are the
// template's, filled from the deployment's values and the template's defaults. The
// functions that need a deployment engine (variables, resourceId, reference, ...) are
// refused when the expression compiles.
type templateEnv struct {
	params map[string]any
	now    time.Time
}

func (t templateEnv) Parameter(name string) (any, bool) {
	v, ok := t.params[strings.ToLower(name)]
	return v, ok
}
func (templateEnv) Field(string) (any, error) {
	return nil, fmt.Errorf("field() is not available inside a deployment template")
}
func (templateEnv) Current(string) (any, bool)     { return nil, false }
func (t templateEnv) Now() time.Time               { return t.now }
func (templateEnv) ResourceGroup() map[string]any  { return map[string]any{} }
func (templateEnv) Subscription() map[string]any   { return map[string]any{} }
func (templateEnv) Policy() map[string]any         { return map[string]any{} }
func (templateEnv) RequestContext() map[string]any { return map[string]any{} }

// templateKeys are the resource keys gild deploys; anything else in a template resource
// (copy loops, nested deployments) is refused rather than half done.
var templateKeys = map[string]bool{"type": true, "name": true, "apiversion": true, "location": true, "tags": true,
	"properties": true, "identity": true, "kind": true, "sku": true, "condition": true, "dependson": true, "comments": true}

// expandTemplate evaluates the resources of a deployIfNotExists deployment (as
// policy.Prepared.Deployment returns it) into gild resources in the resource group rg.
// Only resource types gild models can be deployed; anything else is a clear error.
func expandTemplate(deployment map[string]any, rg resource.ID, now time.Time) ([]templateResource, error) {
	props, _ := deployment["properties"].(map[string]any)
	tmpl, _ := props["template"].(map[string]any)
	if tmpl == nil {
		return nil, fmt.Errorf("the deployment has no template")
	}
	if v, ok := tmpl["variables"]; ok && v != nil {
		return nil, fmt.Errorf("the template uses variables, which gild's remediation does not evaluate")
	}
	env := templateEnv{params: map[string]any{}, now: now}
	if decl, ok := tmpl["parameters"].(map[string]any); ok {
		for name, d := range decl {
			if dm, ok := d.(map[string]any); ok {
				if dv, ok := dm["defaultValue"]; ok {
					env.params[strings.ToLower(name)] = dv
				}
			}
		}
	}
	if values, ok := props["parameters"].(map[string]any); ok {
		for name, w := range values {
			if wm, ok := w.(map[string]any); ok {
				env.params[strings.ToLower(name)] = wm["value"]
			}
		}
	}
	raw, _ := tmpl["resources"].([]any)
	var out []templateResource
	for i, r := range raw {
		loc := fmt.Sprintf("template.resources[%d]", i)
		rm, ok := r.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s is not an object", loc)
		}
		for k := range rm {
			if !templateKeys[strings.ToLower(k)] {
				return nil, fmt.Errorf("%s uses %q, which gild's remediation does not support", loc, k)
			}
		}
		v, err := evalTemplateValue(rm, env, loc)
		if err != nil {
			return nil, err
		}
		rm = v.(map[string]any)
		if c, ok := rm["condition"]; ok {
			if b, isBool := c.(bool); isBool && !b {
				continue
			}
		}
		typ, _ := rm["type"].(string)
		name, _ := rm["name"].(string)
		id, err := templateResourceID(rg, typ, name)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", loc, err)
		}
		if err := resource.CheckPlacement(id); err != nil {
			return nil, fmt.Errorf("%s: gild can deploy only the resource types it models: %w", loc, err)
		}
		body := &resource.Resource{ID: id.String(), Name: id.Name(), Type: id.Type()}
		body.Location, _ = rm["location"].(string)
		body.Kind, _ = rm["kind"].(string)
		if tags, ok := rm["tags"].(map[string]any); ok {
			body.Tags = map[string]string{}
			for k, tv := range tags {
				body.Tags[k] = fmt.Sprint(tv)
			}
		}
		for key, dst := range map[string]*json.RawMessage{"properties": &body.Properties, "identity": &body.Identity, "sku": &body.SKU} {
			if pv, ok := rm[key]; ok && pv != nil {
				if *dst, err = json.Marshal(pv); err != nil {
					return nil, fmt.Errorf("%s.%s: %w", loc, key, err)
				}
			}
		}
		out = append(out, templateResource{ID: id, Body: body})
	}
	return out, nil
}

func evalTemplateValue(v any, env templateEnv, loc string) (any, error) {
	e, err := policy.CompileValue(policy.Normalize(v), policy.CompileScope{Location: loc})
	if err != nil {
		return nil, fmt.Errorf("the template cannot be evaluated by gild: %w", err)
	}
	out, err := e.Eval(env)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", loc, err)
	}
	return out, nil
}

// templateResourceID turns ARM template naming into a gild ID: "NS/type" with "name";
// "NS/type/child" with "parent/child"; and the extension form
// "NS/type/providers/childType" with "name/NS2/childName".
func templateResourceID(rg resource.ID, typ, name string) (resource.ID, error) {
	tparts := strings.Split(typ, "/")
	nparts := strings.Split(name, "/")
	if len(tparts) < 2 || name == "" {
		return resource.ID{}, fmt.Errorf("type %q with name %q is not a resource", typ, name)
	}
	for i, p := range tparts {
		if strings.EqualFold(p, "providers") && i+1 < len(tparts) {
			// Extension resource: the parent's type and name, then namespace and type.
			parentTypes := tparts[1:i]
			if len(nparts) != len(parentTypes)+2 {
				return resource.ID{}, fmt.Errorf("type %q needs a name of %d parts, not %q", typ, len(parentTypes)+2, name)
			}
			parent, err := resource.Parse(rg.String() + "/providers/" + tparts[0] + "/" + pairs(parentTypes, nparts[:len(parentTypes)]))
			if err != nil {
				return resource.ID{}, err
			}
			return resource.Parse(parent.String() + "/providers/" + nparts[len(parentTypes)] + "/" + tparts[i+1] + "/" + nparts[len(nparts)-1])
		}
	}
	if len(nparts) != len(tparts)-1 {
		return resource.ID{}, fmt.Errorf("type %q needs a name of %d parts, not %q", typ, len(tparts)-1, name)
	}
	return resource.Parse(rg.String() + "/providers/" + tparts[0] + "/" + pairs(tparts[1:], nparts))
}

func pairs(types, names []string) string {
	var b strings.Builder
	for i := range types {
		if i > 0 {
			b.WriteByte('/')
		}
		b.WriteString(types[i] + "/" + names[i])
	}
	return b.String()
}
