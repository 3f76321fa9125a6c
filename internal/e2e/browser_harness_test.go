package e2e

// The harness of the console and portal scenarios (issue 13): a headless
// Chromium driven through chromedp, one per test, with helpers that act
// as a user does (log in, click, type, read) and wait on what the page
// shows; full-page screenshots; and a recorder of every answer the page's
// requests got, so that a test can check that none of them names what the
// user may not see. The browser is Debian's `chromium`, which .ci/run
// installs; without it the tests skip (and fail under CI=true, where it
// must be there).

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// replicaTimeout bounds the waits for something that needs replicas to
// start or stop (a scale, a restart, a rollout).
const replicaTimeout = 60 * time.Second

// Viewports the pages are checked and photographed at.
var (
	desktopViewport = viewport{"desktop", 1280, 800}
	phoneViewport   = viewport{"phone", 390, 844}
)

type viewport struct {
	name          string
	width, height int64
}

// browser is one headless Chromium with one tab. Its methods fail the test
// (with a screenshot of the page) when what they wait for does not come.
type browser struct {
	t     *testing.T
	ctx   context.Context // the tab's; the browser's life
	log   *safeLog
	rec   *netRecorder
	shots string // folder of the screenshots
	size  viewport

	mu      sync.Mutex
	console []string // the page's console messages and exceptions
	failN   int
}

// chromiumPath finds the browser, skipping the test without one (failing it
// in CI, which installs it).
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed: .ci/run installs it (apt-get install chromium)")
	}
	t.Skip("chromium is not installed (apt-get install chromium): the browser tests need it")
	return ""
}

// startBrowser starts a headless Chromium (as root it needs --no-sandbox)
// with a profile of its own, at the desktop viewport, and records the
// page's network answers and console from the start. It is closed when
// the test ends.
func startBrowser(t *testing.T) *browser {
	t.Helper()
	uncached()
	exe := chromiumPath(t)
	profile := t.TempDir() // removed after the browser is gone (cleanups run last first)
	log := &safeLog{t: t}
	t.Cleanup(log.close)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.NoSandbox,
		chromedp.Headless,
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(int(desktopViewport.width), int(desktopViewport.height)),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx, chromedp.WithErrorf(log.logf("chromedp error: ")))
	b := &browser{t: t, ctx: ctx, log: log, shots: screenshotDir(t), size: desktopViewport}
	var readers sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		readers.Wait()
		if t.Failed() {
			b.dumpConsole()
		}
	})

	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx) }() // starts the browser, bound to ctx
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("start chromium %s: %v", exe, err)
		}
	case <-time.After(waitTimeout):
		t.Fatalf("chromium %s did not start within %v", exe, waitTimeout)
	}

	messages := chromedp.Console(ctx)
	readers.Go(func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			line := fmt.Sprintf("console %s: %s (%s:%d)", m.Type, m.Text, m.URL, m.Line+1)
			b.mu.Lock()
			b.console = append(b.console, line)
			b.mu.Unlock()
			log.printf("%s", line)
		}
	})
	b.rec = newNetRecorder(ctx, log)
	if err := chromedp.Listen(ctx, b.rec.handle); err != nil {
		t.Fatalf("listen to the tab's network events: %v", err)
	}
	b.setViewport(desktopViewport)
	return b
}

// safeLog sends the browser's goroutines' lines to t.Log while the test
// runs, and drops those that come after.
type safeLog struct {
	t      *testing.T
	mu     sync.Mutex
	closed bool
}

func (l *safeLog) printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		l.t.Logf(format, args...)
	}
}

func (l *safeLog) logf(prefix string) func(string, ...any) {
	return func(format string, args ...any) { l.printf(prefix+format, args...) }
}

func (l *safeLog) close() {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
}

// do runs chromedp steps on the tab, for at most timeout.
func (b *browser) do(timeout time.Duration, steps ...chromedp.Action[chromedp.Void]) error {
	ctx, cancel := context.WithTimeout(b.ctx, timeout)
	defer cancel()
	return chromedp.Do(ctx, steps...)
}

