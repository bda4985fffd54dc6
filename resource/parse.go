package resource

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// AllTypes is the Collection of a "{scope}/resources" path: every resource in the scope.
const AllTypes = "*"

// Path is a parsed API path: either one resource (Collection empty) or the collection of
// resources of type Collection under ID ("/subscriptions/s/providers/Microsoft.Compute/virtualMachines"
// is the VMs under /subscriptions/s).
type Path struct {
	ID         ID
	Collection string
}

// Parse parses an ARM resource ID. It accepts any letter case and one trailing slash; the
// error names the offending part.
func Parse(s string) (ID, error) {
	p, err := ParsePath(s)
	if err != nil {
		return ID{}, err
	}
	if p.Collection == AllTypes {
		return ID{}, Errorf(CodeInvalidResourceID, s, "resource ID %q names the list of every resource in %s, not one resource", s, p.ID)
	}
	if p.Collection != "" {
		return ID{}, Errorf(CodeInvalidResourceID, s, "resource ID %q names a collection of %s, not one resource: a name is missing at its end", s, p.Collection)
	}
	return p.ID, nil
}

// MustParse is Parse for IDs written in code; it panics on error.
func MustParse(s string) ID {
	id, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return id
}

// MaxIDLength is the longest resource ID or path, in bytes, that ParsePath accepts.
const MaxIDLength = 4096

// ParsePath parses a resource ID or a collection path.
func ParsePath(s string) (Path, error) {
	bad := func(format string, args ...any) (Path, error) {
		return Path{}, Errorf(CodeInvalidResourceID, s, "resource ID %q is invalid: "+format, append([]any{s}, args...)...)
	}
	if !strings.HasPrefix(s, "/") {
		return bad("it must start with '/'")
	}
	if len(s) > MaxIDLength {
		return bad("it is longer than %d characters", MaxIDLength)
	}
	if !utf8.ValidString(s) {
		// Key lower-cases IDs; invalid bytes would all fold to U+FFFD and make different
		// IDs share one key.
		return bad("it is not valid UTF-8")
	}
	if s == "/" {
		return Path{}, nil
	}
	// One trailing slash is allowed; "//" is not the root but an empty part.
	rest := strings.TrimSuffix(s[1:], "/")
	segs := strings.Split(rest, "/")
	for i, seg := range segs {
		if seg == "" {
			return bad("part %d is empty (two slashes in a row)", i+1)
		}
	}
	var id ID
	i := 0
	next := func() (string, bool) {
		if i >= len(segs) {
			return "", false
		}
		i++
		return segs[i-1], true
	}
	peek := func() string {
		if i < len(segs) {
			return segs[i]
		}
		return ""
	}

	switch {
	case keyword(peek(), "subscriptions"):
		next()
		name, ok := next()
		if !ok {
			return Path{ID: Root, Collection: TypeSubscription}, nil
		}
		if err := checkScopeName("subscription", name); err != "" {
			return bad("%s", err)
		}
		id.Subscription = name
		if keyword(peek(), "resourceGroups") {
			next()
			rg, ok := next()
			if !ok {
				return Path{ID: id, Collection: TypeResourceGroup}, nil
			}
			if err := checkScopeName("resource group", rg); err != "" {
				return bad("%s", err)
			}
			id.ResourceGroup = rg
		}
	case len(segs) >= 3 && keyword(segs[0], "providers") &&
		keyword(segs[1]+"/"+segs[2], TypeManagementGroup):
		i = 3
		name, ok := next()
		if !ok {
			return Path{ID: Root, Collection: TypeManagementGroup}, nil
		}
		if err := checkScopeName("management group", name); err != "" {
			return bad("%s", err)
		}
		id.ManagementGroup = name
		if w := peek(); keyword(w, "subscriptions") || keyword(w, "resourceGroups") {
			return bad("%q at part %d cannot follow a management group: a resource lies under a management group or a subscription, not both (a subscription's group is set in the tree, not in its ID)", w, i+1)
		}
	}

	for i < len(segs) {
		word, _ := next()
		// Only a scope can be followed by "resources": after a resource, the loop below
		// reads every word up to the next "providers" as a type or a name.
		if keyword(word, "resources") && i == len(segs) {
			return Path{ID: id, Collection: AllTypes}, nil
		}
		if !keyword(word, "providers") {
			return bad("expected 'providers' at part %d, found %q", i, word)
		}
		ns, ok := next()
		if !ok {
			return bad("'providers' at its end needs a namespace and a type")
		}
		if !validNamespace(ns) {
			return bad("%q at part %d is not a resource provider namespace (such as Microsoft.Compute)", ns, i)
		}
		seg := Segment{Namespace: ns}
		for i < len(segs) && !keyword(peek(), "providers") {
			typ, _ := next()
			if !validTypeName(typ) {
				return bad("%q at part %d is not a resource type name", typ, i)
			}
			name, ok := next()
			if !ok {
				typeName := ns + "/" + strings.Join(append(append([]string(nil), seg.Types...), typ), "/")
				if len(seg.Types) > 0 {
					// A child collection (galleries/g/images) lies under its parent resource.
					id.Providers = append(id.Providers, seg)
				}
				return Path{ID: id, Collection: typeName}, nil
			}
			if err := checkResourceName(name); err != "" {
				return bad("the name of the %s at part %d: %s", typ, i, err)
			}
			seg.Types = append(seg.Types, typ)
			seg.Names = append(seg.Names, name)
		}
		if len(seg.Types) == 0 {
			return bad("namespace %s at its end needs a resource type", ns)
		}
		id.Providers = append(id.Providers, seg)
	}
	return Path{ID: id}, nil
}

