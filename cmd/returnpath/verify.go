package main

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/internal/client"
	"github.com/returnpath/returnpath/internal/fabric"
	"github.com/returnpath/returnpath/internal/postgres"
	"github.com/returnpath/returnpath/internal/session"
	"github.com/returnpath/returnpath/internal/verify"
)

// Exit statuses of `returnpath verify`.
const (
	exitInSync     = 0
	exitDrift      = 1
	exitUnverified = 2
)

type verifyOptions struct {
	device, segment string
	format          string // text, json or junit
	direct, fresh   bool
	probes          bool
	timeout         time.Duration
}

func newVerifyCmd() *cobra.Command { return verifyCommand(Factories) }

// verifyCommand builds the command; factories gives the drivers for --direct (tests pass
// in-memory devices).
func verifyCommand(factories func() map[fabric.Platform]drivers.Factory) *cobra.Command {
	var o verifyOptions
	cmd := &cobra.Command{
		Use:   "verify [--server URL --token T | --config FILE --direct] [--device D] [--segment S] [-o text|json|junit] [--output-file FILE]",
		Short: "Read every device live and compare it with intent: exit 0 in sync, 1 on drift, 2 when something could not be verified",
		Long: `Reads every device (or the one named by --device, or those on --segment's return path) and
compares its routes with the registry's intent. Exit status: 0 when every device holds exactly
its intent, 1 when some device drifts, 2 when something could not be verified (an unreachable
device, an authentication failure, a server error or bad usage). A device that cannot be read
never hides drift on the others: the report lists both, and the status is 2.

By default it asks the server (--server and --token, RETURNPATH_SERVER and RETURNPATH_TOKEN, or
the configuration file's server and token keys). With --direct it needs no server: it reads the
database (database_url) and the devices of the configuration file itself (break-glass).`,
		Args: cobra.NoArgs,
		// The flags of the last release, --format F and --output FILE, keep working with a
		// warning: they become -o F and --output-file FILE before the output file is opened.
		PreRunE: legacyVerifyFlags,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, err := outputFormat(cmd)
			if err != nil {
				return usageError("%v", err)
			}
			o.format = format
			return runVerify(cmd, o, factories)
		},
	}
	f := cmd.Flags()
	f.String("database-url", "", "PostgreSQL URL for --direct (overrides database_url)")
	f.StringVar(&o.device, "device", "", "verify only this device")
	f.StringVar(&o.segment, "segment", "", "verify only the devices on this segment's return path, for its hosts")
	f.String("format", "", "deprecated: use -o/--output")
	_ = f.MarkHidden("format")
	f.BoolVar(&o.direct, "direct", false, "no server: read the database and the devices of --config directly")
	f.BoolVar(&o.probes, "probes", false, "also fail hosts whose last return-path probe (host probe) failed or is older than probes.max_age")
	f.BoolVar(&o.fresh, "fresh", false, "read every device now rather than accept a reading up to verify.max_age old (admin tokens only)")
	f.DurationVar(&o.timeout, "timeout", 5*time.Minute, "give up after this long")
	addClientFlags(cmd, "junit")
	return cmd
}

// legacyVerifyFlags turns the flags of the last release into today's, with a warning on
// standard error: --format F is -o F, and --output FILE is --output-file FILE when the value
// is next to --format (as it always was then) or names a file (holds a '.' or a '/': a bare
// word is a format, so that -o yaml is refused rather than written to a file called yaml).
func legacyVerifyFlags(cmd *cobra.Command, _ []string) error {
	fs := cmd.Flags()
	format, _ := fs.GetString("format")
	output, _ := fs.GetString("output")
	formats := fs.Lookup("output").Annotations[formatsAnnotation]
	warn := func(format string, args ...any) {
		fmt.Fprintf(cmd.ErrOrStderr(), "returnpath: warning: "+format+"; the old flags go in the next release\n", args...)
	}
	var file string
	switch {
	case fs.Changed("format") && fs.Changed("output"):
		file = output
	case fs.Changed("output") && !slices.Contains(formats, output) && strings.ContainsAny(output, "./"):
		file = output
	}
	if file != "" {
		if fs.Changed("output-file") {
			return usageError("--output %s and --output-file: give only --output-file FILE", file)
		}
		warn("--output FILE is deprecated: use --output-file %s", file)
		if err := fs.Set("output-file", file); err != nil {
			return usageError("%v", err)
		}
		output = "text"
	}
	if fs.Changed("format") {
		warn("--format is deprecated: use -o %s", format)
		output = format
	}
	if err := fs.Set("output", output); err != nil {
		return usageError("%v", err)
	}
	return nil
}