// evalJS evaluates a JavaScript expression in the page (awaiting it when it
// is a promise) and decodes its value into T.
func evalJS[T any](b *browser, expr string) (T, error) {
	ctx, cancel := context.WithTimeout(b.ctx, waitTimeout)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
}

// mustEval is evalJS that fails the test.
func mustEval[T any](b *browser, expr string) T {
	b.t.Helper()
	v, err := evalJS[T](b, expr)
	if err != nil {
		b.fatalf("evaluate %s: %v", shortJS(expr), err)
	}
	return v
}

func shortJS(expr string) string {
	s := strings.Join(strings.Fields(expr), " ")
	if len(s) > 160 {
		s = s[:160] + "..."
	}
	return s
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// jsCheck is what a wait's JavaScript condition answers: whether it holds,
// and what it saw.
type jsCheck struct {
	OK    bool   `json:"ok"`
	State string `json:"state"`
}

// waitJS waits until the JavaScript expression, which evaluates to
// {ok, state}, answers ok; what says what is awaited.
func (b *browser) waitJS(timeout time.Duration, what, expr string) {
	b.t.Helper()
	ok, state := waitUntil(timeout, func() (bool, string) {
		c, err := evalJS[jsCheck](b, expr)
		if err != nil {
			return false, err.Error()
		}
		return c.OK, c.State
	})
	if !ok {
		b.fatalf("timed out after %v waiting for %s; last seen: %s", timeout, what, state)
	}
}

// jsElement is a JavaScript function expression that describes the first
// element matching a selector: whether it exists and is visible, its text
// and its value.
const jsElement = `((sel) => {
	const e = document.querySelector(sel);
	if (!e) return {found: false, visible: false, text: "", value: ""};
	const visible = !!(e.offsetWidth || e.offsetHeight || e.getClientRects().length) &&
		getComputedStyle(e).visibility !== "hidden";
	return {found: true, visible, text: (e.innerText || e.textContent || "").trim(),
		value: e.value === undefined ? "" : String(e.value), disabled: !!e.disabled};
})`

// element is what jsElement answers.
type element struct {
	Found, Visible, Disabled bool
	Text, Value              string
}

func (b *browser) element(sel string) element {
	b.t.Helper()
	return mustEval[element](b, jsElement+"("+jsString(sel)+")")
}

// waitVisible waits until an element matching sel is visible.
func (b *browser) waitVisible(sel string) {
	b.t.Helper()
	b.waitJS(waitTimeout, sel+" visible", `(() => { const e = `+jsElement+`(`+jsString(sel)+`);
		return {ok: e.visible, state: e.found ? "present, not visible" : "absent"}; })()`)
}

// waitText waits until the text of the element matching sel contains want.
func (b *browser) waitText(timeout time.Duration, sel, want string) string {
	b.t.Helper()
	b.waitJS(timeout, fmt.Sprintf("%s to show %q", sel, want), `(() => { const e = `+jsElement+`(`+jsString(sel)+`);
		return {ok: e.found && e.text.includes(`+jsString(want)+`), state: e.found ? JSON.stringify(e.text.slice(0, 300)) : "absent"}; })()`)
	return b.text(sel)
}

// waitTextIs waits until the trimmed text of the element matching sel is want.
func (b *browser) waitTextIs(timeout time.Duration, sel, want string) {
	b.t.Helper()
	b.waitJS(timeout, fmt.Sprintf("%s to read %q", sel, want), `(() => { const e = `+jsElement+`(`+jsString(sel)+`);
		return {ok: e.found && e.text === `+jsString(want)+`, state: e.found ? JSON.stringify(e.text.slice(0, 300)) : "absent"}; })()`)
}

// text returns the visible text of the element matching sel, failing the
// test when there is none.
func (b *browser) text(sel string) string {
	b.t.Helper()
	e := b.element(sel)
	if !e.Found {
		b.fatalf("no element %s", sel)
	}
	return e.Text
}

// count returns how many elements match sel.
func (b *browser) count(sel string) int {
	b.t.Helper()
	return mustEval[int](b, `document.querySelectorAll(`+jsString(sel)+`).length`)
}

// click waits until the element matching sel is visible and enabled, then
// clicks it with the mouse.
func (b *browser) click(sel string) {
	b.t.Helper()
	b.waitJS(waitTimeout, sel+" visible and enabled", `(() => { const e = `+jsElement+`(`+jsString(sel)+`);
		return {ok: e.visible && !e.disabled, state: !e.found ? "absent" : !e.visible ? "not visible" : "disabled"}; })()`)
	if err := b.do(waitTimeout, chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible)); err != nil {
		b.fatalf("click %s: %v", sel, err)
	}
}

