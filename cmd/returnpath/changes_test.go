package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/returnpath/returnpath/internal/client"
	"github.com/returnpath/returnpath/internal/httpapi/apitest"
)

var fakeAt = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

func strp(s string) *string { return &s }

func fakeOp(device, action, status string, errText *string) client.ChangeOp {
	op := client.ChangeOp{Device: device, Action: action, Prefix: netip.MustParsePrefix("10.210.0.0/24"), VRF: "default",
		Status: status, Error: errText}
	switch device {
	case "sw1":
		op.NextHop = netip.MustParseAddr("10.10.10.101")
		op.Preview = "ip route 10.210.0.0/24 10.10.10.101"
		if action == "delete" {
			op.Preview = "no " + op.Preview
		}
	default:
		op.NextHop = netip.MustParseAddr("10.10.20.1")
		op.Preview = "ip route replace 10.210.0.0/24 via 10.10.20.1 proto 202"
		if action == "delete" {
			op.Preview = "ip route del 10.210.0.0/24 via 10.10.20.1 proto 202"
		}
	}
	if errText != nil {
		op.Attempts = 1
	}
	return op
}

// newFakeChange is a change as the contract shows it, with every array non-nil.
func newFakeChange(id int64, kind, status string, approvedBy, reason *string, ops []client.ChangeOp) *client.Change {
	if ops == nil {
		ops = []client.ChangeOp{}
	}
	return &client.Change{ID: id, Kind: kind, Status: status, RequestedBy: "boot", ApprovedBy: approvedBy, Reason: reason,
		Host:      &client.ChangeHost{Name: "docker-01", Address: netip.MustParseAddr("10.10.10.101"), Subnet: netip.MustParsePrefix("10.210.0.0/24")},
		CreatedAt: fakeAt, UpdatedAt: fakeAt, PlanHash: "sha256:" + strconv.FormatInt(id, 10) + kind, Ops: ops,
		Events: []client.Event{{At: fakeAt, What: "requested", Detail: "host docker-01 registered"}}}
}

// fakeChange is newFakeChange as JSON.
func fakeChange(id int64, kind, status string, approvedBy, reason *string, ops []client.ChangeOp) string {
	b, err := json.Marshal(newFakeChange(id, kind, status, approvedBy, reason, ops))
	if err != nil {
		panic(err)
	}
	return string(b)
}

// fakeChanges implements the contract's /v1/changes endpoints in memory, until the real ones
// land; TestFakeChangesMatchesContract holds it to api/openapi.yaml.
type fakeChanges struct {
	mu       sync.Mutex
	changes  map[int64]*client.Change
	pageSize int
	hashes   []string // plan hashes quoted by approvals
	// replanOnRetry marks changes whose next retry finds the plan changed.
	replanOnRetry map[int64]bool
	// replanOnApprove marks changes whose next approval finds the plan changed.
	replanOnApprove map[int64]bool
}

func newFakeChanges() *fakeChanges {
	add := []client.ChangeOp{fakeOp("sw1", "add", "pending", nil), fakeOp("fw1", "add", "pending", nil)}
	del := []client.ChangeOp{fakeOp("fw1", "delete", "applied", nil), fakeOp("sw1", "delete", "failed", strp("% Unknown command"))}
	f := &fakeChanges{changes: map[int64]*client.Change{}, pageSize: 2, replanOnRetry: map[int64]bool{}, replanOnApprove: map[int64]bool{}}
	for _, ch := range []*client.Change{
		newFakeChange(1, "add", "applied", strp("alice"), nil, add),
		newFakeChange(2, "add", "rejected", strp("alice"), strp("not this rack"), add),
		newFakeChange(3, "remove", "failed", strp("alice"), strp("sw1 refused"), del),
		newFakeChange(4, "add", "pending", nil, nil, add),
		newFakeChange(5, "add", "pending", nil, nil, add),
	} {
		f.changes[ch.ID] = ch
	}
	f.changes[5].Host.Name = "docker-05"
	return f
}

