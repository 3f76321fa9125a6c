package e2e

// Scenarios of the issue "the operations console and the customer portal,
// tested in a real browser" (issue 13): an operator, a tenant's admin and a
// tenant's viewer use the app at /ui/ in headless Chromium against a real
// server with ACLs on and a real agent, and the tests check what they see
// against the API. The DOM the tests rely on (routes, ids, data-*
// attributes) is listed in README.md, "Browser tests";
// browser_harness_test.go drives the browser.

import (
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
)

// consoleFleet is a server with ACLs on, one agent, product hello (with
// parameters, plans, releases 1.0.0 and 1.1.0, channel stable) and two
// tenants, acme and globex, whose instances are in the states the fleet
// page counts (not failed: the scheduler replaces a failed replica, so no
// instance stays failed for long):
//
//	acme/web         hello 1.0.0, plan pro, staging     running, healthy
//	acme/api         the demo app, staging              stopped
//	globex/shop      hello 1.0.0, plan starter, production  running, healthy
//	globex/waiting   constrained to no region, staging  pending
type consoleFleet struct {
	ac   *aclCluster
	s    *Server
	url  string
	mgmt *Client
}

// consoleInstance is an instance of GET /v1/instances as the console's
// counts read it.
type consoleInstance struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Environment string `json:"environment"`
	Release     string `json:"release"`
	Replicas    int    `json:"replicas"`
	Spec        struct {
		Env map[string]string `json:"env"`
	} `json:"spec"`
	Status *struct {
		State    string `json:"state"`
		Replicas struct {
			Desired, Running, Healthy, Pending, Failed int
		} `json:"replicas"`
	} `json:"status"`
}

func (in consoleInstance) tenant() string { return strings.SplitN(in.ID, "/", 2)[0] }

func (in consoleInstance) String() string {
	if in.Status == nil {
		return in.ID + " (no status)"
	}
	return fmt.Sprintf("%s %s %+v", in.ID, in.Status.State, in.Status.Replicas)
}