// keyword reports whether word is the ASCII keyword kw in any letter case. Unlike
// strings.EqualFold it does not take 'ſ' for 's' or 'K' (Kelvin) for 'k'.
func keyword(word, kw string) bool {
	if len(word) != len(kw) {
		return false
	}
	for i := 0; i < len(word); i++ {
		a, b := word[i], kw[i]
		if 'A' <= a && a <= 'Z' {
			a += 'a' - 'A'
		}
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		if a != b {
			return false
		}
	}
	return true
}

func validNamespace(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) < 2 {
		return false
	}
	for _, p := range parts {
		if !validTypeName(p) {
			return false
		}
	}
	return true
}

func validTypeName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// checkScopeName applies the rules shared by management group, subscription and resource
// group names: 1 to 90 letters, digits, '-', '_', '.', '(' or ')', not ending in '.'.
// It returns "" when name is valid, else what is wrong.
func checkScopeName(what, name string) string {
	if n := utf8.RuneCountInString(name); n > 90 {
		return what + " name " + quote(name) + " is longer than 90 characters"
	}
	for _, r := range name {
		if !(unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune("-_.()", r)) {
			return what + " name " + quote(name) + " has " + quote(string(r)) + "; allowed are letters, digits and - _ . ( )"
		}
	}
	if strings.HasSuffix(name, ".") {
		return what + " name " + quote(name) + " must not end with '.'"
	}
	return ""
}

// checkResourceName applies the rules ARM applies to every resource name; resource types
// may narrow them further.
func checkResourceName(name string) string {
	if utf8.RuneCountInString(name) > 260 {
		return "it is longer than 260 characters"
	}
	if name == "." || name == ".." {
		return "'.' and '..' are not names"
	}
	if strings.TrimSpace(name) != name {
		return quote(name) + " has leading or trailing spaces"
	}
	for _, r := range name {
		if unicode.IsControl(r) || strings.ContainsRune(`<>%&:\?#*`, r) {
			return quote(name) + " has " + quote(string(r)) + ", which resource names may not contain"
		}
	}
	return ""
}

func quote(s string) string { return "'" + s + "'" }
