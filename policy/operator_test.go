package policy

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// The doc statements the cases below check. Paths are in MicrosoftDocs/azure-docs,
// articles/governance/policy/. "Choice" cases pin a behaviour the docs leave open; the
// choice and its reason are written in operator.go.
const (
	opDocCase        = "policy-rule.md Conditions: match/notMatch are case-sensitive, all other conditions that evaluate a stringValue are case-insensitive"
	opDocLike        = "policy-rule.md Conditions: like/notLike take a wildcard character (*) in the value"
	opDocLikeOne     = "policy-rule.md Conditions: a like value shouldn't have more than one wildcard (Choice: several still work)"
	opDocMatch       = "policy-rule.md Conditions: match uses # for a digit, ? for a letter, . for any character, any other character for itself"
	opDocMatchCI     = "policy-rule.md Conditions: matchInsensitively/notMatchInsensitively are the case-insensitive alternatives"
	opDocContainsLit = "policy-rule.md Conditions: the wildcard (*) cannot be provided in a contains/notContains value (it is a plain character)"
	opDocOrderErr    = "policy-rule.md Conditions: for less/lessOrEquals/greater/greaterOrEquals, if the property type doesn't match the condition type, an error is thrown"
	opDocOrderStr    = "policy-rule.md Conditions: less takes a stringValue; string comparisons use InvariantCultureIgnoreCase"
	opDocOrderDate   = "policy-rule.md Conditions: less/greater take a dateValue"
	opDocOrderInt    = "policy-rule.md Conditions: less/greater take an intValue"
	opDocExists      = "policy-rule.md Conditions: \"exists\": \"bool\" (built-ins write true, \"true\", \"True\", \"false\", \"False\")"
	opDocLocation    = "policy-rule.md Fields: location fields are normalized, East US 2 is considered equal to eastus2"
	opDocBoolStr     = "policy-rule.md Value examples: [less(length(field('tags')), 3)] (a boolean) \"equals\": \"true\""
	opDocNumStr      = "policy-rule.md Value count example 5: integer destinationPortRange parameter equals the NSG rule's string property"
	opDocInArray     = "author-policies-for-arrays.md Array conditions: with in and notIn the policy engine expects the type array"
	opDocEqString    = "author-policies-for-arrays.md Array conditions: the expected type of equals is string; an array is an evaluation error"
	opDocEqFieldArr  = "author-policies-for-arrays.md, field() inside where: a string equals [field('...[*]')] (an array) evaluates to false, not an error"
	opDocArrayVsStr  = "author-policies-for-arrays.md Referencing the array: comparing an entire array to a single string value is not useful (it does not match)"
	opDocMissingNull = "author-policies-for-arrays.md: a missing (non-array) alias selects null"
	opDocMissingIn   = "MicrosoftDocs/azure-docs#50143: resources that don't send location are blocked by the allowed-locations rule (notIn holds for a missing field)"
	opDocNot         = "policy-rule.md Logical operators: not inverts the result (each not-operator is its positive form negated)"
	opDocFailDeny    = "policy-rule.md Value: if a template function's result is an error, policy evaluation fails (implicit deny)"
	opDocContainsKey = "policy-rule.md: \"containsKey\": \"keyName\" (tags containsKey application)"
	opDocContains    = "policy-rule.md Conditions: \"contains\": \"stringValue\"; on an array value it tests membership"
	opDocIn          = "policy-rule.md Conditions: \"in\": [\"stringValue1\",\"stringValue2\"]"
	opDocEquals      = "policy-rule.md Conditions: \"equals\": \"stringValue\""
	opChoiceNullStr  = "Choice (ValuesEqual): null equals \"\", so the built-in 'Inherit a tag from the resource group' notEquals \"\" skips groups without the tag"
	opChoiceMissing  = "Choice (Apply): a missing field has no value: it equals only null; like/match/contains/containsKey do not hold"
	opChoiceNullEx   = "Choice (Apply): a property whose value is null does not exist"
	opChoiceOrderNil = "Choice (Apply): less/greater on a missing or null value is false, not an error"
	opChoiceCoerce   = "Choice (opValueText): numbers and booleans are read as their JSON text by like/match/contains"
	opChoiceObject   = "Choice (opContains): an object value contains nothing; containsKey is for keys"
	opChoiceKeyCase  = "Choice (opHasKeyFold): containsKey ignores case"
	opChoiceNumOrder = "Choice (CompareValues): a numeric string orders numerically against a number"
	opChoiceUnicode  = "Choice (PatternMatch): # and ? use Unicode digits and letters, as .NET's Char.IsDigit/IsLetter"
)

// opAbsent marks a case whose field does not exist.
type opAbsentType struct{}

var opAbsent = opAbsentType{}

func opArr(v ...any) []any { return v }

type opApplyCase struct {
	op     Operator
	value  any // opAbsent for a missing field
	target any
	loc    bool
	want   bool
	err    string // expected error code, "" for none
	why    string
}

func opRunApply(t *testing.T, cases []opApplyCase) {
	t.Helper()
	for i, c := range cases {
		value, exists := c.value, true
		if c.value == opAbsent {
			value, exists = nil, false
		}
		got, err := c.op.Apply(value, exists, c.target, c.loc)
		name := c.op.String()
		if c.err != "" {
			if err == nil || CodeOf(err) != c.err {
				t.Errorf("#%d %s(%#v, exists=%v, %#v): err = %v, want code %s\n  doc: %s", i, name, value, exists, c.target, err, c.err, c.why)
			}
			continue
		}
		if err != nil {
			t.Errorf("#%d %s(%#v, exists=%v, %#v): unexpected error %v\n  doc: %s", i, name, value, exists, c.target, err, c.why)
			continue
		}
		if got != c.want {
			t.Errorf("#%d %s(%#v, exists=%v, %#v, location=%v) = %v, want %v\n  doc: %s", i, name, value, exists, c.target, c.loc, got, c.want, c.why)
		}
	}
}