func startConsoleFleet(t *testing.T) *consoleFleet {
	t.Helper()
	if testing.Short() {
		t.Skip("a cluster, an agent and a browser")
	}
	chromiumPath(t) // skip before starting anything
	ac := startACLCluster(t, aclOptions{})
	s := ac.Server(0)
	f := &consoleFleet{ac: ac, s: s, url: s.URL(), mgmt: ac.client(s, ac.Mgmt)}
	ac.node(ac.startAgent(ac.JoinToken))

	api := f.mgmt
	api.JSON(http.MethodPut, "/v1/plans/starter", map[string]any{"max_replicas": 1, "resources": map[string]int{"cpu_millis": 100, "memory_mb": 64}}, nil)
	api.JSON(http.MethodPut, "/v1/plans/pro", map[string]any{"max_replicas": 3, "resources": map[string]int{"cpu_millis": 100, "memory_mb": 64}}, nil)
	api.JSON(http.MethodPut, "/v1/products/hello", map[string]any{
		"description": "the demo app",
		"template": map[string]any{"ports": []string{"http"},
			"health": map[string]any{"type": "http", "port": "http", "path": "/healthz", "interval": "200ms"},
			"update": map[string]any{"min_healthy_time": "300ms", "healthy_deadline": "10s"}},
		"parameters": []map[string]any{
			{"name": "GREETING", "type": "string", "default": "hi", "enum": []string{"hi", "hello"}},
			{"name": "SEATS", "type": "int", "min": 1, "max": 50, "default": 5},
			{"name": "LICENSE_KEY", "type": "string", "secret": true, "required": true},
		},
		"plans": []string{"starter", "pro"}, "default_channel": "stable",
	}, nil)
	for _, v := range []string{"1.0.0", "1.1.0"} {
		// -tick: a line in the log every half second, for the log view.
		api.JSON(http.MethodPost, "/v1/products/hello/releases", map[string]any{"version": v,
			"command": []string{binPath, "demo-app", "-listen", "127.0.0.1:${PORT}", "-tick", "500ms"},
			"env":     map[string]string{"HELLO_VERSION": v}, "upgrade_from": ">=1.0.0"}, nil)
	}
	api.JSON(http.MethodPut, "/v1/products/hello/channels/stable", map[string]string{"release": "1.0.0"}, nil)
	// Flags: one a tenant may change, one only operators may.
	for key, editable := range map[string]bool{"new-ui": true, "billing-v2": false} {
		api.JSON(http.MethodPut, "/v1/products/hello/flags/"+key, map[string]any{"type": "boolean",
			"variants": map[string]bool{"on": true, "off": false}, "default_variant": "off", "tenant_editable": editable}, nil)
	}
	for _, tenant := range []string{"acme", "globex"} {
		api.JSON(http.MethodPost, "/v1/tenants", map[string]any{"name": tenant}, nil)
	}
	product := func(tenant, name, env, plan string) {
		api.JSON(http.MethodPost, "/v1/tenants/"+tenant+"/instances", map[string]any{
			"name": name, "environment": env, "product": "hello", "plan": plan, "replicas": 1,
			"parameters": map[string]any{"SEATS": 5, "LICENSE_KEY": "key-" + tenant}}, nil)
	}
	product("acme", "web", "staging", "pro")
	product("globex", "shop", "production", "starter")
	api.JSON(http.MethodPost, "/v1/tenants/acme/instances", demoInstance("api", 1), nil)
	api.JSON(http.MethodPost, instancePath("acme", "api")+"/stop", nil, nil)
	waiting := demoInstance("waiting", 1)
	specOf(waiting)["constraints"] = map[string]any{"region": "nowhere"}
	api.JSON(http.MethodPost, "/v1/tenants/globex/instances", waiting, nil)

	want := map[string]func(consoleInstance) bool{
		"acme/web":       func(in consoleInstance) bool { return in.Status.State == "running" },
		"acme/api":       func(in consoleInstance) bool { return in.Status.State == "stopped" },
		"globex/shop":    func(in consoleInstance) bool { return in.Status.State == "running" },
		"globex/waiting": func(in consoleInstance) bool { return in.Status.Replicas.Pending > 0 },
	}
	eventually(t, replicaTimeout, "the console's fleet in its states", func() (bool, string) {
		list := f.instances(api)
		ok := len(list) == len(want)
		for _, in := range list {
			ok = ok && in.Status != nil && want[in.ID] != nil && want[in.ID](in)
		}
		return ok, fmt.Sprint(list)
	})
	return f
}

// instances is GET /v1/instances with client c.
func (f *consoleFleet) instances(c *Client) []consoleInstance {
	f.ac.t.Helper()
	var list []consoleInstance
	c.JSON(http.MethodGet, "/v1/instances", nil, &list)
	return list
}

// instance is GET of one instance, nil when it does not exist.
func (f *consoleFleet) instance(tenant, name string) *consoleInstance {
	f.ac.t.Helper()
	r, err := f.mgmt.Try(http.MethodGet, instancePath(tenant, name), nil)
	if err != nil {
		f.ac.t.Fatal(err)
	}
	if r.Status == http.StatusNotFound {
		return nil
	}
	var in consoleInstance
	if !r.OK() || r.Decode(&in) != nil {
		f.ac.t.Fatalf("%s: want the instance", r)
	}
	return &in
}

// instanceEvents is the types of an instance's events, oldest first.
func (f *consoleFleet) instanceEvents(tenant, name string) []string {
	f.ac.t.Helper()
	var evs []apiEventT
	f.mgmt.JSON(http.MethodGet, instancePath(tenant, name)+"/events", nil, &evs)
	var types []string
	for _, e := range evs {
		types = append(types, e.Type)
	}
	return types
}

// fleetCounts are the counts of the fleet page for each of its rows,
// keyed "env/NAME" and "tenant/NAME".
type fleetCounts map[string]map[string]int

var countNames = []string{"total", "running", "pending", "failed", "healthy"}

// countFleet counts instances as the fleet page does: total; running
// (state running); pending (a replica waiting for a node or starting);
// failed (state failed); healthy (every desired replica healthy, of at
// least one).
func countFleet(list []consoleInstance) fleetCounts {
	out := fleetCounts{}
	for _, in := range list {
		st := in.Status
		for _, key := range []string{"env/" + in.Environment, "tenant/" + in.tenant()} {
			c := out[key]
			if c == nil {
				c = map[string]int{}
				out[key] = c
			}
			c["total"]++
			if st == nil {
				continue
			}
			if st.State == "running" {
				c["running"]++
			}
			if st.Replicas.Pending > 0 {
				c["pending"]++
			}
			if st.State == "failed" {
				c["failed"]++
			}
			if st.Replicas.Desired > 0 && st.Replicas.Healthy >= st.Replicas.Desired {
				c["healthy"]++
			}
		}
	}
	return out
}

