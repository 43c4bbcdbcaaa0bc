package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/returnpath/returnpath/internal/httpapi/apitest"
)

// hookReceiver is an HTTPS receiver whose certificate the configuration trusts through
// ca_file; it checks every signature against the secret.
type hookReceiver struct {
	srv    *httptest.Server
	caFile string
	got    chan map[string]any
}

func newHookReceiver(t *testing.T, secret string, answer int, reply string) *hookReceiver {
	t.Helper()
	h := &hookReceiver{got: make(chan map[string]any, 10)}
	h.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		m := hmac.New(sha256.New, []byte(secret))
		m.Write(b)
		if sig := r.Header.Get("X-Returnpath-Signature"); !hmac.Equal([]byte(sig), []byte("sha256="+hex.EncodeToString(m.Sum(nil)))) {
			t.Errorf("bad signature %q", sig)
		}
		var body map[string]any
		if err := json.Unmarshal(b, &body); err != nil {
			t.Errorf("body: %v", err)
		}
		body["_delivery"] = r.Header.Get("X-Returnpath-Delivery")
		h.got <- body
		w.WriteHeader(answer)
		fmt.Fprint(w, reply)
	}))
	t.Cleanup(h.srv.Close)
	h.caFile = filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: h.srv.Certificate().Raw})
	if err := os.WriteFile(h.caFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	return h
}

func webhookConfig(url, caFile string) string {
	return fmt.Sprintf(`ui:
  base_url: https://desk.example
events:
  retry_deadline: 1m
  webhooks:
    - name: reviewers
      url: %s/hook
      ca_file: %s
      secret_env: RETURNPATH_TEST_HOOK_SECRET
      events: [change.pending, drift.found, probe.failed]
      segments: [rack1]
`, url, caFile)
}

