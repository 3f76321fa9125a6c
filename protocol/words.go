package protocol

import "strconv"

// Count says n of a noun with a regular plural, as messages read it:
// "1 replica", "2 replicas", "0 replicas".
func Count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}
