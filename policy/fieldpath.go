package policy

import (
	"fmt"
	"strings"
)

// A field path is the JSON path an alias or a built-in field stands for, such as
// properties.storageProfile.dataDisks[*].managedDisk.id or tags['cost center'].
//
// Syntax, as Azure's alias catalogue and field expressions write it:
//   - key segments separated by dots: properties.hardwareProfile.vmSize
//   - [*]: every element of an array
//   - [N]: element N of an array (on an object, the key "N", so that tags[2024] works)
//   - ['key']: a key that may hold dots, spaces or brackets; a doubled quote stands for one
//     quote
//   - [key]: the same without quotes: everything up to the next ] is the key (tags[a.b])
//
// Keys compare case-insensitively, as ARM's JSON does, with an exact match preferred so
// that the common case costs one map lookup.

// Segment kinds.
const (
	pathKey   uint8 = iota // an object key
	pathAll                // [*]
	pathIndex              // [N]
)

// pathSeg is one step of a path.
type pathSeg struct {
	kind uint8
	// fold says the key has bytes outside ASCII, where case folding may change the length,
	// so the length pre-check of the case-insensitive fallback does not apply.
	fold  bool
	index int
	// key is the key of a pathKey, and the digits as written of a pathIndex (tried as a
	// key when the step meets an object).
	key string
}

// FieldPath is a parsed JSON path such as properties.storageProfile.dataDisks[*].managedDisk.id,
// tags['cost center'] or properties.a[0].b. The zero value is the empty path, which selects
// the value it is applied to. A FieldPath is immutable and safe for concurrent use.
type FieldPath struct {
	segs []pathSeg
	// firstWild and lastWild are one more than the index of the first and last [*]
	// segment, 0 when there is none, so that the zero value has no wildcard.
	firstWild, lastWild int
	// fullName marks the path BuiltinField returns for fullName, which is computed from
	// the resource ID rather than read from the JSON.
	fullName bool
}

// PathResult is what a path selects.
//
// Values and Exists always hold one entry per selected value: exactly one for a path
// without [*] (nil and false when the value is absent), and for a path with [*] one per
// array element reached, in document order, nested [*] flattened. An element that lacks
// the property after the [*] is an entry with Exists false; an array that is missing adds
// no entry (Azure: "missingArray[*]" selects an empty collection). JSON null counts as
// absent: Exists is false and the value nil. Callers must not modify Values or Exists,
// which may be shared.
type PathResult struct {
	Values []any
	Exists []bool
	// Array reports whether the path has [*], so that a condition must hold for every entry.
	Array bool
	// ArrayExists reports, for a path with [*], whether the array at its first [*] exists
	// (is a JSON array, possibly empty).
	ArrayExists bool
	// Value and Found repeat Values[0] and Exists[0] for a path without [*].
	Value any
	Found bool
}

// Shared results for the absent plain value, so that the common miss allocates nothing.
var (
	pathAbsentValues = []any{nil}
	pathAbsentExists = []bool{false}
)

// ParseFieldPath parses a path. An empty string, an empty segment ("a..b", "a."), an
// unclosed bracket or quote, or text right after a bracket ("a[0]b") is an error.
func ParseFieldPath(s string) (FieldPath, error) {
	if s == "" {
		return FieldPath{}, fmt.Errorf("empty field path")
	}
	segs := make([]pathSeg, 0, pathSegHint(s))
	i := 0
	for i < len(s) {
		switch s[i] {
		case '.':
			// A dot separates; it may not start the path, end it, or follow another dot.
			if i == 0 || i == len(s)-1 || s[i+1] == '.' || s[i+1] == '[' {
				return FieldPath{}, fmt.Errorf("empty segment at offset %d in field path %q", i, s)
			}
			i++
		case '[':
			seg, n, err := pathParseBracket(s, i)
			if err != nil {
				return FieldPath{}, err
			}
			segs = append(segs, seg)
			i = n
			if i < len(s) && s[i] != '.' && s[i] != '[' {
				return FieldPath{}, fmt.Errorf("unexpected %q after ] at offset %d in field path %q", s[i], i, s)
			}
		case ']':
			return FieldPath{}, fmt.Errorf("unexpected ] at offset %d in field path %q", i, s)
		default:
			j := i
			for j < len(s) && s[j] != '.' && s[j] != '[' && s[j] != ']' {
				j++
			}
			segs = append(segs, pathKeySeg(s[i:j]))
			i = j
		}
	}
	return pathFrom(segs), nil
}

// pathSegHint estimates the number of segments, to allocate once.
func pathSegHint(s string) int {
	n := 1
	for i := 0; i < len(s); i++ {
		if s[i] == '.' || s[i] == '[' {
			n++
		}
	}
	return n
}

