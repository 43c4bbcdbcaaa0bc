package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/returnpath/returnpath/internal/client"
	"github.com/returnpath/returnpath/internal/fabric"
	probing "github.com/returnpath/returnpath/internal/probe"
)

func newHostCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "host",
		Short: "Register or remove this Docker host (run on the host, before dockerd starts), or probe its return path",
		Long: `Register or remove a Docker host with a running returnpath server, or prove its return
path with a probe once dockerd runs.

Exit codes of register and deregister: 0 done; 2 error (bad flags, server unreachable,
refused); 3 the host's change was rejected; 4 it failed or was rolled back; 5 --wait ran out.
host probe: 0 replies came back; 1 none did; 2 it could not test.`,
	}
	cmd.AddCommand(newHostRegisterCmd(), newHostDeregisterCmd(), newHostProbeCmd(), newHostRenewCmd(), newHostListCmd())
	addClientFlags(cmd)
	return cmd
}

func newHostRegisterCmd() *cobra.Command {
	var name, address, subnet, address6, subnet6, daemonJSON string
	var allowDirectRouting bool
	var wait time.Duration
	var po probeOptions
	cmd := &cobra.Command{
		Use:   "register --name N (--address A [--address6 A6] | --address6 A6) [--subnet S] [--daemon-json PATH] [--wait 60s [--probe TARGET]]",
		Short: "Register the host, write its bip into daemon.json, and optionally wait until its routes are in place",
		Long: `Registers the host (POST /v1/hosts), which allocates its docker0 subnet; repeating the
same name and address gives the same subnet. With --daemon-json, sets "bip" and "ip-masq": false
in that file, keeping every other key (created if missing, replaced atomically, mode kept).
With --wait, waits until the host is active: its return routes were approved and applied.
With --wait and --probe TARGET (for hosts where dockerd already runs), then probes TARGET from
the docker0 gateway address as host probe does, again until a probe gets replies or --wait
runs out (exit 5): the host is done only once it has proved its return path itself.
A host of an IPv6-only segment (hosts6 and pool6 only) registers with --address6 alone: it
gets an IPv6 subnet only, and daemon.json gets "ipv6", "fixed-cidr-v6" and "ip-masq" but no
"bip".`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			asJSON, err := outputJSON(cmd)
			if err != nil {
				return err
			}
			reg := client.Registration{Name: name}
			if address == "" && address6 == "" {
				return errors.New("--address: required (or, for a host of an IPv6-only segment, --address6 alone)")
			}
			if address != "" {
				if reg.Address, err = netip.ParseAddr(address); err != nil {
					return fmt.Errorf("--address: %q is not an IP address", address)
				}
			}
			if subnet != "" {
				if reg.Subnet, err = netip.ParsePrefix(subnet); err != nil {
					return fmt.Errorf("--subnet: %q is not a network in CIDR notation (e.g. 10.210.10.0/24)", subnet)
				}
			}
			if address6 != "" {
				if reg.Address6, err = netip.ParseAddr(address6); err != nil || !reg.Address6.Is6() {
					return fmt.Errorf("--address6: %q is not an IPv6 address", address6)
				}
			}
			if subnet6 != "" {
				if address6 == "" {
					return errors.New("--subnet6: needs --address6")
				}
				if reg.Subnet6, err = netip.ParsePrefix(subnet6); err != nil {
					return fmt.Errorf("--subnet6: %q is not a network in CIDR notation (e.g. 2001:db8:a00::/64)", subnet6)
				}
			}
			if allowDirectRouting && daemonJSON == "" {
				return errors.New("--allow-direct-routing: needs --daemon-json, the file to set it in")
			}
			if wait < 0 {
				return errors.New("--wait: must not be negative")
			}
			var probe *probing.Options
			if cmd.Flags().Changed("probe") {
				if wait == 0 {
					return errors.New("--probe: needs --wait, the time to wait for the routes and a reply")
				}
				o, err := po.parse()
				if err != nil {
					return err
				}
				probe = &o
			}
			if daemonJSON != "" {
				// Refuse a broken daemon.json before anything is allocated on the server.
				if err := checkDaemonJSON(daemonJSON); err != nil {
					return err
				}
			}
			c, err := clientFromCmd(cmd)
			if err != nil {
				return err
			}
			return hostRegister(cmd.Context(), c, cmd.OutOrStdout(), asJSON, reg, daemonOptions{path: daemonJSON, allowDirectRouting: allowDirectRouting}, wait, probe, po.iface)
		},
	}
	cmd.Flags().StringVar(&po.target, "probe", "", "with --wait: then probe this target (ADDR or ADDR:PORT; \"\": the segment's probes.targets) until a reply proves the return path")
	po.flags(cmd, "probe-")
	f := cmd.Flags()
	f.StringVar(&name, "name", "", "the host's name, a DNS name (required)")
	f.StringVar(&address, "address", "", "the host's uplink IPv4 address (required unless the host's segment is IPv6-only)")
	f.StringVar(&subnet, "subnet", "", "ask for this subnet of the pool instead of the next free one")
	f.StringVar(&address6, "address6", "", "the host's uplink IPv6 address: also allocate an IPv6 subnet (dual stack; daemon.json gets ipv6 and fixed-cidr-v6); alone, for a host of an IPv6-only segment")
	f.StringVar(&subnet6, "subnet6", "", "with --address6: ask for this IPv6 subnet of the segment's pool6")
	f.BoolVar(&allowDirectRouting, "allow-direct-routing", false, "also set \"allow-direct-routing\": true in daemon.json (Docker 28+: accept connections routed to containers from outside; see docs/bootstrap.md)")
	f.StringVar(&daemonJSON, "daemon-json", "", "Docker's daemon.json to set bip and ip-masq in (e.g. /etc/docker/daemon.json)")
	f.DurationVar(&wait, "wait", 0, "wait up to this long for the host to become active (0: do not wait)")
	_ = cmd.MarkFlagRequired("name")
	return cmd
}