// fill sets a form field as a user does: a <select> gets the option of
// that value (once the page has it), any other field is emptied and typed
// into with key events.
func (b *browser) fill(sel, value string) {
	b.t.Helper()
	b.waitVisible(sel)
	if mustEval[string](b, `document.querySelector(`+jsString(sel)+`).tagName`) == "SELECT" {
		b.selectOption(sel, value)
		return
	}
	mustEval[bool](b, `(() => { const e = document.querySelector(`+jsString(sel)+`); e.focus(); e.value = "";
		e.dispatchEvent(new Event("input", {bubbles: true})); return true; })()`)
	if err := b.do(waitTimeout, chromedp.SendKeys(chromedp.CSS(sel), value, chromedp.NodeVisible)); err != nil {
		b.fatalf("type into %s: %v", sel, err)
	}
	if got := b.element(sel).Value; got != value {
		b.fatalf("typed %q into %s, it holds %q", value, sel, got)
	}
}

// selectOption chooses the option of value in the <select> sel, waiting
// for the page to offer it, and fires input and change as a user's choice
// does; like a user, it leaves a select that shows value already alone
// (a change can make the page reload what depends on the choice).
func (b *browser) selectOption(sel, value string) {
	b.t.Helper()
	b.waitJS(waitTimeout, fmt.Sprintf("%s to offer %q", sel, value), `(() => {
		const e = document.querySelector(`+jsString(sel)+`);
		if (!e) return {ok: false, state: "absent"};
		const vals = [...e.options].map(o => o.value);
		return {ok: vals.includes(`+jsString(value)+`), state: "options " + JSON.stringify(vals)}; })()`)
	mustEval[bool](b, `(() => { const e = document.querySelector(`+jsString(sel)+`); if (e.value === `+jsString(value)+`) return true;
		e.focus(); e.value = `+jsString(value)+`;
		e.dispatchEvent(new Event("input", {bubbles: true})); e.dispatchEvent(new Event("change", {bubbles: true})); return true; })()`)
}

// open loads url in the tab and waits for its load event.
func (b *browser) open(url string) {
	b.t.Helper()
	if err := b.do(waitTimeout, chromedp.Navigate(url)); err != nil {
		b.fatalf("open %s: %v", url, err)
	}
}

// login opens the app of the server at base and logs in with token as a
// user does, then checks where the token went: into sessionStorage, and
// into no URL.
func (b *browser) login(base, token string) {
	b.t.Helper()
	b.open(base + "/ui/")
	b.fill("#login-token", token)
	b.click("#login-submit")
	b.waitVisible("nav")
	if got := mustEval[string](b, `sessionStorage.getItem("drover.token") || ""`); got != token {
		b.fatalf("after login sessionStorage drover.token = %q, want the token", got)
	}
	if loc := b.location(); strings.Contains(loc, token) {
		b.fatalf("the token is in the page's URL %s", loc)
	}
}

// location is the page's URL.
func (b *browser) location() string {
	b.t.Helper()
	return mustEval[string](b, `location.href`)
}