// pageFleetCounts reads the counts of the tables #fleet-env and
// #fleet-tenant.
func (b *browser) pageFleetCounts() fleetCounts {
	b.t.Helper()
	return mustEval[fleetCounts](b, `(() => {
		const out = {};
		for (const [sel, attr, prefix] of [["#fleet-env tr[data-env]", "data-env", "env/"], ["#fleet-tenant tr[data-tenant]", "data-tenant", "tenant/"]]) {
			for (const tr of document.querySelectorAll(sel)) {
				const c = {};
				for (const td of tr.querySelectorAll("td[data-count]")) c[td.getAttribute("data-count")] = parseInt(td.innerText, 10);
				out[prefix + tr.getAttribute(attr)] = c;
			}
		}
		return out;
	})()`)
}

// sameCounts says whether the page shows the counts of the API: every row
// of the API with its five counts, and any other row with none.
func sameCounts(api, page fleetCounts) bool {
	for key, c := range api {
		for _, n := range countNames {
			if page[key] == nil || page[key][n] != c[n] {
				return false
			}
		}
	}
	for key, c := range page {
		if api[key] == nil && c["total"] != 0 {
			return false
		}
	}
	return true
}

// rowsOf returns the data-instance of the rows matching sel, sorted.
func (b *browser) rowsOf(sel string) []string {
	b.t.Helper()
	rows := mustEval[[]string](b, `[...document.querySelectorAll(`+jsString(sel)+`)].map(e => e.getAttribute("data-instance"))`)
	sort.Strings(rows)
	return rows
}

// page is one page of the app, for the tours.
type page struct{ name, hash, view string }

// tour visits pages at the desktop and the phone viewport and checks each
// (checkPage), saving a screenshot of each; it ends at the desktop
// viewport.
func (b *browser) tour(pages []page, hidden ...string) {
	b.t.Helper()
	for _, v := range []viewport{desktopViewport, phoneViewport} {
		b.setViewport(v)
		for _, p := range pages {
			b.route(p.hash, p.view)
			b.checkPage(p.name, hidden...)
			b.screenshot(p.name)
		}
	}
	b.desktop()
}

// checkPage checks what every page of the app must be: no inline script
// or inline event handler (the CSP forbids them), every control labelled,
// no horizontal scrolling at phone width, and none of the hidden words in
// its text.
func (b *browser) checkPage(name string, hidden ...string) {
	b.t.Helper()
	type report struct {
		Inline     []string `json:"inline"`
		Unlabelled []string `json:"unlabelled"`
		Width      int      `json:"width"`
		Scroll     int      `json:"scroll"`
		Text       string   `json:"text"`
	}
	r := mustEval[report](b, `(() => {
		const visible = e => !!(e.offsetWidth || e.offsetHeight || e.getClientRects().length);
		const describe = e => e.outerHTML.slice(0, 160);
		const inline = [...document.scripts].filter(s => !s.src && s.textContent.trim()).map(describe);
		for (const e of document.querySelectorAll("*"))
			if ([...e.attributes].some(a => a.name.startsWith("on"))) inline.push(describe(e));
		const named = e => (e.labels && e.labels.length) || e.getAttribute("aria-label") ||
			e.getAttribute("aria-labelledby") || e.title ||
			((e.tagName === "BUTTON" || e.type === "submit" || e.type === "button") && (e.innerText.trim() || e.value));
		const unlabelled = [...document.querySelectorAll("input:not([type=hidden]), select, textarea, button")]
			.filter(e => visible(e) && !named(e)).map(describe);
		return {inline, unlabelled, width: window.innerWidth,
			scroll: document.documentElement.scrollWidth, text: document.body.innerText};
	})()`)
	for _, s := range r.Inline {
		b.t.Errorf("page %s: an inline script or handler, which the CSP forbids: %s", name, s)
	}
	for _, s := range r.Unlabelled {
		b.t.Errorf("page %s: a control without a label: %s", name, s)
	}
	// A mobile browser widens the layout to the content: innerWidth grows
	// past the screen's width when something does not fit (or the page has
	// no <meta name="viewport" content="width=device-width">).
	if b.size.width == phoneViewport.width && (r.Width != int(b.size.width) || r.Scroll > r.Width+1) {
		b.t.Errorf("page %s on a %d px wide phone is %d px wide (window %d px): it scrolls sideways",
			name, b.size.width, max(r.Width, r.Scroll), r.Width)
	}
	for _, w := range hidden {
		if strings.Contains(strings.ToLower(r.Text), strings.ToLower(w)) {
			b.t.Errorf("page %s shows %q:\n%s", name, w, r.Text)
		}
	}
}

