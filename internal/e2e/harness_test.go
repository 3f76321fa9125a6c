package e2e

// Checks of the harness itself, for what every scenario relies on.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// A server given a port someone else holds is recognised as a collision,
// which StartCluster and Restart retry.
func TestHarnessDetectsTakenPort(t *testing.T) {
	dir := t.TempDir()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	ports, err := freePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(dir, "server.log")
	p, err := newLauncher(t).start("taken", log, []string{"server", "-acl=false",
		"-data-dir", filepath.Join(dir, "data"),
		"-http-addr", taken.Addr().String(),
		"-raft-addr", "127.0.0.1:" + strconv.Itoa(ports[0])})
	if err != nil {
		t.Fatal(err)
	}
	if !p.waitExit(waitTimeout) {
		t.Fatalf("the server on a taken port still runs after %v", waitTimeout)
	}
	if err := exitError(p, log); !errors.Is(err, errPortTaken) {
		t.Fatalf("exit of a server on a taken port not seen as a collision: %v", err)
	}
}

// When a test ends, nothing it started runs on.
func TestHarnessCleanupEndsProcesses(t *testing.T) {
	var pid int
	t.Run("cluster", func(t *testing.T) {
		c := StartCluster(t, 1)
		createTenant(t, c.Server(0), "acme")
		pid = c.Server(0).proc.pid()
	})
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("process %d of the ended subtest: kill -0 says %v, want no such process", pid, err)
	}
}

// Without chromium the browser tests skip, saying why (outside CI).
func TestHarnessBrowserSkipsWithoutChromium(t *testing.T) {
	ran := false
	t.Run("no chromium", func(t *testing.T) {
		t.Setenv("PATH", t.TempDir())
		t.Setenv("CI", "")
		startBrowser(t)
		ran = true
	})
	if ran {
		t.Fatal("startBrowser went on without chromium")
	}
}

// The browser harness against a page of its own (the contract's login,
// view and token, a JSON answer and an event stream): it logs in, waits,
// clicks, reads, records every answer, sends requests as the page, and
// saves screenshots at both viewports.
func TestHarnessBrowser(t *testing.T) {
	var mu sync.Mutex
	var auth []string
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ui/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'self'")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, fakeAppHTML)
	})
	mux.HandleFunc("GET /ui/app.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		io.WriteString(w, fakeAppJS)
	})
	mux.HandleFunc("/v1/", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		auth = append(auth, r.Method+" "+r.URL.Path+" "+r.Header.Get("Authorization"))
		mu.Unlock()
		switch r.URL.Path {
		case "/v1/items":
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `[{"tenant": "acme", "name": "web"}]`)
		case "/v1/events":
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, "id: 1\nevent: instance\ndata: {\"tenant\": \"acme\", \"message\": \"first-event\"}\n\n")
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		default:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, `{"error": {"code": "permission_denied", "message": "no"}}`)
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close) // after the browser's cleanup, which ends the stream

	b := startBrowser(t)
	b.login(srv.URL, "s3cret-token")
	b.waitView("fleet")
	b.waitTextIs(waitTimeout, `td[data-item="acme/web"]`, "acme/web")
	b.waitText(waitTimeout, "#events", "first-event")
	b.markPage()
	b.click(`a[data-nav=other]`)
	b.waitView("other")
	if !b.samePage() {
		t.Error("a hash route reloaded the page")
	}
	b.fill("#search", "typed")
	b.waitTextIs(waitTimeout, "#echo", "typed")
	if n := b.count(".action"); n != 2 {
		t.Errorf("count(.action) = %d, want 2", n)
	}

	got := b.fetchAsPage(http.MethodPost, "/v1/tenants/acme/instances/web/restart")
	if got.Status != http.StatusForbidden || !strings.Contains(got.Body, "permission_denied") {
		t.Errorf("fetch from the page: %+v, want 403 permission_denied", got)
	}
	mu.Lock()
	seen := strings.Join(auth, "\n")
	mu.Unlock()
	if !strings.Contains(seen, "POST /v1/tenants/acme/instances/web/restart Bearer s3cret-token") ||
		!strings.Contains(seen, "GET /v1/items Bearer s3cret-token") {
		t.Errorf("requests the server got:\n%s", seen)
	}

	// Every answer is recorded: the page, its script, the JSON, the stream
	// so far and the refusal.
	for part, want := range map[string]string{"/ui/": "login-token", "/ui/app.js": "drover.token",
		"/v1/items": `"acme"`, "/v1/events": "first-event", "/restart": "permission_denied"} {
		answers := b.answersOf(part)
		found := false
		for _, a := range answers {
			found = found || bytes.Contains(a.Body, []byte(want))
		}
		if !found {
			t.Errorf("no recorded answer of %s holds %q: %+v", part, want, answers)
		}
	}
	if csp := b.answersOf("/ui/")[0].Header["content-security-policy"]; !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("recorded headers of /ui/: CSP %q", csp)
	}
	b.checkAnswersLackAll("acme", "globex")
	b.checkURLsLack("s3cret-token")

	for _, v := range []viewport{desktopViewport, phoneViewport} {
		b.setViewport(v)
		if w := mustEval[int](b, "window.innerWidth"); w != int(v.width) {
			t.Errorf("viewport %s: innerWidth %d", v.name, w)
		}
		path := b.screenshot("other")
		png, err := os.ReadFile(path)
		if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) {
			t.Errorf("screenshot %s: not a PNG (%v)", path, err)
		}
	}
}

