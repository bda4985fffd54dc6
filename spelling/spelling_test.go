package spelling

import "testing"

func TestDistance(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{{"", "", 0}, {"", "abc", 3}, {"kitten", "sitting", 3}, {"flaw", "lawn", 2}, {"same", "same", 0}} {
		if got := Distance(c.a, c.b); got != c.want || Distance(c.b, c.a) != c.want {
			t.Errorf("Distance(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}

func TestNearest(t *testing.T) {
	kinds := []string{"file", "lineInFile", "package", "service"}
	for _, c := range []struct {
		s     string
		limit int
		want  string
	}{{"fiel", 3, "file"}, {"LINEINFILE", 3, "lineInFile"}, {"servise", 2, "service"}, {"servise", 1, ""}, {"zzzzzz", 3, ""}} {
		if got := Nearest(c.s, kinds, c.limit); got != c.want {
			t.Errorf("Nearest(%q, limit %d) = %q, want %q", c.s, c.limit, got, c.want)
		}
	}
}
