// Package console serves Drover's web console: one static page that reads
// the admin API from the browser with the operator's token.
package console

import (
	_ "embed"
	"net/http"
)

//go:embed index.html
var index []byte

// Handler serves the console at /.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'")
		w.Header().Set("X-Frame-Options", "DENY")
		_, _ = w.Write(index)
	})
}