func TestOperatorApplyEquals(t *testing.T) {
	opRunApply(t, []opApplyCase{
		// Strings.
		{OpEquals, "Microsoft.Compute/virtualMachines", "microsoft.compute/VIRTUALMACHINES", false, true, "", opDocCase},
		{OpEquals, "abc", "abd", false, false, "", opDocEquals},
		{OpEquals, "", "", false, true, "", opDocEquals},
		{OpEquals, "abc", "abc ", false, false, "", opDocEquals},
		{OpNotEquals, "Standard_D2s_v3", "standard_d2s_v3", false, false, "", opDocCase},
		{OpNotEquals, "abc", "abd", false, true, "", opDocNot},
		{OpEquals, "Straße", "STRASSE", false, false, "", opDocCase}, // simple folding only, no ß→ss expansion
		{OpEquals, "ÄÖÜ", "äöü", false, true, "", opDocCase},
		// Numbers.
		{OpEquals, int64(3), int64(3), false, true, "", opDocEquals},
		{OpEquals, int64(3), 3.0, false, true, "", opDocEquals},
		{OpEquals, 2.5, 2.5, false, true, "", opDocEquals},
		{OpEquals, int64(3), int64(4), false, false, "", opDocEquals},
		{OpNotEquals, int64(3), 3.5, false, true, "", opDocNot},
		// Numbers against strings.
		{OpEquals, "22", int64(22), false, true, "", opDocNumStr},
		{OpEquals, int64(22), "22", false, true, "", opDocNumStr},
		{OpEquals, " 22 ", int64(22), false, true, "", opDocNumStr},
		{OpEquals, "22.0", int64(22), false, true, "", opDocNumStr},
		{OpEquals, "0x16", int64(22), false, false, "", opDocNumStr},
		{OpEquals, "22-23", int64(22), false, false, "", opDocNumStr},
		{OpEquals, "NaN", 1.5, false, false, "", opDocNumStr},
		{OpNotEquals, "3389", int64(22), false, true, "", opDocNumStr},
		// Booleans and the "true"/"True" strings.
		{OpEquals, true, true, false, true, "", opDocEquals},
		{OpEquals, true, false, false, false, "", opDocEquals},
		{OpEquals, true, "true", false, true, "", opDocBoolStr},
		{OpEquals, true, "True", false, true, "", opDocBoolStr},
		{OpEquals, false, "FALSE", false, true, "", opDocBoolStr},
		{OpEquals, "True", true, false, true, "", opDocBoolStr},
		{OpEquals, "true", false, false, false, "", opDocBoolStr},
		{OpEquals, true, "yes", false, false, "", opDocBoolStr},
		{OpEquals, true, int64(1), false, false, "", opDocBoolStr},
		{OpNotEquals, true, "true", false, false, "", opDocBoolStr},
		{OpNotEquals, false, "true", false, true, "", opDocBoolStr},
		// Arrays and objects as the value: compared whole, so not equal to a string.
		{OpEquals, opArr("a"), "a", false, false, "", opDocArrayVsStr},
		{OpNotEquals, opArr("a"), "a", false, true, "", opDocArrayVsStr},
		{OpEquals, map[string]any{"a": "b"}, "a", false, false, "", opDocArrayVsStr},
		// Arrays and objects as the target: an evaluation error.
		{OpEquals, "eastus", opArr("eastus"), false, false, "", opDocEqFieldArr},
		{OpNotEquals, "eastus", opArr("eastus"), false, true, "", opDocEqFieldArr},
		{OpEquals, opAbsent, opArr("eastus"), false, false, "", opDocEqFieldArr},
		{OpEquals, "x", map[string]any{}, false, false, "", opDocEqFieldArr},
		{OpEquals, opArr("a"), opArr("A"), false, true, "", opDocEqFieldArr},
		// Null.
		{OpEquals, nil, nil, false, true, "", opChoiceNullStr},
		{OpEquals, nil, "", false, true, "", opChoiceNullStr},
		{OpNotEquals, nil, "", false, false, "", opChoiceNullStr},
		{OpEquals, nil, "x", false, false, "", opDocMissingNull},
		{OpNotEquals, nil, "x", false, true, "", opDocMissingNull},
		{OpEquals, "", nil, false, true, "", opChoiceNullStr},
		{OpEquals, "x", nil, false, false, "", opChoiceNullStr},
		// Missing field.
		{OpEquals, opAbsent, "x", false, false, "", opChoiceMissing},
		{OpNotEquals, opAbsent, "x", false, true, "", opDocMissingIn},
		{OpEquals, opAbsent, "", false, false, "", opChoiceMissing},
		{OpNotEquals, opAbsent, "", false, true, "", opChoiceMissing},
		{OpEquals, opAbsent, nil, false, true, "", opChoiceMissing},
		{OpEquals, opAbsent, false, false, false, "", opChoiceMissing},
		// Location.
		{OpEquals, "East US 2", "eastus2", true, true, "", opDocLocation},
		{OpEquals, "eastus2", "East US 2", true, true, "", opDocLocation},
		{OpEquals, "EASTUS2", "east us 2", true, true, "", opDocLocation},
		{OpEquals, "East US", "eastus2", true, false, "", opDocLocation},
		{OpNotEquals, "West Europe", "westeurope", true, false, "", opDocLocation},
		{OpEquals, "East US 2", "eastus2", false, false, "", opDocLocation}, // only location fields are normalised
		{OpEquals, "global", "Global", true, true, "", opDocLocation},
		{OpEquals, "Brazil\u00a0South", "brazilsouth", true, true, "", opDocLocation},
		{OpEquals, "eastus ", "East US", true, true, "", opDocLocation},
		{OpEquals, "eastus", "eastus2", true, false, "", opDocLocation},
		{OpEquals, "", "   ", true, true, "", opDocLocation},
	})
}

func TestOperatorApplyLike(t *testing.T) {
	opRunApply(t, []opApplyCase{
		// Wildcard at the end, the start, the middle, and none.
		{OpLike, "windows2019", "windows*", false, true, "", opDocLike},
		{OpLike, "WindowsServer", "windows*", false, true, "", opDocCase},
		{OpLike, "linux", "windows*", false, false, "", opDocLike},
		{OpLike, "windows", "windows*", false, true, "", opDocLike}, // '*' may be empty
		{OpLike, "prod-netrg", "*netrg", false, true, "", opDocLike},
		{OpLike, "NETRG", "*netrg", false, true, "", opDocCase},
		{OpLike, "netrg-prod", "*netrg", false, false, "", opDocLike},
		{OpLike, "vm-web-01", "vm-*-01", false, true, "", opDocLike},
		{OpLike, "vm-01", "vm-*-01", false, false, "", opDocLike}, // prefix and suffix may not overlap
		{OpLike, "vm--01", "vm-*-01", false, true, "", opDocLike},
		{OpLike, "abc", "abc", false, true, "", opDocLike},
		{OpLike, "ABC", "abc", false, true, "", opDocCase},
		{OpLike, "abcd", "abc", false, false, "", opDocLike},
		{OpLike, "anything", "*", false, true, "", opDocLike},
		{OpLike, "", "*", false, true, "", opDocLike},
		{OpLike, "", "", false, true, "", opDocLike},
		{OpLike, "a?c", "a?c", false, true, "", opDocLike}, // '?' is literal in like
		{OpLike, "abc", "a?c", false, false, "", opDocLike},
		{OpLike, "a.c", "a.c", false, true, "", opDocLike},
		{OpLike, "abc", "a.c", false, false, "", opDocLike},
		{OpLike, "a-sql-b", "*sql*", false, true, "", opDocLikeOne},
		{OpLike, "a-sq-b", "*sql*", false, false, "", opDocLikeOne},
		{OpLike, "axbxc", "a*b*c", false, true, "", opDocLikeOne},
		{OpLike, "acb", "a*b*c", false, false, "", opDocLikeOne},
		{OpNotLike, "SQL2008R2", "SQL2008*", false, false, "", opDocLike},
		{OpNotLike, "SQL2012", "SQL2008*", false, true, "", opDocNot},
		// Numbers and booleans as the value.
		{OpLike, int64(2019), "20*", false, true, "", opChoiceCoerce},
		{OpLike, true, "tr*", false, true, "", opChoiceCoerce},
		{OpLike, true, "True", false, true, "", opChoiceCoerce},
		// Arrays, objects, null, missing.
		{OpLike, opArr("windows"), "windows*", false, false, "", opDocArrayVsStr},
		{OpNotLike, opArr("windows"), "windows*", false, true, "", opDocArrayVsStr},
		{OpLike, map[string]any{"a": "b"}, "*", false, false, "", opDocArrayVsStr},
		{OpLike, nil, "*", false, false, "", opChoiceMissing},
		{OpNotLike, nil, "*", false, true, "", opChoiceMissing},
		{OpLike, opAbsent, "*", false, false, "", opChoiceMissing},
		{OpNotLike, opAbsent, "windows*", false, true, "", opChoiceMissing},
		// Location.
		{OpLike, "East US 2", "eastus*", true, true, "", opDocLocation},
		{OpLike, "eastus2", "East US*", true, true, "", opDocLocation},
		{OpLike, "East US 2", "eastus*", false, false, "", opDocLocation},
		// Targets.
		{OpLike, "x", opArr("x*"), false, false, CodeEval, opDocEqString},
		{OpNotLike, "x", nil, false, false, CodeEval, opDocEqString},
		{OpLike, "12", int64(12), false, true, "", opChoiceCoerce},
	})
}