// confirmPlan waits for the plan dialog, checks that it describes the
// change (its text holds each of want, case-insensitive), runs before (the
// moment the plan is shown, nothing has happened yet) and confirms.
func (b *browser) confirmPlan(before func(), want ...string) string {
	b.t.Helper()
	b.waitJS(waitTimeout, "the plan dialog open", `(() => { const d = document.querySelector("dialog#plan");
		return {ok: !!d && d.open, state: d ? "closed" : "no dialog#plan"}; })()`)
	text := b.waitText(waitTimeout, "#plan", "")
	for _, w := range want {
		if !strings.Contains(strings.ToLower(text), strings.ToLower(w)) {
			b.t.Errorf("the plan does not mention %q:\n%s", w, text)
		}
	}
	before()
	b.click("#plan-confirm")
	return text
}

// Operator: logs in, sees the fleet's counts as the API gives them, scales
// an instance and sees its healthy count reach the new number without a
// reload, follows its log, and starts a rollout after seeing its calendar
// and watches it succeed.
func TestConsoleOperatorScalesFollowsLogsAndRollsOut(t *testing.T) {
	f := startConsoleFleet(t)
	_, token := f.ac.token("operator", "")
	op := f.ac.client(f.s, token)
	b := startBrowser(t)
	b.login(f.url, token)
	if who := b.text("#whoami"); !strings.Contains(who, "operator") {
		t.Errorf("#whoami = %q, want the role operator", who)
	}

	b.route("#/fleet", "fleet")
	var api, shown fleetCounts
	ok, _ := waitUntil(waitTimeout, func() (bool, string) {
		api, shown = countFleet(f.instances(op)), b.pageFleetCounts()
		return sameCounts(api, shown), ""
	})
	if !ok {
		b.fatalf("fleet counts on the page %v, from the API %v", shown, api)
	}
	for _, cell := range []string{"acme/staging", "globex/staging", "globex/production"} {
		if e := b.element(`#fleet-grid td[data-cell="` + cell + `"]`); !e.Found || e.Text == "" {
			t.Errorf("the fleet grid has no cell %s with its version and health: %+v", cell, e)
		}
	}

	// Scale acme/web from 1 to 3 on its page, after seeing the plan.
	b.route("#/instances/acme/web", "instance")
	b.waitTextIs(waitTimeout, "#healthy-count", "1/1")
	b.markPage()
	b.fill("#scale-replicas", "3")
	b.click("#action-scale")
	b.confirmPlan(func() {
		if in := f.instance("acme", "web"); in.Replicas != 1 {
			t.Errorf("acme/web has %d replicas before the plan was confirmed", in.Replicas)
		}
	}, "3")
	b.waitTextIs(replicaTimeout, "#healthy-count", "3/3")
	if !b.samePage() {
		t.Error("the page reloaded to show the new healthy count")
	}
	b.waitJS(waitTimeout, "three replicas listed", `(() => { const n = document.querySelectorAll("#replicas tr[data-replica]").length;
		return {ok: n === 3, state: n + " rows"}; })()`)
	if in := f.instance("acme", "web"); in.Replicas != 3 {
		t.Errorf("acme/web has %d replicas in the API after the scale, want 3", in.Replicas)
	}
	b.screenshot("instance")

	// Follow the log: the demo app prints a line every half second.
	b.click("#logs-follow")
	b.waitJS(waitTimeout, "lines in #logs", `(() => { const t = document.querySelector("#logs").innerText;
		return {ok: t.trim().split("\n").length >= 1 && t.trim() !== "", state: JSON.stringify(t.slice(-200))}; })()`)
	before := len(b.text("#logs"))
	b.waitJS(waitTimeout, "#logs to grow while following", `(() => { const t = document.querySelector("#logs").innerText.trim();
		return {ok: t.length > `+fmt.Sprint(before)+`, state: t.length + " characters: " + JSON.stringify(t.slice(-200))}; })()`)

	// A rollout of 1.1.0 to acme's instances, started from its calendar.
	b.route("#/rollouts/new", "rollout-new")
	b.fill("#rollout-product", "hello")
	b.fill("#rollout-release", "1.1.0")
	b.fill("#rollout-selector-tenants", "acme")
	b.click("#rollout-preview")
	var dry apiRollout
	op.JSON(http.MethodPost, "/v1/rollouts?dry_run=true", map[string]any{"product": "hello", "release": "1.1.0",
		"selector": map[string]any{"tenants": []string{"acme"}}}, &dry)
	var want []string
	for _, in := range dry.Instances {
		want = append(want, in.ID)
	}
	sort.Strings(want)
	b.waitVisible(`#calendar tr[data-instance="acme/web"]`)
	if got := b.rowsOf("#calendar tr[data-instance]"); !slices.Equal(got, want) {
		t.Errorf("the calendar lists %v, the API's dry run %v", got, want)
	}
	b.screenshot("rollout-calendar")
	var none []apiRollout
	op.JSON(http.MethodGet, "/v1/rollouts", nil, &none)
	if len(none) != 0 {
		t.Fatalf("the preview created a rollout: %+v", none)
	}
	b.click("#rollout-start")
	b.waitJS(waitTimeout, "the rollout's page", `(() => ({ok: /^#\/rollouts\/[^/]+$/.test(location.hash) && location.hash !== "#/rollouts/new",
		state: location.hash}))()`)
	b.waitView("rollout")
	id := strings.TrimPrefix(mustEval[string](b, "location.hash"), "#/rollouts/")
	b.waitText(2*replicaTimeout, "#rollout-state", "succeeded")
	var ro apiRollout
	op.JSON(http.MethodGet, "/v1/rollouts/"+id, nil, &ro)
	if ro.State != "succeeded" || ro.Counts.Succeeded != len(want) {
		t.Errorf("rollout %s in the API: %s %+v", id, ro.State, ro.Counts)
	}
	if in := f.instance("acme", "web"); in.Release != "1.1.0" {
		t.Errorf("acme/web runs release %q after the rollout, want 1.1.0", in.Release)
	}

	// Roll acme/web back from its page: a new version with the spec of
	// the version before, release 1.0.0 again.
	b.route("#/instances/acme/web", "instance")
	b.click("#action-rollback")
	b.confirmPlan(func() {
		if in := f.instance("acme", "web"); in.Release != "1.1.0" {
			t.Errorf("acme/web rolled back before the plan was confirmed: %s", in.Release)
		}
	}, "roll")
	eventually(t, replicaTimeout, "acme/web back on release 1.0.0, healthy", func() (bool, string) {
		in := f.instance("acme", "web")
		return in.Release == "1.0.0" && in.Status != nil && in.Status.State == "running" && in.Status.Replicas.Healthy == in.Status.Replicas.Desired, in.String()
	})

	b.tour([]page{
		{"fleet", "#/fleet", "fleet"},
		{"instances", "#/instances", "instances"},
		{"instance", "#/instances/acme/web", "instance"},
		{"nodes", "#/nodes", "nodes"},
		{"catalog", "#/catalog", "catalog"},
		{"rollouts", "#/rollouts", "rollouts"},
		{"rollout", "#/rollouts/" + id, "rollout"},
		{"audit", "#/audit", "audit"},
	})
	b.checkURLsLack(token)
}

