package policy

import (
	"strings"
)

// ApplyResult says what applying modify or append operations did.
type ApplyResult struct {
	// Changed reports whether the resource was changed.
	Changed bool
	// Conflict names the first field an add operation could not set because it already
	// held another value; the effect's conflictEffect then decides (Azure: modify's add
	// never overwrites).
	Conflict string
}

// ApplyOperations applies modify or append operations to a resource in place, with Azure's
// meanings: addOrReplace sets the value; add sets it when the field is absent (an equal
// value is no change, another is a conflict); remove deletes it. On an array alias,
// "x[*]" adds an element (addOrReplace replaces the array's members with it), and
// "x[*].p" acts on p of every element. resourceType chooses the alias's path.
func ApplyOperations(res map[string]any, ops []Operation, aliases *AliasTable) (ApplyResult, error) {
	if aliases == nil {
		aliases = DefaultAliases()
	}
	var out ApplyResult
	typ, _ := lookupKey(res, "type").(string)
	for _, op := range ops {
		ref, err := resolveFieldName(aliases, op.Field)
		if err != nil {
			return out, err
		}
		var path FieldPath
		switch {
		case ref.fullName:
			return out, errorf(CodeEval, op.Field, "fullName is computed from the ID and cannot be changed")
		case ref.builtin:
			path = ref.path
		default:
			p, ok := ref.alias.PathFor(typ, res)
			if !ok {
				return out, errorf(CodeEval, op.Field, "alias %s does not apply to a %s", op.Field, typ)
			}
			path = p
		}
		changed, conflict := applyAt(res, path.segs, op.Operation, Normalize(op.Value))
		out.Changed = out.Changed || changed
		if conflict && out.Conflict == "" {
			out.Conflict = op.Field
		}
	}
	return out, nil
}

// applyAt applies one operation at segs under container v (an object or array).
func applyAt(v any, segs []pathSeg, operation string, value any) (changed, conflict bool) {
	if len(segs) == 0 {
		return false, false
	}
	seg := segs[0]
	last := len(segs) == 1
	switch c := v.(type) {
	case map[string]any:
		if seg.kind == pathAll {
			return false, false
		}
		key := existingKey(c, seg.key)
		cur, exists := c[key]
		if cur == nil {
			exists = false
		}
		if last {
			return setKey(c, key, exists, cur, operation, value)
		}
		next := segs[1]
		if next.kind == pathAll {
			arr, _ := cur.([]any)
			if len(segs) == 2 {
				// "x[*]": the array's members themselves.
				switch operation {
				case "remove":
					if exists {
						delete(c, key)
						return true, false
					}
					return false, false
				case "addOrReplace":
					c[key] = []any{value}
					return true, false
				default:
					c[key] = append(arr, value)
					return true, false
				}
			}
			for _, el := range arr {
				ch, cf := applyAt(el, segs[2:], operation, value)
				changed, conflict = changed || ch, conflict || cf
			}
			return changed, conflict
		}
		if !exists {
			if operation == "remove" {
				return false, false
			}
			child := map[string]any{}
			c[key] = child
			cur = child
		}
		return applyAt(cur, segs[1:], operation, value)
	case []any:
		if seg.kind != pathIndex || seg.index >= len(c) {
			return false, false
		}
		if last {
			old := c[seg.index]
			if operation == "remove" || (operation == "add" && old != nil && !ValuesEqual(old, value)) {
				return false, operation == "add"
			}
			c[seg.index] = value
			return !ValuesEqual(old, value), false
		}
		return applyAt(c[seg.index], segs[1:], operation, value)
	}
	return false, false
}

func setKey(c map[string]any, key string, exists bool, cur any, operation string, value any) (changed, conflict bool) {
	switch operation {
	case "remove":
		if exists {
			delete(c, key)
			return true, false
		}
		return false, false
	case "add":
		if exists {
			return false, !ValuesEqual(cur, value)
		}
	}
	if exists && ValuesEqual(cur, value) && sameJSONType(cur, value) {
		return false, false
	}
	c[key] = value
	return true, false
}

// sameJSONType tells "true" from true, which ValuesEqual deliberately does not.
func sameJSONType(a, b any) bool { return TypeName(a) == TypeName(b) }

// existingKey returns the spelling of key already in m (keys compare case-insensitively),
// or key itself.
func existingKey(m map[string]any, key string) string {
	if _, ok := m[key]; ok {
		return key
	}
	for k := range m {
		if strings.EqualFold(k, key) {
			return k
		}
	}
	return key
}