func TestOperatorApplyMatch(t *testing.T) {
	opRunApply(t, []opApplyCase{
		{OpMatch, "contoso-abc-12", "contoso-???-##", false, true, "", opDocMatch},
		{OpMatch, "contoso-ab1-12", "contoso-???-##", false, false, "", opDocMatch},
		{OpMatch, "contoso-abc-1x", "contoso-???-##", false, false, "", opDocMatch},
		{OpMatch, "contoso-abc-123", "contoso-???-##", false, false, "", opDocMatch}, // the whole string
		{OpMatch, "contoso-abc-1", "contoso-???-##", false, false, "", opDocMatch},
		{OpMatch, "a1b", "...", false, true, "", opDocMatch},
		{OpMatch, "-_ ", "...", false, true, "", opDocMatch},
		{OpMatch, "ab", "...", false, false, "", opDocMatch},
		{OpMatch, "a*b", "a*b", false, true, "", opDocMatch}, // '*' is literal in match
		{OpMatch, "axxb", "a*b", false, false, "", opDocMatch},
		{OpMatch, "Contoso12", "contoso##", false, false, "", opDocCase},
		{OpMatch, "contoso12", "contoso##", false, true, "", opDocMatch},
		{OpMatch, "ÉCOLE", "?????", false, true, "", opChoiceUnicode},
		{OpMatch, "٣", "#", false, true, "", opChoiceUnicode}, // Arabic-Indic digit three
		{OpMatch, "", "", false, true, "", opDocMatch},
		{OpMatchInsensitively, "Contoso12", "contoso##", false, true, "", opDocMatchCI},
		{OpMatchInsensitively, "CONTOSO-AB", "contoso-??", false, true, "", opDocMatchCI},
		{OpMatchInsensitively, "Contoso1", "contoso##", false, false, "", opDocMatchCI},
		{OpNotMatch, "Contoso12", "contoso##", false, true, "", opDocCase},
		{OpNotMatch, "contoso12", "contoso##", false, false, "", opDocNot},
		{OpNotMatchInsensitively, "Contoso12", "contoso##", false, false, "", opDocMatchCI},
		{OpNotMatchInsensitively, "Contoso1x", "contoso##", false, true, "", opDocMatchCI},
		// Values of other types.
		{OpMatch, int64(2024), "####", false, true, "", opChoiceCoerce},
		{OpMatch, true, "true", false, true, "", opChoiceCoerce},
		{OpMatch, opArr("ab"), "??", false, false, "", opDocArrayVsStr},
		{OpNotMatch, opArr("ab"), "??", false, true, "", opDocArrayVsStr},
		{OpMatch, nil, "", false, false, "", opChoiceMissing},
		{OpMatch, opAbsent, "##", false, false, "", opChoiceMissing},
		{OpNotMatch, opAbsent, "##", false, true, "", opChoiceMissing},
		{OpNotMatchInsensitively, opAbsent, "##", false, true, "", opChoiceMissing},
		// Location: both sides normalised, so case no longer matters.
		{OpMatch, "East US 2", "eastus#", true, true, "", opDocLocation},
		// Targets.
		{OpMatch, "a", opArr("a"), false, false, CodeEval, opDocEqString},
		{OpMatchInsensitively, "a", map[string]any{}, false, false, CodeEval, opDocEqString},
	})
}

func TestOperatorApplyContains(t *testing.T) {
	opRunApply(t, []opApplyCase{
		// Strings: substring, ignoring case.
		{OpContains, "Canonical:UbuntuServer", "ubuntu", false, true, "", opDocCase},
		{OpContains, "SystemAssigned, UserAssigned", "UserAssigned", false, true, "", opDocContains},
		{OpContains, "SystemAssigned", "UserAssigned", false, false, "", opDocContains},
		{OpContains, "abc", "", false, true, "", opDocContains},
		{OpContains, "", "a", false, false, "", opDocContains},
		{OpContains, "abc", "abcd", false, false, "", opDocContains},
		{OpContains, "rg-prod-01", "PROD", false, true, "", opDocCase},
		{OpNotContains, "/providers/Microsoft.Compute/", "/providers/Microsoft.ContainerService/", false, true, "", opDocNot},
		{OpNotContains, "SystemAssigned", "systemassigned", false, false, "", opDocCase},
		{OpContains, "KELVIN", "\u212aelvin", false, true, "", opDocCase}, // Kelvin sign folds to K
		{OpContains, "xx\u212aelvin", "kelvin", false, true, "", opDocCase},
		// '*' is a plain character.
		{OpContains, "abc", "a*", false, false, "", opDocContainsLit},
		{OpContains, "a*c", "a*", false, true, "", opDocContainsLit},
		// Arrays: an element equal to the target.
		{OpContains, opArr("eastus", "westus"), "WestUS", false, true, "", opDocContains},
		{OpContains, opArr("eastus", "westus"), "west", false, false, "", opDocContains},
		{OpContains, opArr(int64(22), int64(3389)), "22", false, true, "", opDocNumStr},
		{OpContains, opArr(true), "True", false, true, "", opDocBoolStr},
		{OpNotContains, opArr("a", "b"), "c", false, true, "", opDocNot},
		{OpNotContains, opArr("a", "b"), "B", false, false, "", opDocCase},
		{OpContains, opArr(), "a", false, false, "", opDocContains},
		{OpContains, opArr("East US"), "eastus", true, true, "", opDocLocation},
		// Numbers and booleans as the value.
		{OpContains, int64(12345), "234", false, true, "", opChoiceCoerce},
		{OpContains, int64(12345), int64(234), false, true, "", opChoiceCoerce},
		// Objects, null, missing.
		{OpContains, map[string]any{"abc": "abc"}, "abc", false, false, "", opChoiceObject},
		{OpNotContains, map[string]any{"abc": "abc"}, "abc", false, true, "", opChoiceObject},
		{OpContains, nil, "", false, false, "", opChoiceMissing},
		{OpContains, opAbsent, "a", false, false, "", opChoiceMissing},
		{OpNotContains, opAbsent, "a", false, true, "", opChoiceMissing},
		// Location.
		{OpContains, "East US 2", "tus2", true, true, "", opDocLocation},
		{OpContains, "East US 2", "tus2", false, false, "", opDocLocation},
		// Targets.
		{OpContains, "abc", opArr("a"), false, false, CodeEval, opDocEqString},
		{OpNotContains, opArr("a"), nil, false, false, CodeEval, opDocEqString},
	})
}