func (f *fakeChanges) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer rp_reviewer" {
		writeProblem(w, 401, "unauthorized", "", "no valid token")
		return
	}
	if r.Method == "GET" && r.URL.Path == "/v1/changes" {
		f.list(w, r)
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/v1/changes/")
	if !ok {
		writeProblem(w, 404, "not_found", "", "no route")
		return
	}
	idText, action, _ := strings.Cut(rest, "/")
	id, err := strconv.ParseInt(idText, 10, 64)
	if err != nil {
		writeProblem(w, 422, "invalid", "id", "not a number")
		return
	}
	ch := f.changes[id]
	if ch == nil {
		writeProblem(w, 404, "not_found", "", "no change "+idText)
		return
	}
	var body map[string]string
	if r.Method == "POST" && action != "retry" {
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			writeProblem(w, 400, "invalid", "", "body is not JSON")
			return
		}
	}
	event := func(what, detail string) {
		ch.Events = append(ch.Events, client.Event{At: fakeAt.Add(time.Minute), What: what, Detail: detail})
	}
	switch {
	case r.Method == "GET" && action == "":
	case r.Method == "POST" && action == "approve":
		f.hashes = append(f.hashes, body["plan_hash"])
		switch {
		case ch.Status != client.ChangePending:
			writeProblem(w, 409, "conflict", "", "change is "+ch.Status)
			return
		case f.replanOnApprove[id]:
			// As the server does when the inventory moved: the new plan is stored and shown.
			delete(f.replanOnApprove, id)
			ch.PlanHash += "-new"
			writeStale(w, client.ReasonPlanChanged, "the plan changed", ch)
			return
		case body["plan_hash"] != ch.PlanHash:
			writeStale(w, client.ReasonPlanHashMismatch, "not this change's plan hash", ch)
			return
		}
		ch.Status, ch.ApprovedBy = client.ChangeApproved, strp("reviewer")
		event("approved", "by reviewer")
	case r.Method == "POST" && action == "reject":
		if body["reason"] == "" {
			writeProblem(w, 422, "invalid", "reason", "is required")
			return
		}
		if ch.Status != client.ChangePending {
			writeProblem(w, 409, "conflict", "", "change is "+ch.Status)
			return
		}
		ch.Status, ch.ApprovedBy, ch.Reason = client.ChangeRejected, strp("reviewer"), strp(body["reason"])
		event("rejected", body["reason"])
	case r.Method == "POST" && action == "retry":
		if ch.Status != client.ChangeFailed && ch.Status != client.ChangeRolledBack {
			writeProblem(w, 409, "conflict", "", "only failed or rolled_back changes can be retried; this one is "+ch.Status)
			return
		}
		if f.replanOnRetry[id] {
			// As the server does when the inventory moved: the new plan is stored and shown.
			delete(f.replanOnRetry, id)
			ch.PlanHash += "-new"
			writeStale(w, client.ReasonPlanChanged, "the plan changed", ch)
			return
		}
		ch.Status = client.ChangeApproved
		event("retried", "by reviewer")
	default:
		writeProblem(w, 404, "not_found", "", "no route")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(ch)
}

// writeStale answers as the server refuses a plan: 409 on plan_hash, the change in extra.
func writeStale(w http.ResponseWriter, reason, detail string, ch *client.Change) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(409)
	_ = json.NewEncoder(w).Encode(map[string]any{"type": "urn:returnpath:problem:conflict", "title": "Conflict", "status": 409,
		"code": "conflict", "field": "plan_hash", "reason": reason, "detail": detail, "extra": ch})
}