// fakeAppHTML and fakeAppJS are a page in the shape of the console's DOM
// contract, for the harness's own test.
const fakeAppHTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>fake</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<script type="module" src="/ui/app.js"></script></head>
<body>
<form id="login"><label>Token <input id="login-token" type="password"></label>
<button id="login-submit" type="submit">Log in</button></form>
<div id="error"></div>
<main id="view"></main>
</body></html>
`

const fakeAppJS = `
const view = document.getElementById("view");
const api = (path) => fetch(path, {headers: {"Authorization": "Bearer " + sessionStorage.getItem("drover.token")}});
async function render() {
	view.removeAttribute("data-ready");
	if (location.hash === "#/other") {
		view.setAttribute("data-view", "other");
		view.innerHTML = '<label>Search <input id="search"></label><span id="echo"></span>' +
			'<button class="action">a</button><button class="action">b</button>';
		document.getElementById("search").addEventListener("input", (e) => {
			document.getElementById("echo").textContent = e.target.value; });
	} else {
		view.setAttribute("data-view", "fleet");
		const items = await (await api("/v1/items")).json();
		view.innerHTML = '<table>' + items.map(i => '<tr><td data-item="' + i.tenant + '/' + i.name + '">' +
			i.tenant + '/' + i.name + '</td></tr>').join("") + '</table><pre id="events"></pre>';
		follow();
	}
	view.setAttribute("data-ready", "true");
}
async function follow() {
	const r = await api("/v1/events");
	const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
	for (;;) {
		const {value, done} = await reader.read();
		if (done) return;
		const pre = document.getElementById("events");
		if (pre) pre.textContent += value;
	}
}
function start() {
	document.getElementById("login").remove();
	const nav = document.createElement("nav");
	nav.innerHTML = '<a data-nav="fleet" href="#/fleet">Fleet</a> <a data-nav="other" href="#/other">Other</a>';
	document.body.prepend(nav);
	addEventListener("hashchange", render);
	render();
}
document.getElementById("login").addEventListener("submit", (e) => {
	e.preventDefault();
	sessionStorage.setItem("drover.token", document.getElementById("login-token").value);
	start();
});
`

// Servers in network namespaces form a cluster, and Refuse cuts one off:
// the two others elect a leader without it; AcceptAll heals.
func TestHarnessNetnsCut(t *testing.T) {
	c := StartCluster(t, 3, WithNetns())
	old := c.WaitForLeader()
	others := except(c.Servers(), old)
	for _, o := range others {
		cutBetween(old, o)
	}
	eventually(t, waitTimeout, "the servers cut from "+old.Name()+" to elect another leader", func() (bool, string) {
		var views []string
		for _, o := range others {
			st, err := o.status(true)
			if err != nil {
				return false, err.Error()
			}
			if st.Leader == "" || st.Leader == old.ID() {
				return false, fmt.Sprintf("%s names %s", o.Name(), c.nameOf(st.Leader))
			}
			views = append(views, st.Leader)
		}
		return views[0] == views[1], fmt.Sprint(views)
	})
	for _, s := range c.Servers() {
		s.Netns().AcceptAll()
	}
	createTenant(t, c.WaitForLeader(), "healed")
	awaitTenants(t, old, []string{"healed"})
}
