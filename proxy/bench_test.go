package proxy

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/drover-dev/drover/protocol"
	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkServeHTTP measures the gateway's own cost per request: a real
// backend and a real client over loopback, in parallel.
func BenchmarkServeHTTP(b *testing.B) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") }))
	defer backend.Close()
	g := New(Config{Registry: prometheus.NewRegistry()})
	g.install(protocol.Routes{Index: 1, Routes: []protocol.Route{{Tenant: "acme", Name: "web",
		Backends: []protocol.Backend{{Replica: "r1", Addr: backend.Listener.Addr().String()}}}}})
	front := httptest.NewServer(g)
	defer front.Close()
	_, port, _ := net.SplitHostPort(front.Listener.Addr().String())
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	url := "http://web.acme.drover.localhost:" + port + "/"
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodGet, "http://"+front.Listener.Addr().String()+"/", nil)
			req.Host = "web.acme.drover.localhost:" + port
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("%s %s", url, resp.Status)
				return
			}
		}
	})
}
