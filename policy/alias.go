package policy

import (
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
)

// Aliases are Azure Policy's names for JSON paths in a resource
// ("Microsoft.Compute/virtualMachines/sku.name" → properties.hardwareProfile.vmSize). Azure
// publishes no file of them: Get-AzPolicyAlias lists them, and gild reads that list as csv
// lines "alias,path". An alias named "Namespace/type[/child...]/property" applies to the type
// before its last '/'. A namespace-level alias ("Microsoft.Compute/imagePublisher") applies
// to several types with a path each, and the csv does not say which path is whose; gild's
// own table does, through an optional third column "type".

// Alias is one alias name and its paths.
type Alias struct {
	// Name is the canonical spelling: the catalogue's, or the last table merged in.
	Name  string
	paths []aliasPath
	// first backs paths for the usual alias of one path, saving an allocation per alias
	// when a catalogue of 65,000 is read.
	first [1]aliasPath
}

// aliasPath is one path of an alias, for one resource type or for an unknown set of them.
type aliasPath struct {
	typ  string // the resource type the path is for; "" when the catalogue does not say
	text string // the path as the catalogue writes it
	path FieldPath
}

// PathFor returns the path of the alias for a resource of type resourceType
// (case-insensitive); resource is the resource's JSON, used only to choose among paths of
// unknown type. The choice:
//
//  1. a path recorded for resourceType;
//  2. else, among the paths whose type is unknown (namespace-level rows of a csv
//     catalogue), the first whose leading segments (all but the last) exist in resource;
//     failing that, the one whose longest existing prefix is longest, the first on a tie;
//  3. else, when resourceType is "" (not known, as at compile time), the first path;
//  4. else the alias does not apply to that type: ok is false, and the caller should treat
//     the field as absent (a resource of that type has no such property).
func (a *Alias) PathFor(resourceType string, resource any) (FieldPath, bool) {
	untyped := 0
	for i := range a.paths {
		p := &a.paths[i]
		if p.typ == "" {
			untyped++
			continue
		}
		if resourceType != "" && (p.typ == resourceType || strings.EqualFold(p.typ, resourceType)) {
			return p.path, true
		}
	}
	switch {
	case untyped == 1:
		for i := range a.paths {
			if a.paths[i].typ == "" {
				return a.paths[i].path, true
			}
		}
	case untyped > 1:
		return a.chooseUntyped(resource), true
	case resourceType == "" && len(a.paths) > 0:
		return a.paths[0].path, true
	}
	return FieldPath{}, false
}

// chooseUntyped picks among paths of unknown type by what exists in the resource.
func (a *Alias) chooseUntyped(resource any) FieldPath {
	best, bestDepth := -1, -1
	for i := range a.paths {
		p := &a.paths[i]
		if p.typ != "" {
			continue
		}
		depth := aliasExistingDepth(p.path, resource)
		if depth >= len(p.path.segs)-1 {
			return p.path
		}
		if depth > bestDepth {
			best, bestDepth = i, depth
		}
	}
	return a.paths[best].path
}

// aliasExistingDepth counts the leading segments of p that exist in v, following the first
// element at a [*].
func aliasExistingDepth(p FieldPath, v any) int {
	for i := range p.segs {
		seg := &p.segs[i]
		if seg.kind == pathAll {
			arr, ok := v.([]any)
			if !ok {
				return i
			}
			if len(arr) == 0 {
				return i + 1
			}
			v = arr[0]
			continue
		}
		next, ok := pathStep(v, seg)
		if !ok {
			return i
		}
		v = next
	}
	return len(p.segs)
}

// Types lists the resource types the alias is known to apply to, in table order; empty
// when the catalogue does not say (a namespace-level csv row).
func (a *Alias) Types() []string {
	var out []string
	for _, p := range a.paths {
		if p.typ == "" {
			continue
		}
		dup := false
		for _, t := range out {
			dup = dup || strings.EqualFold(t, p.typ)
		}
		if !dup {
			out = append(out, p.typ)
		}
	}
	return out
}

// Paths lists every path of the alias, in table order.
func (a *Alias) Paths() []FieldPath {
	out := make([]FieldPath, len(a.paths))
	for i, p := range a.paths {
		out[i] = p.path
	}
	return out
}