// hostRegisterResult is the --output json answer of host register.
type hostRegisterResult struct {
	Host       client.Host       `json:"host"`
	Created    bool              `json:"created"`
	DaemonJSON *daemonJSONResult `json:"daemon_json"`
	Change     *client.Change    `json:"change,omitempty"`
	Probe      *probeOutcome     `json:"probe,omitempty"` // the last probe, with --probe
}

// daemonOptions are host register's daemon.json settings: the file, and whether to allow
// direct routing.
type daemonOptions struct {
	path               string
	allowDirectRouting bool
}

func hostRegister(ctx context.Context, c *client.Client, out io.Writer, asJSON bool, reg client.Registration, daemon daemonOptions, wait time.Duration, probe *probing.Options, iface string) error {
	daemonJSON := daemon.path
	start := time.Now()
	h, created, err := c.RegisterHost(ctx, reg)
	if err != nil {
		return err
	}
	res := hostRegisterResult{Host: h, Created: created}
	say := func(format string, a ...any) {
		if !asJSON {
			tprintf(out, format+"\n", a...)
		}
	}
	verb := "registered"
	if !created {
		verb = "already registered"
	}
	if h.Subnet.IsValid() {
		say("%s %s (%s) in segment %s: subnet %s, gateway %s, state %s%s", verb, h.Name, h.Address, h.Segment, h.Subnet, h.Gateway, h.State, changeNote(h.Change))
	} else {
		say("%s %s (%s) in IPv6-only segment %s: subnet6 %s, gateway %s, state %s%s", verb, h.Name, h.Address6, h.Segment, h.Subnet6, h.Gateway, h.State, changeNote(h.Change))
	}
	if h.Note != nil && *h.Note != "" {
		// Plainly, before anything is written: the host is registered, but will get no routes.
		say("%s", *h.Note)
	}
	if daemonJSON != "" {
		dj, err := mergeDaemonSettings(daemonJSON, daemonSettings{bip: h.Docker.Bip, fixedCIDRv6: h.Docker.FixedCIDRv6, allowDirectRouting: daemon.allowDirectRouting})
		if err != nil {
			return err
		}
		res.DaemonJSON = &dj
		switch {
		case dj.Bip == "" && dj.Changed:
			say("wrote %s: ip-masq false (no bip: the host's segment is IPv6-only); other keys kept", dj.Path)
		case dj.Bip == "":
			say("%s already has ip-masq false and the IPv6 keys; not rewritten", dj.Path)
		case dj.Created:
			say("created %s: bip %s, ip-masq false", dj.Path, dj.Bip)
		case dj.Changed && dj.OldBip != "" && dj.OldBip != dj.Bip:
			say("updated %s: bip %s (was %s), ip-masq false; other keys kept", dj.Path, dj.Bip, dj.OldBip)
		case dj.Changed:
			say("updated %s: bip %s, ip-masq false; other keys kept", dj.Path, dj.Bip)
		default:
			say("%s already has bip %s and ip-masq false; not rewritten", dj.Path, dj.Bip)
		}
		if dj.FixedCIDRv6 != "" {
			say("%s: ipv6 true, fixed-cidr-v6 %s", dj.Path, dj.FixedCIDRv6)
		}
		if dj.AllowDirectRouting {
			say("%s: allow-direct-routing true", dj.Path)
		}
		for _, w := range dj.Warnings {
			say("warning: %s: %s", dj.Path, w)
		}
	} else {
		if h.Docker.Bip.IsValid() {
			say("docker0 settings for daemon.json: \"bip\": %q, \"ip-masq\": false", h.Docker.Bip.String())
		} else {
			say("docker0 settings for daemon.json: \"ip-masq\": false (no bip: the host's segment is IPv6-only)")
		}
		if h.Docker.FixedCIDRv6.IsValid() {
			say("and for IPv6: \"ipv6\": true, \"fixed-cidr-v6\": %q", h.Docker.FixedCIDRv6.String())
		}
	}
	if wait == 0 {
		return emitJSON(out, asJSON, res, nil)
	}
	say("waiting up to %s for %s to become active", wait, h.Name)
	h, ch, err := waitHost(ctx, c, h, client.HostActive, wait)
	res.Host, res.Change = h, ch
	if err == nil {
		say("%s is active: its return routes are in place%s", h.Name, changeNote(h.Change))
	}
	if err != nil || probe == nil {
		return emitJSON(out, asJSON, res, err)
	}
	target := "the segment's probes.targets"
	if probe.Target.IsValid() {
		target = probeTargetText(*probe)
	}
	say("probing %s from docker0 until a reply comes back", target)
	p, err := probeUntilOK(ctx, c, h.Name, iface, *probe, start.Add(wait))
	res.Probe = &p
	if err == nil {
		say("%s proved its return path: %d of %d replies from %s to %s, mean round trip %s", h.Name, p.Received, p.Sent, p.Target, p.Source, msText(*p.RTTMS))
	}
	return emitJSON(out, asJSON, res, err)
}

