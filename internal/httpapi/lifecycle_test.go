package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/returnpath/returnpath/internal/fabric"
	"github.com/returnpath/returnpath/internal/httpapi"
	"github.com/returnpath/returnpath/internal/postgres"
)

// TestControlCharactersAndInvalidUTF8: NUL, other control characters and invalid UTF-8 in a
// query parameter, a path parameter or a JSON string answer 400 naming the parameter or field,
// never 500; and nothing is written.
func TestControlCharactersAndInvalidUTF8(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct {
		name   string
		method string
		path   string
		role   fabric.Role
		body   string
		field  string
	}{
		{name: "NUL cursor", method: "GET", path: "/v1/hosts?after=%00", role: fabric.RoleViewer, field: "after"},
		{name: "invalid UTF-8 cursor", method: "GET", path: "/v1/hosts?after=%ff", role: fabric.RoleViewer, field: "after"},
		{name: "NUL host name in the path", method: "GET", path: "/v1/hosts/%00", role: fabric.RoleViewer, field: "name"},
		{name: "NUL in a reject reason", method: "POST", path: "/v1/changes/1/reject", role: fabric.RoleReviewer, body: `{"reason":"bad\u0000x"}`, field: "reason"},
		{name: "invalid UTF-8 host filter", method: "GET", path: "/v1/changes?host=%ff%fe", role: fabric.RoleViewer, field: "host"},
		{name: "NUL audit object", method: "GET", path: "/v1/audit?object=%00", role: fabric.RoleViewer, field: "object"},
		{name: "escape in a segment filter", method: "GET", path: "/v1/hosts?segment=%1b%5b2J", role: fabric.RoleViewer, field: "segment"},
		{name: "newline in a state filter", method: "GET", path: "/v1/hosts?state=active%0a", role: fabric.RoleViewer, field: "state"},
		{name: "NUL in the limit", method: "GET", path: "/v1/hosts?limit=1%00", role: fabric.RoleViewer, field: "limit"},
		{name: "NUL wait", method: "GET", path: "/v1/hosts/d1?wait=%00", role: fabric.RoleViewer, field: "wait"},
		{name: "invalid UTF-8 timeout", method: "GET", path: "/v1/hosts/d1?timeout=%c3%28", role: fabric.RoleViewer, field: "timeout"},
		{name: "NUL change status", method: "GET", path: "/v1/changes?status=%00", role: fabric.RoleViewer, field: "status"},
		{name: "DEL in a changes cursor", method: "GET", path: "/v1/changes?after=1%7f", role: fabric.RoleViewer, field: "after"},
		{name: "C1 control in an audit cursor", method: "GET", path: "/v1/audit?before=%c2%9b", role: fabric.RoleViewer, field: "before"},
		{name: "NUL verify device", method: "GET", path: "/v1/verify?device=%00", role: fabric.RoleViewer, field: "device"},
		{name: "invalid UTF-8 verify segment", method: "GET", path: "/v1/verify?segment=%80", role: fabric.RoleViewer, field: "segment"},
		{name: "NUL remediate device", method: "POST", path: "/v1/verify/remediate?device=%00", role: fabric.RoleReviewer, field: "device"},
		{name: "NUL in a query parameter's name", method: "GET", path: "/v1/pools?x%00=1", role: fabric.RoleViewer, field: "x%00"},
		{name: "NUL change id", method: "GET", path: "/v1/changes/%00", role: fabric.RoleViewer, field: "id"},
		{name: "invalid UTF-8 host to delete", method: "DELETE", path: "/v1/hosts/%ff", role: fabric.RoleBootstrap, field: "name"},
		{name: "NUL in a host name", method: "POST", path: "/v1/hosts", role: fabric.RoleBootstrap, body: `{"name":"a\u0000","address":"10.10.10.1"}`, field: "name"},
		{name: "NUL in a plan hash", method: "POST", path: "/v1/changes/1/approve", role: fabric.RoleReviewer, body: `{"plan_hash":"\u0000"}`, field: "plan_hash"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp, body := e.do(t, tt.method, tt.path, tt.role, tt.body)
			if resp.StatusCode != http.StatusBadRequest || body["field"] != tt.field || body["code"] != fabric.EINVALID {
				t.Errorf("%s %s = %d %v, want 400 invalid on %q", tt.method, tt.path, resp.StatusCode, body, tt.field)
			}
			if ct := resp.Header.Get("Content-Type"); ct != httpapi.ProblemContentType {
				t.Errorf("Content-Type = %q", ct)
			}
		})
	}
	// Text outside ASCII is fine where it is valid.
	if resp, body := e.do(t, "GET", "/v1/hosts?after=caf%C3%A9", fabric.RoleViewer, ""); resp.StatusCode != http.StatusOK {
		t.Errorf("GET /v1/hosts?after=café = %d %v", resp.StatusCode, body)
	}
	var n int
	if err := e.db.Pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM hosts) + (SELECT count(*) FROM changes)`).Scan(&n); err != nil || n != 0 {
		t.Errorf("rows written by bad requests = %d, %v", n, err)
	}
}

// fail plays the apply engine: device refuses every op it has ready, so the change that holds
// them is rolled back (nothing applied).
func (e *env) fail(t *testing.T, device string) {
	t.Helper()
	ctx := context.Background()
	ops, err := e.changes.ReadyOps(ctx, device, 100)
	if err != nil || len(ops) == 0 {
		t.Fatalf("ReadyOps(%s) = %d ops, %v", device, len(ops), err)
	}
	var results []postgres.OpResult
	for _, o := range ops {
		results = append(results, postgres.OpResult{OpID: o.ID, ChangeID: o.ChangeID, Status: fabric.OpFailed, Attempted: true, Error: "the device refused it"})
	}
	if _, err := e.changes.Record(ctx, device, results); err != nil {
		t.Fatal(err)
	}
}

// apply plays the apply engine: device applies every op it has ready.
func (e *env) apply(t *testing.T, device string) {
	t.Helper()
	ctx := context.Background()
	ops, err := e.changes.ReadyOps(ctx, device, 100)
	if err != nil || len(ops) == 0 {
		t.Fatalf("ReadyOps(%s) = %d ops, %v", device, len(ops), err)
	}
	var results []postgres.OpResult
	for _, o := range ops {
		results = append(results, postgres.OpResult{OpID: o.ID, ChangeID: o.ChangeID, Status: fabric.OpApplied, Attempted: true})
	}
	if _, err := e.changes.Record(ctx, device, results); err != nil {
		t.Fatal(err)
	}
}

// approve approves the host's newest change as the reviewer, quoting its plan hash.
func (e *env) approve(t *testing.T, host string) {
	t.Helper()
	ch := e.hostChanges(t, host)[0].(map[string]any)
	path := fmt.Sprintf("/v1/changes/%v/approve", ch["id"])
	if resp, body := e.do(t, "POST", path, fabric.RoleReviewer, fmt.Sprintf(`{"plan_hash":%q}`, ch["plan_hash"])); resp.StatusCode != http.StatusOK {
		t.Fatalf("approve = %d %v", resp.StatusCode, body)
	}
}

func (e *env) hostChanges(t *testing.T, host string) []any {
	t.Helper()
	resp, body := e.do(t, "GET", "/v1/changes?host="+host, fabric.RoleViewer, "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/changes?host=%s = %d %v", host, resp.StatusCode, body)
	}
	return body["items"].([]any)
}

// TestRetryAndRemoveOverHTTP: a rolled-back change may be retried; a host whose remove change
// ended without removing it is not stuck in removing (a repeated DELETE files a new remove
// change, once); a retry is refused once the host moved on, and when the plan changed it
// answers 409 with the new plan.
func TestRetryAndRemoveOverHTTP(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	resp, body := e.do(t, "POST", "/v1/hosts", fabric.RoleBootstrap, `{"name":"d1","address":"10.10.10.101"}`)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("register = %d %v", resp.StatusCode, body)
	}
	add := fmt.Sprint(body["change"].(map[string]any)["id"])
	_, ch := e.do(t, "GET", "/v1/changes/"+add, fabric.RoleViewer, "")
	// A hash that is not this change's plan hash is told apart from a plan that changed.
	resp, body = e.do(t, "POST", "/v1/changes/"+add+"/approve", fabric.RoleReviewer, `{"plan_hash":"deadbeef"}`)
	if extra, _ := body["extra"].(map[string]any); resp.StatusCode != http.StatusConflict || body["reason"] != fabric.PlanHashMismatch ||
		body["field"] != "plan_hash" || extra == nil || extra["plan_hash"] != ch["plan_hash"] || extra["status"] != "pending" {
		t.Fatalf("approve with a wrong hash = %d %v, want 409 plan_hash_mismatch with the change as it is", resp.StatusCode, body)
	}
	if resp, body := e.do(t, "POST", "/v1/changes/"+add+"/approve", fabric.RoleReviewer, fmt.Sprintf(`{"plan_hash":%q}`, ch["plan_hash"])); resp.StatusCode != http.StatusOK {
		t.Fatalf("approve = %d %v", resp.StatusCode, body)
	}
	e.fail(t, "sw1")

	// Retry takes the rolled-back change.
	resp, body = e.do(t, "POST", "/v1/changes/"+add+"/retry", fabric.RoleReviewer, "")
	if resp.StatusCode != http.StatusOK || body["status"] != "approved" {
		t.Fatalf("retry of a rolled-back change = %d %v, want 200 approved", resp.StatusCode, body)
	}
	e.fail(t, "sw1")

	// A stale plan: a server whose firewall routes into another VRF answers 409 with the new plan.
	inv := inventory()
	inv.Devices[1].VRF = "blue"
	moved, _ := serve(t, e.db, inv)
	stale := &env{url: moved, db: e.db, tokens: e.tokens}
	resp, body = stale.do(t, "POST", "/v1/changes/"+add+"/retry", fabric.RoleReviewer, "")
	extra, _ := body["extra"].(map[string]any)
	if resp.StatusCode != http.StatusConflict || body["field"] != "plan_hash" || body["reason"] != fabric.PlanChanged || extra == nil || extra["plan_hash"] == ch["plan_hash"] {
		t.Fatalf("retry after the inventory moved = %d %v, want 409 with the new plan in extra", resp.StatusCode, body)
	}

	// DELETE of the pending host whose add was rolled back with nothing applied removes it at
	// once: no remove change, its subnet released.
	before := len(e.hostChanges(t, "d1"))
	if resp, body := e.do(t, "DELETE", "/v1/hosts/d1", fabric.RoleBootstrap, ""); resp.StatusCode != http.StatusOK || body["state"] != "removed" {
		t.Fatalf("DELETE of a host with nothing on any device = %d %v, want 200 removed", resp.StatusCode, body)
	}
	if n := len(e.hostChanges(t, "d1")); n != before {
		t.Errorf("DELETE filed a change: %d changes, want %d", n, before)
	}
	// The add change may not be retried: its host is removed.
	if resp, body := e.do(t, "POST", "/v1/changes/"+add+"/retry", fabric.RoleReviewer, ""); resp.StatusCode != http.StatusConflict || body["code"] != fabric.ECONFLICT {
		t.Errorf("retry of the add of a removed host = %d %v, want 409", resp.StatusCode, body)
	}

	// DELETE of an active host files a remove change; reject it and the host is removing with
	// no live change.
	if resp, body := e.do(t, "POST", "/v1/hosts", fabric.RoleBootstrap, `{"name":"d2","address":"10.10.10.102"}`); resp.StatusCode != http.StatusCreated {
		t.Fatalf("register d2 = %d %v", resp.StatusCode, body)
	}
	e.approve(t, "d2")
	e.apply(t, "sw1")
	e.apply(t, "fw1")
	if resp, body := e.do(t, "DELETE", "/v1/hosts/d2", fabric.RoleBootstrap, ""); resp.StatusCode != http.StatusAccepted || body["state"] != "removing" {
		t.Fatalf("DELETE = %d %v", resp.StatusCode, body)
	}
	items := e.hostChanges(t, "d2")
	first := fmt.Sprint(items[0].(map[string]any)["id"])
	if resp, body := e.do(t, "POST", "/v1/changes/"+first+"/reject", fabric.RoleReviewer, `{"reason":"not now"}`); resp.StatusCode != http.StatusOK {
		t.Fatalf("reject = %d %v", resp.StatusCode, body)
	}
	_, body = e.do(t, "GET", "/v1/hosts/d2", fabric.RoleViewer, "")
	if note, _ := body["note"].(string); !strings.Contains(note, "Remove it again") {
		t.Errorf("note of a host whose remove change was rejected = %q", note)
	}
	// A repeated DELETE files a new remove change...
	resp, body = e.do(t, "DELETE", "/v1/hosts/d2", fabric.RoleBootstrap, "")
	after := e.hostChanges(t, "d2")
	if resp.StatusCode != http.StatusAccepted || len(after) != len(items)+1 {
		t.Fatalf("repeated DELETE = %d %v; %d changes, want %d", resp.StatusCode, body, len(after), len(items)+1)
	}
	newest := after[0].(map[string]any)
	if newest["kind"] != "remove" || newest["status"] != "pending" || body["change"].(map[string]any)["id"] != newest["id"] {
		t.Errorf("newest change = %v %v, DELETE answered with change %v", newest["kind"], newest["status"], body["change"])
	}
	// ...and repeating it while that one is live files nothing.
	if resp, body := e.do(t, "DELETE", "/v1/hosts/d2", fabric.RoleBootstrap, ""); resp.StatusCode != http.StatusAccepted {
		t.Errorf("third DELETE = %d %v", resp.StatusCode, body)
	}
	if n := len(e.hostChanges(t, "d2")); n != len(after) {
		t.Errorf("third DELETE: %d changes, want %d", n, len(after))
	}
	// Retrying a pending change is refused.
	if resp, body := e.do(t, "POST", fmt.Sprintf("/v1/changes/%v/retry", newest["id"]), fabric.RoleReviewer, ""); resp.StatusCode != http.StatusConflict {
		t.Errorf("retry of a pending change = %d %v, want 409", resp.StatusCode, body)
	}
}

// TestPendingOpShowsItsRetryWindow: an op waiting for an unreachable device shows its last
// error, the device's next attempt, and until when it is retried (its first error plus the
// engine's retry deadline); once the device answers and the op is applied, neither time is
// shown.
func TestPendingOpShowsItsRetryWindow(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.changes.SetRetryDeadline(5 * time.Minute)
	ctx := context.Background()
	resp, body := e.do(t, "POST", "/v1/hosts", fabric.RoleBootstrap, `{"name":"d1","address":"10.10.10.101"}`)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("register = %d %v", resp.StatusCode, body)
	}
	id := fmt.Sprint(body["change"].(map[string]any)["id"])
	_, ch := e.do(t, "GET", "/v1/changes/"+id, fabric.RoleViewer, "")
	if resp, body := e.do(t, "POST", "/v1/changes/"+id+"/approve", fabric.RoleReviewer, fmt.Sprintf(`{"plan_hash":%q}`, ch["plan_hash"])); resp.StatusCode != http.StatusOK {
		t.Fatalf("approve = %d %v", resp.StatusCode, body)
	}
	// Play the engine: sw1 cannot be reached.
	next, err := e.changes.DeviceUnreachable(ctx, "sw1", "dial tcp: connection refused", false)
	if err != nil {
		t.Fatal(err)
	}
	record := func(status fabric.OpStatus, unreachable bool, msg string) {
		t.Helper()
		ops, err := e.changes.ReadyOps(ctx, "sw1", 100)
		if err != nil || len(ops) != 1 {
			t.Fatalf("ReadyOps(sw1) = %v, %v", ops, err)
		}
		r := postgres.OpResult{OpID: ops[0].ID, ChangeID: ops[0].ChangeID, Status: status, Attempted: true, Unreachable: unreachable, Error: msg}
		if _, err := e.changes.Record(ctx, "sw1", []postgres.OpResult{r}); err != nil {
			t.Fatal(err)
		}
	}
	record(fabric.OpPending, true, "device unreachable, retrying: dial tcp: connection refused")

	_, ch = e.do(t, "GET", "/v1/changes/"+id, fabric.RoleViewer, "")
	op := ch["ops"].([]any)[0].(map[string]any)
	if op["status"] != "pending" || op["error"] != "device unreachable, retrying: dial tcp: connection refused" {
		t.Errorf("op = %v, want pending with its last error", op)
	}
	at := func(field string) time.Time {
		t.Helper()
		s, _ := op[field].(string)
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Errorf("op %s = %v: %v", field, op[field], err)
		}
		return v
	}
	if got := at("next_attempt_at"); !got.Equal(next.Truncate(time.Microsecond)) { // PostgreSQL keeps microseconds
		t.Errorf("next_attempt_at = %v, want the device's backoff %v", got, next)
	}
	var firstErr time.Time
	if err := e.db.Pool.QueryRow(ctx, `SELECT first_error_at FROM change_ops WHERE change_id = $1 AND device = 'sw1'`, id).Scan(&firstErr); err != nil {
		t.Fatal(err)
	}
	if got := at("gives_up_at"); !got.Equal(firstErr.Add(5 * time.Minute)) {
		t.Errorf("gives_up_at = %v, want the first error %v plus the 5m retry deadline", got, firstErr)
	}

	// The device answers: the op is applied and promises nothing more.
	if err := e.changes.DeviceReachable(ctx, "sw1"); err != nil {
		t.Fatal(err)
	}
	record(fabric.OpApplied, false, "")
	_, ch = e.do(t, "GET", "/v1/changes/"+id, fabric.RoleViewer, "")
	op = ch["ops"].([]any)[0].(map[string]any)
	for _, field := range []string{"next_attempt_at", "gives_up_at"} {
		if v, ok := op[field]; ok {
			t.Errorf("applied op shows %s = %v", field, v)
		}
	}
	if op["error"] != nil {
		t.Errorf("applied op keeps error %v", op["error"])
	}
}