// list pages newest first; the page size is capped small so that paging is exercised.
func (f *fakeChanges) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := f.pageSize
	if n, err := strconv.Atoi(q.Get("limit")); err == nil && n < limit {
		limit = n
	}
	after := int64(1 << 62)
	if a := q.Get("after"); a != "" {
		after, _ = strconv.ParseInt(a, 10, 64)
	}
	var ids []int64
	for id := range f.changes {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	slices.Reverse(ids)
	page := struct {
		Items []*client.Change `json:"items"`
		Next  *string          `json:"next"`
	}{Items: []*client.Change{}}
	for _, id := range ids {
		ch := f.changes[id]
		if id >= after || q.Get("status") != "" && ch.Status != q.Get("status") || q.Get("host") != "" && ch.Host.Name != q.Get("host") {
			continue
		}
		if len(page.Items) == limit {
			page.Next = strp(strconv.FormatInt(page.Items[len(page.Items)-1].ID, 10))
			break
		}
		page.Items = append(page.Items, ch)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(page)
}

func startFakeChanges(t *testing.T) (*fakeChanges, *httptest.Server) {
	t.Helper()
	f := newFakeChanges()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	t.Chdir(t.TempDir())
	t.Setenv("RETURNPATH_SERVER", srv.URL)
	t.Setenv("RETURNPATH_TOKEN", "rp_reviewer")
	return f, srv
}

// TestFakeChangesMatchesContract holds the fake (and the typed client) to api/openapi.yaml, so
// that the CLI tests below test against the contract.
func TestFakeChangesMatchesContract(t *testing.T) {
	_, srv := startFakeChanges(t)
	c := client.New(srv.URL, "rp_reviewer", client.WithHTTPClient(apitest.Client(t)))
	ctx := context.Background()
	all, err := c.AllChanges(ctx, client.ChangeFilter{}, 0)
	if err != nil || len(all) != 5 || all[0].ID != 5 || all[4].ID != 1 {
		t.Errorf("AllChanges() = %d changes, %v", len(all), err)
	}
	if _, err := c.Change(ctx, 3); err != nil {
		t.Error(err)
	}
	if _, err := c.Change(ctx, 99); !client.IsNotFound(err) {
		t.Errorf("Change(99) = %v", err)
	}
	_, err = c.Approve(ctx, 4, "stale")
	var p *client.Problem
	if !errors.As(err, &p) || p.Status != 409 || p.Reason != client.ReasonPlanHashMismatch {
		t.Fatalf("Approve() with a wrong hash = %v (reason %q)", err, p.Reason)
	}
	if ch, ok := p.StaleChange(); !ok || ch.ID != 4 {
		t.Errorf("StaleChange() = %v, %v", ch.ID, ok)
	}
	if ch, err := c.Approve(ctx, 4, "sha256:4add"); err != nil || ch.Status != "approved" {
		t.Errorf("Approve() = %v, %v", ch.Status, err)
	}
	if _, err := c.Reject(ctx, 5, ""); !client.IsCode(err, client.CodeInvalid) {
		t.Errorf("Reject without reason = %v", err)
	}
	if ch, err := c.Reject(ctx, 5, "no"); err != nil || ch.Status != "rejected" {
		t.Errorf("Reject() = %v, %v", ch.Status, err)
	}
	if ch, err := c.Retry(ctx, 3); err != nil || ch.Status != "approved" {
		t.Errorf("Retry() = %v, %v", ch.Status, err)
	}
	if _, err := c.Retry(ctx, 1); !client.IsCode(err, client.CodeConflict) {
		t.Errorf("Retry(applied) = %v", err)
	}
}

func TestChangesList(t *testing.T) {
	startFakeChanges(t)
	out, err := run(t, "changes", "list", "--status", "pending")
	if err != nil {
		t.Fatal(err)
	}
	want := "ID  KIND  STATUS   HOST       SUBNET         OPS  REQUESTED BY  APPROVED BY  CREATED\n" +
		"5   add   pending  docker-05  10.210.0.0/24  2    boot          -            2026-11-26 10:00:00Z\n" +
		"4   add   pending  docker-01  10.210.0.0/24  2    boot          -            2026-11-26 10:00:00Z\n"
	if diff := cmp.Diff(out, want); diff != "" {
		t.Errorf("list --status pending (-got +want):\n%s", diff)
	}
	// Pages are followed (the fake answers two at a time) up to --limit.
	out, err = run(t, "changes", "list", "--limit", "3", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var got []client.Change
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var ids []int64
	for _, ch := range got {
		ids = append(ids, ch.ID)
	}
	if diff := cmp.Diff(ids, []int64{5, 4, 3}); diff != "" {
		t.Errorf("list --limit 3 ids (-got +want):\n%s", diff)
	}
	out, err = run(t, "changes", "list", "--host", "docker-05", "--limit", "0", "-o", "json")
	if err != nil || !strings.Contains(out, `"id": 5`) || strings.Contains(out, `"id": 4`) {
		t.Errorf("list --host docker-05 = %v\n%s", err, out)
	}
	out, err = run(t, "changes", "list", "--status", "rolled_back")
	if err != nil || out != "no changes\n" {
		t.Errorf("empty list = %v %q", err, out)
	}
	if _, err := run(t, "changes", "list", "-o", "yaml"); err == nil || !strings.Contains(err.Error(), "want text or json") {
		t.Errorf("-o yaml = %v", err)
	}
}

func TestChangesShow(t *testing.T) {
	startFakeChanges(t)
	out, err := run(t, "changes", "show", "3")
	if err != nil {
		t.Fatal(err)
	}
	want := `change #3: remove, failed
host          docker-01 10.10.10.101, subnet 10.210.0.0/24
requested by  boot at 2026-11-26T10:00:00Z
approved by   alice
reason        sw1 refused
plan hash     sha256:3remove

2 ops, in the order they are applied:

  fw1
   1. - 10.210.0.0/24 via 10.10.20.1 (vrf default) [applied]
        ip route del 10.210.0.0/24 via 10.10.20.1 proto 202

  sw1
   2. - 10.210.0.0/24 via 10.10.10.101 (vrf default) [failed, 1 attempt]
        no ip route 10.210.0.0/24 10.10.10.101
        error: % Unknown command

events:
  2026-11-26T10:00:00Z  requested  host docker-01 registered
`
	if diff := cmp.Diff(out, want); diff != "" {
		t.Errorf("show 3 (-got +want):\n%s", diff)
	}
	if strings.Contains(out, "\x1b[") {
		t.Error("colour written to a non-terminal")
	}
	out, err = run(t, "changes", "show", "#4", "-o", "json")
	var ch client.Change
	if err != nil || json.Unmarshal([]byte(out), &ch) != nil || ch.ID != 4 || len(ch.Ops) != 2 {
		t.Errorf("show #4 -o json = %v\n%s", err, out)
	}
	if _, err := run(t, "changes", "show", "99"); !client.IsNotFound(err) {
		t.Errorf("show 99 = %v, want not found", err)
	}
	if _, err := run(t, "changes", "show", "x"); err == nil || !strings.Contains(err.Error(), "positive whole number") {
		t.Errorf("show x = %v", err)
	}

	var b strings.Builder
	if err := printChange(&b, *newFakeChange(4, "add", "pending", nil, nil, []client.ChangeOp{fakeOp("sw1", "add", "pending", nil)}), true); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), ansiGreen+"ip route 10.210.0.0/24 10.10.10.101"+ansiReset) {
		t.Errorf("on a terminal, the added line is not green:\n%q", b.String())
	}
}