// probeRetry is how long register --probe waits between probes that got no reply.
const probeRetry = 2 * time.Second

// probeUntilOK probes until a probe gets replies (and is recorded) or deadline passes: the
// routes may take a moment to be installed on the last device, and dockerd to set up docker0.
func probeUntilOK(ctx context.Context, c *client.Client, name, iface string, o probing.Options, deadline time.Time) (probeOutcome, error) {
	for {
		p := probeHost(ctx, c, name, iface, o)
		if p.Result == string(fabric.ProbeOK) && p.Recorded {
			return p, nil
		}
		if time.Until(deadline) < probeRetry+o.Timeout*time.Duration(o.Count) {
			why := p.Error
			if why == "" {
				why = fmt.Sprintf("no reply to %d probes from %s to %s", p.Sent, p.Source, p.Target)
			}
			return p, exitCode{code: exitTimeout, err: fmt.Errorf("%s is active but has not proved its return path before --wait ran out: %s", name, why)}
		}
		t := time.NewTimer(probeRetry)
		select {
		case <-ctx.Done():
			t.Stop()
			return p, ctx.Err()
		case <-t.C:
		}
	}
}

func emitJSON(out io.Writer, asJSON bool, v any, err error) error {
	if asJSON {
		if werr := writeJSONTo(out, v); werr != nil && err == nil {
			return werr
		}
	}
	return err
}

func changeNote(ref *client.ChangeRef) string {
	if ref == nil {
		return ""
	}
	return fmt.Sprintf(", change #%d %s", ref.ID, ref.Status)
}

