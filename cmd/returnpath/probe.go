package main

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/returnpath/returnpath/internal/client"
	"github.com/returnpath/returnpath/internal/fabric"
	probing "github.com/returnpath/returnpath/internal/probe"
)

// Exit statuses of `returnpath host probe`, as verify's: 0 replies came back, 1 none did, 2
// the probe could not be run or reported.
const (
	exitProbeOK      = 0
	exitProbeFailed  = 1
	exitProbeNotTest = 2
)

// probeOptions are host probe's flags.
type probeOptions struct {
	name, target, iface string
	count               int
	timeout             time.Duration
}

// parse checks the flags, before anything is sent. With no --target the options have none:
// probeHost takes the segment's probes.targets.
func (o probeOptions) parse() (probing.Options, error) {
	if err := fabric.ValidateProbeOptions(o.count, o.timeout); err != nil {
		return probing.Options{}, fmt.Errorf("--%w", err)
	}
	out := probing.Options{Count: o.count, Timeout: o.timeout}
	if o.target == "" {
		return out, nil
	}
	t, err := fabric.ParseProbeTarget(o.target)
	if err != nil {
		return probing.Options{}, fmt.Errorf("--target: %w", err)
	}
	if !t.Addr().Is4() {
		return probing.Options{}, fmt.Errorf("--target: %s: only IPv4 return paths can be probed", t.Addr())
	}
	out.Target = t
	return out, nil
}

func (o *probeOptions) flags(cmd *cobra.Command, prefix string) {
	f := cmd.Flags()
	f.IntVar(&o.count, prefix+"count", 3, fmt.Sprintf("echo requests (or TCP connection attempts) to send, 1 to %d", fabric.ProbeMaxCount))
	f.DurationVar(&o.timeout, prefix+"timeout", 2*time.Second, "how long to wait for each reply")
	f.StringVar(&o.iface, prefix+"interface", "docker0", "the Docker bridge that holds the host's gateway address")
}