// AliasTable is a set of aliases, looked up case-insensitively. It is immutable after
// construction and safe for concurrent use.
type AliasTable struct {
	byName map[string]*Alias // by aliasKey(name)

	suggestOnce sync.Once
	suggest     *aliasSuggestIndex
}

func aliasASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// aliasKey is the map key of an alias name: ASCII lower case, or strings.ToLower for
// names outside ASCII. Lookup lowers ASCII names into a stack buffer to stay allocation-free.
func aliasKey(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return strings.ToLower(s)
		}
	}
	upper := false
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			upper = true
			break
		}
	}
	if !upper {
		return s
	}
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// Lookup finds an alias by name, case-insensitively ("imageSKU" finds "imageSku").
func (t *AliasTable) Lookup(name string) (*Alias, bool) {
	if t == nil {
		return nil, false
	}
	var buf [160]byte
	if len(name) <= len(buf) {
		b := buf[:len(name)]
		ascii := true
		for i := 0; i < len(name); i++ {
			c := name[i]
			if c >= 0x80 {
				ascii = false
				break
			}
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			b[i] = c
		}
		if ascii {
			// The compiler does not allocate for a map index by string(bytes).
			a, ok := t.byName[string(b)]
			return a, ok
		}
	}
	a, ok := t.byName[aliasKey(name)]
	return a, ok
}

// Len is the number of distinct alias names.
func (t *AliasTable) Len() int {
	if t == nil {
		return 0
	}
	return len(t.byName)
}

// Names lists the canonical names of every alias, sorted case-insensitively.
func (t *AliasTable) Names() []string {
	if t == nil {
		return nil
	}
	keys := make([]string, 0, len(t.byName))
	for k := range t.byName {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = t.byName[k].Name
	}
	return out
}

// Merge returns the union of t and other; neither changes. For the same alias and type,
// other's path wins; a path of unknown type that either table already has (as any type)
// is not repeated, so a csv catalogue merged over gild's typed table keeps the types.
func (t *AliasTable) Merge(other *AliasTable) *AliasTable {
	if t == nil || t.Len() == 0 {
		return other.orEmpty()
	}
	if other == nil || other.Len() == 0 {
		return t
	}
	out := &AliasTable{byName: make(map[string]*Alias, len(t.byName)+len(other.byName))}
	for k, a := range t.byName {
		out.byName[k] = a
	}
	for k, b := range other.byName {
		a, ok := out.byName[k]
		if !ok {
			out.byName[k] = b
			continue
		}
		m := &Alias{Name: b.Name, paths: append([]aliasPath(nil), a.paths...)}
		for _, p := range b.paths {
			m.paths = aliasAddPath(m.paths, p)
		}
		out.byName[k] = m
	}
	return out
}

func (t *AliasTable) orEmpty() *AliasTable {
	if t == nil {
		return &AliasTable{byName: map[string]*Alias{}}
	}
	return t
}

// aliasAddPath adds p to paths: a typed path replaces the path of the same type; a path of
// unknown type is dropped when the same path text is already there.
func aliasAddPath(paths []aliasPath, p aliasPath) []aliasPath {
	for i := range paths {
		q := &paths[i]
		if p.typ != "" && strings.EqualFold(q.typ, p.typ) {
			*q = p
			return paths
		}
		if p.typ == "" && strings.EqualFold(q.text, p.text) {
			return paths
		}
	}
	return append(paths, p)
}

// aliasBuilder collects aliases while a table is read.
type aliasBuilder struct {
	byName map[string]*Alias
}

func newAliasBuilder(hint int) *aliasBuilder {
	return &aliasBuilder{byName: make(map[string]*Alias, hint)}
}

// add records one row. typ "" takes the type from the name (everything before the last
// '/', when the name has a type part), or leaves it unknown for a namespace-level alias.
func (b *aliasBuilder) add(name, pathText, typ string) error {
	return b.addKeyed("", name, pathText, typ)
}