// checkDaemonJSON reads an existing daemon.json and fails if it is not a JSON object.
func checkDaemonJSON(path string) error {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("daemon.json: %w", pathError(err))
	}
	if _, err := parseDaemonJSON(data); err != nil {
		return fmt.Errorf("daemon.json %s: %w (nothing registered, file left untouched)", path, err)
	}
	return nil
}

func newHostDeregisterCmd() *cobra.Command {
	var name string
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "deregister --name N [--wait 60s]",
		Short: "Remove the host; its routes are withdrawn (after review) and its subnet released",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			asJSON, err := outputJSON(cmd)
			if err != nil {
				return err
			}
			if wait < 0 {
				return errors.New("--wait: must not be negative")
			}
			c, err := clientFromCmd(cmd)
			if err != nil {
				return err
			}
			return hostDeregister(cmd.Context(), c, cmd.OutOrStdout(), asJSON, name, wait)
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "the host's name (required)")
	cmd.Flags().DurationVar(&wait, "wait", 0, "wait up to this long until the host is removed (0: do not wait)")
	_ = cmd.MarkFlagRequired("name")
	return cmd
}

// hostDeregisterResult is the --output json answer of host deregister.
type hostDeregisterResult struct {
	Host    client.Host    `json:"host"`
	Removed bool           `json:"removed"`
	Change  *client.Change `json:"change,omitempty"`
}

func hostDeregister(ctx context.Context, c *client.Client, out io.Writer, asJSON bool, name string, wait time.Duration) error {
	h, err := c.DeregisterHost(ctx, name)
	if err != nil {
		return err
	}
	res := hostDeregisterResult{Host: h}
	if h.State == client.HostRemoved {
		// Nothing of it was on any device: the server released the subnet at once.
		res.Removed = true
		if !asJSON {
			tprintf(out, "removed %s (%s) at once: none of its routes was on any device%s; subnet %s is released\n", h.Name, h.Uplink(), changeNote(h.Change), h.Subnets())
		}
		return emitJSON(out, asJSON, res, nil)
	}
	if !asJSON {
		tprintf(out, "removing %s (%s, subnet %s): state %s%s\n", h.Name, h.Uplink(), h.Subnets(), h.State, changeNote(h.Change))
	}
	if wait == 0 {
		return emitJSON(out, asJSON, res, nil)
	}
	if !asJSON {
		tprintf(out, "waiting up to %s for %s to be removed\n", wait, h.Name)
	}
	h, ch, err := waitHost(ctx, c, h, client.HostRemoved, wait)
	res.Host, res.Change = h, ch
	if err == nil {
		res.Removed = true
		if !asJSON {
			tprintf(out, "%s is removed: its routes are gone and subnet %s is released\n", name, h.Subnets())
		}
	}
	return emitJSON(out, asJSON, res, err)
}

// pollFloor is the least time between two polls when the server answers a long poll at once
// (a server without long-poll support, or a transient error).
const pollFloor = time.Second

// longPollMax bounds one long poll, well under common proxy idle timeouts.
const longPollMax = 30 * time.Second

// waitHost long-polls the host until it reaches want (for removed: until the server no longer
// knows it), its change is rejected, failed or rolled back, or wait runs out. The errors carry
// exit codes and say why, with the change's reason when there is one.
func waitHost(ctx context.Context, c *client.Client, h client.Host, want string, wait time.Duration) (client.Host, *client.Change, error) {
	deadline := time.Now().Add(wait)
	ctx, cancel := context.WithDeadline(ctx, deadline.Add(5*time.Second))
	defer cancel()
	var lastErr error
	var lastPoll time.Time
	for {
		if reached(h, want) {
			return h, nil, nil
		}
		if ref := h.Change; ref != nil && lastErr == nil {
			switch ref.Status {
			case client.ChangeRejected, client.ChangeFailed, client.ChangeRolledBack:
				ch, err := changeFailure(ctx, c, h, want)
				return h, ch, err
			}
		}
		// Do not spin on a server that answers at once (no long-poll support, or an error).
		if d := pollFloor - time.Since(lastPoll); d > 0 && time.Until(deadline) > 0 {
			t := time.NewTimer(min(d, time.Until(deadline)))
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			t.Stop()
		}
		remaining := time.Until(deadline)
		if remaining <= 0 {
			return h, nil, exitCode{code: exitTimeout, err: waitTimeout(h, wait, lastErr)}
		}
		lastPoll = time.Now()
		next, err := c.HostWait(ctx, h.Name, want, min(remaining, longPollMax))
		switch {
		case err == nil:
			h, lastErr = next, nil
		case want == client.HostRemoved && client.IsNotFound(err):
			h.State = client.HostRemoved
			return h, nil, nil
		case retryable(err) && ctx.Err() == nil:
			lastErr = err
		default:
			return h, nil, err
		}
	}
}