// TestChangesShowRetryingOp: an op waiting for an unreachable device says until when it is
// retried, when the device is next tried, and its last error; counts take their plural.
func TestChangesShowRetryingOp(t *testing.T) {
	op := fakeOp("sw1", "add", "pending", strp("device unreachable, retrying: connection refused"))
	op.Attempts = 3
	next, until := time.Date(2026, 11, 26, 10, 0, 8, 0, time.UTC), time.Date(2026, 11, 26, 10, 5, 0, 0, time.UTC)
	op.NextAttemptAt, op.GivesUpAt = &next, &until
	var b strings.Builder
	if err := printChange(&b, *newFakeChange(4, "add", "applying", nil, nil, []client.ChangeOp{op}), false); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"1 op, in the order they are applied:",
		"[pending, 3 attempts]",
		"retrying until 2026-11-26T10:05:00Z (apply.retry_deadline after the first error); next attempt at 2026-11-26T10:00:08Z",
		"last error: device unreachable, retrying: connection refused",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("show does not say %q:\n%s", want, b.String())
		}
	}
}

func TestChangesApproveRejectRetry(t *testing.T) {
	f, _ := startFakeChanges(t)
	out, err := run(t, "changes", "approve", "4", "--plan-hash", "sha256:4add")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.HasPrefix(out, "change #4 approved\n\nchange #4: add, approved\n") || !strings.Contains(out, "approved by   reviewer") {
		t.Errorf("approve output:\n%s", out)
	}
	_, err = run(t, "changes", "approve", "4", "--yes")
	if err == nil || !strings.Contains(err.Error(), "change #4 is approved, not pending") {
		t.Errorf("approve twice = %v", err)
	}
	f.mu.Lock()
	f.replanOnApprove[5] = true
	f.mu.Unlock()
	out, err = run(t, "changes", "approve", "5", "--plan-hash", "sha256:5add")
	wantExit(t, err, exitStale, "the plan changed since it was reviewed")
	if !strings.Contains(out, "plan hash     sha256:5add-new") {
		t.Errorf("stale approve does not show the new plan:\n%s", out)
	}
	// A hash that never was the plan's is told apart from a plan that changed.
	out, err = run(t, "changes", "approve", "5", "--plan-hash", "deadbeef")
	var ec exitCode
	if err == nil || errors.As(err, &ec) || !strings.Contains(err.Error(), "deadbeef is not this change's plan hash (it is sha256:5add-new)") {
		t.Errorf("approve with a wrong hash = %v, want exit status 2 naming the change's hash\n%s", err, out)
	}
	f.mu.Lock()
	if diff := cmp.Diff(f.hashes, []string{"sha256:4add", "sha256:5add", "deadbeef"}); diff != "" {
		t.Errorf("quoted plan hashes (-got +want):\n%s", diff)
	}
	f.mu.Unlock()

	if _, err := run(t, "changes", "reject", "5"); err == nil || !strings.Contains(err.Error(), `"reason" not set`) {
		t.Errorf("reject without --reason = %v", err)
	}
	out, err = run(t, "changes", "reject", "5", "--reason", "wrong rack", "-o", "json")
	var ch client.Change
	if err != nil || json.Unmarshal([]byte(out), &ch) != nil || ch.Status != "rejected" || ch.Reason == nil || *ch.Reason != "wrong rack" {
		t.Errorf("reject -o json = %v\n%s", err, out)
	}
	out, err = run(t, "changes", "retry", "3")
	if err != nil || !strings.HasPrefix(out, "change #3 queued again: now approved") {
		t.Errorf("retry 3 = %v\n%s", err, out)
	}
	_, err = run(t, "changes", "retry", "1")
	var p *client.Problem
	if !errors.As(err, &p) || p.Status != 409 || !strings.Contains(err.Error(), "only failed or rolled_back changes can be retried") {
		t.Errorf("retry 1 = %v", err)
	}
}