// TestServeDeliversWebhooks registers a host over HTTP against a served Main with a webhook:
// the receiver gets the pending change, signed, and an admin sees the delivery in the API.
func TestServeDeliversWebhooks(t *testing.T) {
	const secret = "hook-secret-5b1e0c"
	t.Setenv("RETURNPATH_TEST_HOOK_SECRET", secret)
	rc := newHookReceiver(t, secret, http.StatusOK, "")
	m, logs, cfgPath := startMain(t, testConfig+webhookConfig(rc.srv.URL, rc.caFile))
	boot := createToken(t, cfgPath, "boot", "bootstrap")
	admin := createToken(t, cfgPath, "root", "admin")
	base := "http://" + m.Addr()

	req, _ := http.NewRequest("POST", base+"/v1/hosts", strings.NewReader(`{"name":"docker-01","address":"10.10.10.101"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+boot)
	resp, err := apitest.Client(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /v1/hosts = %d", resp.StatusCode)
	}
	var body map[string]any
	select {
	case body = <-rc.got:
	case <-time.After(30 * time.Second):
		t.Fatal("no webhook within 30s")
	}
	if body["event"] != "change.pending" || body["host"] != "docker-01" || body["segment"] != "rack1" ||
		!strings.HasPrefix(fmt.Sprint(body["url"]), "https://desk.example/changes/") || body["preview"] == nil {
		t.Errorf("body = %v", body)
	}

	// The delivery, as an admin sees it (apitest validates the answer against the contract).
	deadline := time.Now().Add(30 * time.Second)
	for {
		var page struct {
			Items []struct {
				ID       int64  `json:"id"`
				Webhook  string `json:"webhook"`
				Event    string `json:"event"`
				Status   string `json:"status"`
				Attempts int    `json:"attempts"`
			} `json:"items"`
		}
		getJSON(t, base+"/v1/events/deliveries?status=delivered", admin, &page)
		if len(page.Items) == 1 {
			it := page.Items[0]
			if it.Webhook != "reviewers" || it.Event != "change.pending" || it.Attempts != 1 || fmt.Sprint(it.ID) != body["_delivery"] {
				t.Errorf("delivery = %+v, header delivery %v", it, body["_delivery"])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no delivered delivery listed: %+v", page)
		}
		time.Sleep(50 * time.Millisecond)
	}
	req, _ = http.NewRequest("GET", base+"/v1/events/deliveries", nil)
	req.Header.Set("Authorization", "Bearer "+boot)
	if resp, err = apitest.Client(t).Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("GET /v1/events/deliveries as bootstrap = %d, want 403", resp.StatusCode)
	}
	if strings.Contains(logs.String(), secret) {
		t.Errorf("logs hold the webhook secret")
	}
}

func TestEventsConfigErrorsNameTheKey(t *testing.T) {
	t.Setenv("RETURNPATH_TEST_SW1_PASSWORD", "x")
	t.Setenv("RETURNPATH_TEST_HOOK_SECRET", "s")
	base := strings.ReplaceAll(testConfig, "%DB%", "postgres:///x") + webhookConfig("https://hooks.example", "/dev/null")
	base = strings.Replace(base, "      ca_file: /dev/null\n", "", 1)
	tests := []struct {
		name, from, to, want string
	}{
		{name: "http without insecure", from: "url: https://hooks.example/hook", to: "url: http://hooks.example/hook", want: "events.webhooks[0].url"},
		{name: "relative url", from: "url: https://hooks.example/hook", to: "url: /hook", want: "events.webhooks[0].url"},
		{name: "unknown event", from: "events: [change.pending,", to: "events: [change.pendng,", want: "events.webhooks[0].events[0]"},
		{name: "no events", from: "events: [change.pending, drift.found, probe.failed]", to: "events: []", want: "events.webhooks[0].events"},
		{name: "unknown segment", from: "segments: [rack1]", to: "segments: [rack9]", want: "events.webhooks[0].segments[0]"},
		{name: "bad format", from: "      segments:", to: "      format: xml\n      segments:", want: "events.webhooks[0].format"},
		{name: "secret unset", from: "secret_env: RETURNPATH_TEST_HOOK_SECRET", to: "secret_env: RETURNPATH_TEST_NO_SUCH", want: "events.webhooks[0].secret_env"},
		{name: "no secret", from: "      secret_env: RETURNPATH_TEST_HOOK_SECRET\n", to: "", want: "events.webhooks[0].secret_env"},
		{name: "bad name", from: "name: reviewers", to: "name: 'a b'", want: "events.webhooks[0].name"},
		{name: "bad ca file", from: "      secret_env:", to: "      ca_file: /nonexistent/ca.pem\n      secret_env:", want: "events.webhooks[0].ca_file"},
		{name: "bad deadline", from: "retry_deadline: 1m", to: "retry_deadline: -1m", want: "events.retry_deadline"},
		{name: "unknown key", from: "      segments:", to: "      colour: red\n      segments:", want: "colour"},
		{name: "relative base url", from: "base_url: https://desk.example", to: "base_url: desk.example", want: "ui.base_url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(base, tt.from) {
				t.Fatalf("test config lacks %q", tt.from)
			}
			p := writeConfig(t, strings.Replace(base, tt.from, tt.to, 1))
			out, err := run(t, "config", "check", "--config", p)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("config check = %v (%s), want an error naming %s", err, out, tt.want)
			}
		})
	}
	ok := strings.Replace(base, "url: https://hooks.example/hook", "url: http://127.0.0.1:9/hook\n      insecure: true", 1)
	if out, err := run(t, "config", "check", "--config", writeConfig(t, ok)); err != nil {
		t.Errorf("http with insecure: true: %v %s", err, out)
	}
}

func TestEventsTestCommand(t *testing.T) {
	const secret = "hook-secret-77aa"
	t.Setenv("RETURNPATH_TEST_SW1_PASSWORD", "x")
	t.Setenv("RETURNPATH_TEST_HOOK_SECRET", secret)
	rc := newHookReceiver(t, secret, http.StatusAccepted, "ok \x1b[2Jthanks")
	p := writeConfig(t, strings.ReplaceAll(testConfig, "%DB%", "postgres:///nowhere")+webhookConfig(rc.srv.URL, rc.caFile))
	out, err := run(t, "events", "test", "reviewers", "--config", p)
	if err != nil {
		t.Fatalf("events test: %v\n%s", err, out)
	}
	body := <-rc.got
	if body["event"] != "test" || body["webhook"] != "reviewers" || !strings.HasPrefix(fmt.Sprint(body["_delivery"]), "test-") {
		t.Errorf("test event = %v", body)
	}
	if !strings.Contains(out, "answered 202") || !strings.Contains(out, `ok \x1b[2Jthanks`) || strings.Contains(out, "\x1b") {
		t.Errorf("output = %q: want the status and the body, escaped", out)
	}
	if strings.Contains(out, secret) {
		t.Errorf("output shows the secret")
	}
	if _, err := run(t, "events", "test", "nobody", "--config", p); err == nil || !strings.Contains(err.Error(), "nobody") {
		t.Errorf("unknown webhook: %v", err)
	}
}