// addKeyed is add with the name's map key, when the caller has it ("" computes it); a key
// is trusted only for ASCII names, whose lowering the caller can do byte for byte.
func (b *aliasBuilder) addKeyed(key, name, pathText, typ string) error {
	if err := aliasCheckName(name); err != nil {
		return err
	}
	if pathText == "" {
		return fmt.Errorf("alias %q has an empty path", name)
	}
	p, err := ParseFieldPath(pathText)
	if err != nil {
		return fmt.Errorf("alias %q: %v", name, err)
	}
	if typ == "" {
		typ = aliasTypeOf(name)
	} else if strings.Count(typ, "/") < 1 {
		return fmt.Errorf("alias %q: type %q is not a resource type (Namespace/type)", name, typ)
	}
	if key == "" || len(key) != len(name) || !aliasASCII(name) {
		key = aliasKey(name)
	}
	a, ok := b.byName[key]
	if !ok {
		a = &Alias{Name: name}
		a.first[0] = aliasPath{typ: typ, text: pathText, path: p}
		a.paths = a.first[:1:1]
		b.byName[key] = a
		return nil
	}
	a.paths = aliasAddPath(a.paths, aliasPath{typ: typ, text: pathText, path: p})
	return nil
}

func (b *aliasBuilder) table() *AliasTable {
	return &AliasTable{byName: b.byName}
}

// aliasCheckName accepts "Namespace/rest" with a non-empty namespace and rest and no
// whitespace, commas or quotes.
func aliasCheckName(name string) error {
	slash := strings.IndexByte(name, '/')
	if slash <= 0 || slash == len(name)-1 || strings.HasSuffix(name, "/") {
		return fmt.Errorf("alias name %q is not of the form Namespace/name", name)
	}
	if i := strings.IndexAny(name, " \t,\"'"); i >= 0 {
		return fmt.Errorf("alias name %q holds %q", name, name[i])
	}
	return nil
}

// aliasTypeOf is the resource type an alias name implies: "NS/type/sub/prop" applies to
// "NS/type/sub"; a namespace-level name ("NS/prop") implies none.
func aliasTypeOf(name string) string {
	i := strings.LastIndexByte(name, '/')
	if i < 0 || strings.IndexByte(name[:i], '/') < 0 {
		return ""
	}
	return name[:i]
}

// LoadAliases reads a catalogue of csv lines "alias,path" (as Get-AzPolicyAlias output is
// usually saved), optionally "alias,path,type" to say which resource type a path is for.
// gzip input is recognised by its magic bytes. A header line whose first field is "alias"
// or "name", blank lines and lines starting with '#' are skipped; fields may be
// double-quoted. A bad line is an error naming its line number.
func LoadAliases(r io.Reader) (*AliasTable, error) {
	return aliasLoad(r, "line ")
}

// LoadAliasFile reads a catalogue file (csv or csv.gz) as LoadAliases does; errors name
// the file and line.
func LoadAliasFile(path string) (*AliasTable, error) {
	f, err := os.Open(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the location already names the file
		}
		return nil, &Error{Code: CodeParse, Location: path, Message: "cannot read the alias catalogue: " + err.Error()}
	}
	defer f.Close()
	return aliasLoad(f, path+":")
}

func aliasLoad(r io.Reader, where string) (*AliasTable, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var src io.Reader = br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, &Error{Code: CodeParse, Location: strings.TrimSuffix(where, ":"), Message: "bad gzip data: " + err.Error()}
		}
		defer zr.Close()
		src = zr
	}
	// Reading the whole catalogue (6 MB for Azure's 65,000 aliases) lets names and paths
	// be slices of one string, and their lower-case map keys slices of one lowered copy:
	// two allocations instead of two per line, and the map sized once.
	data, err := io.ReadAll(src)
	if err != nil {
		return nil, &Error{Code: CodeParse, Location: strings.TrimSuffix(where, ":"), Message: "reading the alias catalogue: " + err.Error()}
	}
	text := string(data)
	for i, c := range data {
		if 'A' <= c && c <= 'Z' {
			data[i] = c + 'a' - 'A'
		}
	}
	lower := string(data) // byte for byte the same offsets as text
	b := newAliasBuilder(strings.Count(text, "\n") + 1)
	var (
		spans  []aliasSpan
		fields [4]string
		line   int
		seen   bool
	)
	for pos := 0; pos < len(text); {
		ls, le := pos, len(text)
		if nl := strings.IndexByte(text[pos:], '\n'); nl >= 0 {
			le = pos + nl
		}
		pos = le + 1
		line++
		for ls < le && aliasIsSpace(text[ls]) {
			ls++
		}
		for le > ls && aliasIsSpace(text[le-1]) {
			le--
		}
		if ls == le || text[ls] == '#' {
			continue
		}
		first := !seen
		seen = true
		row, lrow := text[ls:le], lower[ls:le]
		var err error
		if strings.IndexByte(row, '"') >= 0 {
			var fs []string
			if fs, err = aliasSplitCSV(row, fields[:0]); err == nil {
				err = aliasAddRow(b, fs, "", first)
			}
		} else {
			spans = aliasFieldSpans(row, spans[:0])
			fs := fields[:0]
			for _, sp := range spans {
				fs = append(fs, row[sp.s:sp.e])
			}
			key := lrow[spans[0].s:spans[0].e]
			err = aliasAddRow(b, fs, key, first)
		}
		if err != nil {
			return nil, &Error{Code: CodeParse, Location: fmt.Sprintf("%s%d", where, line), Message: err.Error()}
		}
	}
	return b.table(), nil
}

