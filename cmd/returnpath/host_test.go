package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/returnpath/returnpath/internal/client"
	"github.com/returnpath/returnpath/internal/httpapi/apitest"
	"github.com/returnpath/returnpath/internal/postgres/pgtest"
)

var testBip = netip.MustParsePrefix("10.210.7.1/24")

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Sys().(*syscall.Stat_t).Ino
}

func TestMergeDaemonJSON(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		existing string // "" with mode 0: no file
		mode     fs.FileMode
		want     string
		changed  bool
		oldBip   string
	}{
		{
			name: "missing file is created", want: "{\n  \"bip\": \"10.210.7.1/24\",\n  \"ip-masq\": false\n}\n", changed: true,
		},
		{
			name: "other keys, their order and values kept", mode: 0o600,
			existing: `{"log-driver":"journald","bip":"172.99.0.1/24","registry-mirrors":["https://m.example"],"log-opts":{"max-size":"10m","n":3},"ip-masq":true,"debug":null}`,
			want: "{\n  \"log-driver\": \"journald\",\n  \"bip\": \"10.210.7.1/24\",\n  \"registry-mirrors\": [\n    \"https://m.example\"\n  ],\n" +
				"  \"log-opts\": {\n    \"max-size\": \"10m\",\n    \"n\": 3\n  },\n  \"ip-masq\": false,\n  \"debug\": null\n}\n",
			changed: true, oldBip: "172.99.0.1/24",
		},
		{
			name: "empty file is an empty object", mode: 0o640, existing: " \n",
			want: "{\n  \"bip\": \"10.210.7.1/24\",\n  \"ip-masq\": false\n}\n", changed: true,
		},
		{
			name: "already right: not rewritten", mode: 0o644,
			existing: `{"ip-masq": false, "bip": "10.210.7.1/24"}`,
			want:     `{"ip-masq": false, "bip": "10.210.7.1/24"}`, oldBip: "10.210.7.1/24",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := filepath.Join(dir, "docker", "daemon.json")
			var before uint64
			if tt.mode != 0 {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(tt.existing), tt.mode); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(path, tt.mode); err != nil {
					t.Fatal(err)
				}
				before = inode(t, path)
			}
			res, err := mergeDaemonJSON(path, testBip)
			if err != nil {
				t.Fatalf("mergeDaemonJSON() = %v", err)
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(got), tt.want); diff != "" {
				t.Errorf("daemon.json (-got +want):\n%s", diff)
			}
			if res.Changed != tt.changed || res.OldBip != tt.oldBip || res.Created != (tt.mode == 0) {
				t.Errorf("result = %+v, want changed %v, old bip %q, created %v", res, tt.changed, tt.oldBip, tt.mode == 0)
			}
			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			wantMode := tt.mode
			if wantMode == 0 {
				wantMode = 0o644
			}
			if st.Mode().Perm() != wantMode {
				t.Errorf("mode = %v, want %v", st.Mode().Perm(), wantMode)
			}
			// Replaced by rename (a new inode) when changed, left alone otherwise.
			if tt.mode != 0 && (inode(t, path) != before) != tt.changed {
				t.Errorf("inode changed = %v, want %v", inode(t, path) != before, tt.changed)
			}
			entries, _ := os.ReadDir(filepath.Dir(path))
			if len(entries) != 1 {
				t.Errorf("directory holds %d entries, want only daemon.json (no temp files left)", len(entries))
			}
			if tt.changed {
				var m map[string]any
				if err := json.Unmarshal(got, &m); err != nil || m["bip"] != "10.210.7.1/24" || m["ip-masq"] != false {
					t.Errorf("written file = %v %v", m, err)
				}
			}
		})
	}
}