// Tenant admin: sees its tenant's instances and nothing of another
// tenant's, in the page or in any answer the page got; creates an instance
// of a product from the form, where a parameter out of range is refused
// with the error at its field; restarts an instance after seeing the plan.
func TestConsolePortalTenantAdminCreatesAndRestarts(t *testing.T) {
	f := startConsoleFleet(t)
	_, token := f.ac.token("tenant-admin", "acme")
	b := startBrowser(t)
	b.login(f.url, token)
	b.waitView("portal")
	if h := mustEval[string](b, "location.hash"); h != "#/portal" {
		t.Errorf("a tenant token lands on %q, want #/portal", h)
	}
	if who := b.text("#whoami"); !strings.Contains(who, "tenant-admin") || !strings.Contains(who, "acme") {
		t.Errorf("#whoami = %q, want the role tenant-admin and the tenant acme", who)
	}
	b.waitVisible(`tr[data-instance="acme/web"]`)
	if got := b.rowsOf("tr[data-instance]"); !slices.Equal(got, []string{"acme/api", "acme/web"}) {
		t.Errorf("the portal lists %v, want acme's acme/api and acme/web", got)
	}
	b.checkPage("portal", "globex")

	// The form refuses a parameter out of range, at its field, and creates
	// nothing.
	b.click("#new-instance")
	b.waitView("create")
	b.fill("#create-name", "crm")
	b.fill("#create-environment", "staging")
	b.fill("#create-product", "hello")
	b.fill("#create-plan", "pro")
	b.fill(`[name="param:LICENSE_KEY"]`, "key-crm")
	b.fill(`[name="param:SEATS"]`, "9999")
	for sel, want := range map[string]string{"#create-name": "crm", "#create-environment": "staging", "#create-product": "hello",
		"#create-plan": "pro", `[name="param:LICENSE_KEY"]`: "key-crm", `[name="param:SEATS"]`: "9999"} {
		if got := b.element(sel).Value; got != want {
			b.fatalf("the form changed %s to %q after it was set to %q", sel, got, want)
		}
	}
	b.screenshot("create")
	b.click("#create-submit")
	const seatsError = `.field-error[data-field="parameters.SEATS"]`
	b.waitJS(waitTimeout, "the refusal at SEATS, or the plan", `(() => {
		const e = document.querySelector(`+jsString(seatsError)+`), d = document.querySelector("dialog#plan");
		return {ok: (e && e.innerText.trim() !== "") || (d && d.open), state: "no error at SEATS, no plan"}; })()`)
	if !b.element(seatsError).Visible {
		// The page let it through to the plan: the API refuses it.
		b.confirmPlan(func() {})
	}
	msg := b.waitText(waitTimeout, seatsError, "")
	if msg == "" {
		t.Errorf("the error at SEATS is empty")
	}
	if !mustEval[bool](b, `(() => { const e = document.querySelector(`+jsString(seatsError)+`), i = document.querySelector('[name="param:SEATS"]');
		return !!i && [e.parentElement, e.parentElement && e.parentElement.parentElement].some(p => p && p.contains(i) && p.id !== "create-form"); })()`) {
		t.Errorf("the error at SEATS (%q) is not next to its input", msg)
	}
	b.screenshot("create-refused")
	if in := f.instance("acme", "crm"); in != nil {
		t.Fatalf("a refused form created %s", in)
	}

	// Corrected, it creates the instance after the plan.
	b.fill(`[name="param:SEATS"]`, "3")
	b.click("#create-submit")
	b.confirmPlan(func() {
		if in := f.instance("acme", "crm"); in != nil {
			t.Errorf("acme/crm exists before the plan was confirmed")
		}
	})
	eventually(t, replicaTimeout, "acme/crm running", func() (bool, string) {
		in := f.instance("acme", "crm")
		if in == nil {
			return false, "not created; #error " + b.element("#error").Text
		}
		return in.Status != nil && in.Status.State == "running", in.String()
	})
	if in := f.instance("acme", "crm"); in.Spec.Env["SEATS"] != "3" || in.Spec.Env["LICENSE_KEY"] != "" {
		t.Errorf("acme/crm's environment %v, want SEATS 3 (and the secret LICENSE_KEY not in env)", in.Spec.Env)
	}
	b.route("#/portal", "portal")
	b.waitVisible(`tr[data-instance="acme/crm"]`)

	// Restart acme/web after the plan.
	b.route("#/instances/acme/web", "instance")
	b.waitTextIs(waitTimeout, "#healthy-count", "1/1")
	b.click("#action-restart")
	b.confirmPlan(func() {
		if evs := f.instanceEvents("acme", "web"); slices.Contains(evs, "restart") {
			t.Errorf("acme/web restarted before the plan was confirmed: %v", evs)
		}
	}, "restart")
	eventually(t, replicaTimeout, "acme/web restarted", func() (bool, string) {
		evs := f.instanceEvents("acme", "web")
		return slices.Contains(evs, "restart"), fmt.Sprint(evs)
	})
	b.waitTextIs(replicaTimeout, "#healthy-count", "1/1")
	if e := b.element("#error"); e.Visible && e.Text != "" {
		t.Errorf("#error after the restart: %s", e.Text)
	}

	// Flags: the tenant_editable one can be set from the page (after its
	// plan), the other offers no control.
	b.waitVisible(`tr[data-flag="new-ui"] select`)
	if n := b.count(`tr[data-flag="billing-v2"] .action`); n != 0 {
		t.Errorf("the tenant admin is offered %d controls for billing-v2, which is not tenant_editable", n)
	}
	b.selectOption(`tr[data-flag="new-ui"] select`, "on")
	// A change elsewhere re-renders the section before "Set" is pressed:
	// the choice not yet submitted stays.
	mustEval[bool](b, `(window.chosen = document.querySelector('tr[data-flag="new-ui"] select'), true)`)
	f.mgmt.JSON(http.MethodPut, "/v1/tenants/acme/flags/billing-v2", map[string]string{"variant": "on"}, nil)
	b.waitText(waitTimeout, `tr[data-flag="billing-v2"]`, "tenant")
	b.waitJS(waitTimeout, "the flags section re-rendered", `(() => {
		const e = document.querySelector('tr[data-flag="new-ui"] select');
		return {ok: e !== window.chosen, state: "the same select"}; })()`)
	if v := b.element(`tr[data-flag="new-ui"] select`).Value; v != "on" {
		t.Errorf("new-ui's select shows %q after a re-render, want the unsaved choice on", v)
	}
	b.click(`tr[data-flag="new-ui"] button[type=submit]`)
	b.confirmPlan(func() {}, "new-ui")
	eventually(t, waitTimeout, "acme/web's flag new-ui on, from the instance", func() (bool, string) {
		var flags []struct{ Key, Variant, Source string }
		f.mgmt.JSON(http.MethodGet, instancePath("acme", "web")+"/flags", nil, &flags)
		for _, fl := range flags {
			if fl.Key == "new-ui" {
				return fl.Variant == "on" && fl.Source == "instance", fmt.Sprint(fl)
			}
		}
		return false, fmt.Sprint(flags)
	})
	b.waitText(waitTimeout, `tr[data-flag="new-ui"]`, "instance")

	b.tour([]page{
		{"portal", "#/portal", "portal"},
		{"portal-instance", "#/instances/acme/web", "instance"},
		{"portal-create", "#/portal/new", "create"},
	}, "globex")
	b.checkAnswersLackAll("acme", "globex")
	b.checkURLsLack(token)
}