func waitTimeout(h client.Host, wait time.Duration, lastErr error) error {
	msg := fmt.Sprintf("timed out: %s is still %s after %s%s", h.Name, h.State, wait, changeNote(h.Change))
	if h.Change != nil && h.Change.Status == client.ChangePending {
		msg += fmt.Sprintf(": it awaits a reviewer (returnpath changes show %d)", h.Change.ID)
	}
	if lastErr != nil {
		msg += fmt.Sprintf("; last error: %v", lastErr)
	}
	return errors.New(msg)
}

func reached(h client.Host, want string) bool {
	return h.State == want
}

// retryable errors are worth another poll: no answer, the server briefly unavailable, or
// too many long-polls open on it at once (429).
func retryable(err error) bool {
	var te *client.TransportError
	var p *client.Problem
	return errors.As(err, &te) || errors.As(err, &p) && (p.Status == 429 || p.Status == 502 || p.Status == 503 || p.Status == 504)
}

// changeFailure explains a rejected or failed change, with its reason and the failing ops.
func changeFailure(ctx context.Context, c *client.Client, h client.Host, want string) (*client.Change, error) {
	ref := h.Change
	code := exitFailed
	if ref.Status == client.ChangeRejected {
		code = exitRejected
	}
	goal := "become active"
	if want == client.HostRemoved {
		goal = "be removed"
	}
	ch, err := c.Change(ctx, ref.ID)
	if err != nil {
		msg := fmt.Sprintf("%s cannot %s: change #%d was %s", h.Name, goal, ref.ID, ref.Status)
		if ref.Reason != nil && *ref.Reason != "" {
			msg += ": " + *ref.Reason
		}
		return nil, exitCode{code: code, err: fmt.Errorf("%s (its details could not be read: %w)", msg, err)}
	}
	msg := fmt.Sprintf("%s cannot %s: change #%d was %s", h.Name, goal, ch.ID, ch.Status)
	if ch.ApprovedBy != nil && ch.Status == client.ChangeRejected {
		msg += " by " + *ch.ApprovedBy
	}
	if ch.Reason != nil && *ch.Reason != "" {
		msg += ": " + *ch.Reason
	}
	for _, op := range ch.Ops {
		if op.Status == "failed" && op.Error != nil {
			msg += fmt.Sprintf("; %s %s %s via %s: %s", op.Device, op.Action, op.Prefix, op.NextHop, *op.Error)
		}
	}
	if ch.Status == client.ChangeRejected && want == client.HostActive {
		msg += fmt.Sprintf("; its routes will not be installed: 'returnpath host deregister --name %s' releases subnet %s at once", h.Name, h.Subnets())
	}
	return &ch, exitCode{code: code, err: errors.New(msg)}
}

// daemonJSONResult says what mergeDaemonJSON did.
type daemonJSONResult struct {
	Path    string `json:"path"`
	Created bool   `json:"created"`
	Changed bool   `json:"changed"`
	OldBip  string `json:"old_bip,omitempty"`
	Bip     string `json:"bip,omitempty"` // none for a host of an IPv6-only segment
	// FixedCIDRv6 is set when "ipv6": true and "fixed-cidr-v6" were written (a dual-stack host).
	FixedCIDRv6        string   `json:"fixed_cidr_v6,omitempty"`
	AllowDirectRouting bool     `json:"allow_direct_routing,omitempty"`
	Warnings           []string `json:"warnings,omitempty"`
}

