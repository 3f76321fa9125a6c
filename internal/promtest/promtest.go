// Package promtest reads Prometheus metrics in tests: a registry's, or a
// scrape's text, as series by their labels, checked by promlint. Only
// tests import it.
package promtest

import (
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Families is a scrape's metric families by name.
type Families map[string]*dto.MetricFamily

// Gather returns what g gathers.
func Gather(t testing.TB, g prometheus.Gatherer) Families {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("gather metrics: %v", err)
	}
	out := Families{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

// Parse reads a scrape in the text format, after checking it with
// promlint: every problem fails the test.
func Parse(t testing.TB, text string) Families {
	t.Helper()
	problems, err := promlint.New(strings.NewReader(text)).Lint()
	if err != nil {
		t.Fatalf("promlint: %v", err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	out, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("parse metrics: %v", err)
	}
	return out
}

// Series returns the samples of family name by their labels
// ("code=2xx,instance=web,tenant=acme", sorted): counters' and gauges'
// values, histograms' and summaries' counts.
func (fs Families) Series(name string) map[string]float64 {
	out := map[string]float64{}
	mf := fs[name]
	if mf == nil {
		return out
	}
	for _, m := range mf.GetMetric() {
		var labels []string
		for _, l := range m.GetLabel() {
			labels = append(labels, l.GetName()+"="+l.GetValue())
		}
		sort.Strings(labels)
		key := strings.Join(labels, ",")
		switch {
		case m.GetCounter() != nil:
			out[key] = m.GetCounter().GetValue()
		case m.GetGauge() != nil:
			out[key] = m.GetGauge().GetValue()
		case m.GetUntyped() != nil:
			out[key] = m.GetUntyped().GetValue()
		case m.GetHistogram() != nil:
			out[key] = float64(m.GetHistogram().GetSampleCount())
		case m.GetSummary() != nil:
			out[key] = float64(m.GetSummary().GetSampleCount())
		}
	}
	return out
}

// Count counts the series of every family.
func (fs Families) Count() int {
	n := 0
	for _, mf := range fs {
		n += len(mf.GetMetric())
	}
	return n
}