func newHostProbeCmd() *cobra.Command {
	var o probeOptions
	cmd := &cobra.Command{
		Use:   "probe [--target ADDR[:PORT]] [--name N] [--count 3] [--timeout 2s] [-o text|json|junit]",
		Short: "Prove this host's return path: probe a target from the docker0 gateway address and report it",
		Long: `Sends ICMP echo requests (or, with ADDR:PORT, TCP connection attempts to PORT, for targets
that drop ICMP) from the host's docker0 gateway address, the first address of the subnet
returnpath allocated to it, to a target outside the fabric. Since the packets leave from that
address, replies can only come back over the return routes: not over the host's uplink
address. The result is reported to the service (POST /v1/hosts/{name}/probes), where it shows
as the host's last_probe and is judged by verify --probes. Without --target it tries the
host's segment's probes.targets (from the server's configuration) in order, until one replies:
several targets keep one that is down from failing the host.

Run it on the Docker host, as root or with CAP_NET_RAW (or in net.ipv4.ping_group_range), once
dockerd has set up docker0. Exit status: 0 when replies came back, 1 when none did, 2 when the
host could not test (no docker0, no address of its allocated subnet on it, no permission) or
the result could not be reported.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, err := outputFormat(cmd)
			if err != nil {
				return exitCode{code: exitProbeNotTest, err: err}
			}
			opts, err := o.parse()
			if err != nil {
				return exitCode{code: exitProbeNotTest, err: err}
			}
			if o.name == "" {
				if o.name, err = os.Hostname(); err != nil {
					return exitCode{code: exitProbeNotTest, err: fmt.Errorf("--name: not given, and the host name is unknown: %w", err)}
				}
			}
			c, err := clientFromCmd(cmd)
			if err != nil {
				return exitCode{code: exitProbeNotTest, err: err}
			}
			out := probeHost(cmd.Context(), c, strings.ToLower(o.name), o.iface, opts)
			if err := writeProbe(cmd.OutOrStdout(), format, out); err != nil {
				return exitCode{code: exitProbeNotTest, err: err}
			}
			return out.exit()
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.target, "target", "", "ADDR (ICMP echo) or ADDR:PORT (TCP) outside every pool and segment (default: the segment's probes.targets)")
	f.StringVar(&o.name, "name", "", "the host's registered name (default: this machine's host name)")
	o.flags(cmd, "")
	// Its own -o: probe speaks JUnit as verify does, unlike the other host commands.
	f.StringP("output", "o", "text", "output format: text, json, junit")
	_ = f.SetAnnotation("output", formatsAnnotation, []string{"text", "json", "junit"})
	return cmd
}

// probeOutcome is one probe, as host probe prints it (-o json).
type probeOutcome struct {
	Host     string    `json:"host"`
	Target   string    `json:"target"`
	Method   string    `json:"method"`
	Source   string    `json:"source,omitempty"`
	Result   string    `json:"result"` // ok, failed or cannot_test
	Sent     int       `json:"sent"`
	Received int       `json:"received"`
	RTTMS    *float64  `json:"rtt_ms"`
	At       time.Time `json:"at"`
	Recorded bool      `json:"recorded"`
	Error    string    `json:"error,omitempty"` // why it could not test or report
}

// exit maps the outcome to host probe's exit status.
func (p probeOutcome) exit() error {
	switch {
	case p.Result == "cannot_test" || !p.Recorded:
		return exitCode{code: exitProbeNotTest, err: errors.New(p.Error)}
	case p.Result != string(fabric.ProbeOK):
		return exitCode{code: exitProbeFailed, err: fmt.Errorf("no reply from %s to %s: the return path to %s does not work", p.Target, p.Source, p.Host)}
	}
	return nil
}

// probeHost looks the host up, finds its gateway address on iface, probes and reports. Every
// failure lands in the outcome (cannot_test, or not recorded), so that it is printed in the
// format asked for. Without a target in o, it tries the segment's probes.targets in order and
// returns the first outcome that is not a failure, or the last.
func probeHost(ctx context.Context, c *client.Client, name, iface string, o probing.Options) probeOutcome {
	out := probeOutcome{Host: name, Target: "-", Method: "icmp", Result: "cannot_test", At: time.Now().UTC()}
	h, err := c.Host(ctx, name)
	if err != nil {
		out.Error = fmt.Sprintf("look up host %s: %v", name, err)
		return out
	}
	if o.Target.IsValid() {
		return probeTarget(ctx, c, h, iface, o)
	}
	targets, err := segmentTargets(ctx, c, h.Segment)
	if err != nil {
		out.Error = err.Error()
		return out
	}
	for _, t := range targets {
		o.Target = t
		if out = probeTarget(ctx, c, h, iface, o); out.Result != string(fabric.ProbeFailed) {
			break
		}
	}
	return out
}

// segmentTargets returns the probes.targets of segment seg, as the server configures them.
func segmentTargets(ctx context.Context, c *client.Client, seg string) ([]netip.AddrPort, error) {
	segs, err := c.Segments(ctx)
	if err != nil {
		return nil, fmt.Errorf("no --target, and the segments could not be read: %w", err)
	}
	for _, s := range segs {
		if s.Name != seg {
			continue
		}
		var out []netip.AddrPort
		for _, t := range s.Probes.Targets {
			if ap, err := fabric.ParseProbeTarget(t); err == nil && ap.Addr().Is4() {
				out = append(out, ap)
			}
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("no --target, and segment %s configures no IPv4 probes.targets", seg)
		}
		return out, nil
	}
	return nil, fmt.Errorf("no --target, and the server lists no segment %s", seg)
}

// probeTarget probes o.Target from h's gateway address on iface and reports the result.
func probeTarget(ctx context.Context, c *client.Client, h client.Host, iface string, o probing.Options) probeOutcome {
	name := h.Name
	out := probeOutcome{Host: name, Target: probeTargetText(o), Method: "icmp", Result: "cannot_test", At: time.Now().UTC()}
	if o.Target.Port() != 0 {
		out.Method = "tcp"
	}
	if !h.Subnet.IsValid() {
		out.Error = fmt.Sprintf("host %s has no IPv4 subnet (its segment is IPv6-only), and probes test IPv4 return paths only", name)
		return out
	}
	var err error
	if o.Source, err = probing.Source(iface, h.Subnet); err != nil {
		out.Error = err.Error()
		return out
	}
	out.Source = o.Source.String()
	res, err := probing.Run(ctx, o)
	if err != nil {
		out.Error = err.Error()
		return out
	}
	out.Sent, out.Received, out.At = res.Sent, res.Received, res.At.UTC().Truncate(time.Millisecond)
	out.Result = string(fabric.ProbeFailed)
	if res.Received > 0 {
		out.Result = string(fabric.ProbeOK)
		ms := float64(max(res.RTT.Microseconds(), 1)) / 1000
		out.RTTMS = &ms
	}
	if _, err := c.ReportProbe(ctx, name, client.ProbeReport{Target: out.Target, Source: out.Source, Result: out.Result,
		Sent: out.Sent, Received: out.Received, RTTMS: out.RTTMS, At: out.At}); err != nil {
		out.Error = fmt.Sprintf("probe %s, but the service did not record it: %v", out.Result, err)
		return out
	}
	out.Recorded = true
	return out
}

func probeTargetText(o probing.Options) string {
	if o.Target.Port() == 0 {
		return o.Target.Addr().String()
	}
	return o.Target.String()
}

func writeProbe(w io.Writer, format string, p probeOutcome) error {
	switch format {
	case "json":
		return writeJSONTo(w, p)
	case "junit":
		return writeProbeJUnit(w, p)
	}
	switch p.Result {
	case "cannot_test":
		tprintf(w, "%s: CANNOT TEST the return path to %s: %s\n", p.Host, p.Target, p.Error)
		return nil
	case string(fabric.ProbeOK):
		tprintf(w, "%s: OK: %d of %d replies from %s to %s (%s), mean round trip %s: the return path works\n",
			p.Host, p.Received, p.Sent, p.Target, p.Source, p.Method, msText(*p.RTTMS))
	default:
		tprintf(w, "%s: FAILED: no reply to %d %s probes from %s to %s: the return path does not work\n",
			p.Host, p.Sent, p.Method, p.Source, p.Target)
	}
	if !p.Recorded {
		tprintf(w, "%s: %s\n", p.Host, p.Error)
	}
	return nil
}

// writeProbeJUnit writes one testsuite with one testcase, the host: a failure when no reply
// came, an error when it could not test or report (as verify's device cases).
func writeProbeJUnit(w io.Writer, p probeOutcome) error {
	c := junitCase{Name: p.Host, Classname: "returnpath.probe", Time: "0.000"}
	if p.RTTMS != nil {
		c.Time = seconds(*p.RTTMS)
	}
	suite := junitSuite{Name: "returnpath probe", Tests: 1, Time: c.Time, Timestamp: p.At.UTC().Format("2006-01-02T15:04:05")}
	switch {
	case p.Result == "cannot_test" || !p.Recorded:
		c.Errors = append(c.Errors, junitProblem{Type: "cannot_test", Message: "could not probe the return path of " + p.Host, Text: p.Error})
		suite.Errors++
	case p.Result != string(fabric.ProbeOK):
		c.Failures = append(c.Failures, junitProblem{Type: "probe_failed",
			Message: fmt.Sprintf("no reply to %d %s probes from %s to %s", p.Sent, p.Method, p.Source, p.Target)})
		suite.Failures++
	default:
		c.SystemOut = fmt.Sprintf("%d of %d replies from %s to %s, mean round trip %s", p.Received, p.Sent, p.Target, p.Source, msText(*p.RTTMS))
	}
	suite.Cases = []junitCase{c}
	doc := junitSuites{Name: suite.Name, Tests: 1, Failures: suite.Failures, Errors: suite.Errors, Time: suite.Time, Suites: []junitSuite{suite}}
	return writeXML(w, doc)
}

// writeXML writes doc as an XML document with its header.
func writeXML(w io.Writer, doc any) error {
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}