// daemonSettings are the daemon.json keys host register sets: bip (and ip-masq false), for a
// dual-stack host ipv6 and fixed-cidr-v6, and allow-direct-routing when asked.
type daemonSettings struct {
	bip                netip.Prefix
	fixedCIDRv6        netip.Prefix
	allowDirectRouting bool
}

// daemonKV is one top-level key of daemon.json with its value as written.
type daemonKV struct {
	key string
	val json.RawMessage
}

// mergeDaemonJSON sets "bip" and "ip-masq": false in Docker's daemon.json at path, keeping
// every other key, their order and their values as written. A missing file is created (mode
// 0644); an existing one is replaced atomically (temp file in the same directory, fsync,
// rename, fsync of the directory) with its mode and owner kept. A file that is not a JSON
// object, or that names another bridge, is an error and is left untouched. Nothing is written
// when the file already says the same.
func mergeDaemonJSON(path string, bip netip.Prefix) (daemonJSONResult, error) {
	return mergeDaemonSettings(path, daemonSettings{bip: bip})
}

// mergeDaemonSettings is mergeDaemonJSON for every key of ds: besides bip and ip-masq, "ipv6":
// true and "fixed-cidr-v6" when ds has an IPv6 subnet, and "allow-direct-routing": true when
// asked. Keys it is not asked to set are left as they are. A host of an IPv6-only segment has
// no bip: its file gets ip-masq, ipv6 and fixed-cidr-v6, and any bip in it is left alone
// (docs/bootstrap.md says why dockerd still gives docker0 an IPv4 subnet).
func mergeDaemonSettings(path string, ds daemonSettings) (daemonJSONResult, error) {
	bip := ds.bip
	res := daemonJSONResult{Path: path, AllowDirectRouting: ds.allowDirectRouting}
	if bip.IsValid() {
		res.Bip = bip.String()
	}
	if ds.fixedCIDRv6.IsValid() {
		res.FixedCIDRv6 = ds.fixedCIDRv6.String()
	}
	if !bip.IsValid() && !ds.fixedCIDRv6.IsValid() {
		return res, errors.New("daemon.json: no bip or fixed-cidr-v6 to write")
	}
	// Write through a symlink to its target, as an editor would; renaming over the link
	// would replace it with a plain file.
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real
	}
	mode := fs.FileMode(0o644)
	uid, gid := -1, -1
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		res.Created = true
	case err != nil:
		return res, fmt.Errorf("daemon.json: %w", pathError(err))
	default:
		st, err := os.Stat(path)
		if err != nil {
			return res, fmt.Errorf("daemon.json: %w", pathError(err))
		}
		mode = st.Mode().Perm()
		if sys, ok := st.Sys().(*syscall.Stat_t); ok {
			uid, gid = int(sys.Uid), int(sys.Gid)
		}
	}
	kvs, err := parseDaemonJSON(data)
	if err != nil {
		return res, fmt.Errorf("daemon.json %s: %w (file left untouched)", path, err)
	}
	sameBip, sameMasq := !bip.IsValid(), false
	sameV6, sameCIDRv6, sameDirect := !ds.fixedCIDRv6.IsValid(), !ds.fixedCIDRv6.IsValid(), !ds.allowDirectRouting
	for _, kv := range kvs {
		switch kv.key {
		case "ipv6":
			var b bool
			sameV6 = sameV6 || (json.Unmarshal(kv.val, &b) == nil && b)
		case "fixed-cidr-v6":
			var s string
			sameCIDRv6 = sameCIDRv6 || (json.Unmarshal(kv.val, &s) == nil && s == res.FixedCIDRv6)
		case "allow-direct-routing":
			var b bool
			sameDirect = sameDirect || (json.Unmarshal(kv.val, &b) == nil && b)
		case "bip":
			var s string
			_ = json.Unmarshal(kv.val, &s)
			res.OldBip, sameBip = s, sameBip || s == bip.String()
		case "ip-masq":
			var b bool
			sameMasq = json.Unmarshal(kv.val, &b) == nil && !b
		case "bridge":
			var s string
			if json.Unmarshal(kv.val, &s) == nil && s != "" && s != "docker0" {
				return res, fmt.Errorf("daemon.json %s: \"bridge\" is %q, and dockerd refuses bip together with another bridge; remove it first (file left untouched)", path, s)
			}
		case "fixed-cidr":
			var s string
			if json.Unmarshal(kv.val, &s) == nil && bip.IsValid() {
				if p, err := netip.ParsePrefix(s); err != nil || !bip.Masked().Contains(p.Addr()) || p.Bits() < bip.Bits() {
					res.Warnings = append(res.Warnings, fmt.Sprintf("\"fixed-cidr\" %q is not inside %s; dockerd will refuse to start until it is fixed or removed", s, bip.Masked()))
				}
			}
		}
	}
	if sameBip && sameMasq && sameV6 && sameCIDRv6 && sameDirect && !res.Created {
		return res, nil
	}
	if bip.IsValid() {
		kvs = setDaemonKey(kvs, "bip", json.RawMessage(fmt.Sprintf("%q", bip.String())))
	}
	kvs = setDaemonKey(kvs, "ip-masq", json.RawMessage("false"))
	if ds.fixedCIDRv6.IsValid() {
		kvs = setDaemonKey(kvs, "ipv6", json.RawMessage("true"))
		kvs = setDaemonKey(kvs, "fixed-cidr-v6", json.RawMessage(fmt.Sprintf("%q", res.FixedCIDRv6)))
	}
	if ds.allowDirectRouting {
		kvs = setDaemonKey(kvs, "allow-direct-routing", json.RawMessage("true"))
	}
	out, err := renderDaemonJSON(kvs)
	if err != nil {
		return res, fmt.Errorf("daemon.json %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return res, fmt.Errorf("daemon.json: %w", pathError(err))
	}
	if err := writeFileAtomic(path, out, mode, uid, gid); err != nil {
		return res, fmt.Errorf("daemon.json %s: %w", path, err)
	}
	res.Changed = true
	return res, nil
}