func TestMergeDaemonJSONRefusesAndLeavesFileUntouched(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, existing, want string }{
		{"not JSON", `{"log-driver": "journald",`, "not valid JSON"},
		{"trailing garbage", `{"a":1} {"b":2}`, "data after the object"},
		{"not an object", `["bip"]`, "not a JSON object"},
		{"duplicate key", `{"bip":"1.2.3.1/24","bip":"4.5.6.1/24"}`, `key "bip" appears twice`},
		{"another bridge", `{"bridge":"br-custom"}`, `"bridge" is "br-custom"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "daemon.json")
			if err := os.WriteFile(path, []byte(tt.existing), 0o600); err != nil {
				t.Fatal(err)
			}
			before, _ := os.Stat(path)
			_, err := mergeDaemonJSON(path, testBip)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "left untouched") {
				t.Errorf("mergeDaemonJSON() = %v, want an error saying %q and that the file is untouched", err, tt.want)
			}
			got, _ := os.ReadFile(path)
			after, _ := os.Stat(path)
			if string(got) != tt.existing || !os.SameFile(before, after) || after.ModTime() != before.ModTime() {
				t.Errorf("file changed: %q", got)
			}
		})
	}
}

func TestMergeDaemonJSONThroughSymlinkAndWarnings(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	target := filepath.Join(dir, "real.json")
	if err := os.WriteFile(target, []byte(`{"fixed-cidr":"10.1.0.0/25"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "daemon.json")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	res, err := mergeDaemonJSON(link, testBip)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Errorf("daemon.json is no longer a symlink: %v %v", fi, err)
	}
	got, _ := os.ReadFile(target)
	if !strings.Contains(string(got), `"bip": "10.210.7.1/24"`) {
		t.Errorf("target = %s", got)
	}
	if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "fixed-cidr") {
		t.Errorf("warnings = %q, want one about fixed-cidr", res.Warnings)
	}
}

// startServer runs Main on 127.0.0.1:0 against a fresh database, as `returnpath serve` does,
// and returns its URL, the config path and a token of each role the tests need.
func startServer(t *testing.T) (url, cfgPath string, tokens map[string]string) {
	t.Helper()
	return startServerFor(t, testConfig)
}