// aliasAddRow adds the fields of one csv row; key is the name's map key when the caller
// has it. A first row whose first field is "alias" or "name" is a header.
func aliasAddRow(b *aliasBuilder, fields []string, key string, first bool) error {
	if first && (strings.EqualFold(fields[0], "alias") || strings.EqualFold(fields[0], "name")) {
		return nil
	}
	if len(fields) < 2 || len(fields) > 3 {
		return fmt.Errorf("want alias,path or alias,path,type; got %d field(s)", len(fields))
	}
	typ := ""
	if len(fields) == 3 {
		typ = fields[2]
	}
	return b.addKeyed(key, fields[0], fields[1], typ)
}

func aliasIsSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f' }

// aliasSpan is a field's bounds in a row.
type aliasSpan struct{ s, e int }

// aliasFieldSpans splits an unquoted csv row at commas, each field trimmed of spaces.
func aliasFieldSpans(row string, spans []aliasSpan) []aliasSpan {
	start := 0
	for {
		end := len(row)
		c := strings.IndexByte(row[start:], ',')
		if c >= 0 {
			end = start + c
		}
		s, e := start, end
		for s < e && aliasIsSpace(row[s]) {
			s++
		}
		for e > s && aliasIsSpace(row[e-1]) {
			e--
		}
		spans = append(spans, aliasSpan{s, e})
		if c < 0 {
			return spans
		}
		start = end + 1
	}
}

// aliasSplitCSV splits one csv line; fields are trimmed, and a field in double quotes may
// hold commas and doubled quotes. Alias catalogues rarely quote, so the plain case slices
// the line without copying.
func aliasSplitCSV(s string, fields []string) ([]string, error) {
	fields = fields[:0]
	if strings.IndexByte(s, '"') < 0 {
		for {
			f, rest, more := strings.Cut(s, ",")
			fields = append(fields, strings.TrimSpace(f))
			if !more {
				return fields, nil
			}
			s = rest
		}
	}
	for {
		s = strings.TrimLeft(s, " \t")
		var f string
		if strings.HasPrefix(s, `"`) {
			var sb strings.Builder
			i := 1
			for {
				if i >= len(s) {
					return nil, fmt.Errorf("unclosed double quote")
				}
				if s[i] == '"' {
					if i+1 < len(s) && s[i+1] == '"' {
						sb.WriteByte('"')
						i += 2
						continue
					}
					break
				}
				sb.WriteByte(s[i])
				i++
			}
			f = sb.String()
			s = strings.TrimLeft(s[i+1:], " \t")
			if s != "" && s[0] != ',' {
				return nil, fmt.Errorf("text after a closing double quote")
			}
		} else {
			j := strings.IndexByte(s, ',')
			if j < 0 {
				j = len(s)
			}
			f = strings.TrimSpace(s[:j])
			s = s[j:]
		}
		fields = append(fields, f)
		if s == "" {
			return fields, nil
		}
		s = s[1:] // the comma
	}
}

