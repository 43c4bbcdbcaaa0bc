package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/returnpath/returnpath/internal/httpapi/apitest"
)

// hostileConfig is testConfig with devices that refuse at once (a closed loopback port), so
// that verify and remediate answer quickly, no auto-approval (the seeded change stays
// pending) and no registration rate limit (every registration reaches validation).
const hostileConfig = `
listen: "127.0.0.1:0"
database_url: "%DB%"
log_level: warn
pools:
  - {name: docker, prefix: 10.210.0.0/16, subnet_length: 24}
segments:
  - name: rack1
    hosts: 10.10.10.0/24
    pool: docker
    route_via:
      - {device: sw1, next_hop: host}
      - {device: fw1, next_hop: 10.10.20.1}
devices:
  - {name: sw1, platform: frr, transport: ssh, address: "127.0.0.1:1", username: netops, password_env: RETURNPATH_TEST_SW1_PASSWORD, known_hosts: /dev/null, connect_timeout: 1s}
  - {name: fw1, platform: linux, transport: ssh, address: "127.0.0.1:1", username: netops, password_env: RETURNPATH_TEST_SW1_PASSWORD, known_hosts: /dev/null, connect_timeout: 1s}
approval:
  four_eyes: true
  auto_approve: []
limits:
  registrations_per_minute: 0
`

// probe is one request of the hostile corpus.
type probe struct {
	role     string // a key of the corpus's auth headers
	method   string
	path     string // as sent, escapes included
	query    string // raw, as sent
	ctype    string // Content-Type; "" sends none
	body     []byte
	declared bool // the contract declares this method on this path template
	readOnly bool // any method only reads (/metrics): a 2xx is no accepted write
}

func (p probe) String() string {
	u := p.path
	if p.query != "" {
		u += "?" + p.query
	}
	if len(u) > 120 {
		u = u[:120] + fmt.Sprintf("...(%d bytes)", len(u))
	}
	s := fmt.Sprintf("%s %q as %s", p.method, u, p.role)
	if p.body != nil {
		b := p.body
		if len(b) > 80 {
			b = b[:80]
		}
		s += fmt.Sprintf(" body %q (%d bytes, %s)", b, len(p.body), p.ctype)
	}
	return s
}

// tableFingerprints are the tables a refused request must leave alone.
var tableFingerprints = []string{"hosts", "changes", "change_ops", "change_events", "audit"}

func fingerprint(t *testing.T, db *pgx.Conn) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, table := range tableFingerprints {
		var n int
		var sum *string
		q := fmt.Sprintf(`SELECT count(*), md5(string_agg(t::text, ',' ORDER BY id)) FROM %s t`, table)
		if err := db.QueryRow(context.Background(), q).Scan(&n, &sum); err != nil {
			t.Fatal(err)
		}
		out[table] = fmt.Sprintf("%d rows md5 %v", n, deref(sum))
	}
	return out
}

