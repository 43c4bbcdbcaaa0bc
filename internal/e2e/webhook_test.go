package e2e

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

	"github.com/returnpath/returnpath/internal/lab/labtest"
	"github.com/returnpath/returnpath/internal/postgres/pgtest"
)

// TestReviewersHearOfPendingChangesOnTheLab: the real binary on the lab, a webhook to the
// reviewers' receiver (HTTPS, in the lab's management namespace like the service), and
// registration without auto-approval: the receiver gets the pending change, signed, with the
// device lines the reviewer will approve, and then the applied change once approved. The
// time from the registration's answer to the webhook's arrival is logged (the issue asks for
// "within a second"; a timed assertion would be a flaky test, so the figure is reported).
func TestReviewersHearOfPendingChangesOnTheLab(t *testing.T) {
	l := labtest.Require(t)
	const secret = "lab-hook-secret-3f9d"
	got := make(chan map[string]any, 10)
	arrived := make(chan time.Time, 10)
	rc := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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
		arrived <- time.Now()
		got <- body
	}))
	defer rc.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: rc.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("RETURNPATH_TEST_LAB_HOOK_SECRET", secret)

	url := "http://" + l.Service.String() + ":8114"
	cfg := fleetConfig(t, l, pgtest.URL(t), l.Service.String()+":8114")
	cfg = rewrite(t, cfg, "  auto_approve: [{action: add}, {action: remove}]", "  auto_approve: [{action: remove}]")
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hooks := fmt.Sprintf(`events:
  webhooks:
    - name: reviewers
      url: %s/hook
      ca_file: %s
      secret_env: RETURNPATH_TEST_LAB_HOOK_SECRET
      events: [change.pending, change.applied]
`, rc.URL, ca)
	if err := os.WriteFile(cfg, append(b, hooks...), 0o600); err != nil {
		t.Fatal(err)
	}
	svc := startService(t, cfg, url)
	defer svc.stop()
	defer cleanDevices(t, l)
	boot, alice := token(t, cfg, "boot", "bootstrap"), token(t, cfg, "alice", "reviewer")

	req, _ := http.NewRequest("POST", url+"/v1/hosts", strings.NewReader(`{"name":"h0","address":"10.10.100.1"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+boot)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	answered := time.Now()
	var h struct {
		Change struct{ ID int64 } `json:"change"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&h)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /v1/hosts = %d", resp.StatusCode)
	}
	body := receive(t, got)
	t.Logf("change.pending arrived %s after the registration was answered", (<-arrived).Sub(answered).Round(time.Millisecond))
	preview := fmt.Sprint(body["preview"])
	if body["event"] != "change.pending" || body["host"] != "h0" || !strings.Contains(preview, "sw1") || !strings.Contains(preview, "fw1") ||
		!strings.Contains(preview, "ip route") {
		t.Fatalf("pending webhook = %v, want change.pending for h0 with sw1's and fw1's lines", body)
	}

	var c struct {
		PlanHash string `json:"plan_hash"`
	}
	get(t, fmt.Sprintf("%s/v1/changes/%d", url, h.Change.ID), alice, &c)
	req, _ = http.NewRequest("POST", fmt.Sprintf("%s/v1/changes/%d/approve", url, h.Change.ID), strings.NewReader(`{"plan_hash":"`+c.PlanHash+`"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+alice)
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("approve = %d", resp.StatusCode)
	}
	if body := receive(t, got); body["event"] != "change.applied" || body["host"] != "h0" {
		t.Errorf("second webhook = %v, want change.applied for h0", body)
	}
	<-arrived
	// Clean up the devices the product's way.
	req, _ = http.NewRequest("DELETE", url+"/v1/hosts/h0", nil)
	req.Header.Set("Authorization", "Bearer "+boot)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}
}

func receive(t *testing.T, got <-chan map[string]any) map[string]any {
	t.Helper()
	select {
	case b := <-got:
		return b
	case <-time.After(60 * time.Second):
		t.Fatal("no webhook within 60s")
		return nil
	}
}
