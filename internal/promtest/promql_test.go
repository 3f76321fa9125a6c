package promtest

import (
	"slices"
	"testing"
)

func TestMetricNames(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{`sum by (state) (drover_instances{tenant=~"$tenant",state="a b"})`, []string{"drover_instances"}},
		{`histogram_quantile(0.99, sum by (le, route) (rate(drover_http_request_duration_seconds_bucket[5m])))`,
			[]string{"drover_http_request_duration_seconds_bucket"}},
		{`sum(rate(a_total[5m])) / on (job) group_left max(b) > bool 0`, []string{"a_total", "b"}},
		{`up`, []string{"up"}},
	} {
		if got := MetricNames(tc.expr); !slices.Equal(got, tc.want) {
			t.Errorf("MetricNames(%s) = %q, want %q", tc.expr, got, tc.want)
		}
	}
}