// TestChangesRealServer reviews a host's change on the real server: list and show what the
// reviewer sees, reject it, and check that the host's waiting register hears why. Nothing is
// approved, so no device is contacted.
func TestChangesRealServer(t *testing.T) {
	url, _, tokens := startServer(t)
	t.Chdir(t.TempDir())
	t.Setenv("RETURNPATH_SERVER", url)
	t.Setenv("RETURNPATH_TOKEN", tokens["reviewer"])
	boot := []string{"--token", tokens["bootstrap"], "--name", "docker-01", "--address", "10.10.10.101"}
	out, err := run(t, append([]string{"host", "register"}, boot...)...)
	if err != nil {
		t.Fatalf("register: %v\n%s", err, out)
	}

	out, err = run(t, "changes", "list", "--status", "pending", "-o", "json")
	var pending []client.Change
	if err != nil || json.Unmarshal([]byte(out), &pending) != nil || len(pending) != 1 {
		t.Fatalf("list --status pending = %v\n%s", err, out)
	}
	ch := pending[0]
	if ch.Kind != "add" || ch.Host == nil || ch.Host.Name != "docker-01" || ch.RequestedBy != "bootstrap-tok" {
		t.Errorf("pending change = %+v", ch)
	}
	id := strconv.FormatInt(ch.ID, 10)
	out, err = run(t, "changes", "show", id)
	if err != nil {
		t.Fatal(err)
	}
	// Both devices of rack1's return path, each with its native line for the new subnet.
	var devices []string
	for _, op := range ch.Ops {
		devices = append(devices, op.Device)
		if op.Prefix.String() != "10.210.0.0/24" || op.Preview == "" || !strings.Contains(out, op.Preview) {
			t.Errorf("op %+v: not shown with its preview:\n%s", op, out)
		}
	}
	slices.Sort(devices)
	if diff := cmp.Diff(devices, []string{"fw1", "sw1"}); diff != "" {
		t.Errorf("devices (-got +want):\n%s", diff)
	}
	if !strings.Contains(out, "change #"+id+": add, pending") || !strings.Contains(out, "plan hash     "+ch.PlanHash) ||
		!strings.Contains(out, "approved by   - (awaiting review)") {
		t.Errorf("show %s:\n%s", id, out)
	}

	// The bootstrap token may not review.
	_, err = run(t, "changes", "reject", id, "--reason", "x", "--token", tokens["bootstrap"])
	var p *client.Problem
	if !errors.As(err, &p) || p.Status != http.StatusForbidden {
		t.Errorf("reject with the bootstrap token = %v, want 403", err)
	}
	out, err = run(t, "changes", "reject", id, "--reason", "wrong rack")
	if err != nil || !strings.Contains(out, "change #"+id+" rejected\n") || !strings.Contains(out, "reason        wrong rack") || strings.Contains(out, "rejected by   -") {
		t.Errorf("reject = %v\n%s", err, out)
	}
	_, err = run(t, append([]string{"host", "register", "--wait", "20s"}, boot...)...)
	wantExit(t, err, exitRejected, "docker-01 cannot become active: change #"+id+" was rejected: wrong rack")
	if !strings.Contains(err.Error(), "host deregister --name docker-01") {
		t.Errorf("the rejected register does not say how to release the subnet: %v", err)
	}
	// Registering again says plainly that the host will get no routes.
	out, err = run(t, append([]string{"host", "register"}, boot...)...)
	if err != nil || !strings.Contains(out, "change "+id+" adding this host's return routes was rejected: wrong rack; they will not be installed") {
		t.Errorf("register of a rejected host = %v\n%s", err, out)
	}
	// Nothing of it is on any device: deregistering releases the subnet at once.
	out, err = run(t, "host", "deregister", "--name", "docker-01", "--token", tokens["bootstrap"], "--wait", "20s")
	if err != nil || !strings.Contains(out, "removed docker-01 (10.10.10.101) at once") || !strings.Contains(out, "subnet 10.210.0.0/24 is released") {
		t.Errorf("deregister of a rejected host = %v\n%s", err, out)
	}
	out, err = run(t, "changes", "list", "--host", "docker-01", "-o", "json")
	var all []client.Change
	if err != nil || json.Unmarshal([]byte(out), &all) != nil || len(all) != 1 {
		t.Errorf("changes of docker-01 after the release = %v\n%s; want only the rejected add", err, out)
	}
}