// createToken makes a token with the CLI; reviewer and admin tokens name an owner when the
// CLI has --owner (four eyes compares owners).
func createToken(t *testing.T, cfgPath, name, role string) string {
	t.Helper()
	args := []string{"token", "create", "--config", cfgPath, "--name", name, "--role", role}
	if c, _, err := newTokenCmd().Find([]string{"create"}); err == nil && c.Flags().Lookup("owner") != nil {
		args = append(args, "--owner", name)
	}
	out, err := run(t, args...)
	if err != nil {
		t.Fatalf("token create: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	return lines[len(lines)-1]
}

// TestHostileCorpus sends a bounded, deterministic corpus of requests that must all be refused
// (or, for reads, answered) to a real server started as main() starts it: every endpoint of
// the contract and some that do not exist, every method, every role, odd query and path
// values, huge, nested, mistyped and malformed bodies. No answer may be a 5xx, every answer
// of a declared operation must match api/openapi.yaml and every other error must be a
// Problem document, no write may succeed, and the hosts, changes and audit tables must be
// exactly as they were.
func TestHostileCorpus(t *testing.T) {
	m, logs, cfgPath := startMain(t, hostileConfig)
	base := "http://" + m.Addr()
	tokens := map[string]string{}
	for _, role := range []string{"viewer", "bootstrap", "reviewer", "admin"} {
		tokens[role] = createToken(t, cfgPath, role+"-tok", role)
	}
	db, err := pgx.Connect(context.Background(), m.Config.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(context.Background())

	// The seed: one registered host whose add change waits for review, so that the endpoints
	// taking a name or an id meet an object that exists.
	seed := seedHost(t, base, tokens["bootstrap"])
	before := fingerprint(t, db)

	corpus := hostileCorpus(seed, m.Config.MaxBodyBytes)
	if len(corpus) < 300 {
		t.Fatalf("the corpus holds %d requests, want at least 300", len(corpus))
	}
	auth := authHeaders(tokens)
	client := &http.Client{Timeout: 30 * time.Second}
	by5xx := 0
	for _, p := range corpus {
		req, err := http.NewRequest(p.method, base+p.path+queryPart(p.query), bytes.NewReader(p.body))
		if err != nil {
			t.Fatalf("%v: %v", p, err)
		}
		if p.body == nil {
			req.Body, req.ContentLength = nil, 0
		}
		if p.ctype != "" {
			req.Header.Set("Content-Type", p.ctype)
		}
		if h := auth[p.role]; h != "" {
			req.Header.Set("Authorization", h)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Errorf("%v: %v", p, err)
			continue
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Errorf("%v: reading the answer: %v", p, err)
			continue
		}
		switch {
		case resp.StatusCode >= 500:
			by5xx++
			t.Errorf("%v -> %d %.200s", p, resp.StatusCode, body)
			continue
		case !p.readOnly && p.method != http.MethodGet && p.method != http.MethodHead && resp.StatusCode < 400:
			t.Errorf("%v -> %d: a hostile write was accepted: %.200s", p, resp.StatusCode, body)
		}
		if p.method == http.MethodHead {
			continue // no body to check
		}
		if p.declared {
			if err := apitest.Validate(req, resp, body); err != nil {
				t.Errorf("%v -> %d does not match api/openapi.yaml: %v\n  body: %.300s", p, resp.StatusCode, err, body)
			}
		} else if resp.StatusCode >= 400 {
			if err := apitest.ValidateProblem(resp, body); err != nil {
				t.Errorf("%v -> %d: %v\n  body: %.300s", p, resp.StatusCode, err, body)
			}
		}
	}
	t.Logf("%d requests, %d answered 5xx", len(corpus), by5xx)

	after := fingerprint(t, db)
	for _, table := range tableFingerprints {
		if before[table] != after[table] {
			t.Errorf("table %s changed under the corpus: %s, then %s", table, before[table], after[table])
		}
	}
	// The server still serves, and the seed is as it was.
	var h struct {
		State  string `json:"state"`
		Change struct {
			Status string `json:"status"`
		} `json:"change"`
	}
	getJSON(t, base+"/v1/hosts/"+seed.name, tokens["viewer"], &h)
	if h.State != "pending" || h.Change.Status != "pending" {
		t.Errorf("seed host after the corpus: %+v", h)
	}
	if t.Failed() {
		for _, line := range strings.Split(logs.String(), "\n") {
			if strings.Contains(line, `"level":"ERROR"`) {
				t.Log(line)
			}
		}
	}
}

type seeded struct {
	name, address string
	changeID      int64
	planHash      string
}

func seedHost(t *testing.T, base, boot string) seeded {
	t.Helper()
	s := seeded{name: "seed-01", address: "10.10.10.101"}
	req, _ := http.NewRequest("POST", base+"/v1/hosts", strings.NewReader(`{"name":"seed-01","address":"10.10.10.101"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+boot)
	resp, err := apitest.Client(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		Change struct{ ID int64 } `json:"change"`
	}
	err = json.NewDecoder(resp.Body).Decode(&h)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 201 || h.Change.ID == 0 {
		t.Fatalf("register the seed: %d %v %+v", resp.StatusCode, err, h)
	}
	s.changeID = h.Change.ID
	var c struct {
		Status   string `json:"status"`
		PlanHash string `json:"plan_hash"`
	}
	getJSON(t, fmt.Sprintf("%s/v1/changes/%d", base, s.changeID), boot, &c)
	if c.Status != "pending" || c.PlanHash == "" {
		t.Fatalf("the seed's change: %+v, want pending", c)
	}
	s.planHash = c.PlanHash
	return s
}

func getJSON(t *testing.T, url, tok string, out any) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := apitest.Client(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s = %d %s", url, resp.StatusCode, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatal(err)
	}
}

func queryPart(q string) string {
	if q == "" {
		return ""
	}
	return "?" + q
}

// authHeaders maps the corpus's roles to Authorization headers: none, malformed and unknown
// credentials, then each real role.
func authHeaders(tokens map[string]string) map[string]string {
	return map[string]string{
		"none":          "",
		"bad-secret":    "Bearer rp_0000000000000000000000000000000000000000",
		"bad-scheme":    "Basic dmlld2VyOnNlY3JldA==",
		"bad-empty":     "Bearer ",
		"bad-long":      "Bearer rp_" + strings.Repeat("A", 4000),
		"bad-truncated": "Bearer " + tokens["admin"][:len(tokens["admin"])-1],
		"viewer":        "Bearer " + tokens["viewer"],
		"bootstrap":     "Bearer " + tokens["bootstrap"],
		"reviewer":      "Bearer " + tokens["reviewer"],
		"admin":         "Bearer " + tokens["admin"],
	}
}

// endpoint is one operation of api/openapi.yaml, with the roles allowed to call it and a
// body it would accept (from an allowed role) so that refusals by role are tested with a
// well-formed request.
type endpoint struct {
	method, path string // path with {name} / {id} filled in for the seed
	allowed      []string
	body         func(s seeded) string
}

func endpoints(s seeded) []endpoint {
	id := strconv.FormatInt(s.changeID, 10)
	read := []string{"viewer", "bootstrap", "reviewer", "admin"}
	return []endpoint{
		{method: "GET", path: "/healthz", allowed: []string{"*"}},
		{method: "GET", path: "/readyz", allowed: []string{"*"}},
		{method: "GET", path: "/metrics", allowed: []string{"*"}},
		{method: "POST", path: "/v1/hosts", allowed: []string{"bootstrap", "admin"},
			body: func(seeded) string { return `{"name":"new-01","address":"10.10.10.50"}` }},
		{method: "GET", path: "/v1/hosts", allowed: read},
		{method: "GET", path: "/v1/hosts/" + s.name, allowed: read},
		{method: "DELETE", path: "/v1/hosts/" + s.name, allowed: []string{"bootstrap", "admin"}},
		{method: "GET", path: "/v1/changes", allowed: read},
		{method: "GET", path: "/v1/changes/" + id, allowed: read},
		{method: "POST", path: "/v1/changes/" + id + "/approve", allowed: []string{"reviewer", "admin"},
			body: func(s seeded) string { return `{"plan_hash":"` + s.planHash + `"}` }},
		{method: "POST", path: "/v1/changes/" + id + "/reject", allowed: []string{"reviewer", "admin"},
			body: func(seeded) string { return `{"reason":"wrong rack"}` }},
		{method: "POST", path: "/v1/changes/" + id + "/retry", allowed: []string{"reviewer", "admin"}},
		{method: "GET", path: "/v1/verify", allowed: read},
		{method: "POST", path: "/v1/verify/remediate", allowed: []string{"reviewer", "admin"}},
		{method: "GET", path: "/v1/pools", allowed: read},
		{method: "GET", path: "/v1/segments", allowed: read},
		{method: "GET", path: "/v1/devices", allowed: read},
		{method: "GET", path: "/v1/audit", allowed: read},
	}
}

// oddValues are query and path values a client should never send.
var oddValues = []string{
	"%00",                     // NUL
	"a%00b",                   // NUL inside
	"%ff%fe",                  // invalid UTF-8
	"%c0%af",                  // overlong UTF-8 encoding of '/'
	"99999999999999999999999", // beyond int64
	"-1",
	"0",
	"",                            // empty
	"%1b%5b2J",                    // ESC [2J: a terminal escape
	"%e2%80%ae",                   // RIGHT-TO-LEFT OVERRIDE: valid UTF-8, invisible
	"'%3b%20DROP%20TABLE%20hosts", // '; DROP TABLE hosts
	strings.Repeat("x", 8192),     // very long
}

// queryParams are every declared query parameter, by GET endpoint (and remediate).
var queryParams = []struct {
	method, path string
	params       []string
	role         string
}{
	{method: "GET", path: "/v1/hosts", params: []string{"limit", "after", "segment", "state"}, role: "viewer"},
	{method: "GET", path: "/v1/changes", params: []string{"status", "host", "limit", "after"}, role: "viewer"},
	{method: "GET", path: "/v1/audit", params: []string{"limit", "before", "object"}, role: "viewer"},
	{method: "GET", path: "/v1/verify", params: []string{"device", "segment"}, role: "viewer"},
	{method: "POST", path: "/v1/verify/remediate", params: []string{"device", "segment"}, role: "reviewer"},
}

// hostileCorpus generates the corpus from the small tables above and below: the same every
// run, no randomness. Every write in it must be refused; reads may answer.
func hostileCorpus(s seeded, maxBody int64) []probe {
	var c []probe
	eps := endpoints(s)
	id := strconv.FormatInt(s.changeID, 10)

	// 1. Every operation from every role that may not call it: no token, malformed and
	// unknown tokens, and real roles without the permission. The body is well formed.
	for _, ep := range eps {
		for _, role := range []string{"none", "bad-secret", "bad-scheme", "bad-empty", "bad-long", "bad-truncated", "viewer", "bootstrap", "reviewer"} {
			if slices.Contains(ep.allowed, role) || slices.Contains(ep.allowed, "*") {
				continue
			}
			p := probe{role: role, method: ep.method, path: ep.path, declared: true}
			if ep.body != nil {
				p.body, p.ctype = []byte(ep.body(s)), "application/json"
			}
			c = append(c, p)
		}
	}

	// 2. Every method each path does not serve, from an admin.
	methods := []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"}
	served := map[string]map[string]bool{}
	for _, ep := range eps {
		if served[ep.path] == nil {
			served[ep.path] = map[string]bool{}
		}
		served[ep.path][ep.method] = true
	}
	for _, ep := range eps {
		if served[ep.path]["_done"] {
			continue
		}
		served[ep.path]["_done"] = true
		for _, m := range methods {
			if served[ep.path][m] {
				continue
			}
			c = append(c, probe{role: "admin", method: m, path: ep.path, ctype: "application/json", body: []byte(`{}`),
				readOnly: ep.path == "/metrics"}) // /metrics serves its exposition to any method
		}
	}

	// 3. Endpoints that do not exist, read and written by an admin.
	for _, path := range []string{
		"/", "/v1", "/v1/", "/v2/hosts", "/v1/hosts/", "/v1/hosts/" + s.name + "/", "/v1/hosts/" + s.name + "/change",
		"/v1/changes/" + id + "/approve/now", "/v1/changes/" + id + "/delete", "/v1/tokens", "/v1/tokens/admin-tok",
		"/v1/admin", "/v1/verify/remediate/all", "/v1/HOSTS", "/.env", "/v1/hosts/..%2f..%2fetc%2fpasswd",
		"/metrics/../v1/hosts", "/readyz/x", "/v1//hosts", "/v1/hosts%00",
	} {
		for _, m := range []string{"GET", "POST", "DELETE"} {
			c = append(c, probe{role: "admin", method: m, path: path, ctype: "application/json", body: []byte(`{"name":"x","address":"10.10.10.60"}`)})
		}
	}

	// 4. Odd values of every query parameter, alone and repeated.
	for _, qp := range queryParams {
		for _, param := range qp.params {
			for _, v := range oddValues {
				c = append(c, probe{role: qp.role, method: qp.method, path: qp.path, query: param + "=" + v, declared: true})
			}
			// Repeated: a valid value first, then a bad one; and the other way round.
			c = append(c,
				probe{role: qp.role, method: qp.method, path: qp.path, query: param + "=1&" + param + "=%00", declared: true},
				probe{role: qp.role, method: qp.method, path: qp.path, query: param + "=%ff&" + param + "=1", declared: true})
		}
	}
	// The long-poll's parameters: wait alone, and timeout only with a wait it would apply to
	// (and never empty: the default 30 s wait is no refusal).
	for _, v := range oddValues {
		c = append(c, probe{role: "viewer", method: "GET", path: "/v1/hosts/" + s.name, query: "wait=" + v, declared: true})
		if v != "" {
			c = append(c, probe{role: "viewer", method: "GET", path: "/v1/hosts/" + s.name, query: "wait=active&timeout=" + v, declared: true})
		}
	}
	c = append(c, probe{role: "viewer", method: "GET", path: "/v1/hosts/" + s.name, query: "wait=active&wait=removed&timeout=1ns&timeout=%00", declared: true})

	// 5. Odd path values where the contract takes a name or an id. Deletes and change actions
	// come from roles that may call them, so only the value stands between the request and a
	// write: a name or id that means the seed would be a write, so none of these does.
	pathValues := append([]string{"..", "%2e%2e", "%2f", "*", "%25", "null", "1.5", "1e3", "0x1", "%20" + id, id + "%00", s.name + "%00"}, oddValues...)
	for _, v := range pathValues {
		if v == "" {
			continue // an empty segment is another endpoint, covered above
		}
		c = append(c,
			probe{role: "viewer", method: "GET", path: "/v1/hosts/" + v, declared: true},
			probe{role: "admin", method: "DELETE", path: "/v1/hosts/" + v, declared: true},
			probe{role: "viewer", method: "GET", path: "/v1/changes/" + v, declared: true},
			probe{role: "admin", method: "POST", path: "/v1/changes/" + v + "/approve", ctype: "application/json", body: []byte(`{"plan_hash":"` + s.planHash + `"}`), declared: true},
			probe{role: "reviewer", method: "POST", path: "/v1/changes/" + v + "/reject", ctype: "application/json", body: []byte(`{"reason":"odd id"}`), declared: true},
			probe{role: "reviewer", method: "POST", path: "/v1/changes/" + v + "/retry", declared: true},
		)
	}

	// 6. Bodies: each endpoint that reads one, from a role that may call it, with bodies that
	// must all be refused before anything is written.
	huge := func(n int64) []byte {
		return []byte(`{"name":"` + strings.Repeat("h", int(n)) + `","address":"10.10.10.61"}`)
	}
	nested := func(depth int) []byte {
		return []byte(`{"name":` + strings.Repeat("[", depth) + strings.Repeat("]", depth) + `,"address":"10.10.10.62"}`)
	}
	type bodyCase struct {
		ctype string
		body  []byte
	}
	const js = "application/json"
	common := []bodyCase{
		{ctype: js, body: huge(maxBody + 1)},
		{ctype: js, body: huge(4 * maxBody)},
		{ctype: js, body: append([]byte(`{"name":"pad-01","address":"10.10.10.63"`), append(bytes.Repeat([]byte(" "), int(maxBody)), '}')...)},
		{ctype: js, body: nested(64)},
		{ctype: js, body: nested(20000)},
		{ctype: js, body: []byte(``)},
		{ctype: js, body: []byte(" \n\t ")},
		{ctype: js, body: []byte(`null`)},
		{ctype: js, body: []byte(`[]`)},
		{ctype: js, body: []byte(`"a string"`)},
		{ctype: js, body: []byte(`12`)},
		{ctype: js, body: []byte(`true`)},
		{ctype: js, body: []byte(`{`)},
		{ctype: js, body: []byte(`{"a":}`)},
		{ctype: js, body: []byte(`{} {}`)},
		{ctype: js, body: []byte(`{}garbage`)},
		{ctype: js, body: []byte("\xef\xbb\xbf{}")}, // a byte order mark
		{ctype: js, body: []byte(`{"unknown":1}`)},
		{ctype: js, body: []byte(`{"__proto__":{"admin":true}}`)},
		{ctype: "", body: []byte(`{}`)},
		{ctype: "text/plain", body: []byte(`{}`)},
		{ctype: "application/x-www-form-urlencoded", body: []byte(`name=x&address=10.10.10.64`)},
		{ctype: "multipart/form-data; boundary=x", body: []byte("--x\r\n\r\n{}\r\n--x--\r\n")},
		{ctype: "application/json-patch+json", body: []byte(`[]`)},
		{ctype: "application/json; charset=utf-16", body: []byte("\xff\xfe{\x00}\x00")},
		{ctype: "application/json;;;", body: []byte(`{}`)},
		{ctype: "application/xml", body: []byte(`<host name="x"/>`)},
	}
	perEndpoint := []struct {
		role, path string
		bodies     []bodyCase
	}{
		{role: "bootstrap", path: "/v1/hosts", bodies: []bodyCase{
			{ctype: js, body: []byte(`{"name":1,"address":"10.10.10.65"}`)},
			{ctype: js, body: []byte(`{"name":"t-01","address":10}`)},
			{ctype: js, body: []byte(`{"name":["t-01"],"address":"10.10.10.65"}`)},
			{ctype: js, body: []byte(`{"name":{"a":"b"},"address":"10.10.10.65"}`)},
			{ctype: js, body: []byte(`{"name":"t-01","address":"10.10.10.65","subnet":false}`)},
			{ctype: js, body: []byte(`{"name":null,"address":"10.10.10.65"}`)},
			{ctype: js, body: []byte(`{"name":"t-01"}`)},
			{ctype: js, body: []byte(`{"address":"10.10.10.65"}`)},
			{ctype: js, body: []byte(`{"name":"","address":"10.10.10.65"}`)},
			{ctype: js, body: []byte(`{"name":"t-01","address":""}`)},
			{ctype: js, body: []byte(`{"name":"t-01","address":"10.10.10.65","extra":true}`)},
			{ctype: js, body: []byte(`{"NAME":"t-01","ADDRESS":"not-an-address"}`)},
			{ctype: js, body: []byte(`{"name":"t\u0000x","address":"10.10.10.65"}`)},
			{ctype: js, body: []byte(`{"name":"t-01","address":"10.10.10.65\u0000"}`)},
			{ctype: js, body: []byte(`{"name":"t-01","address":"10.10.10.65","subnet":"10.210.9.0/24\u0000"}`)},
			{ctype: js, body: []byte(`{"name":"t\u001b[2J-01","address":"10.10.10.65"}`)},
			{ctype: js, body: []byte("{\"name\":\"t\x01\x7f-01\",\"address\":\"10.10.10.65\"}")},
			{ctype: js, body: []byte("{\"name\":\"\xff\xfe\",\"address\":\"10.10.10.65\"}")},
			{ctype: js, body: []byte(`{"name":"\ud800","address":"10.10.10.65"}`)},
			{ctype: js, body: []byte(`{"name":"` + strings.Repeat("a", 254) + `","address":"10.10.10.65"}`)},
			{ctype: js, body: []byte(`{"name":"Bad Name!","name":"also bad!","address":"10.10.10.65"}`)},
			{ctype: js, body: []byte(`{"name":"t-01","address":"300.1.1.1"}`)},
			{ctype: js, body: []byte(`{"name":"t-01","address":"::1"}`)},
			{ctype: js, body: []byte(`{"name":"t-01","address":"192.0.2.1"}`)},                            // in no segment
			{ctype: js, body: []byte(`{"name":"t-01","address":"10.10.10.101"}`)},                         // the seed's address
			{ctype: js, body: []byte(`{"name":"seed-01","address":"10.10.10.66"}`)},                       // the seed's name
			{ctype: js, body: []byte(`{"name":"t-01","address":"10.10.10.65","subnet":"10.210.0.0/24"}`)}, // the seed's subnet
			{ctype: js, body: []byte(`{"name":"t-01","address":"10.10.10.65","subnet":"8.8.8.0/24"}`)},    // outside the pool
			{ctype: js, body: []byte(`{"name":"t-01","address":"10.10.10.65","subnet":"10.210.9.0/99"}`)},
			{ctype: js, body: []byte(`{"name":"t-01","address":"10.10.10.65","subnet":"10.210.9.7/24"}`)},
			{ctype: js, body: []byte(`{"name":"t-01","address":"1e400"}`)},
		}},
		{role: "admin", path: "/v1/changes/" + id + "/approve", bodies: []bodyCase{
			{ctype: js, body: []byte(`{"plan_hash":123}`)},
			{ctype: js, body: []byte(`{"plan_hash":null}`)},
			{ctype: js, body: []byte(`{"plan_hash":""}`)},
			{ctype: js, body: []byte(`{"plan_hash":"wrong"}`)},
			{ctype: js, body: []byte(`{"plan_hash":"\u0000"}`)},
			{ctype: js, body: []byte(`{"plan_hash":"` + s.planHash + `\u0000"}`)},
			{ctype: js, body: []byte("{\"plan_hash\":\"\xff\xfe\"}")},
			{ctype: js, body: []byte(`{"plan_hash":"` + strings.Repeat("f", 10000) + `"}`)},
			{ctype: js, body: []byte(`{"plan_hash":"x","plan_hash":"y"}`)},
			{ctype: js, body: []byte(`{"plan_hash":"` + s.planHash + `","extra":1}`)},
			{ctype: js, body: []byte(`{"plan_hash":"` + s.planHash + `"} trailing`)},
			{ctype: js, body: []byte(`{"plan_hash":["` + s.planHash + `"]}`)},
		}},
		{role: "reviewer", path: "/v1/changes/" + id + "/reject", bodies: []bodyCase{
			{ctype: js, body: []byte(`{"reason":1}`)},
			{ctype: js, body: []byte(`{"reason":null}`)},
			{ctype: js, body: []byte(`{"reason":""}`)},
			{ctype: js, body: []byte(`{"reason":"bad\u0000x"}`)},
			{ctype: js, body: []byte(`{"reason":"` + strings.Repeat("r", 2001) + `"}`)},
			{ctype: js, body: []byte(`{"reason":"` + strings.Repeat("é", 1001) + `","x":1}`)},
			{ctype: js, body: []byte(`{"reason":"\u001b[2J\u001b[HAPPROVED","extra":1}`)},
			{ctype: js, body: []byte(`{"reason":"ok"} {"reason":"again"}`)},
			{ctype: js, body: []byte(`{"reason":["a"]}`)},
			{ctype: js, body: []byte(`{"reason":{"text":"a"}}`)},
		}},
	}
	for _, ep := range perEndpoint {
		for _, b := range append(common, ep.bodies...) {
			c = append(c, probe{role: ep.role, method: "POST", path: ep.path, ctype: b.ctype, body: b.body, declared: true})
		}
	}
	return c
}