// usageError is bad usage: exit status 2.
func usageError(format string, args ...any) error {
	return exitCode{code: exitUnverified, err: fmt.Errorf(format, args...)}
}

func runVerify(cmd *cobra.Command, o verifyOptions, factories func() map[fabric.Platform]drivers.Factory) error {
	cfg, err := loadConfig(configFlag(cmd), cmd.Flags(), o.direct)
	if err != nil {
		return exitCode{code: exitUnverified, err: err}
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
	defer cancel()
	filter := verify.Filter{Device: o.device, Segment: o.segment, Fresh: o.fresh, Probes: o.probes}
	var report verify.Report
	if o.direct {
		report, err = verifyDirect(ctx, cfg, factories(), filter)
	} else {
		report, err = verifyRemote(ctx, cmd, cfg, filter, o.timeout)
	}
	if err != nil {
		return exitCode{code: exitUnverified, err: err}
	}
	if err := writeVerifyReport(cmd.OutOrStdout(), o.format, report); err != nil {
		return exitCode{code: exitUnverified, err: err}
	}
	return verifyExit(report)
}

// verifyExit maps a report to the command's exit status: not being able to verify something
// (2) outranks drift (1), since the fabric may drift where nobody could look.
func verifyExit(r verify.Report) error {
	n := len(r.Devices)
	switch {
	case r.Unreachable() > 0:
		msg := fmt.Sprintf("%d of %d devices could not be verified", r.Unreachable(), n)
		if r.Drifted() > 0 {
			msg += fmt.Sprintf(", %d drift", r.Drifted())
		}
		return exitCode{code: exitUnverified, err: errors.New(msg)}
	case r.Drifted() > 0 && r.FailingHosts() > 0:
		return exitCode{code: exitDrift, err: fmt.Errorf("drift on %d of %d devices, and the return path of %s fails its probe", r.Drifted(), n, failingHosts(r))}
	case r.FailingHosts() > 0:
		return exitCode{code: exitDrift, err: fmt.Errorf("the return path of %s fails its probe", failingHosts(r))}
	case r.Drifted() > 0 || !r.InSync:
		return exitCode{code: exitDrift, err: fmt.Errorf("drift on %d of %d devices", r.Drifted(), n)}
	}
	return nil
}

// failingHosts names the hosts whose probe fails the verification, e.g. "host1 (failed)".
func failingHosts(r verify.Report) string {
	var out []string
	for _, h := range r.Hosts {
		if h.Status != fabric.ProbeStatusOK {
			out = append(out, tsprintf("%s (%s)", h.Host, h.Status))
		}
	}
	return strings.Join(out, ", ")
}

// verifyRemote asks the server.
func verifyRemote(ctx context.Context, cmd *cobra.Command, cfg *Config, f verify.Filter, timeout time.Duration) (verify.Report, error) {
	c, err := clientFromConfig(cmd, cfg, client.WithTimeout(timeout), client.WithUserAgent("returnpath-verify"))
	if err != nil {
		return verify.Report{}, fmt.Errorf("%w (or use --direct)", err)
	}
	q := url.Values{}
	if f.Device != "" {
		q.Set("device", f.Device)
	}
	if f.Segment != "" {
		q.Set("segment", f.Segment)
	}
	if f.Fresh {
		q.Set("fresh", "true")
	}
	if f.Probes {
		q.Set("probes", "true")
	}
	path := "/v1/verify"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var r verify.Report
	err = c.Do(ctx, "GET", path, nil, &r)
	var p *client.Problem
	switch {
	case errors.As(err, &p) && (p.Code == client.CodeUnauthorized || p.Code == client.CodeForbidden):
		return r, fmt.Errorf("authentication failed: %w", err)
	case err != nil:
		return r, err
	case r.Devices == nil:
		return r, errors.New("the server's answer holds no device list")
	case f.Probes && r.Hosts == nil:
		return r, errors.New("the server did not judge the hosts' probes (a server older than --probes?)")
	}
	return r, nil
}

// verifyDirect is the break-glass path: the database and the devices of the configuration,
// no server.
func verifyDirect(ctx context.Context, cfg *Config, factories map[fabric.Platform]drivers.Factory, f verify.Filter) (verify.Report, error) {
	if err := cfg.Validate(); err != nil {
		return verify.Report{}, err
	}
	inv, _, err := cfg.Inventory()
	if err != nil {
		return verify.Report{}, err
	}
	dcs, err := cfg.DriverConfigs(inv)
	if err != nil {
		return verify.Report{}, err
	}
	db, err := postgres.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return verify.Report{}, err
	}
	defer db.Close()
	// The session budget holds here too: a break-glass check runs beside the service.
	devs := &session.Devices{Configs: dcs, Factories: factories, MaxSessions: cfg.MaxSessions(), Budget: db}
	v := &verify.Verifier{Inv: inv, Devices: devs, Hosts: postgres.NewHosts(db, inv)}
	return v.Verify(ctx, f)
}