func TestOperatorApplyIn(t *testing.T) {
	locs := opArr("eastus", "westus2", "westeurope")
	opRunApply(t, []opApplyCase{
		{OpIn, "westus2", locs, false, true, "", opDocIn},
		{OpIn, "WestUS2", locs, false, true, "", opDocCase},
		{OpIn, "northeurope", locs, false, false, "", opDocIn},
		{OpNotIn, "northeurope", locs, false, true, "", opDocNot},
		{OpNotIn, "WESTEUROPE", locs, false, false, "", opDocCase},
		{OpIn, "x", opArr(), false, false, "", opDocIn},
		{OpNotIn, "x", opArr(), false, true, "", opDocIn},
		// Location spellings.
		{OpIn, "West US 2", locs, true, true, "", opDocLocation},
		{OpNotIn, "West Europe", locs, true, false, "", opDocLocation},
		{OpIn, "westus2", opArr("West US 2"), true, true, "", opDocLocation},
		{OpIn, "West US 2", locs, false, false, "", opDocLocation},
		// Numbers, booleans and strings mixed.
		{OpIn, int64(22), opArr("22", "3389"), false, true, "", opDocNumStr},
		{OpIn, "3389", opArr(int64(22), int64(3389)), false, true, "", opDocNumStr},
		{OpIn, 1.5, opArr(int64(1), 1.5), false, true, "", opDocIn},
		{OpIn, true, opArr("True"), false, true, "", opDocBoolStr},
		{OpIn, false, opArr("true"), false, false, "", opDocBoolStr},
		{OpNotIn, true, opArr("false", "no"), false, true, "", opDocBoolStr},
		// Arrays and objects as the value compare whole.
		{OpIn, opArr("a"), opArr("a"), false, false, "", opDocArrayVsStr},
		{OpIn, opArr("a"), opArr(opArr("A")), false, true, "", opDocIn},
		{OpIn, map[string]any{"k": "v"}, opArr(map[string]any{"K": "V"}), false, true, "", opDocIn},
		// Null and missing.
		{OpIn, nil, opArr("a", ""), false, true, "", opChoiceNullStr},
		{OpIn, nil, opArr("a"), false, false, "", opDocMissingNull},
		{OpNotIn, nil, opArr("eastus"), false, true, "", opDocMissingIn},
		{OpIn, opAbsent, locs, false, false, "", opChoiceMissing},
		{OpNotIn, opAbsent, locs, true, true, "", opDocMissingIn},
		{OpIn, opAbsent, opArr(""), false, false, "", opChoiceMissing},
		{OpIn, opAbsent, opArr(nil), false, true, "", opChoiceMissing},
		// A target that is not an array is an evaluation error.
		{OpIn, "eastus", "eastus", false, false, CodeEval, opDocInArray},
		{OpNotIn, "eastus", "eastus", false, false, CodeEval, opDocInArray},
		{OpIn, opAbsent, "eastus", false, false, CodeEval, opDocInArray},
		{OpIn, "eastus", nil, false, false, CodeEval, opDocInArray},
		{OpNotIn, "eastus", map[string]any{"eastus": true}, false, false, CodeEval, opDocInArray},
	})
}

func TestOperatorApplyContainsKey(t *testing.T) {
	tags := map[string]any{"Application": "web", "cost-center": "42"}
	opRunApply(t, []opApplyCase{
		{OpContainsKey, tags, "Application", false, true, "", opDocContainsKey},
		{OpContainsKey, tags, "application", false, true, "", opChoiceKeyCase},
		{OpContainsKey, tags, "COST-CENTER", false, true, "", opChoiceKeyCase},
		{OpContainsKey, tags, "owner", false, false, "", opDocContainsKey},
		{OpNotContainsKey, tags, "owner", false, true, "", opDocNot},
		{OpNotContainsKey, tags, "APPLICATION", false, false, "", opChoiceKeyCase},
		{OpContainsKey, tags, "web", false, false, "", opDocContainsKey}, // values are not keys
		{OpContainsKey, map[string]any{}, "a", false, false, "", opDocContainsKey},
		{OpContainsKey, map[string]any{"1": "x"}, int64(1), false, true, "", opChoiceCoerce},
		// Values that are not objects have no keys.
		{OpContainsKey, "Application", "Application", false, false, "", opDocContainsKey},
		{OpContainsKey, opArr("Application"), "Application", false, false, "", opDocContainsKey},
		{OpNotContainsKey, opArr("Application"), "Application", false, true, "", opDocContainsKey},
		{OpContainsKey, nil, "a", false, false, "", opChoiceMissing},
		{OpContainsKey, opAbsent, "a", false, false, "", opChoiceMissing},
		{OpNotContainsKey, opAbsent, "a", false, true, "", opChoiceMissing},
		// Targets.
		{OpContainsKey, tags, opArr("Application"), false, false, CodeEval, opDocEqString},
		{OpNotContainsKey, tags, nil, false, false, CodeEval, opDocEqString},
	})
}

func TestOperatorApplyOrdering(t *testing.T) {
	opRunApply(t, []opApplyCase{
		// Integers and floats.
		{OpLess, int64(3), int64(4), false, true, "", opDocOrderInt},
		{OpLess, int64(4), int64(4), false, false, "", opDocOrderInt},
		{OpLessOrEquals, int64(4), int64(4), false, true, "", opDocOrderInt},
		{OpLessOrEquals, int64(5), int64(4), false, false, "", opDocOrderInt},
		{OpGreater, int64(5), int64(4), false, true, "", opDocOrderInt},
		{OpGreater, int64(4), int64(4), false, false, "", opDocOrderInt},
		{OpGreaterOrEquals, int64(4), int64(4), false, true, "", opDocOrderInt},
		{OpGreaterOrEquals, int64(3), int64(4), false, false, "", opDocOrderInt},
		{OpGreater, 4.5, int64(4), false, true, "", opDocOrderInt},
		{OpLess, int64(4), 4.5, false, true, "", opDocOrderInt},
		{OpLessOrEquals, 4.0, int64(4), false, true, "", opDocOrderInt},
		{OpGreater, int64(-1), int64(-2), false, true, "", opDocOrderInt},
		{OpGreater, int64(1) << 62, float64(1 << 61), false, true, "", opDocOrderInt},
		{OpLess, int64(9007199254740993), 9007199254740992.0, false, false, "", opDocOrderInt}, // exact beyond 2^53
		{OpGreater, int64(9007199254740993), 9007199254740992.0, false, true, "", opDocOrderInt},
		// Dates and date-times.
		{OpGreaterOrEquals, "2021-09-01", "2018-10-01", false, true, "", opDocOrderDate},
		{OpLess, "2018-01-01", "2018-10-01", false, true, "", opDocOrderDate},
		{OpLess, "2024-05-01T10:00:00Z", "2024-05-01T11:00:00+02:00", false, false, "", opDocOrderDate}, // 10:00Z is after 09:00Z
		{OpGreater, "2024-05-01T10:00:00Z", "2024-05-01T11:00:00+02:00", false, true, "", opDocOrderDate},
		{OpLessOrEquals, "2024-05-01T00:00:00.0000000Z", "2024-05-01", false, true, "", opDocOrderDate},
		{OpGreaterOrEquals, "2024-05-01T00:00:00.0000000Z", "2024-05-01", false, true, "", opDocOrderDate},
		{OpLess, "2024-05-01T23:59:59.9999999Z", "2024-05-02", false, true, "", opDocOrderDate},
		{OpGreater, "2024-12-01", "2024-02-01T00:00:00", false, true, "", opDocOrderDate},
		// Strings, ignoring case; a date against a non-date compares as strings.
		{OpLess, "apple", "Banana", false, true, "", opDocOrderStr},
		{OpGreater, "banana", "Apple", false, true, "", opDocOrderStr},
		{OpLessOrEquals, "ABC", "abc", false, true, "", opDocOrderStr},
		{OpGreaterOrEquals, "abc", "ABC", false, true, "", opDocOrderStr},
		{OpLess, "abc", "abcd", false, true, "", opDocOrderStr},
		{OpGreaterOrEquals, "2019-03-01-preview", "2018-10-01", false, true, "", opDocOrderStr},
		{OpLess, "10", "9", false, true, "", opDocOrderStr}, // two strings compare as strings
		// Numeric strings against numbers.
		{OpLess, "22", int64(1024), false, true, "", opChoiceNumOrder},
		{OpGreater, int64(3), "2.5", false, true, "", opChoiceNumOrder},
		// Type mismatches are errors.
		{OpLess, "abc", int64(3), false, false, CodeEval, opDocOrderErr},
		{OpGreater, int64(3), "2024-01-01", false, false, CodeEval, opDocOrderErr},
		{OpLess, true, int64(1), false, false, CodeEval, opDocOrderErr},
		{OpGreaterOrEquals, true, "true", false, false, CodeEval, opDocOrderErr},
		{OpLess, opArr(int64(1)), int64(3), false, false, CodeEval, opDocOrderErr},
		{OpLessOrEquals, map[string]any{}, "a", false, false, CodeEval, opDocOrderErr},
		{OpGreater, "x", true, false, false, CodeEval, opDocOrderErr},
		{OpGreater, int64(1), opArr(), false, false, CodeEval, opDocOrderErr},
		{OpGreater, int64(1), nil, false, false, CodeEval, opDocOrderErr},
		{OpGreater, opAbsent, true, false, false, CodeEval, opDocOrderErr}, // the target is checked first
		// Missing and null values.
		{OpLess, opAbsent, int64(3), false, false, "", opChoiceOrderNil},
		{OpGreaterOrEquals, opAbsent, "2020-01-01", false, false, "", opChoiceOrderNil},
		{OpLess, nil, int64(3), false, false, "", opChoiceOrderNil},
		{OpGreater, nil, "a", false, false, "", opChoiceOrderNil},
		// Location.
		{OpLess, "East US", "eastus2", true, true, "", opDocLocation},
	})
}