// Viewer: no action buttons on any page, and a request sent from the
// page's own script context with the viewer's token is refused.
func TestConsolePortalViewerHasNoActions(t *testing.T) {
	f := startConsoleFleet(t)
	_, token := f.ac.token("tenant-viewer", "acme")
	b := startBrowser(t)
	b.login(f.url, token)
	b.waitView("portal")
	b.waitVisible(`tr[data-instance="acme/web"]`)
	for _, p := range []page{{"portal", "#/portal", "portal"}, {"instance", "#/instances/acme/web", "instance"}} {
		b.route(p.hash, p.view)
		if p.view == "instance" {
			b.waitTextIs(waitTimeout, "#healthy-count", "1/1")
		}
		if n := b.count(".action"); n != 0 {
			t.Errorf("page %s shows a viewer %d .action elements", p.name, n)
		}
		b.checkPage(p.name, "globex")
		b.screenshot("viewer-" + p.name)
	}

	// The token reads (so a refusal is about the role, not the token) ...
	if r := b.fetchAsPage(http.MethodGet, instancePath("acme", "web")); r.Status != http.StatusOK {
		t.Fatalf("GET of acme/web from the page with the viewer's token: %d %s", r.Status, r.Body)
	}
	// ... and may not act.
	r := b.fetchAsPage(http.MethodPost, instancePath("acme", "web")+"/restart")
	if r.Status != http.StatusForbidden {
		t.Errorf("POST restart from the page with the viewer's token: %d %s, want 403", r.Status, r.Body)
	}
	if evs := f.instanceEvents("acme", "web"); slices.Contains(evs, "restart") {
		t.Errorf("the viewer's request restarted acme/web: %v", evs)
	}
	b.checkAnswersLackAll("acme", "globex")
	b.checkURLsLack(token)
}

