package promtest

import (
	"regexp"
	"slices"
	"strings"
)

var (
	quoted     = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	matchers   = regexp.MustCompile(`\{[^}]*\}`)
	ranges     = regexp.MustCompile(`\[[^\]]*\]`)
	grouping   = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	identifier = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*(\s*\()?`)
	keywords   = []string{"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset", "inf", "nan"}
)

// MetricNames returns the metric names a PromQL expression selects: its
// identifiers that are neither functions, keywords, label names nor
// label values. Good enough for dashboards' queries; it is no parser.
func MetricNames(expr string) []string {
	e := quoted.ReplaceAllString(expr, `""`)
	e = matchers.ReplaceAllString(e, " ")
	e = ranges.ReplaceAllString(e, " ")
	e = grouping.ReplaceAllString(e, " ")
	var out []string
	for _, m := range identifier.FindAllStringSubmatch(e, -1) {
		name := strings.TrimSpace(m[0])
		if m[1] != "" || slices.Contains(keywords, strings.ToLower(name)) {
			continue // a function call, or a keyword
		}
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out
}

// Has reports whether the scrape has the series a query names: a family
// of that name, or the histogram or summary whose _bucket, _sum or
// _count it is.
func (fs Families) Has(name string) bool {
	if _, ok := fs[name]; ok {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok {
			if _, ok := fs[base]; ok {
				return true
			}
		}
	}
	return false
}