func TestOperatorApplyExists(t *testing.T) {
	opRunApply(t, []opApplyCase{
		{OpExists, "x", true, false, true, "", opDocExists},
		{OpExists, "x", "true", false, true, "", opDocExists},
		{OpExists, "x", "True", false, true, "", opDocExists},
		{OpExists, "x", "TRUE", false, true, "", opDocExists},
		{OpExists, "x", false, false, false, "", opDocExists},
		{OpExists, "x", "false", false, false, "", opDocExists},
		{OpExists, "x", "False", false, false, "", opDocExists},
		{OpExists, opAbsent, "false", false, true, "", opDocExists},
		{OpExists, opAbsent, "true", false, false, "", opDocExists},
		{OpExists, opAbsent, false, false, true, "", opDocExists},
		{OpExists, "", "true", false, true, "", opDocExists},
		{OpExists, int64(0), "true", false, true, "", opDocExists},
		{OpExists, false, "true", false, true, "", opDocExists},
		{OpExists, opArr(), "true", false, true, "", opDocExists},
		{OpExists, map[string]any{}, "true", false, true, "", opDocExists},
		{OpExists, nil, "true", false, false, "", opChoiceNullEx},
		{OpExists, nil, "false", false, true, "", opChoiceNullEx},
		{OpExists, "eastus", "true", true, true, "", opDocExists},
		// Anything but a boolean or "true"/"false" is an error.
		{OpExists, "x", "yes", false, false, CodeEval, opDocExists},
		{OpExists, "x", int64(1), false, false, CodeEval, opDocExists},
		{OpExists, "x", nil, false, false, CodeEval, opDocExists},
		{OpExists, opAbsent, opArr(true), false, false, CodeEval, opDocExists},
	})
}

func TestOperatorApplyUnknownOperator(t *testing.T) {
	for _, o := range []Operator{0, opCount, 200} {
		if _, err := o.Apply("a", true, "a", false); CodeOf(err) != CodeEval {
			t.Errorf("%v.Apply: err = %v, want %s", o, err, CodeEval)
		}
		if err := o.CheckTarget("a"); CodeOf(err) != CodeInvalid {
			t.Errorf("%v.CheckTarget: err = %v, want %s", o, err, CodeInvalid)
		}
	}
}

// TestApplyNegation checks, over every pairing of sample values and targets, that each
// "not" operator is exactly its positive form negated and fails exactly when it does.
// (opDocNot: not inverts the result; Azure's reason table pairs each operator with its
// negation.)
func TestOperatorApplyNegation(t *testing.T) {
	samples := []any{opAbsent, nil, "", "abc", "ABC", "a*c", "East US 2", "eastus2", "22", "true",
		"2024-01-01", int64(22), 2.5, true, false, opArr(), opArr("abc", int64(22)),
		map[string]any{"abc": "x"}}
	targets := append(append([]any{}, samples[1:]...), opArr("abc", "eastus2", nil, ""), "a*", "?#.", "*2")
	pairs := [][2]Operator{
		{OpEquals, OpNotEquals}, {OpLike, OpNotLike}, {OpMatch, OpNotMatch},
		{OpMatchInsensitively, OpNotMatchInsensitively}, {OpContains, OpNotContains},
		{OpIn, OpNotIn}, {OpContainsKey, OpNotContainsKey},
	}
	for _, p := range pairs {
		for _, v := range samples {
			value, exists := v, true
			if v == opAbsent {
				value, exists = nil, false
			}
			for _, tg := range targets {
				for _, loc := range []bool{false, true} {
					a, errA := p[0].Apply(value, exists, tg, loc)
					b, errB := p[1].Apply(value, exists, tg, loc)
					if (errA == nil) != (errB == nil) {
						t.Errorf("%v/%v(%#v, %v, %#v): errors differ: %v / %v", p[0], p[1], value, exists, tg, errA, errB)
						continue
					}
					if errA == nil && a == b {
						t.Errorf("%v/%v(%#v, %v, %#v, loc=%v): both %v", p[0], p[1], value, exists, tg, loc, a)
					}
				}
			}
		}
	}
	// less/greater pairs: greaterOrEquals is "not less" and lessOrEquals is "not greater"
	// wherever the comparison is defined for a present value.
	for _, v := range samples[2:] {
		for _, tg := range targets {
			lt, errLt := OpLess.Apply(v, true, tg, false)
			ge, errGe := OpGreaterOrEquals.Apply(v, true, tg, false)
			gt, errGt := OpGreater.Apply(v, true, tg, false)
			le, errLe := OpLessOrEquals.Apply(v, true, tg, false)
			if (errLt == nil) != (errGe == nil) || (errGt == nil) != (errLe == nil) || (errLt == nil) != (errGt == nil) {
				t.Errorf("ordering errors differ for %#v vs %#v", v, tg)
				continue
			}
			if errLt == nil && (lt == ge || gt == le) {
				t.Errorf("ordering not complementary for %#v vs %#v: less=%v ge=%v greater=%v le=%v", v, tg, lt, ge, gt, le)
			}
		}
	}
}

func TestOperatorCheckTarget(t *testing.T) {
	cases := []struct {
		op     Operator
		target any
		ok     bool
		why    string
	}{
		{OpEquals, "x", true, opDocEquals},
		{OpEquals, int64(0), true, opDocOrderInt},
		{OpEquals, true, true, opDocBoolStr},
		{OpEquals, nil, true, opChoiceNullStr},
		{OpEquals, opArr("x"), false, opDocEqString},
		{OpNotEquals, map[string]any{}, false, opDocEqString},
		{OpLike, "windows*", true, opDocLike},
		{OpLike, "*a*b*", true, opDocLikeOne},
		{OpNotLike, opArr("a*"), false, opDocEqString},
		{OpLike, nil, false, opDocEqString},
		{OpLike, int64(7), true, opChoiceCoerce},
		{OpMatch, "??-##", true, opDocMatch},
		{OpMatch, map[string]any{}, false, opDocEqString},
		{OpNotMatchInsensitively, nil, false, opDocEqString},
		{OpContains, "a*", true, opDocContainsLit},
		{OpContains, opArr(), false, opDocEqString},
		{OpNotContains, nil, false, opDocEqString},
		{OpIn, opArr("a", "b"), true, opDocInArray},
		{OpIn, opArr(), true, opDocInArray},
		{OpIn, "eastus", false, opDocInArray},
		{OpNotIn, nil, false, opDocInArray},
		{OpNotIn, map[string]any{"a": "b"}, false, opDocInArray},
		{OpContainsKey, "application", true, opDocContainsKey},
		{OpNotContainsKey, opArr("a"), false, opDocEqString},
		{OpLess, int64(3), true, opDocOrderInt},
		{OpLessOrEquals, 2.5, true, opDocOrderInt},
		{OpGreater, "2024-01-01", true, opDocOrderDate},
		{OpGreaterOrEquals, "abc", true, opDocOrderStr},
		{OpGreater, true, false, opDocOrderErr},
		{OpLess, nil, false, opDocOrderErr},
		{OpLess, opArr(int64(1)), false, opDocOrderErr},
		{OpExists, true, true, opDocExists},
		{OpExists, "false", true, opDocExists},
		{OpExists, "False", true, opDocExists},
		{OpExists, "yes", false, opDocExists},
		{OpExists, int64(1), false, opDocExists},
		{OpExists, nil, false, opDocExists},
	}
	for _, c := range cases {
		err := c.op.CheckTarget(c.target)
		if c.ok && err != nil {
			t.Errorf("%v.CheckTarget(%#v) = %v, want ok\n  doc: %s", c.op, c.target, err, c.why)
		}
		if !c.ok {
			if CodeOf(err) != CodeInvalid {
				t.Errorf("%v.CheckTarget(%#v) = %v, want code %s\n  doc: %s", c.op, c.target, err, CodeInvalid, c.why)
			} else if !strings.Contains(err.Error(), c.op.String()) {
				t.Errorf("%v.CheckTarget(%#v) message %q does not name the operator", c.op, c.target, err)
			}
		}
		// Evaluation agrees with compilation: a target refused now fails later too, except
		// that equals and notEquals compare an array or object that only evaluation
		// produces (opDocEqFieldArr).
		_, applyErr := c.op.Apply("x", true, c.target, false)
		if c.op == OpEquals || c.op == OpNotEquals {
			continue
		}
		if !c.ok && CodeOf(applyErr) != CodeEval {
			t.Errorf("%v.Apply with target %#v: err = %v, want %s", c.op, c.target, applyErr, CodeEval)
		}
	}
}

