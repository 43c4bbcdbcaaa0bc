package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/returnpath/returnpath/internal/lab"
	"github.com/returnpath/returnpath/internal/lab/labtest"
	"github.com/returnpath/returnpath/internal/postgres/pgtest"
)

type adoptReport struct {
	DryRun  bool `json:"dry_run"`
	Subnets []struct {
		Subnet   string   `json:"subnet"`
		Address  string   `json:"address"`
		Host     *string  `json:"host"`
		Action   string   `json:"action"`
		Complete bool     `json:"complete"`
		Missing  []string `json:"missing"`
		State    *string  `json:"state"`
		Error    *string  `json:"error"`
	} `json:"subnets"`
	Orphans []struct {
		Device, Prefix, Reason string
	} `json:"orphans"`
}

// adoptJSON runs `returnpath adopt ... -o json` and decodes its standard output.
func adoptJSON(t *testing.T, args ...string) adoptReport {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary(t), append([]string{"adopt", "-o", "json"}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("adopt %v: %v\n%s", args, err, stderr.String())
	}
	var rep adoptReport
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("adopt %v: %v\n%s", args, err, out)
	}
	return rep
}

// metricValues returns the samples of a counter on /metrics, by label set ("device=sw1").
func metricValues(t *testing.T, url, name string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		key, val, _ := strings.Cut(strings.TrimPrefix(line, name), " ")
		key = strings.NewReplacer("{", "", "}", "", `"`, "").Replace(key)
		v, err := strconv.ParseFloat(val, 64)
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		out[key] = v
	}
	return out
}

// fabricState is what the devices hold, as they say it themselves: sw1's whole running
// configuration and every route of fw1's kernel.
func fabricState(t *testing.T, l *lab.Lab) string {
	t.Helper()
	ctx := context.Background()
	sw, err := l.Vtysh(ctx, "sw1", "show running-config")
	if err != nil {
		t.Fatal(err)
	}
	fw, err := l.Exec(ctx, "fw1", "ip", "route", "show", "table", "all")
	if err != nil {
		t.Fatal(err)
	}
	return sw + "\n--- fw1\n" + string(fw)
}