// Suggest returns the alias name nearest to name by edit distance (case-insensitive),
// for "did you mean", or "" when none is close: at most 3 edits plus one per ten
// characters. It looks first among aliases of the same type, then of the same namespace,
// then everywhere, so that it stays quick on a catalogue of 65,000 aliases.
func (t *AliasTable) Suggest(name string) string {
	if t == nil || len(t.byName) == 0 || name == "" {
		return ""
	}
	t.suggestOnce.Do(func() { t.suggest = newAliasSuggestIndex(t) })
	x := t.suggest
	q := aliasKey(name)
	best, bestD := -1, 3+len(q)/10+1
	if typ := aliasTypeOf(q); typ != "" {
		if c, ok := x.byType[typ]; ok {
			best, bestD = x.nearest(q, c, best, bestD)
			if bestD <= 1 {
				return x.names[best]
			}
		}
	}
	if slash := strings.IndexByte(q, '/'); slash > 0 {
		if c, ok := x.byNS[q[:slash]]; ok {
			// The namespace is right, so a name from another one would mislead.
			best, _ = x.nearest(q, c, best, bestD)
			if best < 0 {
				return ""
			}
			return x.names[best]
		}
	}
	best, _ = x.nearest(q, nil, best, bestD)
	if best < 0 {
		return ""
	}
	return x.names[best]
}

// aliasSuggestIndex groups alias names for Suggest; built on the first Suggest.
type aliasSuggestIndex struct {
	keys   []string // lower-case names, sorted
	names  []string // canonical names, same order
	byType map[string][]int32
	byNS   map[string][]int32
}

func newAliasSuggestIndex(t *AliasTable) *aliasSuggestIndex {
	x := &aliasSuggestIndex{byType: map[string][]int32{}, byNS: map[string][]int32{}}
	for k := range t.byName {
		x.keys = append(x.keys, k)
	}
	sort.Strings(x.keys)
	x.names = make([]string, len(x.keys))
	for i, k := range x.keys {
		x.names[i] = t.byName[k].Name
		if typ := aliasTypeOf(k); typ != "" {
			x.byType[typ] = append(x.byType[typ], int32(i))
		}
		if slash := strings.IndexByte(k, '/'); slash > 0 {
			x.byNS[k[:slash]] = append(x.byNS[k[:slash]], int32(i))
		}
	}
	return x
}

// nearest improves on (best, bestD) with the candidates cands (every name when nil):
// a candidate must be strictly closer than bestD, so the first in sorted order wins a tie.
func (x *aliasSuggestIndex) nearest(q string, cands []int32, best, bestD int) (int, int) {
	try := func(i int) {
		if i == best {
			return
		}
		k := x.keys[i]
		d := len(k) - len(q)
		if d < 0 {
			d = -d
		}
		if d >= bestD {
			return
		}
		if e := aliasEditDistance(q, k, bestD-1); e < bestD {
			best, bestD = i, e
		}
	}
	if cands == nil {
		for i := range x.keys {
			try(i)
		}
	} else {
		for _, i := range cands {
			try(int(i))
		}
	}
	return best, bestD
}

// aliasEditDistance is the Levenshtein distance of a and b when it is at most max, and
// max+1 otherwise; only the band of cells within max of the diagonal is computed, and the
// work stops as soon as every cell of a row exceeds max.
func aliasEditDistance(a, b string, max int) int {
	if max < 0 {
		return 0
	}
	la, lb := len(a), len(b)
	if d := la - lb; d > max || -d > max {
		return max + 1
	}
	const inf = 1 << 30
	prev := make([]int, lb+1)
	cur := make([]int, lb+1)
	for j := range prev {
		if j <= max {
			prev[j] = j
		} else {
			prev[j] = inf
		}
	}
	for i := 1; i <= la; i++ {
		lo, hi := i-max, i+max
		if lo < 1 {
			lo = 1
		}
		if hi > lb {
			hi = lb
		}
		if i <= max {
			cur[0] = i
		} else {
			cur[0] = inf
		}
		if lo > 1 {
			cur[lo-1] = inf
		}
		rowMin := cur[0]
		for j := lo; j <= hi; j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			v := prev[j-1] + cost
			if w := prev[j] + 1; w < v {
				v = w
			}
			if w := cur[j-1] + 1; w < v {
				v = w
			}
			cur[j] = v
			if v < rowMin {
				rowMin = v
			}
		}
		if hi < lb {
			cur[hi+1] = inf
		}
		if rowMin > max {
			return max + 1
		}
		prev, cur = cur, prev
	}
	if prev[lb] > max {
		return max + 1
	}
	return prev[lb]
}