// terminalInput stands in for a person at a terminal (see inputTerminal).
type terminalInput struct{ io.Reader }

func (terminalInput) Terminal() bool { return true }

// runWithInput is run with in as standard input.
func runWithInput(t *testing.T, in io.Reader, args ...string) (string, error) {
	t.Helper()
	cmd := newRootCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetIn(in)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

// TestChangesApproveShowsThePlan: approve without --plan-hash prints the plan and approves
// exactly that one, after a yes on a terminal or with --yes; it refuses where nobody can be
// asked.
func TestChangesApproveShowsThePlan(t *testing.T) {
	tests := []struct {
		name       string
		in         io.Reader
		args       []string
		replan     bool   // the plan changes between showing and approving
		wantExit   int    // 0: approved
		wantErr    string // part of the error
		wantQuoted bool   // an approval was sent, quoting the plan shown
		wantShown  bool   // the plan was printed
	}{
		{name: "no terminal", in: strings.NewReader("y\n"), wantExit: 2, wantErr: "pass --plan-hash H"},
		{name: "terminal, yes", in: terminalInput{strings.NewReader("y\n")}, wantQuoted: true, wantShown: true},
		{name: "terminal, no", in: terminalInput{strings.NewReader("n\n")}, wantExit: 2, wantErr: "not approved", wantShown: true},
		{name: "terminal, end of input", in: terminalInput{strings.NewReader("")}, wantExit: 2, wantErr: "not approved", wantShown: true},
		{name: "--yes", in: strings.NewReader(""), args: []string{"--yes"}, wantQuoted: true, wantShown: true},
		{name: "--yes, the plan changed meanwhile", in: strings.NewReader(""), args: []string{"--yes"}, replan: true,
			wantExit: exitStale, wantErr: "the plan changed", wantQuoted: true, wantShown: true},
		{name: "--yes with --plan-hash", in: strings.NewReader(""), args: []string{"--yes", "--plan-hash", "sha256:4add"}, wantExit: 2, wantErr: "give only one"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, _ := startFakeChanges(t)
			f.replanOnApprove[4] = tt.replan
			out, err := runWithInput(t, tt.in, append([]string{"changes", "approve", "4"}, tt.args...)...)
			code := 0
			var ec exitCode
			switch {
			case errors.As(err, &ec):
				code = ec.code
			case err != nil:
				code = 2
			}
			if code != tt.wantExit || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("exit %d, %v; want %d, %q\n%s", code, err, tt.wantExit, tt.wantErr, out)
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			var want []string
			if tt.wantQuoted {
				want = []string{"sha256:4add"}
			}
			if diff := cmp.Diff(want, f.hashes); diff != "" {
				t.Errorf("quoted plan hashes (-want +got):\n%s", diff)
			}
			if shown := strings.Contains(out, "plan hash     sha256:4add"); shown != tt.wantShown {
				t.Errorf("plan shown = %v, want %v:\n%s", shown, tt.wantShown, out)
			}
			if tt.wantExit == 0 && f.changes[4].Status != client.ChangeApproved {
				t.Errorf("change 4 is %s, want approved", f.changes[4].Status)
			}
		})
	}
}