func TestOperatorParse(t *testing.T) {
	keys := Operators()
	if len(keys) != 19 {
		t.Fatalf("Operators() has %d keys, want the 19 of the docs' condition list", len(keys))
	}
	for _, k := range keys {
		o, ok := ParseOperator(k)
		if !ok || o.String() != k {
			t.Errorf("ParseOperator(%q) = %v, %v", k, o, ok)
		}
		// Case-insensitive: author-policies-for-arrays.md writes "Equals".
		if o2, ok := ParseOperator(strings.ToUpper(k)); !ok || o2 != o {
			t.Errorf("ParseOperator(%q) = %v, %v, want %v", strings.ToUpper(k), o2, ok, o)
		}
	}
	for _, k := range []string{"Equals", "NotIn", "EXISTS", "matchinsensitively"} {
		if _, ok := ParseOperator(k); !ok {
			t.Errorf("ParseOperator(%q) failed", k)
		}
	}
	for _, k := range []string{"", "equal", "notExists", "field", "value", "count", "allOf", "equals "} {
		if o, ok := ParseOperator(k); ok {
			t.Errorf("ParseOperator(%q) = %v, want none", k, o)
		}
	}
	keys[0] = "changed"
	if Operators()[0] != "equals" {
		t.Error("Operators() shares its slice")
	}
	if s := Operator(0).String(); s != "Operator(0)" {
		t.Errorf("Operator(0).String() = %q", s)
	}
	if Operator(0).Valid() || !OpExists.Valid() || opCount.Valid() {
		t.Error("Valid is wrong")
	}
}

func TestOperatorReason(t *testing.T) {
	// determine-non-compliance.md, "Compliance reasons": the phrase for each condition.
	want := map[Operator]string{
		OpContainsKey:           "Current value must contain the target value as a key.",
		OpContains:              "Current value must contain the target value.",
		OpEquals:                "Current value must be equal to the target value.",
		OpLess:                  "Current value must be less than the target value.",
		OpGreaterOrEquals:       "Current value must be greater than or equal to the target value.",
		OpGreater:               "Current value must be greater than the target value.",
		OpLessOrEquals:          "Current value must be less than or equal to the target value.",
		OpExists:                "Current value must exist.",
		OpIn:                    "Current value must be in the target value.",
		OpLike:                  "Current value must be like the target value.",
		OpMatch:                 "Current value must case-sensitive match the target value.",
		OpMatchInsensitively:    "Current value must case-insensitive match the target value.",
		OpNotContainsKey:        "Current value must not contain the target value as a key.",
		OpNotContains:           "Current value must not contain the target value.",
		OpNotEquals:             "Current value must not be equal to the target value.",
		OpNotIn:                 "Current value must not be in the target value.",
		OpNotLike:               "Current value must not be like the target value.",
		OpNotMatch:              "Current value must not case-sensitive match the target value.",
		OpNotMatchInsensitively: "Current value must not case-insensitive match the target value.",
	}
	for o := OpEquals; o < opCount; o++ {
		if o.Reason() != want[o] {
			t.Errorf("%v.Reason() = %q, want %q", o, o.Reason(), want[o])
		}
	}
	if Operator(0).Reason() != "" {
		t.Error("invalid operator has a reason")
	}
	// The table's second column: "less or not greaterOrEquals", "notEquals or not equals", ...
	negated := map[Operator]Operator{
		OpEquals: OpNotEquals, OpNotEquals: OpEquals, OpLess: OpGreaterOrEquals,
		OpGreaterOrEquals: OpLess, OpGreater: OpLessOrEquals, OpLessOrEquals: OpGreater,
		OpIn: OpNotIn, OpNotIn: OpIn, OpLike: OpNotLike, OpNotLike: OpLike,
		OpMatch: OpNotMatch, OpNotMatch: OpMatch, OpMatchInsensitively: OpNotMatchInsensitively,
		OpNotMatchInsensitively: OpMatchInsensitively, OpContains: OpNotContains,
		OpNotContains: OpContains, OpContainsKey: OpNotContainsKey, OpNotContainsKey: OpContainsKey,
	}
	for o, n := range negated {
		if got := o.ReasonFor("x", true); got != want[n] {
			t.Errorf("%v.ReasonFor(negated) = %q, want %q", o, got, want[n])
		}
		if got := o.ReasonFor("x", false); got != want[o] {
			t.Errorf("%v.ReasonFor = %q, want %q", o, got, want[o])
		}
	}
	// exists: "Current value must exist." for exists; "must not exist" for not exists,
	// and so for "exists": "false".
	mustNot := "Current value must not exist."
	for _, c := range []struct {
		target  any
		negated bool
		want    string
	}{
		{true, false, want[OpExists]}, {"true", false, want[OpExists]}, {"True", true, mustNot},
		{false, false, mustNot}, {"false", false, mustNot}, {"False", true, want[OpExists]},
	} {
		if got := OpExists.ReasonFor(c.target, c.negated); got != c.want {
			t.Errorf("exists.ReasonFor(%#v, %v) = %q, want %q", c.target, c.negated, got, c.want)
		}
	}
}

func TestOperatorLikeMatch(t *testing.T) {
	cases := []struct {
		pattern, s string
		want       bool
	}{
		{"", "", true}, {"", "a", false}, {"*", "", true}, {"*", "anything", true},
		{"**", "", true}, {"a**b", "ab", true}, {"a**b", "axxb", true},
		{"abc", "ABC", true}, {"abc", "abcd", false}, {"abc", "ab", false},
		{"ab*", "ab", true}, {"ab*", "aB-rest", true}, {"ab*", "a", false},
		{"*yz", "xyz", true}, {"*yz", "YZ", true}, {"*yz", "yzx", false},
		{"a*z", "az", true}, {"a*z", "a-middle-z", true}, {"a*z", "a", false}, {"a*z", "z", false},
		{"a*a", "a", false}, {"a*a", "aa", true},
		{"*b*", "abc", true}, {"*b*", "ac", false}, {"*b*d*", "abcde", true}, {"*b*d*", "adcbe", false},
		{"a*b*c*d", "aXbXcXd", true}, {"a*b*c*d", "aXcXbXd", false},
		{"*ab*ab*", "abab", true}, {"*ab*ab*", "aba", false},
		{"ÄB*", "äbc", true}, {"*ß", "xß", true}, {"\u212a*", "kelvin", true}, {"*ſ", "bus", true},
		{"a?c", "abc", false}, {"a[b]c", "a[b]c", true}, {"a.c", "abc", false},
	}
	for _, c := range cases {
		if got := LikeMatch(c.pattern, c.s); got != c.want {
			t.Errorf("LikeMatch(%q, %q) = %v, want %v (doc: %s)", c.pattern, c.s, got, c.want, opDocLike)
		}
		if got := CompileLike(c.pattern).Match(c.s); got != c.want {
			t.Errorf("CompileLike(%q).Match(%q) = %v, want %v", c.pattern, c.s, got, c.want)
		}
	}
}