// startServerFor is startServer with configuration cfgText (its database URL is %DB%).
func startServerFor(t *testing.T, cfgText string) (url, cfgPath string, tokens map[string]string) {
	t.Helper()
	t.Setenv("RETURNPATH_TEST_SW1_PASSWORD", "s3cret-value")
	cfgPath = writeConfig(t, strings.ReplaceAll(cfgText, "%DB%", pgtest.URL(t)))
	cfg, err := loadConfig(cfgPath, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	m := &Main{Config: cfg, Log: slog.New(slog.DiscardHandler), Migrate: true}
	ctx := context.Background()
	if err := m.Open(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m.Listen(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := m.Close(sctx); err != nil {
			t.Errorf("Close() = %v", err)
		}
	})
	tokens = map[string]string{}
	for _, role := range []string{"bootstrap", "viewer", "reviewer"} {
		out, err := run(t, "token", "create", "--config", cfgPath, "--name", role+"-tok", "--role", role, "--owner", role+"-owner")
		if err != nil {
			t.Fatalf("token create: %v\n%s", err, out)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		tokens[role] = lines[len(lines)-1]
	}
	return "http://" + m.Addr(), cfgPath, tokens
}

func writeToken(t *testing.T, secret string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(p, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func wantExit(t *testing.T, err error, code int, substr string) {
	t.Helper()
	var ec exitCode
	if !errors.As(err, &ec) || ec.code != code {
		t.Errorf("err = %v (%T), want exit code %d", err, err, code)
	}
	if err == nil || !strings.Contains(err.Error(), substr) {
		t.Errorf("err = %v, want it to say %q", err, substr)
	}
}

// TestHostRegisterRealServer drives `host register|deregister` against the real server.
func TestHostRegisterRealServer(t *testing.T) {
	url, _, tokens := startServer(t)
	tokFile := writeToken(t, tokens["bootstrap"])
	dir := t.TempDir()
	daemon := filepath.Join(dir, "daemon.json")
	if err := os.WriteFile(daemon, []byte(`{"log-driver":"journald"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	// Nothing in the working directory may stand in for the test's config.
	t.Chdir(dir)

	out, err := run(t, "host", "register", "--server", url, "--token-file", tokFile, "--name", "docker-01", "--address", "10.10.10.101", "--daemon-json", daemon)
	if err != nil {
		t.Fatalf("register: %v\n%s", err, out)
	}
	for _, want := range []string{"registered docker-01 (10.10.10.101) in segment rack1: subnet 10.210.0.0/24, gateway 10.210.0.1",
		"updated " + daemon + ": bip 10.210.0.1/24, ip-masq false; other keys kept"} {
		if !strings.Contains(out, want) {
			t.Errorf("register output lacks %q:\n%s", want, out)
		}
	}
	got, _ := os.ReadFile(daemon)
	if want := "{\n  \"log-driver\": \"journald\",\n  \"bip\": \"10.210.0.1/24\",\n  \"ip-masq\": false\n}\n"; string(got) != want {
		t.Errorf("daemon.json = %q, want %q", got, want)
	}

	// Again, from the environment this time: same allocation, file not rewritten.
	t.Setenv("RETURNPATH_SERVER", url)
	t.Setenv("RETURNPATH_TOKEN", tokens["bootstrap"])
	out, err = run(t, "host", "register", "--name", "docker-01", "--address", "10.10.10.101", "--daemon-json", daemon, "-o", "json")
	if err != nil {
		t.Fatalf("register again: %v\n%s", err, out)
	}
	var res hostRegisterResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("--output json is not JSON: %v\n%s", err, out)
	}
	if res.Created || res.Host.Subnet.String() != "10.210.0.0/24" || res.DaemonJSON == nil || res.DaemonJSON.Changed {
		t.Errorf("second register = %+v", res)
	}

	// A broken daemon.json is refused before anything is registered.
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte("{nope"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = run(t, "host", "register", "--name", "docker-02", "--address", "10.10.10.102", "--daemon-json", bad)
	if err == nil || !strings.Contains(err.Error(), "nothing registered, file left untouched") {
		t.Errorf("register with a broken daemon.json = %v", err)
	}
	c := client.New(url, tokens["viewer"], client.WithHTTPClient(apitest.Client(t)))
	if _, err := c.Host(context.Background(), "docker-02"); !client.IsNotFound(err) {
		t.Errorf("docker-02 after a refused register: %v, want not found", err)
	}

	// Nothing activates the host here (no reviewer approves), so --wait runs out.
	start := time.Now()
	_, err = run(t, "host", "register", "--name", "docker-01", "--address", "10.10.10.101", "--wait", "2s")
	wantExit(t, err, exitTimeout, "timed out: docker-01 is still pending after 2s")
	if took := time.Since(start); took < 2*time.Second || took > 10*time.Second {
		t.Errorf("--wait 2s took %v", took)
	}

	// The viewer may not register; the problem says so and the token is nowhere in it.
	_, err = run(t, "host", "register", "--token", tokens["viewer"], "--name", "docker-03", "--address", "10.10.10.103")
	var p *client.Problem
	if !errors.As(err, &p) || p.Status != http.StatusForbidden || strings.Contains(err.Error(), tokens["viewer"]) {
		t.Errorf("register as viewer = %v, want a 403 problem without the token", err)
	}
	_, err = run(t, "host", "register", "--token", "rp_wrong", "--name", "docker-03", "--address", "10.10.10.103")
	if !errors.As(err, &p) || p.Status != http.StatusUnauthorized || strings.Contains(err.Error(), "rp_wrong") {
		t.Errorf("register with a wrong token = %v, want a 401 problem without the token", err)
	}
	_, err = run(t, "host", "register", "--name", "docker-01", "--address", "10.10.10.109")
	if !errors.As(err, &p) || p.Status != http.StatusConflict {
		t.Errorf("register docker-01 with another address = %v, want a 409 problem", err)
	}
	_, err = run(t, "host", "register", "--name", "docker-03", "--address", "10.99.0.1")
	if !errors.As(err, &p) || p.Field != "address" {
		t.Errorf("register outside every segment = %v, want a problem naming address", err)
	}

	// Its add change was never approved: nothing of it is on any device, so it goes at once.
	out, err = run(t, "host", "deregister", "--name", "docker-01")
	if err != nil || !strings.Contains(out, "removed docker-01 (10.10.10.101) at once") {
		t.Errorf("deregister = %v\n%s", err, out)
	}
	_, err = run(t, "host", "deregister", "--name", "nosuch")
	if !client.IsNotFound(err) {
		t.Errorf("deregister nosuch = %v, want not found", err)
	}
}

// fakeHosts answers GET /v1/hosts/{name} with a scripted sequence of states, as the long poll
// would, and GET /v1/changes/{id} with the change the script names.
type fakeHosts struct {
	mu     sync.Mutex
	script []fakeStep // one per GET; the last repeats
	change string     // GET /v1/changes/7
	polls  int
	query  string
}

type fakeStep struct {
	status      int
	state       string
	changeState string
	reason      string
}

func (f *fakeHosts) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer rp_fake" {
		writeProblem(w, 401, "unauthorized", "", "no valid token")
		return
	}
	host := func(state, change, reason string) string {
		ch := "null"
		switch {
		case reason != "":
			ch = fmt.Sprintf(`{"id":7,"status":%q,"reason":%q}`, change, reason)
		case change != "":
			ch = fmt.Sprintf(`{"id":7,"status":%q}`, change)
		}
		return fmt.Sprintf(`{"name":"docker-01","address":"10.10.10.101","segment":"rack1","subnet":"10.210.0.0/24","gateway":"10.210.0.1",
			"state":%q,"docker":{"bip":"10.210.0.1/24","ip-masq":false},"change":%s,"created_by":"boot",
			"created_at":"2026-11-26T10:00:00Z","updated_at":"2026-11-26T10:00:00Z"}`, state, ch)
	}
	switch {
	case r.Method == "POST" && r.URL.Path == "/v1/hosts":
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(201)
		fmt.Fprint(w, host("pending", "pending", ""))
	case r.Method == "DELETE" && r.URL.Path == "/v1/hosts/docker-01":
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(202)
		fmt.Fprint(w, host("removing", "pending", ""))
	case r.Method == "GET" && r.URL.Path == "/v1/hosts/docker-01":
		f.query = r.URL.RawQuery
		step := f.script[min(f.polls, len(f.script)-1)]
		f.polls++
		if step.status == 404 {
			writeProblem(w, 404, "not_found", "", "no host named docker-01")
			return
		}
		if step.status != 0 {
			writeProblem(w, step.status, "unavailable", "", "database unreachable")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, host(step.state, step.changeState, step.reason))
	case r.Method == "GET" && r.URL.Path == "/v1/changes/7" && f.change == "":
		writeProblem(w, 503, "unavailable", "", "database unreachable")
	case r.Method == "GET" && r.URL.Path == "/v1/changes/7":
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, f.change)
	default:
		writeProblem(w, 404, "not_found", "", "no route")
	}
}

func writeProblem(w http.ResponseWriter, status int, code, field, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"type": "urn:returnpath:problem:" + code, "title": http.StatusText(status),
		"status": status, "code": code, "field": field, "detail": detail, "request_id": "req-fake"})
}

func TestHostWaitOutcomes(t *testing.T) {
	rejected := fakeChange(7, "add", "rejected", strp("alice"), strp("subnet reserved for the lab"), nil)
	failed := fakeChange(7, "add", "failed", strp("alice"), strp("fw1 refused the route"),
		[]client.ChangeOp{fakeOp("fw1", "add", "failed", strp("RTNETLINK answers: Network is unreachable"))})
	tests := []struct {
		name      string
		args      []string
		script    []fakeStep
		change    string
		wantCode  int // 0: success
		wantText  string
		wantPolls int
	}{
		{
			name:     "register: active after the change is applied",
			args:     []string{"register", "--address", "10.10.10.101", "--wait", "20s"},
			script:   []fakeStep{{state: "pending", changeState: "approved"}, {state: "pending", changeState: "applied"}, {state: "active", changeState: "applied"}},
			wantText: "docker-01 is active: its return routes are in place, change #7 applied", wantPolls: 3,
		},
		{
			name:   "register: rejected, with the reviewer's reason",
			args:   []string{"register", "--address", "10.10.10.101", "--wait", "20s"},
			script: []fakeStep{{state: "pending", changeState: "rejected"}}, change: rejected,
			wantCode: exitRejected, wantText: "docker-01 cannot become active: change #7 was rejected by alice: subnet reserved for the lab", wantPolls: 1,
		},
		{
			name:     "register: rejected, the reason from the host when the change cannot be read",
			args:     []string{"register", "--address", "10.10.10.101", "--wait", "20s"},
			script:   []fakeStep{{state: "pending", changeState: "rejected", reason: "wrong rack"}},
			wantCode: exitRejected, wantText: "docker-01 cannot become active: change #7 was rejected: wrong rack (its details could not be read", wantPolls: 1,
		},
		{
			name:   "register: failed, naming the device's answer",
			args:   []string{"register", "--address", "10.10.10.101", "--wait", "20s"},
			script: []fakeStep{{status: 503}, {state: "pending", changeState: "failed"}}, change: failed,
			wantCode: exitFailed, wantText: "change #7 was failed: fw1 refused the route; fw1 add 10.210.0.0/24 via 10.10.20.1: RTNETLINK answers: Network is unreachable", wantPolls: 2,
		},
		{
			name:     "register: a long-poll refused by the server's cap (429) is tried again",
			args:     []string{"register", "--address", "10.10.10.101", "--wait", "20s"},
			script:   []fakeStep{{status: 429}, {state: "active", changeState: "applied"}},
			wantText: "docker-01 is active", wantPolls: 2,
		},
		{
			name:     "deregister: done when the server no longer knows the host",
			args:     []string{"deregister", "--wait", "20s"},
			script:   []fakeStep{{state: "removing", changeState: "applying"}, {status: 404}},
			wantText: "docker-01 is removed", wantPolls: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeHosts{script: tt.script, change: tt.change}
			srv := httptest.NewServer(f)
			defer srv.Close()
			t.Chdir(t.TempDir())
			args := append([]string{"host"}, tt.args...)
			args = append(args, "--server", srv.URL, "--token", "rp_fake", "--name", "docker-01")
			out, err := run(t, args...)
			if tt.wantCode == 0 {
				if err != nil {
					t.Fatalf("%v\n%s", err, out)
				}
				if !strings.Contains(out, tt.wantText) {
					t.Errorf("output lacks %q:\n%s", tt.wantText, out)
				}
			} else {
				wantExit(t, err, tt.wantCode, tt.wantText)
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.polls != tt.wantPolls {
				t.Errorf("polls = %d, want %d", f.polls, tt.wantPolls)
			}
			if !strings.Contains(f.query, "wait=") || !strings.Contains(f.query, "timeout=") {
				t.Errorf("poll query = %q, want wait and timeout", f.query)
			}
		})
	}
}

func TestClientFromCmdNeedsServerAndToken(t *testing.T) {
	t.Chdir(t.TempDir())
	t.Setenv("RETURNPATH_SERVER", "")
	t.Setenv("RETURNPATH_TOKEN", "")
	_, err := run(t, "changes", "list")
	if err == nil || !strings.Contains(err.Error(), "no server: pass --server URL") || !strings.Contains(err.Error(), "no token: set RETURNPATH_TOKEN") {
		t.Errorf("without server and token: %v", err)
	}
	_, err = run(t, "changes", "list", "--server", "http://127.0.0.1:1")
	if err == nil || strings.Contains(err.Error(), "no server") || !strings.Contains(err.Error(), "no token") {
		t.Errorf("without token: %v", err)
	}
	_, err = run(t, "changes", "list", "--server", "http://127.0.0.1:1", "--token", "a", "--token-file", "/dev/null")
	if err == nil || !strings.Contains(err.Error(), "give only one") {
		t.Errorf("--token and --token-file: %v", err)
	}
	empty := writeToken(t, "")
	_, err = run(t, "changes", "list", "--server", "http://127.0.0.1:1", "--token-file", empty)
	if err == nil || !strings.Contains(err.Error(), "is empty") {
		t.Errorf("empty --token-file: %v", err)
	}
	// The config file is the last resort.
	cfg := writeConfig(t, "server: http://127.0.0.1:1\ntoken: rp_from_file\n")
	_, err = run(t, "changes", "list", "--config", cfg)
	var te *client.TransportError
	if !errors.As(err, &te) || strings.Contains(err.Error(), "rp_from_file") {
		t.Errorf("with the config file: %v, want a transport error (nothing listens) without the token", err)
	}
}

// BenchmarkMergeDaemonJSON measures one merge that rewrites a typical daemon.json (parse,
// render, temp file, fsync, rename, directory fsync) on the test's temporary file system.
func BenchmarkMergeDaemonJSON(b *testing.B) {
	path := filepath.Join(b.TempDir(), "daemon.json")
	orig := []byte(`{"log-driver":"journald","log-opts":{"max-size":"10m"},"registry-mirrors":["https://m.example"],"bip":"172.99.0.1/24"}`)
	bips := []netip.Prefix{netip.MustParsePrefix("10.210.7.1/24"), netip.MustParsePrefix("10.210.8.1/24")}
	if err := os.WriteFile(path, orig, 0o644); err != nil {
		b.Fatal(err)
	}
	i := 0
	for b.Loop() {
		// Alternate the bip so that every merge writes.
		if _, err := mergeDaemonJSON(path, bips[i%2]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
