package conference

import (
	"strings"
	"testing"
)

func TestDisplayName(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`Alice`, "Alice"},
		{`"Alice Liddell"`, "Alice Liddell"},
		{`"say \"hi\" \\o/"`, `say "hi" \o/`},
		{"\"<script>alert(1)</script>\"", "<script>alert(1)</script>"},
		{"bell\a and\x1b[31m red", "bell and[31m red"},
		{"\u202eevil", "evil"},
		{strings.Repeat("é", 200), strings.Repeat("é", maxDisplayName)},
		{"  ", ""},
	} {
		if got := displayName(c.in); got != c.want {
			t.Errorf("displayName(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
