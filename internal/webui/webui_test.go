package webui_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/returnpath/returnpath/internal/fabric"
	"github.com/returnpath/returnpath/internal/postgres"
	"github.com/returnpath/returnpath/internal/postgres/pgtest"
	"github.com/returnpath/returnpath/internal/verify"
	"github.com/returnpath/returnpath/internal/webui"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func inventory() *fabric.Inventory {
	return &fabric.Inventory{
		Pools: []fabric.Pool{{Name: "docker", Prefix: netip.MustParsePrefix("10.210.0.0/16"), SubnetLength: 24},
			{Name: "only6", Prefix: netip.MustParsePrefix("2001:db8:b00::/48"), SubnetLength: 64}},
		Segments: []fabric.Segment{{Name: "rack1", Hosts: netip.MustParsePrefix("10.10.10.0/24"), Pool: "docker",
			RouteVia: []fabric.Hop{
				{Device: "sw1", NextHop: fabric.NextHop{Host: true}},
				{Device: "fw1", NextHop: fabric.NextHop{Addr: netip.MustParseAddr("10.10.20.1")}},
			}},
			// rack6 is IPv6-only (v6only_test.go).
			{Name: "rack6", Hosts6: netip.MustParsePrefix("2001:db8:60::/64"), Pool6: "only6",
				RouteVia: []fabric.Hop{
					{Device: "sw1", NextHop: fabric.NextHop{Host: true}},
					{Device: "fw1", NextHop: fabric.NextHop{Addr: netip.MustParseAddr("2001:db8:20::1")}},
				}}},
		Devices: []fabric.Device{
			{Name: "sw1", Platform: fabric.PlatformFRR, Transport: fabric.TransportSSH, Address: netip.MustParseAddrPort("198.18.0.11:22"), VRF: "default"},
			{Name: "fw1", Platform: fabric.PlatformLinux, Transport: fabric.TransportSSH, Address: netip.MustParseAddrPort("198.18.0.12:22"), VRF: "default"},
		},
	}
}

// env is the desk on a real database with the real change workflow (four eyes, nothing
// auto-approved) and no apply engine.
type env struct {
	db      *postgres.DB
	url     string
	hosts   *postgres.Hosts
	changes *postgres.Changes
	tokens  map[string]string // by token name
	now     time.Time
	// verifier answers the fabric page and remediation; nil: verification not configured.
	verifier webui.Verifier
}

// preview renders like the FRR driver would, without one.
func preview(version string) fabric.PreviewFunc {
	return func(_ string, ops []fabric.RouteOp) ([]string, error) {
		return []string{"ip route " + ops[0].Route.Prefix.String() + " " + ops[0].Route.NextHop.String() + version}, nil
	}
}

func newEnv(t *testing.T, cfg webui.Config) *env {
	t.Helper()
	return newEnvWith(t, cfg, nil)
}

// newEnvWith is newEnv with a verifier for the fabric page.
func newEnvWith(t *testing.T, cfg webui.Config, v webui.Verifier) *env {
	t.Helper()
	ctx := context.Background()
	db := pgtest.Open(t)
	e := &env{db: db, tokens: map[string]string{}, now: time.Now().UTC(), verifier: v}
	db.Now = func() time.Time { return e.now }
	inv := inventory()
	if err := db.SyncInventory(ctx, inv); err != nil {
		t.Fatal(err)
	}
	e.changes = postgres.NewChanges(db, inv, preview(""), fabric.ApprovalPolicy{FourEyes: true})
	e.hosts = postgres.NewHosts(db, inv)
	e.hosts.SetChanges(e.changes)
	for _, tok := range []fabric.Token{
		{Name: "boot", Role: fabric.RoleBootstrap, Owner: "alice"},
		{Name: "alice", Role: fabric.RoleReviewer, Owner: "alice"},
		{Name: "bob", Role: fabric.RoleReviewer, Owner: "bob"},
		{Name: "vic", Role: fabric.RoleViewer, Owner: "vic"},
	} {
		secret, err := db.CreateToken(ctx, "test", tok, nil)
		if err != nil {
			t.Fatal(err)
		}
		e.tokens[tok.Name] = secret
	}
	e.serve(t, cfg, e.changes)
	return e
}