// route goes to a hash route of the app (#/fleet) without reloading the
// page, as a link would, and waits until view has loaded its data.
func (b *browser) route(hash, view string) {
	b.t.Helper()
	mustEval[bool](b, `(() => { location.hash = `+jsString(hash)+`; return true; })()`)
	b.waitView(view)
}

// waitView waits until main#view shows view (its data-view) with its data
// loaded (data-ready="true").
func (b *browser) waitView(view string) {
	b.t.Helper()
	b.waitJS(waitTimeout, "view "+view+" ready", `(() => {
		const m = document.querySelector("main#view");
		if (!m) return {ok: false, state: "no main#view; hash " + location.hash};
		const v = m.getAttribute("data-view"), r = m.getAttribute("data-ready");
		const err = document.querySelector("#error");
		return {ok: v === `+jsString(view)+` && r === "true",
			state: "hash " + location.hash + ", data-view " + v + ", data-ready " + r + (err && err.innerText.trim() ? ", #error " + err.innerText.trim() : "")}; })()`)
}

// markPage marks the page's JavaScript world; samePage tells whether the
// mark is still there, that is whether the page was not reloaded since.
func (b *browser) markPage() {
	b.t.Helper()
	mustEval[bool](b, `(() => { window.__droverE2EMark = true; return true; })()`)
}

func (b *browser) samePage() bool {
	b.t.Helper()
	return mustEval[bool](b, `window.__droverE2EMark === true`)
}

// pageFetch is the answer to a request the page's own script sent.
type pageFetch struct {
	Status int    `json:"status"`
	Body   string `json:"body"`
}

// fetchAsPage sends a request from the page's script context with the
// token the app keeps in sessionStorage, as the app (or a script injected
// into it) would.
func (b *browser) fetchAsPage(method, path string) pageFetch {
	b.t.Helper()
	return mustEval[pageFetch](b, `(async () => {
		const token = sessionStorage.getItem("drover.token");
		const r = await fetch(`+jsString(path)+`, {method: `+jsString(method)+`,
			headers: {"Authorization": "Bearer " + token, "Content-Type": "application/json"}});
		return {status: r.status, body: await r.text()};
	})()`)
}

// setViewport sizes the page as a screen of v (a phone is emulated as a
// mobile device with touch).
func (b *browser) setViewport(v viewport) {
	b.t.Helper()
	var opts []chromedp.EmulateViewportOption
	if v.width < 600 {
		opts = append(opts, chromedp.EmulateMobile)
	}
	if err := b.do(waitTimeout, chromedp.EmulateViewport(v.width, v.height, opts...)); err != nil {
		b.fatalf("viewport %s: %v", v.name, err)
	}
	b.size = v
}

// desktop goes back to the desktop viewport.
func (b *browser) desktop() { b.t.Helper(); b.setViewport(desktopViewport) }