func TestOperatorPatternMatch(t *testing.T) {
	cases := []struct {
		pattern, s  string
		insensitive bool
		want        bool
	}{
		{"", "", false, true}, {"#", "", false, false}, {"", "a", false, false},
		{"###", "123", false, true}, {"###", "12a", false, false}, {"###", "1234", false, false},
		{"???", "abc", false, true}, {"???", "ABC", false, true}, {"???", "ab1", false, false},
		{"???", "a-c", false, false}, {"...", "a-1", false, true}, {"...", "ab", false, false},
		{"ab", "ab", false, true}, {"ab", "AB", false, false}, {"ab", "AB", true, true},
		{"a*", "ab", false, false}, {"a*", "a*", false, true}, {"a\\#", "a\\1", false, true},
		{"prod-??-##", "prod-ab-01", false, true}, {"prod-??-##", "PROD-ab-01", false, false},
		{"prod-??-##", "PROD-ab-01", true, true}, {"prod-??-##", "prod-a1-01", true, false},
		{"é#", "É1", true, true}, {"é#", "É1", false, false}, {"?", "ж", false, true},
		{".", "日", false, true}, {"..", "日", false, false}, {"#", "٣", false, true},
	}
	for _, c := range cases {
		if got := PatternMatch(c.pattern, c.s, c.insensitive); got != c.want {
			t.Errorf("PatternMatch(%q, %q, %v) = %v, want %v (doc: %s)", c.pattern, c.s, c.insensitive, got, c.want, opDocMatch)
		}
	}
}

func TestOperatorNormalizeLocation(t *testing.T) {
	cases := map[string]string{
		"East US 2": "eastus2", "eastus2": "eastus2", "EASTUS": "eastus", " west  europe ": "westeurope",
		"Global": "global", "": "", "North\tEurope": "northeurope", "Brazil\u00a0South": "brazilsouth",
	}
	for in, want := range cases {
		if got := NormalizeLocation(in); got != want {
			t.Errorf("NormalizeLocation(%q) = %q, want %q (doc: %s)", in, got, want, opDocLocation)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _ = NormalizeLocation("westeurope") }); n != 0 {
		t.Errorf("NormalizeLocation of a canonical location allocates %v times", n)
	}
}

func TestOperatorValuesEqual(t *testing.T) {
	cases := []struct {
		a, b any
		want bool
		why  string
	}{
		{"abc", "ABC", true, opDocCase},
		{"abc", "abd", false, opDocEquals},
		{int64(1), int64(1), true, opDocEquals},
		{int64(1), 1.0, true, opDocEquals},
		{int64(1), 1.5, false, opDocEquals},
		{2.5, 2.5, true, opDocEquals},
		{"1", int64(1), true, opDocNumStr},
		{"1e3", int64(1000), true, opDocNumStr},
		{"-0.5", -0.5, true, opDocNumStr},
		{".5", 0.5, true, opDocNumStr},
		{"1.", 1.0, true, opDocNumStr},
		{"1_000", int64(1000), false, opDocNumStr},
		{"Inf", 1.5, false, opDocNumStr},
		{"1e", int64(1), false, opDocNumStr},
		{"+", int64(0), false, opDocNumStr},
		{"", int64(0), false, opDocNumStr},
		{"99999999999999999999", 1e20, true, opDocNumStr},
		{true, "true", true, opDocBoolStr},
		{true, "TRUE", true, opDocBoolStr},
		{false, "False", true, opDocBoolStr},
		{true, "1", false, opDocBoolStr},
		{true, int64(1), false, opDocBoolStr},
		{false, nil, false, opDocBoolStr},
		{nil, nil, true, opChoiceNullStr},
		{nil, "", true, opChoiceNullStr},
		{nil, int64(0), false, opChoiceNullStr},
		{nil, opArr(), false, opChoiceNullStr},
		{opArr(), opArr(), true, opDocIn},
		{opArr("a", int64(1)), opArr("A", "1"), true, opDocIn},
		{opArr("a"), opArr("a", "b"), false, opDocIn},
		{opArr("a", "b"), opArr("b", "a"), false, opDocIn},
		{opArr("a"), "a", false, opDocArrayVsStr},
		{map[string]any{"Key": "V"}, map[string]any{"key": "v"}, true, opDocIn},
		{map[string]any{"a": opArr(int64(1))}, map[string]any{"a": opArr(1.0)}, true, opDocIn},
		{map[string]any{"a": "1"}, map[string]any{"b": "1"}, false, opDocIn},
		{map[string]any{"a": "1"}, map[string]any{"a": "1", "b": "2"}, false, opDocIn},
		{map[string]any{}, opArr(), false, opDocIn},
	}
	for _, c := range cases {
		if got := ValuesEqual(c.a, c.b); got != c.want {
			t.Errorf("ValuesEqual(%#v, %#v) = %v, want %v\n  doc: %s", c.a, c.b, got, c.want, c.why)
		}
		if got := ValuesEqual(c.b, c.a); got != c.want {
			t.Errorf("ValuesEqual(%#v, %#v) = %v, want %v (symmetry)\n  doc: %s", c.b, c.a, got, c.want, c.why)
		}
	}
}