// serve mounts a desk on a router, as cmd/returnpath mounts it on the API's.
func (e *env) serve(t *testing.T, cfg webui.Config, changes webui.Changes) {
	t.Helper()
	ui, err := webui.New(cfg, inventory(), e.db, changes, e.hosts, e.verifier, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	r.Mount(webui.Prefix, ui.Handler())
	ts := httptest.NewServer(r)
	t.Cleanup(ts.Close)
	e.url = ts.URL
}

// register files a pending add change, requested by the bootstrap token of alice.
func (e *env) register(t *testing.T, name, addr string) fabric.Change {
	t.Helper()
	ctx := context.Background()
	boot := fabric.Actor{Name: "boot", Role: fabric.RoleBootstrap, Owner: "alice"}
	h, _, err := e.hosts.Register(ctx, boot, fabric.Registration{Name: name, Address: netip.MustParseAddr(addr)})
	if err != nil {
		t.Fatal(err)
	}
	id, _, _, ok := e.changes.HostChange(ctx, h.ID)
	if !ok {
		t.Fatal("no change filed")
	}
	c, err := e.changes.Change(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// browser is a client with a cookie jar that does not follow redirects.
type browser struct {
	c   *http.Client
	url string
}

func (e *env) browser(t *testing.T) *browser {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	return &browser{url: e.url, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browser) get(t *testing.T, path string) (*http.Response, string) {
	t.Helper()
	return b.do(t, "GET", path, nil)
}

func (b *browser) post(t *testing.T, path string, form url.Values, header ...string) (*http.Response, string) {
	t.Helper()
	return b.do(t, "POST", path, form, header...)
}

func (b *browser) do(t *testing.T, method, path string, form url.Values, header ...string) (*http.Response, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.url+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp, string(out)
}

var hiddenRE = regexp.MustCompile(`name="(login|csrf|plan_hash)" value="([^"]*)"`)

// hidden returns the value of a hidden form field of a page (the first of that name).
func hidden(t *testing.T, page, name string) string {
	t.Helper()
	for _, m := range hiddenRE.FindAllStringSubmatch(page, -1) {
		if m[1] == name {
			return m[2]
		}
	}
	t.Fatalf("no hidden field %q in the page", name)
	return ""
}

// login signs b in with the named token and returns the changes page it lands on.
func (e *env) login(t *testing.T, b *browser, token string) string {
	t.Helper()
	_, form := b.get(t, "/ui/login")
	resp, body := b.post(t, "/ui/login", url.Values{"login": {hidden(t, form, "login")}, "token": {e.tokens[token]}, "next": {"/ui/changes"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/changes" {
		t.Fatalf("sign-in as %s: %d %s\n%s", token, resp.StatusCode, resp.Header.Get("Location"), body)
	}
	resp, page := b.get(t, "/ui/changes")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("changes page after sign-in: %d", resp.StatusCode)
	}
	return page
}

func cookieNamed(resp *http.Response, name string) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func TestSecurityHeadersOnEveryPage(t *testing.T) {
	t.Parallel()
	e := newEnv(t, webui.Config{})
	b := e.browser(t)
	for _, path := range []string{"/ui/login", "/ui/changes", "/ui/static/desk.css", "/ui/nowhere"} {
		resp, body := b.get(t, path)
		h := resp.Header
		if path == "/ui/static/desk.css" && (resp.StatusCode != http.StatusOK || !strings.Contains(body, ":focus-visible")) {
			t.Errorf("%s: %d, want the stylesheet", path, resp.StatusCode)
		}
		if got, want := h.Get("Content-Security-Policy"), "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"; got != want {
			t.Errorf("%s: Content-Security-Policy = %q, want %q", path, got, want)
		}
		if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("%s: X-Content-Type-Options %q, Referrer-Policy %q", path, h.Get("X-Content-Type-Options"), h.Get("Referrer-Policy"))
		}
	}
	if resp, _ := b.get(t, "/ui/changes"); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/ui/login?next=") {
		t.Errorf("changes page signed out: %d %s, want a redirect to the sign-in form", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// TestLoginCookie: the cookie holds a session id (never the token), HttpOnly, SameSite=Strict,
// scoped to /ui/, Secure when the service serves TLS.
func TestLoginCookie(t *testing.T) {
	t.Parallel()
	for _, secure := range []bool{false, true} {
		e := newEnv(t, webui.Config{Secure: secure, SessionTTL: time.Hour})
		b := e.browser(t)
		_, form := b.get(t, "/ui/login")
		resp, _ := b.post(t, "/ui/login", url.Values{"login": {hidden(t, form, "login")}, "token": {e.tokens["bob"]}})
		c := cookieNamed(resp, "rp_session")
		if resp.StatusCode != http.StatusSeeOther || c == nil {
			t.Fatalf("sign-in: %d, cookies %v", resp.StatusCode, resp.Cookies())
		}
		if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/ui/" || c.Secure != secure {
			t.Errorf("secure %v: cookie %+v, want HttpOnly, SameSite=Strict, Path=/ui/, Secure %v", secure, c, secure)
		}
		if c.Value == e.tokens["bob"] || strings.Contains(c.Value, e.tokens["bob"]) || len(c.Value) < 40 {
			t.Errorf("the cookie %q is not a fresh session id", c.Value)
		}
		if !c.Expires.After(time.Now().Add(50*time.Minute)) || c.Expires.After(time.Now().Add(61*time.Minute)) {
			t.Errorf("cookie expires %s, want in ui.session_ttl (1h)", c.Expires)
		}
	}
}

func TestLoginRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t, webui.Config{})
	b := e.browser(t)
	_, form := b.get(t, "/ui/login")
	login := hidden(t, form, "login")
	for _, tc := range []struct {
		name string
		form url.Values
		want int
	}{
		{name: "no login value", form: url.Values{"token": {e.tokens["bob"]}}, want: http.StatusForbidden},
		{name: "wrong login value", form: url.Values{"login": {"x"}, "token": {e.tokens["bob"]}}, want: http.StatusForbidden},
		{name: "unknown token", form: url.Values{"login": {"LOGIN"}, "token": {"rp_nope"}}, want: http.StatusUnauthorized},
		{name: "empty token", form: url.Values{"login": {"LOGIN"}, "token": {""}}, want: http.StatusUnprocessableEntity},
	} {
		if tc.form.Get("login") == "LOGIN" {
			tc.form.Set("login", login) // the value of the form this browser holds now
		}
		resp, body := b.post(t, "/ui/login", tc.form)
		if resp.StatusCode != tc.want || cookieNamed(resp, "rp_session") != nil {
			t.Errorf("%s: %d (cookie %v), want %d without a session", tc.name, resp.StatusCode, cookieNamed(resp, "rp_session"), tc.want)
		}
		if strings.Contains(body, e.tokens["bob"]) {
			t.Errorf("%s: the page shows the token", tc.name)
		}
		_, form = b.get(t, "/ui/login") // each answer sets a new login value
		login = hidden(t, form, "login")
	}
	// The next page is a desk page or the changes page: never another site.
	resp, _ := b.post(t, "/ui/login", url.Values{"login": {login}, "token": {e.tokens["bob"]}, "next": {"//evil.example/ui/"}})
	if resp.Header.Get("Location") != "/ui/changes" {
		t.Errorf("sign-in with next=//evil.example: Location %q", resp.Header.Get("Location"))
	}
}

// TestReviewerApprovesInTheDesk: the pending change shows both devices' lines in apply order;
// the reviewer approves the plan hash the page showed.
func TestReviewerApprovesInTheDesk(t *testing.T) {
	t.Parallel()
	e := newEnv(t, webui.Config{})
	c := e.register(t, "web-1", "10.10.10.7")
	b := e.browser(t)
	list := e.login(t, b, "bob")
	sw := strings.Index(list, `<h4 id="c`+itoa(c.ID)+`-d0">sw1`)
	fw := strings.Index(list, `<h4 id="c`+itoa(c.ID)+`-d1">fw1`)
	if sw < 0 || fw < sw {
		t.Fatalf("the changes page does not show sw1 then fw1 for change %d:\n%s", c.ID, list)
	}
	if !strings.Contains(list, `<span class="t-kw">ip</span>`) || !strings.Contains(list, `<span class="t-pfx">`+c.Ops[0].Op.Route.Prefix.String()+`</span>`) {
		t.Errorf("the preview is not highlighted")
	}
	_, page := b.get(t, "/ui/changes/"+itoa(c.ID))
	if hidden(t, page, "plan_hash") != c.PlanHash {
		t.Fatalf("the approve form quotes %q, want %q", hidden(t, page, "plan_hash"), c.PlanHash)
	}
	resp, _ := b.post(t, "/ui/changes/"+itoa(c.ID)+"/approve", url.Values{"csrf": {hidden(t, page, "csrf")}, "plan_hash": {c.PlanHash}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("approve: %d", resp.StatusCode)
	}
	got, err := e.changes.Change(context.Background(), c.ID)
	if err != nil || got.Status != fabric.ChangeApproved || got.ApprovedBy != "bob" {
		t.Fatalf("after approval: %s by %q (%v), want approved by bob", got.Status, got.ApprovedBy, err)
	}
	_, page = b.get(t, "/ui/changes/"+itoa(c.ID)+"?done=approved")
	if !strings.Contains(page, "Approved: the apply engine takes it from here.") || strings.Contains(page, `id="approve"`) {
		t.Errorf("the change page after approval shows no notice, or still an Approve button")
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestForgedPostsRefused: no token, a wrong one, a cross-site post and a viewer's session
// change nothing.
func TestForgedPostsRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, webui.Config{})
	c := e.register(t, "web-1", "10.10.10.7")
	bob, vic := e.browser(t), e.browser(t)
	e.login(t, bob, "bob")
	e.login(t, vic, "vic")
	_, page := bob.get(t, "/ui/changes/"+itoa(c.ID))
	csrf := hidden(t, page, "csrf")
	_, vpage := vic.get(t, "/ui/changes/"+itoa(c.ID))
	if strings.Contains(vpage, `id="approve"`) || strings.Contains(vpage, `id="reject"`) || strings.Contains(vpage, "/approve") {
		t.Errorf("a viewer sees review buttons")
	}
	path := "/ui/changes/" + itoa(c.ID) + "/approve"
	for _, tc := range []struct {
		name   string
		b      *browser
		form   url.Values
		header []string
	}{
		{name: "no csrf", b: bob, form: url.Values{"plan_hash": {c.PlanHash}}},
		{name: "wrong csrf", b: bob, form: url.Values{"csrf": {strings.Repeat("0", len(csrf))}, "plan_hash": {c.PlanHash}}},
		{name: "cross-site", b: bob, form: url.Values{"csrf": {csrf}, "plan_hash": {c.PlanHash}}, header: []string{"Sec-Fetch-Site", "cross-site"}},
		{name: "viewer with its own csrf", b: vic, form: url.Values{"csrf": {hidden(t, vpage, "csrf")}, "plan_hash": {c.PlanHash}}},
		{name: "viewer with bob's csrf", b: vic, form: url.Values{"csrf": {csrf}, "plan_hash": {c.PlanHash}}},
	} {
		resp, _ := tc.b.post(t, path, tc.form, tc.header...)
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s: %d, want 403", tc.name, resp.StatusCode)
		}
	}
	// Signed out altogether.
	anon := e.browser(t)
	if resp, _ := anon.post(t, path, url.Values{"csrf": {csrf}, "plan_hash": {c.PlanHash}}); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("signed out: %d, want 401", resp.StatusCode)
	}
	if got, _ := e.changes.Change(context.Background(), c.ID); got.Status != fabric.ChangePending {
		t.Errorf("after forged posts the change is %s, want pending", got.Status)
	}
}

// TestFourEyesRefusalShown: alice answers for the token that registered the host; her
// reviewer session is refused by the change service, and the page says why.
func TestFourEyesRefusalShown(t *testing.T) {
	t.Parallel()
	e := newEnv(t, webui.Config{})
	c := e.register(t, "web-1", "10.10.10.7")
	b := e.browser(t)
	e.login(t, b, "alice")
	_, page := b.get(t, "/ui/changes/"+itoa(c.ID))
	resp, body := b.post(t, "/ui/changes/"+itoa(c.ID)+"/approve", url.Values{"csrf": {hidden(t, page, "csrf")}, "plan_hash": {c.PlanHash}})
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "four-eyes rule") || !strings.Contains(body, `role="alert"`) {
		t.Errorf("approval by the requester's owner: %d, want 403 with the four-eyes message as an alert:\n%s", resp.StatusCode, body)
	}
	if got, _ := e.changes.Change(context.Background(), c.ID); got.Status != fabric.ChangePending {
		t.Errorf("the change is %s, want pending", got.Status)
	}
}

// TestStalePlanShownNotApproved: the inventory's rendering changed after the page was shown;
// approving the old hash stores the new plan and shows it instead of approving.
func TestStalePlanShownNotApproved(t *testing.T) {
	t.Parallel()
	e := newEnv(t, webui.Config{})
	c := e.register(t, "web-1", "10.10.10.7")
	// The desk's change service now renders differently (as after a driver or VRF change).
	moved := postgres.NewChanges(e.db, inventory(), preview(" tag 7"), fabric.ApprovalPolicy{FourEyes: true})
	e.serve(t, webui.Config{}, moved)
	b := e.browser(t)
	e.login(t, b, "bob")
	_, page := b.get(t, "/ui/changes/"+itoa(c.ID))
	resp, body := b.post(t, "/ui/changes/"+itoa(c.ID)+"/approve", url.Values{"csrf": {hidden(t, page, "csrf")}, "plan_hash": {c.PlanHash}})
	if resp.StatusCode != http.StatusConflict || !strings.Contains(body, "the plan changed since this page showed it") {
		t.Fatalf("approving a stale plan: %d:\n%s", resp.StatusCode, body)
	}
	got, _ := e.changes.Change(context.Background(), c.ID)
	if got.Status != fabric.ChangePending || got.PlanHash == c.PlanHash {
		t.Fatalf("after the stale approval: %s with hash %s (was %s), want pending with a new plan", got.Status, got.PlanHash, c.PlanHash)
	}
	if hidden(t, body, "plan_hash") != got.PlanHash || !strings.Contains(body, "tag <span class=\"t-num\">7</span>") {
		t.Errorf("the page does not show the new plan %s", got.PlanHash)
	}
	// A hash never this change's is refused too.
	resp, body = b.post(t, "/ui/changes/"+itoa(c.ID)+"/approve", url.Values{"csrf": {hidden(t, page, "csrf")}, "plan_hash": {"0123"}})
	if resp.StatusCode != http.StatusConflict || !strings.Contains(body, "Not approved") {
		t.Errorf("approving a wrong hash: %d", resp.StatusCode)
	}
}

func TestRejectNeedsReason(t *testing.T) {
	t.Parallel()
	e := newEnv(t, webui.Config{})
	c := e.register(t, "web-1", "10.10.10.7")
	b := e.browser(t)
	e.login(t, b, "bob")
	_, page := b.get(t, "/ui/changes/"+itoa(c.ID))
	csrf := hidden(t, page, "csrf")
	resp, body := b.post(t, "/ui/changes/"+itoa(c.ID)+"/reject", url.Values{"csrf": {csrf}, "reason": {"  "}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, "a reason is required") {
		t.Errorf("reject without a reason: %d", resp.StatusCode)
	}
	resp, _ = b.post(t, "/ui/changes/"+itoa(c.ID)+"/reject", url.Values{"csrf": {csrf}, "reason": {"<script>alert(1)</script> wrong rack"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("reject: %d", resp.StatusCode)
	}
	_, page = b.get(t, "/ui/changes/"+itoa(c.ID))
	if strings.Contains(page, "<script>alert") || !strings.Contains(page, "&lt;script&gt;alert(1)&lt;/script&gt; wrong rack") {
		t.Errorf("the reason is not escaped on the page")
	}
}

// TestDeviceTextEscaped: what a device printed reaches the page as text, never as markup.
func TestDeviceTextEscaped(t *testing.T) {
	t.Parallel()
	e := newEnv(t, webui.Config{})
	c := e.register(t, "web-1", "10.10.10.7")
	if _, err := e.db.Pool.Exec(context.Background(), `UPDATE change_ops SET error = $2, output = $2 WHERE change_id = $1`, c.ID,
		`% Unknown command: <script>alert("x")</script><img src=x onerror=alert(1)>`); err != nil {
		t.Fatal(err)
	}
	b := e.browser(t)
	e.login(t, b, "vic")
	_, page := b.get(t, "/ui/changes/"+itoa(c.ID))
	if strings.Contains(page, "<script>alert") || strings.Contains(page, "<img src=x") || !strings.Contains(page, "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;") {
		t.Errorf("device text is not escaped")
	}
}

// TestSessionEnds: by expiry, by signing out, and by the token's revocation.
func TestSessionEnds(t *testing.T) {
	t.Parallel()
	e := newEnv(t, webui.Config{SessionTTL: time.Hour})
	signedOut := func(b *browser) bool {
		resp, _ := b.get(t, "/ui/changes")
		return resp.StatusCode == http.StatusSeeOther && strings.HasPrefix(resp.Header.Get("Location"), "/ui/login")
	}
	b := e.browser(t)
	e.login(t, b, "bob")
	e.now = e.now.Add(time.Hour + time.Second)
	if !signedOut(b) {
		t.Errorf("the session outlived ui.session_ttl")
	}

	page := e.login(t, b, "bob")
	resp, _ := b.post(t, "/ui/logout", url.Values{"csrf": {hidden(t, page, "csrf")}})
	if c := cookieNamed(resp, "rp_session"); resp.StatusCode != http.StatusSeeOther || c == nil || c.MaxAge >= 0 {
		t.Errorf("sign-out: %d, cookie %v, want the cookie cleared", resp.StatusCode, c)
	}
	if !signedOut(b) {
		t.Errorf("signed in after signing out")
	}

	e.login(t, b, "vic")
	if err := e.db.RevokeToken(context.Background(), "test", "vic"); err != nil {
		t.Fatal(err)
	}
	if !signedOut(b) {
		t.Errorf("the session outlived its token's revocation")
	}
}

// TestTrustedProxy: the proxy's header signs its user in with the mapped role, only from the
// proxy's addresses.
func TestTrustedProxy(t *testing.T) {
	t.Parallel()
	e := newEnv(t, webui.Config{Proxy: &webui.TrustedProxy{Header: "X-Forwarded-Email", From: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		RoleMap: map[string]fabric.Role{"carol@example.org": fabric.RoleReviewer}}})
	b := e.browser(t)
	resp, page := b.do(t, "GET", "/ui/changes", nil, "X-Forwarded-Email", "carol@example.org")
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, `<strong id="actor">carol@example.org</strong> <span class="role">(reviewer)</span>`) {
		t.Fatalf("through the proxy: %d", resp.StatusCode)
	}
	if resp, _ := b.do(t, "GET", "/ui/changes", nil, "X-Forwarded-Email", "mallory@example.org"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("an unmapped user with no default role: %d, want 403", resp.StatusCode)
	}

	// The same header from elsewhere is ignored.
	e2 := newEnv(t, webui.Config{Proxy: &webui.TrustedProxy{Header: "X-Forwarded-Email", From: []netip.Prefix{netip.MustParsePrefix("192.0.2.10/32")},
		DefaultRole: fabric.RoleAdmin}})
	b2 := e2.browser(t)
	if resp, _ := b2.do(t, "GET", "/ui/changes", nil, "X-Forwarded-Email", "carol@example.org"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("the header from an untrusted address: %d, want a redirect to sign in", resp.StatusCode)
	}
}

// TestChangesFilters: filters by status, segment and host; a bad one names the parameter.
func TestChangesFilters(t *testing.T) {
	t.Parallel()
	e := newEnv(t, webui.Config{})
	c1 := e.register(t, "web-1", "10.10.10.7")
	c2 := e.register(t, "web-2", "10.10.10.8")
	b := e.browser(t)
	e.login(t, b, "vic")
	_, page := b.get(t, "/ui/changes?host=web-2")
	if !strings.Contains(page, `id="change-`+itoa(c2.ID)+`"`) || strings.Contains(page, `id="change-`+itoa(c1.ID)+`"`) {
		t.Errorf("host filter: wrong changes listed")
	}
	_, page = b.get(t, "/ui/changes?status=applied&segment=rack1")
	if strings.Contains(page, `id="change-`) {
		t.Errorf("status filter applied: lists pending changes")
	}
	resp, body := b.get(t, "/ui/changes?segment=nope")
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, `no segment named &#34;nope&#34;`) {
		t.Errorf("unknown segment: %d", resp.StatusCode)
	}
	if resp, _ := b.get(t, "/ui/changes?status=bogus"); resp.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("unknown status: %d", resp.StatusCode)
	}
}

// TestLiveStreamAnnouncesChange: a stream opened with a page's fingerprint says refresh once
// the change it shows moves.
func TestLiveStreamAnnouncesChange(t *testing.T) {
	t.Parallel()
	e := newEnv(t, webui.Config{Recheck: 50 * time.Millisecond})
	c := e.register(t, "web-1", "10.10.10.7")
	b := e.browser(t)
	e.login(t, b, "bob")
	_, page := b.get(t, "/ui/changes/"+itoa(c.ID))
	m := regexp.MustCompile(`data-live="([^"]+)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatal("the pending change's page has no live stream")
	}
	live := strings.ReplaceAll(m[1], "&amp;", "&")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", e.url+live, nil)
	resp, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("live: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	bob := fabric.Actor{Name: "bob", Role: fabric.RoleReviewer, Owner: "bob"}
	if _, err := e.changes.Approve(context.Background(), bob, c.ID, c.PlanHash); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	var got string
	for !strings.Contains(got, "event: refresh") {
		n, err := resp.Body.Read(buf)
		if err != nil {
			t.Fatalf("stream ended before a refresh: %v (%q)", err, got)
		}
		got += string(buf[:n])
	}
}

// TestRetryInTheDesk: a rolled-back change shows Retry to a reviewer and not to a viewer;
// the reviewer's retry goes through the change service and approves the change again.
func TestRetryInTheDesk(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, webui.Config{})
	c := e.register(t, "web-1", "10.10.10.7")
	bobActor := fabric.Actor{Name: "bob", Role: fabric.RoleReviewer, Owner: "bob"}
	if _, err := e.changes.Approve(ctx, bobActor, c.ID, c.PlanHash); err != nil {
		t.Fatal(err)
	}
	// As the apply engine leaves a change whose device refused and whose undo worked.
	if _, err := e.db.Pool.Exec(ctx, `UPDATE changes SET status = 'rolled_back' WHERE id = $1`, c.ID); err != nil {
		t.Fatal(err)
	}
	bob, vic := e.browser(t), e.browser(t)
	e.login(t, bob, "bob")
	e.login(t, vic, "vic")
	path := "/ui/changes/" + itoa(c.ID)
	_, vpage := vic.get(t, path)
	if strings.Contains(vpage, `id="retry"`) {
		t.Errorf("a viewer sees the Retry button")
	}
	if resp, _ := vic.post(t, path+"/retry", url.Values{"csrf": {hidden(t, vpage, "csrf")}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a viewer's retry: %d, want 403", resp.StatusCode)
	}
	_, page := bob.get(t, path)
	if !strings.Contains(page, `id="retry"`) {
		t.Fatalf("a reviewer sees no Retry button on a rolled-back change")
	}
	resp, _ := bob.post(t, path+"/retry", url.Values{"csrf": {hidden(t, page, "csrf")}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("retry: %d", resp.StatusCode)
	}
	if got, err := e.changes.Change(ctx, c.ID); err != nil || got.Status != fabric.ChangeApproved {
		t.Fatalf("after retry the change is %s (%v), want approved", got.Status, err)
	}
	if _, page = bob.get(t, path); strings.Contains(page, `id="retry"`) {
		t.Errorf("the Retry button is still shown on the approved change")
	}
}

// driftingVerifier reports sw1 holding a route of the pool that no host owns.
type driftingVerifier struct{ stray verify.Route }

func (v driftingVerifier) Verify(_ context.Context, f verify.Filter) (verify.Report, error) {
	empty := func(name string) verify.Device {
		return verify.Device{Device: name, Status: verify.StatusOK, ReadAt: time.Now(), Missing: []verify.Route{},
			Unexpected: []verify.Route{}, WrongNextHop: []verify.WrongNextHop{}, InFlight: []verify.Route{}}
	}
	sw, fw := empty("sw1"), empty("fw1")
	sw.Status, sw.Unexpected = verify.StatusDrift, []verify.Route{v.stray}
	rep := verify.Report{CheckedAt: time.Now()}
	for _, d := range []verify.Device{sw, fw} {
		if f.Device == "" || f.Device == d.Device {
			rep.Devices = append(rep.Devices, d)
		}
	}
	return rep, nil
}

// TestProposeRemediationInTheDesk: the fabric page shows sw1's drift; a reviewer gets a
// "Propose remediation" button that files a remediate change deleting the stray route (pending
// review, nothing sent); a viewer gets no button and cannot post one.
func TestProposeRemediationInTheDesk(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	stray := verify.Route{VRF: "default", Prefix: netip.MustParsePrefix("10.210.99.0/24"), NextHop: netip.MustParseAddr("10.10.10.99")}
	e := newEnvWith(t, webui.Config{}, driftingVerifier{stray: stray})
	bob, vic := e.browser(t), e.browser(t)
	e.login(t, bob, "bob")
	e.login(t, vic, "vic")
	_, vpage := vic.get(t, "/ui/fabric")
	if !strings.Contains(vpage, "1 unexpected") || strings.Contains(vpage, "Propose remediation") {
		t.Errorf("the viewer's fabric page: want sw1's drift shown and no remediation button")
	}
	if resp, _ := vic.post(t, "/ui/fabric/remediate", url.Values{"csrf": {hidden(t, vpage, "csrf")}, "device": {"sw1"}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a viewer's remediation: %d, want 403", resp.StatusCode)
	}
	_, page := bob.get(t, "/ui/fabric")
	if !strings.Contains(page, "Propose remediation") {
		t.Fatalf("a reviewer sees no Propose remediation button for sw1's drift")
	}
	csrf := hidden(t, page, "csrf")
	if resp, body := bob.post(t, "/ui/fabric/remediate", url.Values{"csrf": {csrf}, "device": {"sw9"}}); resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, "sw9") {
		t.Errorf("remediation of an unknown device: %d, want 422 naming it", resp.StatusCode)
	}
	resp, _ := bob.post(t, "/ui/fabric/remediate", url.Values{"csrf": {csrf}, "device": {"sw1"}})
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(resp.Header.Get("Location"), "done=remediation") {
		t.Fatalf("remediate: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	list, _, err := e.changes.List(ctx, fabric.ChangeFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, c := range list {
		if c.Kind != fabric.ChangeRemediate {
			continue
		}
		found = true
		if c.Status != fabric.ChangePending || len(c.Ops) != 1 || c.Ops[0].Device != "sw1" || c.Ops[0].Op.Action != fabric.ActionDelete || c.Ops[0].Op.Route.Prefix != stray.Prefix {
			t.Errorf("remediation change %+v: want one pending delete of %s on sw1", c, stray.Prefix)
		}
	}
	if !found {
		t.Fatal("no remediate change filed")
	}
}
