// Package spelling finds what a user probably meant: the known name nearest to a
// misspelt one, for the "did you mean" of error messages about resource types, policy
// functions and check fields. It sits below every other package, which all may use it.
package spelling

import "strings"

// Distance is the Levenshtein distance between a and b, in bytes.
func Distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// Nearest returns the candidate closest to s, ignoring letter case, when it is fewer than
// limit edits away; "" when none is. The first of equally close candidates wins.
func Nearest(s string, candidates []string, limit int) string {
	best, bestD := "", limit
	ls := strings.ToLower(s)
	for _, c := range candidates {
		if d := Distance(ls, strings.ToLower(c)); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}