// screenshotDir is where the test's screenshots go: $DROVER_SCREENSHOTS or
// drover-screenshots in the temporary folder, then a folder named after
// the test. They stay after the test, for people to look at.
func screenshotDir(t *testing.T) string {
	t.Helper()
	base := os.Getenv("DROVER_SCREENSHOTS")
	if base == "" {
		base = filepath.Join(os.TempDir(), "drover-screenshots")
	}
	dir := filepath.Join(base, fileName(t.Name()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("screenshot folder: %v", err)
	}
	return dir
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

func fileName(s string) string { return unsafeName.ReplaceAllString(s, "_") }

// screenshot saves a full-page PNG of the tab as NAME-VIEWPORT.png and
// returns its path, which it logs.
func (b *browser) screenshot(name string) string {
	b.t.Helper()
	path, err := b.trySnapshot(name)
	if err != nil {
		b.fatalf("screenshot %s: %v", name, err)
	}
	b.t.Logf("screenshot %s (%dx%d): %s", name, b.size.width, b.size.height, path)
	return path
}

func (b *browser) trySnapshot(name string) (string, error) {
	ctx, cancel := context.WithTimeout(b.ctx, waitTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG
	if err != nil {
		return "", err
	}
	path := filepath.Join(b.shots, fileName(name+"-"+b.size.name)+".png")
	return path, os.WriteFile(path, png, 0o644)
}

// fatalf fails the test after saving a screenshot of the page and logging
// its URL and view, which is what one needs to see why.
func (b *browser) fatalf(format string, args ...any) {
	b.t.Helper()
	b.mu.Lock()
	b.failN++
	n := b.failN
	b.mu.Unlock()
	if path, err := b.trySnapshot(fmt.Sprintf("failure-%d", n)); err == nil {
		b.t.Logf("screenshot of the failure: %s", path)
	}
	if st, err := evalJS[string](b, `location.href + "\n" + (document.querySelector("main") || document.body || {outerHTML: ""}).outerHTML.slice(0, 4000)`); err == nil {
		b.t.Logf("page at the failure: %s", st)
	}
	b.t.Fatalf(format, args...)
}

func (b *browser) dumpConsole() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.console) > 0 {
		b.t.Logf("the page's console:\n%s", strings.Join(b.console, "\n"))
	}
}

// netAnswer is one answer the page got.
type netAnswer struct {
	Method, URL string
	Status      int
	MIME        string
	Header      map[string]string
	Body        []byte
	Err         error  // the body could not be read
	Failed      string // the request failed (cancelled, network error)
	stream      bool   // text/event-stream: Body grows while it lasts
	done        bool
}

// netRecorder keeps every request the tab sends and the body of every
// answer: for a finished load, what Network.getResponseBody gives; for an
// event stream, what arrived so far (Network.streamResourceContent).
type netRecorder struct {
	ctx context.Context
	log *safeLog

	mu       sync.Mutex
	byID     map[network.RequestID]*netAnswer
	answers  []*netAnswer
	requests []string // "METHOD URL#fragment" of every request
	inflight int      // body reads under way
}

func newNetRecorder(ctx context.Context, log *safeLog) *netRecorder {
	return &netRecorder{ctx: ctx, log: log, byID: map[network.RequestID]*netAnswer{}}
}

// handle is the tab's event listener: it runs in chromedp's read loop, so
// it only records, and reads bodies from goroutines of its own.
func (r *netRecorder) handle(ev any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch ev := ev.(type) {
	case *network.EventRequestWillBeSent:
		r.requests = append(r.requests, ev.Request.Method+" "+ev.Request.URL+ev.Request.URLFragment)
		a := &netAnswer{Method: ev.Request.Method, URL: ev.Request.URL}
		r.byID[ev.RequestID] = a
		r.answers = append(r.answers, a)
	case *network.EventResponseReceived:
		a := r.byID[ev.RequestID]
		if a == nil {
			a = &netAnswer{URL: ev.Response.URL}
			r.byID[ev.RequestID] = a
			r.answers = append(r.answers, a)
		}
		a.Status, a.MIME = int(ev.Response.Status), ev.Response.MimeType
		a.Header = map[string]string{}
		for k, v := range ev.Response.Headers {
			a.Header[strings.ToLower(k)] = fmt.Sprint(v)
		}
		if a.MIME == "text/event-stream" {
			a.stream = true
			r.read(ev.RequestID, a, func(ctx context.Context) ([]byte, error) {
				res, err := chromedp.Call(ctx, network.StreamResourceContent, network.StreamResourceContentParams{RequestID: ev.RequestID})
				return res.BufferedData, err
			})
		}
	case *network.EventDataReceived:
		if a := r.byID[ev.RequestID]; a != nil && a.stream {
			a.Body = append(a.Body, ev.Data...)
		}
	case *network.EventEventSourceMessageReceived:
		if a := r.byID[ev.RequestID]; a != nil {
			a.Body = append(a.Body, ev.Data+"\n"...)
		}
	case *network.EventLoadingFinished:
		a := r.byID[ev.RequestID]
		if a == nil || a.stream {
			if a != nil {
				a.done = true
			}
			return
		}
		r.read(ev.RequestID, a, func(ctx context.Context) ([]byte, error) {
			res, err := chromedp.Call(ctx, network.GetResponseBody, network.GetResponseBodyParams{RequestID: ev.RequestID})
			return res.Body, err
		})
	case *network.EventLoadingFailed:
		if a := r.byID[ev.RequestID]; a != nil {
			a.Failed, a.done = ev.ErrorText, true
		}
	}
}

// read gets a body in a goroutine (a command may not run in the listener)
// and adds it to a's. r.mu is held.
func (r *netRecorder) read(id network.RequestID, a *netAnswer, get func(context.Context) ([]byte, error)) {
	r.inflight++
	go func() {
		ctx, cancel := context.WithTimeout(r.ctx, waitTimeout)
		defer cancel()
		body, err := get(ctx)
		r.mu.Lock()
		defer r.mu.Unlock()
		r.inflight--
		if err != nil && r.ctx.Err() == nil {
			a.Err = fmt.Errorf("read the answer of %s %s (%s): %w", a.Method, a.URL, id, err)
		}
		a.Body = append(body, a.Body...) // a stream's buffered start, before what arrived since
		if !a.stream {
			a.done = true
		}
	}()
}

// settle waits until every answer that has begun has been read (event
// streams excepted: they last) and returns a copy of them all.
func (r *netRecorder) settle(t *testing.T) []netAnswer {
	t.Helper()
	ok, state := waitUntil(waitTimeout, func() (bool, string) {
		r.mu.Lock()
		defer r.mu.Unlock()
		var open []string
		for _, a := range r.answers {
			if a.Status != 0 && !a.stream && !a.done {
				open = append(open, a.URL)
			}
		}
		return r.inflight == 0 && len(open) == 0, fmt.Sprintf("%d body reads under way, open answers %v", r.inflight, open)
	})
	if !ok {
		t.Errorf("the page's answers did not settle: %s", state)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]netAnswer, 0, len(r.answers))
	for _, a := range r.answers {
		c := *a
		c.Body = append([]byte(nil), a.Body...)
		out = append(out, c)
	}
	return out
}