// TestAdoptOnTheLab brings 50 hosts whose routes were typed by hand on sw1 and fw1 under
// management with `returnpath adopt --from-devices`: every host ends up active, returnpath
// types not one line on either device (the devices' configuration is byte for byte the same
// and returnpath_op_attempts_total stays 0), the orphan is listed and not registered, and
// `returnpath verify` exits 0. Then a host whose firewall route is missing is adopted from a
// CSV: its change adds that one route and nothing on the switch.
func TestAdoptOnTheLab(t *testing.T) {
	l := labtest.Require(t)
	ctx := context.Background()
	dbURL := pgtest.URL(t)
	listen := l.Service.String() + ":8097"
	url := "http://" + listen
	cfg := fleetConfig(t, l, dbURL, listen)
	defer cleanDevices(t, l)
	svc := startService(t, cfg, url)
	defer svc.stop()
	oncall, admin, viewer := token(t, cfg, "oncall", "reviewer"), token(t, cfg, "root", "admin"), token(t, cfg, "ci", "viewer")

	// 50 hosts' routes by hand, in one vtysh call and one ip batch, plus an orphan on sw1
	// (its next hop is not an address of the segment).
	const n = 50
	var sw []string
	var fw strings.Builder
	for i := range n {
		subnet := fmt.Sprintf("172.20.%d.0/24", i)
		sw = append(sw, fmt.Sprintf("ip route %s 10.10.100.%d", subnet, 1+i))
		fmt.Fprintf(&fw, "route add %s via 10.10.20.1 proto 202\n", subnet)
	}
	sw = append(sw, "ip route 172.21.0.0/24 10.99.0.1")
	if out, err := l.Vtysh(ctx, "sw1", sw...); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	batch := filepath.Join(t.TempDir(), "fw1.batch")
	if err := os.WriteFile(batch, []byte(fw.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := l.Exec(ctx, "fw1", "ip", "-batch", batch); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	before := fabricState(t, l)

	// A listing registers nothing and says so.
	out, err := runBinary(t, "adopt", "--segment", "fleet", "--server", url, "--token", oncall)
	if err != nil || !strings.Contains(out, "50 subnets found on segment fleet, 0 with an incomplete path; nothing registered") ||
		!strings.Contains(out, "172.21.0.0/24") {
		t.Fatalf("adopt listing: %v\n%s", err, out)
	}

	rep := adoptJSON(t, "--segment", "fleet", "--from-devices", "--server", url, "--token", oncall)
	if rep.DryRun || len(rep.Subnets) != n {
		t.Fatalf("adopt: dry_run %v, %d subnets, want false and %d", rep.DryRun, len(rep.Subnets), n)
	}
	for _, s := range rep.Subnets {
		if s.Action != "registered" || !s.Complete || s.Host == nil || *s.Host != "host-"+strings.ReplaceAll(s.Address, ".", "-") {
			t.Errorf("subnet %s: %s (complete %v, host %v, error %v), want registered, complete, named after %s", s.Subnet, s.Action, s.Complete, s.Host, s.Error, s.Address)
		}
	}
	if len(rep.Orphans) != 1 || rep.Orphans[0].Prefix != "172.21.0.0/24" || rep.Orphans[0].Device != "sw1" {
		t.Errorf("orphans %+v, want sw1's 172.21.0.0/24", rep.Orphans)
	}

	waitActive(t, url, viewer, n, 2*time.Minute)
	if after := fabricState(t, l); after != before {
		t.Errorf("the devices changed while adopting:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if got := metricValues(t, url, "returnpath_op_attempts_total"); got["device=sw1"] != 0 || got["device=fw1"] != 0 {
		t.Errorf("returnpath_op_attempts_total = %v, want 0 for sw1 and fw1", got)
	}
	// The engine did run the ops: each found already present on its device.
	if got := metricValues(t, url, "returnpath_ops_total"); got["device=sw1,outcome=applied"] != n || got["device=fw1,outcome=applied"] != n {
		t.Errorf("returnpath_ops_total = %v, want %d applied on each device", got, n)
	}
	var orphanHost struct{ Items []any }
	get(t, url+"/v1/hosts?segment=fleet&limit=100&state=pending", viewer, &orphanHost)
	if len(orphanHost.Items) != 0 {
		t.Errorf("%d hosts pending, want none (the orphan is never registered)", len(orphanHost.Items))
	}

	// The orphan is drift until someone removes it; without it the fabric is in sync.
	if _, err := l.Vtysh(ctx, "sw1", "no ip route 172.21.0.0/24 10.99.0.1"); err != nil {
		t.Fatal(err)
	}
	if out, err := runBinary(t, "verify", "--fresh", "--server", url, "--token", admin); err != nil {
		t.Fatalf("verify after adopting: %v\n%s", err, out)
	}

	// An incomplete path, adopted from a CSV: only the firewall's missing route is typed.
	if _, err := l.Vtysh(ctx, "sw1", "ip route 172.20.200.0/24 10.10.101.1"); err != nil {
		t.Fatal(err)
	}
	csvPath := filepath.Join(t.TempDir(), "hosts.csv")
	if err := os.WriteFile(csvPath, []byte("name,address\nlegacy1,10.10.101.1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rep = adoptJSON(t, "--segment", "fleet", "--csv", csvPath, "--server", url, "--token", oncall)
	var legacy bool
	for _, s := range rep.Subnets {
		switch s.Subnet {
		case "172.20.200.0/24":
			legacy = true
			if s.Action != "registered" || s.Complete || strings.Join(s.Missing, ",") != "fw1" || s.Host == nil || *s.Host != "legacy1" {
				t.Errorf("legacy1's subnet: %s, complete %v, missing %v, host %v; want registered as legacy1, missing on fw1", s.Action, s.Complete, s.Missing, s.Host)
			}
		default:
			if s.Action != "already_registered" {
				t.Errorf("subnet %s: %s, want already_registered", s.Subnet, s.Action)
			}
		}
	}
	if !legacy {
		t.Fatalf("adopt --csv did not find 172.20.200.0/24: %+v", rep.Subnets)
	}
	waitActive(t, url, viewer, n+1, time.Minute)
	if got := metricValues(t, url, "returnpath_op_attempts_total"); got["device=sw1"] != 0 || got["device=fw1"] != 1 {
		t.Errorf("returnpath_op_attempts_total = %v, want sw1 0 and fw1 1 (the missing route alone)", got)
	}
	if out, err := l.Exec(ctx, "fw1", "ip", "route", "show", "172.20.200.0/24", "proto", "202"); err != nil || !strings.Contains(string(out), "via 10.10.20.1") {
		t.Errorf("fw1 after adopting legacy1: %v %s, want its route via 10.10.20.1", err, out)
	}
	if out, err := runBinary(t, "verify", "--fresh", "--server", url, "--token", admin); err != nil {
		t.Errorf("verify after adopting legacy1: %v\n%s", err, out)
	}
}

// waitActive waits until want hosts are active.
func waitActive(t *testing.T, url, tok string, want int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		var page struct {
			Items []struct {
				Name  string `json:"name"`
				State string `json:"state"`
			} `json:"items"`
		}
		get(t, url+"/v1/hosts?segment=fleet&state=active&limit=200", tok, &page)
		if len(page.Items) == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d hosts active after %s, want %d", len(page.Items), within, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
