package protocol

import "unicode/utf8"

// Truncate shortens s to at most n bytes without cutting a UTF-8 character
// in two, so that a message, an audit field or a log excerpt cut to its
// limit is still valid text in a JSON answer.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	if n <= 0 {
		return ""
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