// TestChangesRetryStalePlan: when the server finds the plan changed, retry prints the new plan
// and exits 6; retrying again queues it.
func TestChangesRetryStalePlan(t *testing.T) {
	f, _ := startFakeChanges(t)
	f.mu.Lock()
	f.changes[3].Status = client.ChangeRolledBack
	f.replanOnRetry[3] = true
	f.mu.Unlock()
	out, err := run(t, "changes", "retry", "3")
	wantExit(t, err, exitStale, "the plan changed since it was applied")
	if !strings.Contains(out, "plan hash     sha256:3remove-new") {
		t.Errorf("stale retry does not show the new plan:\n%s", out)
	}
	out, err = run(t, "changes", "retry", "3")
	if err != nil || !strings.HasPrefix(out, "change #3 queued again: now approved") {
		t.Errorf("second retry = %v\n%s", err, out)
	}
}

func TestTerm(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, in, want string
	}{
		{name: "plain text", in: "no ip route 10.210.0.0/24 10.10.10.101", want: "no ip route 10.210.0.0/24 10.10.10.101"},
		{name: "UTF-8 text", in: "café ✓", want: "café ✓"},
		{name: "escape sequence", in: "\x1b[2J\x1b[HAPPROVED", want: `\x1b[2J\x1b[HAPPROVED`},
		{name: "newline, carriage return, tab", in: "a\nb\rc\td", want: `a\nb\rc\td`},
		{name: "NUL, BEL, backspace, DEL", in: "\x00\a\b\x7f", want: `\x00\x07\x08\x7f`},
		{name: "C1 CSI", in: "x\u009b2Jy", want: `x\u009b2Jy`},
		{name: "bidi override and isolates", in: "ok\u202eDEVORPPA\u2066\u2069\u200f\u061c", want: `ok\u202eDEVORPPA\u2066\u2069\u200f\u061c`},
		{name: "invalid UTF-8", in: "a\xffb\xc3", want: `a\xffb\xc3`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := term(tt.in); got != tt.want {
				t.Errorf("term(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// hostileChange is a change whose server-side text holds terminal control sequences.
func hostileChange() *client.Change {
	op := fakeOp("sw1", "add", "failed", strp("refused\x1b[31m"))
	op.Output = strp("% Invalid\r\x1b[2KAPPROVED\nline two\u202eowt")
	op.Preview = "ip route 10.210.0.0/24 10.10.10.101\x1b]0;title\x07"
	ch := newFakeChange(6, "add", "rolled_back", strp("alice"), strp("\u001b[2J\u001b[Hchange #6: add, APPROVED\rapproved by  bob"), []client.ChangeOp{op})
	ch.Events = append(ch.Events, client.Event{At: fakeAt, What: "rolled_back\x1b[1A", Detail: "line\nchange #7 approved\u202e"})
	ch.RequestedBy = "boot\x1b[8m"
	return ch
}

// TestChangesShowEscapesControlCharacters: a reason, device output, preview and event holding
// escape sequences, carriage returns, newlines and bidi overrides print visibly escaped in
// text, and exactly in JSON.
func TestChangesShowEscapesControlCharacters(t *testing.T) {
	f, _ := startFakeChanges(t)
	hostile := hostileChange()
	f.mu.Lock()
	f.changes[6] = hostileChange()
	f.mu.Unlock()
	out, err := run(t, "changes", "show", "6")
	if err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(out, "\x1b\r\u202e\x07") {
		t.Errorf("show printed a raw control character:\n%q", out)
	}
	for _, want := range []string{
		`reason        \x1b[2J\x1b[Hchange #6: add, APPROVED\rapproved by  bob` + "\n",
		`        error: refused\x1b[31m` + "\n",
		`        device said: % Invalid\r\x1b[2KAPPROVED` + "\n",
		`        device said: line two\u202eowt` + "\n",
		`        ip route 10.210.0.0/24 10.10.10.101\x1b]0;title\x07` + "\n",
		`rolled_back\x1b[1A  line\nchange #7 approved\u202e` + "\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("show lacks the escaped line %q:\n%s", want, out)
		}
	}
	// No value starts a line of its own: every line is one the printer meant.
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "change #7") || strings.HasPrefix(line, "approved by  bob") {
			t.Errorf("a value forged the line %q", line)
		}
	}
	out, err = run(t, "changes", "list", "--status", "rolled_back")
	if err != nil || strings.Contains(out, "\x1b") || !strings.Contains(out, `boot\x1b[8m`) {
		t.Errorf("list = %v, want the requester escaped:\n%q", err, out)
	}
	out, err = run(t, "changes", "show", "6", "-o", "json")
	var got client.Change
	if err != nil || json.Unmarshal([]byte(out), &got) != nil {
		t.Fatalf("show -o json = %v\n%s", err, out)
	}
	if diff := cmp.Diff(got, *hostile, cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})); diff != "" {
		t.Errorf("JSON output is not the change exactly (-got +want):\n%s", diff)
	}
}

// TestChangesShowReroute: a reroute has no host but a segment; list and show name it.
func TestChangesShowReroute(t *testing.T) {
	ch := newFakeChange(9, "reroute", "pending", nil, nil, []client.ChangeOp{fakeOp("fw1", "add", "pending", nil)})
	ch.Host, ch.Segment, ch.RequestedBy = nil, strp("rack1"), "reload"
	var b strings.Builder
	if err := printChangeList(&b, []client.Change{*ch}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "9   reroute  pending  segment rack1  -  ") {
		t.Errorf("list:\n%s", b.String())
	}
	b.Reset()
	if err := printChange(&b, *ch, false); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "change #9: reroute, pending\nsegment       rack1 (every live host whose return path changed)\n") {
		t.Errorf("show:\n%s", b.String())
	}
}