// The app's Content-Security-Policy forbids inline scripts, and its page
// has none (nor does anything the browser loads complain of the policy).
func TestConsoleContentSecurityPolicy(t *testing.T) {
	if testing.Short() {
		t.Skip("a server and a browser")
	}
	chromiumPath(t)
	c := StartCluster(t, 1, WithFastRaft())
	s := c.WaitForLeader()
	code, header, body := s.Client().Do(http.MethodGet, "/ui/", nil)
	if code != http.StatusOK {
		t.Fatalf("GET /ui/: %d %s", code, shorten(body))
	}
	checkCSP(t, header.Get("Content-Security-Policy"))
	checkNoInlineScript(t, "/ui/", string(body))
	if !strings.Contains(string(body), `src="/ui/app.js"`) {
		t.Errorf("GET /ui/ does not load /ui/app.js:\n%s", shorten(body))
	}
	code, header, _ = s.Client().Do(http.MethodGet, "/ui/app.js", nil)
	if ct := header.Get("Content-Type"); code != http.StatusOK || !strings.Contains(ct, "javascript") {
		t.Errorf("GET /ui/app.js: %d %s, want 200 and a JavaScript type (modules need one)", code, ct)
	}

	b := startBrowser(t)
	b.open(s.URL() + "/ui/")
	// Without ACLs there is no login: the app starts at once.
	b.waitJS(waitTimeout, "the app started (its login form or its nav)", `(() => {
		const e = `+jsElement+`("#login-token"), n = `+jsElement+`("nav");
		return {ok: e.visible || n.visible, state: "login form " + JSON.stringify(e) + ", nav " + JSON.stringify(n)}; })()`)
	for _, a := range b.rec.settle(t) {
		if strings.HasPrefix(a.MIME, "text/html") {
			checkNoInlineScript(t, a.URL, string(a.Body))
			if a.URL == s.URL()+"/ui/" {
				checkCSP(t, a.Header["content-security-policy"])
			}
		}
	}
	b.checkPage("login")
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, line := range b.console {
		if strings.Contains(line, "Content Security Policy") {
			t.Errorf("the browser reports a violation of the policy: %s", line)
		}
	}
}