// pathParseBracket parses the bracket segment that starts at s[i] == '[' and returns it
// with the offset after its ']'.
func pathParseBracket(s string, i int) (pathSeg, int, error) {
	body := s[i+1:]
	if strings.HasPrefix(body, "*]") {
		return pathSeg{kind: pathAll}, i + 3, nil
	}
	if strings.HasPrefix(body, "'") {
		key, n, ok := pathUnquote(body)
		if !ok {
			return pathSeg{}, 0, fmt.Errorf("unclosed quote at offset %d in field path %q", i+1, s)
		}
		if n >= len(body) || body[n] != ']' {
			return pathSeg{}, 0, fmt.Errorf("expected ] after the quoted key at offset %d in field path %q", i+1+n, s)
		}
		return pathKeySeg(key), i + 1 + n + 1, nil
	}
	j := strings.IndexByte(body, ']')
	if j < 0 {
		return pathSeg{}, 0, fmt.Errorf("unclosed [ at offset %d in field path %q", i, s)
	}
	if j == 0 {
		return pathSeg{}, 0, fmt.Errorf("empty [] at offset %d in field path %q", i, s)
	}
	inner := body[:j]
	if strings.IndexByte(inner, '[') >= 0 {
		return pathSeg{}, 0, fmt.Errorf("[ inside [...] at offset %d in field path %q", i, s)
	}
	if n, ok := pathDigits(inner); ok {
		return pathSeg{kind: pathIndex, index: n, key: inner}, i + 1 + j + 1, nil
	}
	// Azure accepts tags[tagName] and tags[tag.with.dots]: the bracket's text is the key.
	return pathKeySeg(inner), i + 1 + j + 1, nil
}

// pathUnquote reads a single-quoted string at the start of s, where a doubled quote
// stands for one quote, and returns it with the number of bytes read.
func pathUnquote(s string) (string, int, bool) {
	var b strings.Builder
	plain := true
	for i := 1; i < len(s); i++ {
		if s[i] != '\'' {
			if !plain {
				b.WriteByte(s[i])
			}
			continue
		}
		if i+1 < len(s) && s[i+1] == '\'' {
			if plain {
				plain = false
				b.WriteString(s[1:i])
			}
			b.WriteByte('\'')
			i++
			continue
		}
		if plain {
			return s[1:i], i + 1, true
		}
		return b.String(), i + 1, true
	}
	return "", 0, false
}

// pathDigits reports whether s is a decimal index small enough for an int.
func pathDigits(s string) (int, bool) {
	if len(s) == 0 || len(s) > 9 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, true
}

func pathKeySeg(key string) pathSeg {
	seg := pathSeg{kind: pathKey, key: key}
	for i := 0; i < len(key); i++ {
		if key[i] >= 0x80 {
			seg.fold = true
			break
		}
	}
	return seg
}

// pathFrom builds a path from segments it takes ownership of.
func pathFrom(segs []pathSeg) FieldPath {
	p := FieldPath{segs: segs}
	for i, s := range segs {
		if s.kind == pathAll {
			if p.firstWild == 0 {
				p.firstWild = i + 1
			}
			p.lastWild = i + 1
		}
	}
	return p
}

// pathOfKeys builds a path of plain keys, for built-in fields.
func pathOfKeys(keys ...string) FieldPath {
	segs := make([]pathSeg, len(keys))
	for i, k := range keys {
		segs[i] = pathKeySeg(k)
	}
	return pathFrom(segs)
}

// String renders the path in a form ParseFieldPath reads back to the same path: keys
// that hold '.', '[' or ']' (or are empty) are written ['...'].
func (p FieldPath) String() string {
	if p.fullName {
		return "fullName"
	}
	var b strings.Builder
	for i, s := range p.segs {
		switch s.kind {
		case pathAll:
			b.WriteString("[*]")
		case pathIndex:
			b.WriteByte('[')
			b.WriteString(s.key)
			b.WriteByte(']')
		default:
			if s.key == "" || strings.ContainsAny(s.key, ".[]") {
				b.WriteString("['")
				b.WriteString(strings.ReplaceAll(s.key, "'", "''"))
				b.WriteString("']")
				continue
			}
			if i > 0 {
				b.WriteByte('.')
			}
			b.WriteString(s.key)
		}
	}
	return b.String()
}

// HasWildcard reports whether the path has a [*] segment.
func (p FieldPath) HasWildcard() bool { return p.lastWild > 0 }

// IsFullName reports whether p is the marker BuiltinField returns for fullName.
func (p FieldPath) IsFullName() bool { return p.fullName }

