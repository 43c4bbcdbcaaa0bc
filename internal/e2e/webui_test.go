package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/returnpath/returnpath/internal/lab/labtest"
	"github.com/returnpath/returnpath/internal/postgres/pgtest"
)

// requireOrSkip skips a test that lacks a tool, except in CI (RETURNPATH_REQUIRE_LAB=1), where
// the tool is required and its absence fails the test.
func requireOrSkip(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv(labtest.EnvRequireLab) == "1" {
		t.Fatalf(format+" (required: "+labtest.EnvRequireLab+"=1)", args...)
	}
	t.Skipf(format, args...)
}

// axeSource is axe-core, fetched by scripts/fetch-axe.sh (make deps) for the tests only.
func axeSource(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../build/axe/axe.min.js")
	if err != nil {
		requireOrSkip(t, "axe-core is missing (run scripts/fetch-axe.sh): %v", err)
	}
	return string(b)
}

// artifacts is where screenshots go: $RETURNPATH_ARTIFACTS, or the test's temporary directory.
func artifacts(t *testing.T) string {
	if d := os.Getenv("RETURNPATH_ARTIFACTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

// newBrowser starts a headless Chromium of its own (its own profile, so its own cookies): one
// per person in the test. The flags keep it off the network this machine does not have.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		requireOrSkip(t, "chromium is not installed (make deps installs it)")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path), chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("headless", true), chromedp.Flag("no-sandbox", true), chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true), chromedp.Flag("no-first-run", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true), chromedp.WindowSize(1280, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // the first run starts the browser, with no timeout
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// run runs browser steps with a bound on them all.
func run(t *testing.T, ctx context.Context, within time.Duration, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	value(t, ctx, within, chromedp.Steps(steps...))
}

// value runs one browser action with a bound and returns its value.
func value[T any](t *testing.T, ctx context.Context, within time.Duration, a chromedp.Action[T]) T {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	v, err := chromedp.Run(tctx, a)
	if err != nil {
		hctx, hcancel := context.WithTimeout(ctx, 5*time.Second)
		defer hcancel()
		html, _ := chromedp.Run(hctx, chromedp.Evaluate[string](`document.documentElement.outerHTML`))
		t.Fatalf("browser: %v\npage:\n%s", err, html)
	}
	return v
}

func css(sel string) chromedp.CSS { return chromedp.CSS(sel) }

// checkA11y runs axe-core on the page and fails on any serious or critical violation.
func checkA11y(t *testing.T, ctx context.Context, axe, page string) {
	t.Helper()
	run(t, ctx, 60*time.Second, chromedp.Evaluate[chromedp.Void](axe))
	out := value(t, ctx, 60*time.Second, chromedp.Evaluate[string](`axe.run(document, {resultTypes: ["violations"]}).then(r => JSON.stringify(
		r.violations.filter(v => v.impact === "serious" || v.impact === "critical").map(v => ({id: v.id, impact: v.impact, help: v.help,
			nodes: v.nodes.map(n => n.target.join(" "))}))))`, chromedp.EvalAwaitPromise))
	var violations []map[string]any
	if err := json.Unmarshal([]byte(out), &violations); err != nil {
		t.Fatalf("axe on %s: %v (%s)", page, err, out)
	}
	for _, v := range violations {
		t.Errorf("axe on %s: %v", page, v)
	}
}

func screenshot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	png := value(t, ctx, 30*time.Second, chromedp.FullScreenshot(100))
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %s", p)
}

// signIn pastes the token into the sign-in form and lands on the changes page.
func signIn(t *testing.T, ctx context.Context, url, tok string) {
	t.Helper()
	run(t, ctx, 30*time.Second,
		chromedp.Navigate(url+"/ui/"),
		chromedp.WaitVisible(css("#token")),
		chromedp.SendKeys(css("#token"), tok),
		chromedp.Submit(css("#token")),
		chromedp.WaitVisible(css("#pending")),
	)
}

// postFromPage posts a form from the page's own script, as a forged form would, and returns
// the answer's status.
func postFromPage(t *testing.T, ctx context.Context, path, body string) int {
	t.Helper()
	return value(t, ctx, 30*time.Second, chromedp.Evaluate[int](fmt.Sprintf(`fetch(%q, {method: "POST", headers: {"Content-Type": "application/x-www-form-urlencoded"}, body: %s}).then(r => r.status)`, path, body), chromedp.EvalAwaitPromise))
}

func tokenOwned(t *testing.T, cfg, name, role, owner string) string {
	t.Helper()
	out, err := exec.Command(binary(t), "token", "create", "--config", cfg, "--name", name, "--role", role, "--owner", owner).CombinedOutput()
	if err != nil {
		t.Fatalf("token create: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1]
}

// reload asks the service to re-read its configuration file.
func reload(t *testing.T, url, admin string) {
	t.Helper()
	req, _ := http.NewRequest("POST", url+"/v1/admin/reload", nil)
	req.Header.Set("Authorization", "Bearer "+admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("reload: %d", resp.StatusCode)
	}
}

// clickApprove clicks Approve once the page's notice, if any, is gone: the notice awaited
// next is then the answer's, not the old page's.
var clickApprove = chromedp.Steps(
	chromedp.Evaluate[chromedp.Void](`document.getElementById("notice")?.remove()`),
	chromedp.Click(css("#approve")),
)

// TestReviewDeskInBrowser is the review done in headless Chromium on the lab: a reviewer signs
// in, reads the pending change's lines for both devices, approves it and watches it become
// applied on real FRR and a real Linux firewall; a viewer sees no buttons and its forged posts
// are refused; the requester's owner cannot approve; a stale plan is shown, not approved;
// every page passes axe-core; signing out and revoking the token end the sessions.
func TestReviewDeskInBrowser(t *testing.T) {
	l := labtest.Require(t)
	axe := axeSource(t)
	dir := artifacts(t)
	dbURL := pgtest.URL(t)
	url := "http://" + l.Service.String() + ":8141"
	cfg := fleetConfig(t, l, dbURL, l.Service.String()+":8141")
	// Adds wait for review here.
	rewrite(t, cfg, "auto_approve: [{action: add}, {action: remove}]", "auto_approve: [{action: remove}]")
	svc := startService(t, cfg, url)
	defer svc.stop()
	defer cleanDevices(t, l)
	boot := tokenOwned(t, cfg, "boot", "bootstrap", "alice")
	alice := tokenOwned(t, cfg, "alice", "reviewer", "alice") // answers for boot: four eyes
	bob := tokenOwned(t, cfg, "bob", "reviewer", "bob")
	vic := tokenOwned(t, cfg, "vic", "viewer", "vic")
	admin := tokenOwned(t, cfg, "root", "admin", "carol")
	register(t, url, boot, 0, 1)
	var h struct {
		Subnet string             `json:"subnet"`
		Change struct{ ID int64 } `json:"change"`
	}
	get(t, url+"/v1/hosts/h0", vic, &h)
	id := h.Change.ID
	changePath := fmt.Sprintf("/ui/changes/%d", id)

	// The reviewer reads the pending change: both devices' lines, in apply order.
	const long = 30 * time.Second
	bobB := newBrowser(t)
	signIn(t, bobB, url, bob)
	cookies := value(t, bobB, long, chromedp.Evaluate[string](`document.cookie`))
	previews := value(t, bobB, long, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll("#pending pre.code")).map(p => p.innerText.trim())`))
	if strings.Contains(cookies, "rp_session") || strings.Contains(cookies, bob) {
		t.Errorf("scripts can read the session cookie: %q", cookies)
	}
	if len(previews) != 2 || !strings.Contains(previews[0], "ip route "+h.Subnet+" 10.10.100.1") || !strings.Contains(previews[1], h.Subnet) ||
		!strings.Contains(previews[1], "via 10.10.20.1") {
		t.Fatalf("pending previews %q, want sw1's vtysh line then fw1's ip route for %s", previews, h.Subnet)
	}
	checkA11y(t, bobB, axe, "changes")
	screenshot(t, bobB, dir, "review-desk-changes.png")

	// A viewer: no buttons; forged posts refused.
	vicB := newBrowser(t)
	signIn(t, vicB, url, vic)
	run(t, vicB, long, chromedp.Navigate(url+changePath), chromedp.WaitVisible(css("#plan-hash")))
	if n := value(t, vicB, long, chromedp.Evaluate[int](`document.querySelectorAll("#approve, #reject, #retry, form[action$='/approve']").length`)); n != 0 {
		t.Errorf("a viewer sees %d review controls", n)
	}
	checkA11y(t, vicB, axe, "change (viewer)")
	csrfOf := `document.querySelector("input[name=csrf]").value`
	for name, body := range map[string]string{
		"viewer's own csrf": `"csrf=" + ` + csrfOf + ` + "&plan_hash=" + document.getElementById("plan-hash").textContent`,
		"no csrf":           `"plan_hash=" + document.getElementById("plan-hash").textContent`,
		"wrong csrf":        `"csrf=00&plan_hash=" + document.getElementById("plan-hash").textContent`,
	} {
		if st := postFromPage(t, vicB, changePath+"/approve", body); st != http.StatusForbidden {
			t.Errorf("viewer's forged approval (%s): %d, want 403", name, st)
		}
	}

	// The requester's owner, a reviewer too, is refused by the four-eyes rule.
	aliceB := newBrowser(t)
	signIn(t, aliceB, url, alice)
	run(t, aliceB, long, chromedp.Navigate(url+changePath), chromedp.WaitVisible(css("#approve")), clickApprove, chromedp.WaitVisible(css("#notice")))
	if notice := value(t, aliceB, long, chromedp.Text(css("#notice"))); !strings.Contains(notice, "four-eyes rule") {
		t.Errorf("the requester's owner approving: notice %q, want the four-eyes refusal", notice)
	}

	// A stale plan: the firewall's next hop moves after bob opened the page.
	run(t, bobB, long, chromedp.Navigate(url+changePath), chromedp.WaitVisible(css("#approve")))
	shown := value(t, bobB, long, chromedp.Text(css("#plan-hash")))
	rewrite(t, cfg, "{device: fw1, next_hop: 10.10.20.1}", "{device: fw1, next_hop: 10.10.20.9}")
	reload(t, url, admin)
	run(t, bobB, long, clickApprove, chromedp.WaitVisible(css("#notice")))
	notice := value(t, bobB, long, chromedp.Text(css("#notice")))
	now := value(t, bobB, long, chromedp.Text(css("#plan-hash")))
	if !strings.Contains(notice, "the plan changed") || now == shown {
		t.Fatalf("approving a stale plan: notice %q, plan %s (shown %s), want the refusal and the new plan", notice, now, shown)
	}
	if text := value(t, bobB, long, chromedp.Evaluate[string](`Array.from(document.querySelectorAll("pre.code")).map(p => p.innerText).join("\n")`)); !strings.Contains(text, "10.10.20.9") {
		t.Errorf("the page after the refusal does not show the new plan: %q", text)
	}
	// Back to the right next hop: the plan bob now sees (10.10.20.9) is stale in turn, and the
	// desk shows the right one, which bob approves.
	rewrite(t, cfg, "{device: fw1, next_hop: 10.10.20.9}", "{device: fw1, next_hop: 10.10.20.1}")
	reload(t, url, admin)
	run(t, bobB, long, clickApprove, chromedp.WaitVisible(css("#notice")))
	if now = value(t, bobB, long, chromedp.Text(css("#plan-hash"))); now != shown {
		t.Fatalf("after the next hop moved back the plan is %s, want the first one %s", now, shown)
	}

	// Approve, then watch the page follow the apply engine to applied without reloading.
	run(t, bobB, long, clickApprove, chromedp.WaitVisible(css(".state .status-approved, .state .status-applying, .state .status-applied")))
	run(t, bobB, 90*time.Second, chromedp.WaitVisible(css(".state .status-applied")))
	if facts := value(t, bobB, long, chromedp.Evaluate[string](`Array.from(document.querySelectorAll(".facts div")).map(d => d.innerText).join("|")`)); !strings.Contains(facts, "Approved by\nbob") {
		t.Errorf("facts after approval: %q", facts)
	}
	checkA11y(t, bobB, axe, "change (applied)")
	verifyInSync(t, url, vic, long)

	// The fabric page: the host, the pool's use, both devices read in sync.
	run(t, bobB, 60*time.Second, chromedp.Navigate(url+"/ui/fabric"), chromedp.WaitVisible(css(".devices-table")))
	verdicts := value(t, bobB, long, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll(".devices-table tbody tr")).map(r => r.innerText.replace(/\s+/g, " "))`))
	if len(verdicts) != 2 || !strings.Contains(verdicts[0], "in sync") || !strings.Contains(verdicts[1], "in sync") {
		t.Errorf("fabric devices %q, want sw1 and fw1 in sync", verdicts)
	}
	checkA11y(t, bobB, axe, "fabric")
	screenshot(t, bobB, dir, "review-desk-fabric.png")
	run(t, bobB, long, chromedp.Navigate(url+changePath), chromedp.WaitVisible(css("#plan-hash")))
	screenshot(t, bobB, dir, "review-desk-change.png")

	// On a phone (390 CSS pixels wide) every page fits the screen's width: long previews
	// scroll inside their own boxes, the page itself never sideways.
	run(t, bobB, long, chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateScale(2)))
	for _, p := range []struct{ path, ready, shot string }{
		{"/ui/changes", "main", "phone-changes.png"},
		{changePath, "#plan-hash", "phone-change.png"},
		{"/ui/fabric", ".devices-table", "phone-fabric.png"},
	} {
		run(t, bobB, long, chromedp.Navigate(url+p.path), chromedp.WaitVisible(css(p.ready)))
		widths := value(t, bobB, long, chromedp.Evaluate[[]int](`[document.documentElement.scrollWidth, window.innerWidth]`))
		if len(widths) != 2 || widths[0] > widths[1] {
			t.Errorf("on a phone %s is %v CSS pixels wide for a %v-pixel screen: it scrolls sideways", p.path, widths, widths[1:])
		}
		screenshot(t, bobB, dir, p.shot)
	}
	run(t, bobB, long, chromedp.EmulateReset())

	// Signing out ends bob's session; revoking vic's token ends hers.
	run(t, bobB, long, chromedp.Click(css("header form button")), chromedp.WaitVisible(css("#token")),
		chromedp.Navigate(url+"/ui/changes"), chromedp.WaitVisible(css("#token")))
	if where := value(t, bobB, long, chromedp.Location()); !strings.Contains(where, "/ui/login") {
		t.Errorf("after signing out /ui/changes shows %s", where)
	}
	checkA11y(t, bobB, axe, "login")
	if out, err := exec.Command(binary(t), "token", "revoke", "--config", cfg, "vic").CombinedOutput(); err != nil {
		t.Fatalf("token revoke: %v\n%s", err, out)
	}
	run(t, vicB, long, chromedp.Navigate(url+"/ui/changes"), chromedp.WaitVisible(css("#token")))
	if where := value(t, vicB, long, chromedp.Location()); !strings.Contains(where, "/ui/login") {
		t.Errorf("after revoking vic's token /ui/changes shows %s", where)
	}
}