// parseDaemonJSON reads a top-level JSON object keeping its keys in order. An empty file is
// an empty object.
func parseDaemonJSON(data []byte) ([]daemonKV, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("not valid JSON: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("not a JSON object")
	}
	var kvs []daemonKV
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("not valid JSON: %w", err)
		}
		key, ok := tok.(string)
		if !ok {
			return nil, errors.New("not valid JSON: expected a key")
		}
		if seen[key] {
			return nil, fmt.Errorf("key %q appears twice", key)
		}
		seen[key] = true
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			return nil, fmt.Errorf("not valid JSON at key %q: %w", key, err)
		}
		kvs = append(kvs, daemonKV{key, val})
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("not valid JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("not valid JSON: data after the object")
	}
	return kvs, nil
}

func setDaemonKey(kvs []daemonKV, key string, val json.RawMessage) []daemonKV {
	for i := range kvs {
		if kvs[i].key == key {
			kvs[i].val = val
			return kvs
		}
	}
	return append(kvs, daemonKV{key, val})
}

func renderDaemonJSON(kvs []daemonKV) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("{")
	for i, kv := range kvs {
		if i > 0 {
			b.WriteString(",")
		}
		k, _ := json.Marshal(kv.key)
		b.WriteString("\n  ")
		b.Write(k)
		b.WriteString(": ")
		if err := json.Indent(&b, kv.val, "  ", "  "); err != nil {
			return nil, err
		}
	}
	if len(kvs) > 0 {
		b.WriteString("\n")
	}
	b.WriteString("}\n")
	return b.Bytes(), nil
}

// writeFileAtomic replaces path with data so that a reader (or a crash) sees either the old
// file or the new one, never a part. uid and gid are kept when not -1.
func writeFileAtomic(path string, data []byte, mode fs.FileMode, uid, gid int) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return pathError(err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Chmod(mode); err != nil {
		return err
	}
	if uid >= 0 && (uid != os.Getuid() || gid != os.Getgid()) {
		if err = f.Chown(uid, gid); err != nil {
			return err
		}
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return pathError(err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return nil // the file is in place; only the directory's durability is unconfirmed
	}
	defer d.Close()
	_ = d.Sync()
	return nil
}