// IsEmpty reports whether p has no segments (it selects the value it is applied to).
func (p FieldPath) IsEmpty() bool { return len(p.segs) == 0 && !p.fullName }

// Get returns the value a path without [*] selects and whether it exists, allocating
// nothing: this is the hot path of evaluation. JSON null counts as absent. For a path with
// [*] it returns the values of the entries that exist, as an []any (empty, not nil, when
// none), and whether the array at the first [*] exists; the fullName marker selects nothing.
func (p FieldPath) Get(root any) (any, bool) {
	if p.fullName {
		return nil, false
	}
	if p.lastWild == 0 {
		return pathGet(p.segs, root)
	}
	r := p.Resolve(root)
	out := make([]any, 0, len(r.Values))
	for i, v := range r.Values {
		if r.Exists[i] {
			out = append(out, v)
		}
	}
	return out, r.ArrayExists
}

// pathGet follows segments without [*].
func pathGet(segs []pathSeg, v any) (any, bool) {
	for i := range segs {
		var ok bool
		if v, ok = pathStep(v, &segs[i]); !ok {
			return nil, false
		}
	}
	return v, v != nil
}

// Resolve evaluates the path on a value; see PathResult for what it returns. A path
// without [*] allocates at most one small block for Values and Exists (none when the
// value is absent); Get allocates nothing.
func (p FieldPath) Resolve(root any) PathResult {
	if p.fullName {
		return PathResult{Values: pathAbsentValues, Exists: pathAbsentExists}
	}
	if p.lastWild == 0 {
		v, ok := pathGet(p.segs, root)
		if !ok {
			return PathResult{Values: pathAbsentValues, Exists: pathAbsentExists}
		}
		one := &struct {
			v [1]any
			e [1]bool
		}{v: [1]any{v}, e: [1]bool{true}}
		return PathResult{Values: one.v[:], Exists: one.e[:], Value: v, Found: true}
	}
	r := PathResult{Array: true, Values: []any{}, Exists: []bool{}}
	p.collect(0, root, &r)
	return r
}

// collect walks the path from segment i on value v, appending the entries it selects.
func (p FieldPath) collect(i int, v any, r *PathResult) {
	for ; i < len(p.segs); i++ {
		seg := &p.segs[i]
		if seg.kind == pathAll {
			arr, ok := v.([]any)
			if i+1 == p.firstWild {
				// Segments before the first [*] hold no wildcard, so this point is
				// reached once.
				r.ArrayExists = ok
			}
			for _, el := range arr {
				p.collect(i+1, el, r)
			}
			return
		}
		next, ok := pathStep(v, seg)
		if !ok {
			if i+1 < p.lastWild {
				// A missing array under [*] selects nothing.
				return
			}
			r.Values = append(r.Values, nil)
			r.Exists = append(r.Exists, false)
			return
		}
		v = next
	}
	r.Values = append(r.Values, v)
	r.Exists = append(r.Exists, v != nil)
}

// pathStep takes one key or index step; a JSON null reached counts as absent.
func pathStep(v any, seg *pathSeg) (any, bool) {
	switch x := v.(type) {
	case map[string]any:
		if seg.kind == pathAll {
			return nil, false
		}
		if got, ok := x[seg.key]; ok {
			return got, got != nil
		}
		got, ok := pathFoldLookup(x, seg)
		return got, ok && got != nil
	case []any:
		if seg.kind != pathIndex || seg.index >= len(x) {
			return nil, false
		}
		got := x[seg.index]
		return got, got != nil
	}
	return nil, false
}

// pathFoldLookup finds a key case-insensitively after the exact lookup failed. Should two
// keys differ only in case (JSON allows it, ARM does not produce it), the smallest wins,
// so that the answer does not depend on map order.
func pathFoldLookup(m map[string]any, seg *pathSeg) (any, bool) {
	var (
		best  string
		found bool
		val   any
	)
	for k, v := range m {
		// ASCII case folding keeps the length, which rejects most keys cheaply.
		if (len(k) != len(seg.key) && !seg.fold) || !strings.EqualFold(k, seg.key) {
			continue
		}
		if !found || k < best {
			best, val, found = k, v, true
		}
	}
	return val, found
}

// ArrayPrefix splits the path after its last [*]: prefix ends with that [*] and rest is
// what follows (possibly empty). Inside count.where, a field that extends the counted
// array path is resolved as rest on the element being counted. ok is false, with rest the
// whole path, when the path has no [*].
func (p FieldPath) ArrayPrefix() (prefix FieldPath, rest FieldPath, ok bool) {
	if p.lastWild == 0 {
		return FieldPath{}, p, false
	}
	n := p.lastWild
	// Full slice expressions keep the two halves from sharing capacity.
	return pathFrom(p.segs[:n:n]), pathFrom(p.segs[n:len(p.segs):len(p.segs)]), true
}

