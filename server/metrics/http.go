package metrics

import (
	"context"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// httpMetrics count the API's requests by route: the ServeMux pattern
// that served them, never the raw path, so that names in URLs add no
// series.
type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newHTTPMetrics() *httpMetrics {
	return &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "http_requests_total",
			Help: "API requests by route (the pattern that served them), method and status code."}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: "http_request_duration_seconds",
			Help:    "Time to answer API requests, by route and method; blocking queries, log streams and agent sessions last as long as they are held.",
			Buckets: prometheus.DefBuckets}, []string{"route", "method"}),
	}
}

// unmatched is the route of requests no pattern served.
const unmatched = "unmatched"

// routeKey holds, in a request's context, the route that served it.
type routeKey struct{}

// Instrument counts and times the requests h serves, by the ServeMux
// pattern that served them; h is a ServeMux, or calls one with the same
// *http.Request, which sets its Pattern.
func (m *Metrics) Instrument(h http.Handler) http.Handler {
	route := promhttp.WithLabelFromCtx("route", func(ctx context.Context) string {
		return *ctx.Value(routeKey{}).(*string)
	})
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
		*r.Context().Value(routeKey{}).(*string) = routeOf(r.Pattern)
	})
	counted := promhttp.InstrumentHandlerDuration(m.http.duration, promhttp.InstrumentHandlerCounter(m.http.requests, inner, route), route)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := unmatched
		counted.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), routeKey{}, &s)))
	})
}

// routeOf is the path of a ServeMux pattern ("GET /v1/tenants/{tenant}"
// gives "/v1/tenants/{tenant}"): the method is a label of its own.
func routeOf(pattern string) string {
	if pattern == "" {
		return unmatched
	}
	if _, path, ok := strings.Cut(pattern, " "); ok {
		return strings.TrimLeft(path, " \t")
	}
	return pattern
}
