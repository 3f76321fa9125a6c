package protocol

import (
	"testing"
	"unicode/utf8"
)

func TestTruncate(t *testing.T) {
	for _, tc := range []struct {
		s    string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly", 7, "exactly"},
		{"abcdef", 3, "abc"},
		{"naïve", 3, "na"}, // ï is two bytes: never half of it
		{"日本語", 4, "日"},    // three-byte characters
		{"日本語", 6, "日本"},
		{"x", 0, ""},
		{"x", -1, ""},
	} {
		got := Truncate(tc.s, tc.n)
		if got != tc.want || !utf8.ValidString(got) {
			t.Errorf("Truncate(%q, %d) = %q, want %q", tc.s, tc.n, got, tc.want)
		}
	}
}