// HasPrefix reports whether q's segments start p's, keys compared case-insensitively.
func (p FieldPath) HasPrefix(q FieldPath) bool {
	if len(q.segs) > len(p.segs) || p.fullName || q.fullName {
		return false
	}
	for i := range q.segs {
		if !pathSegEqual(&p.segs[i], &q.segs[i]) {
			return false
		}
	}
	return true
}

// TrimPrefix returns p without q's segments when q is a prefix of p, else p.
func (p FieldPath) TrimPrefix(q FieldPath) FieldPath {
	if !p.HasPrefix(q) {
		return p
	}
	n := len(q.segs)
	return pathFrom(p.segs[n:len(p.segs):len(p.segs)])
}

// Equal reports whether two paths have the same segments, keys compared case-insensitively.
func (p FieldPath) Equal(q FieldPath) bool {
	if p.fullName || q.fullName {
		return p.fullName == q.fullName
	}
	return len(p.segs) == len(q.segs) && p.HasPrefix(q)
}

func pathSegEqual(a, b *pathSeg) bool {
	if a.kind != b.kind {
		return false
	}
	switch a.kind {
	case pathAll:
		return true
	case pathIndex:
		return a.index == b.index
	}
	return a.key == b.key || strings.EqualFold(a.key, b.key)
}

// Built-in fields, built once: BuiltinField is called while evaluating field('name').
var (
	pathName         = pathOfKeys("name")
	pathKind         = pathOfKeys("kind")
	pathType         = pathOfKeys("type")
	pathID           = pathOfKeys("id")
	pathLocation     = pathOfKeys("location")
	pathTags         = pathOfKeys("tags")
	pathIdentity     = pathOfKeys("identity")
	pathIdentityType = pathOfKeys("identity", "type")
	pathFullName     = FieldPath{fullName: true}
)

// BuiltinField maps the fields Azure Policy defines outside aliases to their paths in
// ARM's resource JSON; names compare case-insensitively. It returns:
//
//   - name, kind, type, id, location, tags, identity: the top-level key of that name.
//     Callers compare location normalised and may want name/type/id from elsewhere
//     (name is the resource's last name segment in gild's JSON).
//   - identity.type and any other identity.<path> (identity.userAssignedIdentities is used
//     by built-in definitions): that path under identity.
//   - tags['x'], tags[x], tags.x: the path tags → key x. In tags[...] everything between
//     the brackets is the tag name (quoted, with a quote doubled, or not), and after "tags."
//     the whole rest is the tag name, so tags.a.b names the tag "a.b".
//   - fullName: a marker path (IsFullName reports true) that selects nothing: the caller
//     computes the full name (the names of the resource and its parents, "gallery/image/1.0.0")
//     from the resource ID.
//
// sku, plan, zones, managedBy and properties are not fields: Azure reaches them through
// aliases only, so BuiltinField reports false for them.
func BuiltinField(name string) (FieldPath, bool) {
	switch {
	case strings.EqualFold(name, "name"):
		return pathName, true
	case strings.EqualFold(name, "fullName"):
		return pathFullName, true
	case strings.EqualFold(name, "kind"):
		return pathKind, true
	case strings.EqualFold(name, "type"):
		return pathType, true
	case strings.EqualFold(name, "id"):
		return pathID, true
	case strings.EqualFold(name, "location"):
		return pathLocation, true
	case strings.EqualFold(name, "tags"):
		return pathTags, true
	case strings.EqualFold(name, "identity"):
		return pathIdentity, true
	case strings.EqualFold(name, "identity.type"):
		return pathIdentityType, true
	}
	if len(name) > 5 && strings.EqualFold(name[:5], "tags.") {
		return pathOfKeys("tags", name[5:]), true
	}
	if len(name) > 6 && strings.EqualFold(name[:5], "tags[") && name[len(name)-1] == ']' {
		inner := name[5 : len(name)-1]
		if strings.HasPrefix(inner, "'") {
			key, n, ok := pathUnquote(inner)
			if !ok || n != len(inner) {
				return FieldPath{}, false
			}
			inner = key
		}
		return pathOfKeys("tags", inner), true
	}
	if len(name) > 9 && strings.EqualFold(name[:9], "identity.") {
		p, err := ParseFieldPath(name)
		if err != nil {
			return FieldPath{}, false
		}
		p.segs[0].key = "identity"
		return p, true
	}
	return FieldPath{}, false
}