func writeVerifyReport(w io.Writer, format string, r verify.Report) error {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	case "junit":
		return writeJUnit(w, r)
	default:
		return writeText(w, r)
	}
}

// writeText prints one summary line per device, then every difference, then the verdict.
func writeText(w io.Writer, r verify.Report) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tSTATUS\tMISSING\tUNEXPECTED\tWRONG NEXT HOP\tIN FLIGHT\tTIME")
	for _, d := range r.Devices {
		if d.Status == verify.StatusUnreachable {
			tprintf(tw, "%s\t%s\t-\t-\t-\t-\t%s\n", d.Device, d.Status, msText(d.TookMS))
			continue
		}
		tprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%s\n", d.Device, d.Status, len(d.Missing), len(d.Unexpected), len(d.WrongNextHop), len(d.InFlight), msText(d.TookMS))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var lines []string
	for _, d := range r.Devices {
		if d.Status == verify.StatusUnreachable {
			lines = append(lines, tsprintf("%s\tnot read (%s)\t%s", d.Device, d.ErrorKind, d.Error))
		}
		for _, m := range d.Missing {
			lines = append(lines, tsprintf("%s\tmissing\t%s", d.Device, m))
		}
		for _, u := range d.Unexpected {
			lines = append(lines, tsprintf("%s\tunexpected\t%s", d.Device, u))
		}
		for _, x := range d.WrongNextHop {
			lines = append(lines, tsprintf("%s\twrong next hop\t%s", d.Device, x))
		}
		for _, f := range d.InFlight {
			lines = append(lines, tsprintf("%s\tin flight\t%s, %s", d.Device, f, presence(f)))
		}
	}
	if r.Hosts != nil {
		if err := writeHostProbes(w, r.Hosts); err != nil {
			return err
		}
	}
	if len(lines) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, l := range lines {
			fmt.Fprintln(tw, l)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	fmt.Fprintln(w)
	_, err := fmt.Fprintln(w, verdict(r))
	return err
}

func presence(r verify.Route) string {
	if r.Present != nil && *r.Present {
		return "present"
	}
	return "absent"
}

func msText(ms float64) string {
	if ms < 10 {
		return fmt.Sprintf("%.1f ms", ms)
	}
	return fmt.Sprintf("%.0f ms", ms)
}

// writeHostProbes prints one line per host judged on its last probe.
func writeHostProbes(w io.Writer, hosts []verify.HostProbe) error {
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tSEGMENT\tPROBE\tTARGET\tRTT\tPROBED AT")
	for _, h := range hosts {
		target, rtt, at := "-", "-", "never"
		if h.Target != "" {
			target, at = h.Target, h.ProbedAt.UTC().Format(time.RFC3339)
		}
		if h.RTTMS != nil {
			rtt = msText(*h.RTTMS)
		}
		tprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", h.Host, h.Segment, h.Status, target, rtt, at)
	}
	return tw.Flush()
}

// probeProblem says why a host's probe fails the verification; "" when it passes.
func probeProblem(h verify.HostProbe) string {
	switch h.Status {
	case fabric.ProbeStatusFailed:
		return fmt.Sprintf("the last probe from %s to %s got no reply (%s)", h.Host, h.Target, h.ProbedAt.UTC().Format(time.RFC3339))
	case fabric.ProbeStatusStale:
		return fmt.Sprintf("the last probe of %s is from %s, older than probes.max_age (%s)", h.Host, h.ProbedAt.UTC().Format(time.RFC3339), time.Duration(h.MaxAgeS*float64(time.Second)))
	case fabric.ProbeStatusNone:
		return fmt.Sprintf("%s never reported a probe (run returnpath host probe on it)", h.Host)
	}
	return ""
}

// verdict is the report's last line.
func verdict(r verify.Report) string {
	v := deviceVerdict(r)
	if n := r.FailingHosts(); n > 0 {
		v += fmt.Sprintf("; PROBES FAILING: %d of %s: %s", n, countOf(len(r.Hosts), "host", "hosts"), failingHosts(r))
	} else if r.Hosts != nil {
		whose := "their"
		if len(r.Hosts) == 1 {
			whose = "its"
		}
		v += fmt.Sprintf("; %s proved %s return path", countOf(len(r.Hosts), "host", "hosts"), whose)
	}
	return v
}

// deviceVerdict is the verdict on the devices alone.
func deviceVerdict(r verify.Report) string {
	n := len(r.Devices)
	routes := 0
	for _, d := range r.Devices {
		routes += d.Routes()
	}
	switch {
	case r.Unreachable() > 0:
		return fmt.Sprintf("NOT VERIFIED: %d of %d devices could not be read; %d drift (%s) (%s)", r.Unreachable(), n, r.Drifted(), countOf(routes, "route", "routes"), msText(r.TookMS))
	case r.Drifted() > 0:
		differ := countOf(routes, "route", "routes") + " differ"
		if routes == 1 {
			differ = "1 route differs"
		}
		return fmt.Sprintf("DRIFT: %d of %d devices, %s from intent (%s)", r.Drifted(), n, differ, msText(r.TookMS))
	}
	return fmt.Sprintf("IN SYNC: %d devices hold exactly their intent (%s)", n, msText(r.TookMS))
}

// The JUnit XML that CI systems read (Jenkins, GitLab, GitHub actions): one testsuite, one
// testcase per device, a <failure> per drifting route, an <error> for a device that could not
// be read. The failures and errors attributes count test cases, as every reader expects, so
// that tests - failures - errors is the number of devices in sync.
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name      string      `xml:"name,attr"`
	Tests     int         `xml:"tests,attr"`
	Failures  int         `xml:"failures,attr"`
	Errors    int         `xml:"errors,attr"`
	Skipped   int         `xml:"skipped,attr"`
	Time      string      `xml:"time,attr"`
	Timestamp string      `xml:"timestamp,attr"`
	Cases     []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string         `xml:"name,attr"`
	Classname string         `xml:"classname,attr"`
	Time      string         `xml:"time,attr"`
	Errors    []junitProblem `xml:"error"`
	Failures  []junitProblem `xml:"failure"`
	SystemOut string         `xml:"system-out,omitempty"`
}

