// Package console serves Drover's web app at /ui/: the operations console
// for management and operator tokens and the customer portal for tenant
// tokens. It is static files, embedded in the binary: plain JavaScript
// modules that call the HTTP API from the browser with the token the user
// logs in with (kept in sessionStorage, sent as a bearer header, never in
// a URL or a cookie), so the API's own checks decide what each role sees
// and does.
package console

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed ui
var files embed.FS

// Prefix is where the app is served.
const Prefix = "/ui/"

// csp allows the app's own files and API only: no inline script or style,
// no other origin, no framing.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"form-action 'none'; frame-ancestors 'none'; base-uri 'none'"

// Handler serves the app under Prefix.
func Handler() http.Handler {
	sub, err := fs.Sub(files, "ui")
	if err != nil {
		panic(err) // the embedded tree is a constant
	}
	static := http.StripPrefix(Prefix, http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		static.ServeHTTP(w, r)
	})
}

// Redirect sends / to the app.
func Redirect() http.Handler { return http.RedirectHandler(Prefix, http.StatusFound) }