// checkCSP checks that a Content-Security-Policy's scripts (script-src, or
// default-src without one) allow no inline script.
func checkCSP(t *testing.T, csp string) {
	t.Helper()
	directives := map[string]string{}
	for _, d := range strings.Split(csp, ";") {
		if f := strings.Fields(d); len(f) > 0 {
			directives[strings.ToLower(f[0])] = strings.Join(f[1:], " ")
		}
	}
	src, ok := directives["script-src"]
	if !ok {
		src, ok = directives["default-src"]
	}
	switch {
	case !ok:
		t.Errorf("Content-Security-Policy %q restricts no scripts (script-src or default-src)", csp)
	case strings.Contains(src, "'unsafe-inline'"):
		t.Errorf("Content-Security-Policy %q allows inline scripts", csp)
	}
}

var scriptTag = regexp.MustCompile(`(?is)<script\b([^>]*)>(.*?)</script\s*>`)

// checkNoInlineScript fails the test if the HTML has a <script> without
// src that holds code.
func checkNoInlineScript(t *testing.T, url, html string) {
	t.Helper()
	for _, m := range scriptTag.FindAllStringSubmatch(html, -1) {
		if !regexp.MustCompile(`(?i)\bsrc\s*=`).MatchString(m[1]) && strings.TrimSpace(m[2]) != "" {
			t.Errorf("%s has an inline script: %s", url, shorten([]byte(m[0])))
		}
	}
}