// requestLines returns "METHOD URL" of every request the tab sent.
func (r *netRecorder) requestLines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.requests...)
}

// answersOf returns the settled answers whose URL contains part.
func (b *browser) answersOf(part string) []netAnswer {
	b.t.Helper()
	var out []netAnswer
	for _, a := range b.rec.settle(b.t) {
		if strings.Contains(a.URL, part) {
			out = append(out, a)
		}
	}
	return out
}

// checkAnswersLackAll fails the test if the body of any answer the page
// got contains one of words (case-insensitive), or could not be read; it
// returns the answers checked. present must occur in at least one body:
// it shows that the recorder saw the data the page shows.
func (b *browser) checkAnswersLackAll(present string, words ...string) []netAnswer {
	b.t.Helper()
	answers := b.rec.settle(b.t)
	seen := false
	for _, a := range answers {
		if a.Err != nil && strings.HasPrefix(a.URL, "http") {
			b.t.Errorf("%v", a.Err)
		}
		body := strings.ToLower(string(a.Body))
		seen = seen || strings.Contains(body, strings.ToLower(present))
		for _, w := range words {
			if i := strings.Index(body, strings.ToLower(w)); i >= 0 {
				b.t.Errorf("the answer of %s %s (%d) names %q: ...%s...", a.Method, a.URL, a.Status, w,
					string(a.Body[max(0, i-120):min(len(a.Body), i+120)]))
			}
		}
	}
	if !seen {
		b.t.Errorf("no answer of the %d the page got contains %q: the recorder missed the page's data", len(answers), present)
	}
	return answers
}

// checkURLsLack fails the test if a URL the page requested contains secret.
func (b *browser) checkURLsLack(secret string) {
	b.t.Helper()
	for _, line := range b.rec.requestLines() {
		if strings.Contains(line, secret) {
			b.t.Errorf("a request URL holds the token: %s", line)
		}
	}
}