type junitProblem struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

func seconds(ms float64) string { return fmt.Sprintf("%.3f", ms/1000) }

func writeJUnit(w io.Writer, r verify.Report) error {
	suite := junitSuite{Name: "returnpath verify", Time: seconds(r.TookMS), Timestamp: r.CheckedAt.UTC().Format("2006-01-02T15:04:05")}
	for _, d := range r.Devices {
		c := junitCase{Name: d.Device, Classname: "returnpath.verify", Time: seconds(d.TookMS)}
		if d.Status == verify.StatusUnreachable {
			c.Errors = append(c.Errors, junitProblem{Type: d.ErrorKind, Message: "could not read " + d.Device + ": " + d.ErrorKind, Text: d.Error})
		}
		for _, m := range d.Missing {
			c.Failures = append(c.Failures, junitProblem{Type: verify.KindMissing, Message: "missing " + m.String()})
		}
		for _, u := range d.Unexpected {
			c.Failures = append(c.Failures, junitProblem{Type: verify.KindUnexpected, Message: "unexpected " + u.String()})
		}
		for _, x := range d.WrongNextHop {
			c.Failures = append(c.Failures, junitProblem{Type: verify.KindWrongNextHop, Message: "wrong next hop " + x.String()})
		}
		var out []string
		for _, f := range d.InFlight {
			out = append(out, "in flight: "+f.String()+", "+presence(f))
		}
		c.SystemOut = strings.Join(out, "\n")
		if len(c.Errors) > 0 {
			suite.Errors++
		} else if len(c.Failures) > 0 {
			suite.Failures++
		}
		suite.Tests++
		suite.Cases = append(suite.Cases, c)
	}
	for _, h := range r.Hosts {
		c := junitCase{Name: h.Host, Classname: "returnpath.probe", Time: "0.000"}
		if msg := probeProblem(h); msg != "" {
			c.Failures = append(c.Failures, junitProblem{Type: "probe_" + string(h.Status), Message: msg})
			suite.Failures++
		} else {
			c.SystemOut = fmt.Sprintf("probe to %s ok at %s", h.Target, h.ProbedAt.UTC().Format(time.RFC3339))
		}
		suite.Tests++
		suite.Cases = append(suite.Cases, c)
	}
	doc := junitSuites{Name: suite.Name, Tests: suite.Tests, Failures: suite.Failures, Errors: suite.Errors, Time: suite.Time, Suites: []junitSuite{suite}}
	return writeXML(w, doc)
}