func TestOperatorCompareValues(t *testing.T) {
	cases := []struct {
		a, b any
		want int
		err  bool
		why  string
	}{
		{int64(1), int64(2), -1, false, opDocOrderInt},
		{2.5, int64(2), 1, false, opDocOrderInt},
		{int64(2), 2.0, 0, false, opDocOrderInt},
		{-0.5, int64(0), -1, false, opDocOrderInt},
		{int64(-1), -0.5, -1, false, opDocOrderInt},
		{1e19, int64(9223372036854775807), 1, false, opDocOrderInt},
		{-1e19, int64(-9223372036854775808), -1, false, opDocOrderInt},
		{"a", "B", -1, false, opDocOrderStr},
		{"B", "a", 1, false, opDocOrderStr},
		{"Ab", "aB", 0, false, opDocOrderStr},
		{"", "a", -1, false, opDocOrderStr},
		{"ä", "Ä", 0, false, opDocOrderStr},
		{"2024-01-02", "2024-01-10", -1, false, opDocOrderDate},
		{"2024-01-10", "2024-01-02T23:00:00Z", 1, false, opDocOrderDate},
		{"2024-01-01T00:00:00+01:00", "2023-12-31T23:30:00Z", -1, false, opDocOrderDate},
		{"2024-01-01T10:00", "2024-01-01T10:00:00Z", 0, false, opDocOrderDate},
		{"2024-13-01", "2024-01-01", 1, false, opDocOrderStr}, // not a date: compared as strings
		{"2024-01-01 10:00", "2024-01-01T09:00:00Z", -1, false, opDocOrderStr},
		{"7", int64(10), -1, false, opChoiceNumOrder},
		{int64(10), " 7 ", 1, false, opChoiceNumOrder},
		{"seven", int64(10), 0, true, opDocOrderErr},
		{true, false, 0, true, opDocOrderErr},
		{nil, nil, 0, true, opDocOrderErr},
		{nil, int64(1), 0, true, opDocOrderErr},
		{opArr(), opArr(), 0, true, opDocOrderErr},
		{map[string]any{}, "a", 0, true, opDocOrderErr},
	}
	for _, c := range cases {
		got, err := CompareValues(c.a, c.b)
		if c.err {
			if CodeOf(err) != CodeEval {
				t.Errorf("CompareValues(%#v, %#v) err = %v, want %s\n  doc: %s", c.a, c.b, err, CodeEval, c.why)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("CompareValues(%#v, %#v) = %d, %v, want %d\n  doc: %s", c.a, c.b, got, err, c.want, c.why)
		}
		if back, _ := CompareValues(c.b, c.a); back != -c.want {
			t.Errorf("CompareValues(%#v, %#v) = %d, want %d (antisymmetry)", c.b, c.a, back, -c.want)
		}
	}
}

// TestApplyDoesNotAllocate pins the performance promise of operator.go: the common scan
// paths allocate nothing.
func TestOperatorApplyDoesNotAllocate(t *testing.T) {
	// Values are held as `any` already, as the evaluator holds them; boxing a slice or map
	// into an interface at the call would itself allocate.
	var locs any = opArr("eastus", "eastus2", "westus", "westus2", "westeurope", "northeurope")
	var tags any = map[string]any{"Env": "prod"}
	var port any = int64(3389)
	checks := []struct {
		name string
		f    func()
	}{
		{"equals", func() {
			_, _ = OpEquals.Apply("Microsoft.Compute/virtualMachines", true, "microsoft.compute/virtualmachines", false)
		}},
		{"notEquals number", func() { _, _ = OpNotEquals.Apply(int64(3), true, int64(4), false) }},
		{"like", func() { _, _ = OpLike.Apply("WindowsServer2019", true, "windows*", false) }},
		{"notLike middle", func() { _, _ = OpNotLike.Apply("vm-web-prod-01", true, "vm-*-prod-*", false) }},
		{"in location", func() { _, _ = OpIn.Apply("West Europe", true, locs, true) }},
		{"notIn", func() { _, _ = OpNotIn.Apply("centralus", true, locs, false) }},
		{"match", func() { _, _ = OpMatch.Apply("contoso-abc-12", true, "contoso-???-##", false) }},
		{"contains", func() { _, _ = OpContains.Apply("Canonical:UbuntuServer:22_04", true, "ubuntu", false) }},
		{"containsKey", func() { _, _ = OpContainsKey.Apply(tags, true, "env", false) }},
		{"exists", func() { _, _ = OpExists.Apply(nil, false, "false", false) }},
		{"equals numeric string", func() { _, _ = OpEquals.Apply("3389", true, port, false) }},
		{"less numeric string", func() { _, _ = OpLess.Apply("3389", true, port, false) }},
		{"less dates", func() { _, _ = OpLess.Apply("2024-01-01T00:00:00Z", true, "2025-01-01", false) }},
		{"compiled like", func() { _ = opCompiledLike.Match("WindowsServer2019") }},
	}
	for _, c := range checks {
		if n := testing.AllocsPerRun(200, c.f); n != 0 {
			t.Errorf("%s allocates %v times per call", c.name, n)
		}
	}
}

var opCompiledLike = CompileLike("windows*")

var opBenchSink bool

func BenchmarkOperatorEquals(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		opBenchSink, _ = OpEquals.Apply("Microsoft.Compute/virtualMachines", true, "microsoft.compute/virtualMachines", false)
	}
}

func BenchmarkOperatorLike(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		opBenchSink, _ = OpLike.Apply("MicrosoftWindowsServer", true, "microsoftwindows*", false)
	}
}

func BenchmarkOperatorLikeCompiled(b *testing.B) {
	p := CompileLike("microsoftwindows*")
	b.ReportAllocs()
	for b.Loop() {
		opBenchSink = p.Match("MicrosoftWindowsServer")
	}
}

// BenchmarkIn is the allowed-locations rule: a location against a ten-region list, the
// value in display form so that normalisation does real work, and found near the end.
func BenchmarkOperatorIn(b *testing.B) {
	var allowed any = opArr("eastus", "eastus2", "westus", "westus2", "centralus", "northeurope",
		"westeurope", "uksouth", "swedencentral", "germanywestcentral")
	b.ReportAllocs()
	for b.Loop() {
		opBenchSink, _ = OpIn.Apply("Sweden Central", true, allowed, true)
	}
}

func BenchmarkOperatorNotInMiss(b *testing.B) {
	var allowed any = opArr("Standard_D2s_v3", "Standard_D4s_v3", "Standard_D8s_v3", "Standard_E2s_v3", "Standard_E4s_v3")
	b.ReportAllocs()
	for b.Loop() {
		opBenchSink, _ = OpNotIn.Apply("Standard_NC24ads_A100_v4", true, allowed, false)
	}
}

// opRefLike is a slow, obviously correct like matcher for ASCII: '*' matches any run.
func opRefLike(p, s string) bool {
	if p == "" {
		return s == ""
	}
	if p[0] == '*' {
		for i := 0; i <= len(s); i++ {
			if opRefLike(p[1:], s[i:]) {
				return true
			}
		}
		return false
	}
	return s != "" && strings.EqualFold(p[:1], s[:1]) && opRefLike(p[1:], s[1:])
}

// TestFoldHelpersAgainstReference compares the allocation-free matchers with slow
// reference versions on random short ASCII strings, where the fast paths and the
// backtracking-free like algorithm are easiest to get wrong.
func TestOperatorFoldHelpersAgainstReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	gen := func(alphabet string, max int) string {
		b := make([]byte, r.IntN(max+1))
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		return string(b)
	}
	for range 20000 {
		p, s := gen("aAb*", 6), gen("aAbB", 7)
		want := opRefLike(p, s)
		if got := LikeMatch(p, s); got != want {
			t.Fatalf("LikeMatch(%q, %q) = %v, reference %v", p, s, got, want)
		}
		if got := CompileLike(p).Match(s); got != want {
			t.Fatalf("CompileLike(%q).Match(%q) = %v, reference %v", p, s, got, want)
		}
		sub := gen("aAb", 3)
		_, got := opIndexFold(s, sub)
		if want := strings.Contains(strings.ToLower(s), strings.ToLower(sub)); got != want {
			t.Fatalf("opIndexFold(%q, %q) = %v, want %v", s, sub, got, want)
		}
		x, y := gen("aB \t", 5), gen("Ab \t", 5)
		if got, want := opLocationEqual(x, y), NormalizeLocation(x) == NormalizeLocation(y); got != want {
			t.Fatalf("opLocationEqual(%q, %q) = %v, want %v", x, y, got, want)
		}
		if got, want := opCompareFold(x, y), strings.Compare(strings.ToLower(x), strings.ToLower(y)); got != want {
			t.Fatalf("opCompareFold(%q, %q) = %v, want %v", x, y, got, want)
		}
	}
}

// FuzzOperatorLikeMatch checks LikeMatch and CompileLike against the reference matcher on
// ASCII input.
func FuzzOperatorLikeMatch(f *testing.F) {
	for _, seed := range [][2]string{{"windows*", "WindowsServer"}, {"*a*b*", "xaxbx"}, {"a**", "A"}, {"", ""}} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, p, s string) {
		for _, str := range []string{p, s} {
			for i := 0; i < len(str); i++ {
				if str[i] >= 0x80 {
					t.Skip()
				}
			}
		}
		if len(p) > 12 || len(s) > 24 {
			t.Skip() // the reference matcher is exponential
		}
		want := opRefLike(p, s)
		if got := LikeMatch(p, s); got != want {
			t.Fatalf("LikeMatch(%q, %q) = %v, reference %v", p, s, got, want)
		}
		if got := CompileLike(p).Match(s); got != want {
			t.Fatalf("CompileLike(%q).Match(%q) = %v, reference %v", p, s, got, want)
		}
	})
}
