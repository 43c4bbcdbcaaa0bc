package main

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/returnpath/returnpath/internal/client"
)

func newAdoptCmd() *cobra.Command {
	var segment, csvPath string
	var dryRun, fromDevices bool
	cmd := &cobra.Command{
		Use:   "adopt --segment S [--dry-run] [--csv FILE | --from-devices]",
		Short: "Bring the hosts whose routes the segment's devices already hold under management, typing nothing",
		Long: `adopt reads every device of the segment's return path and lists, for every route inside the
segment's pool, the host it belongs to (the next hop on the host-facing devices), which devices
hold it and which miss it, and the orphans (routes that belong to no host of the segment).

Without --csv or --from-devices it only lists. With --csv FILE (lines "name,address"; a first
line "name,address" is a header) or --from-devices (each host named host-A-B-C-D after its
address) it registers each matched host with the subnet it already has, through the normal
registration: changes, audit and the approval policy apply, and the apply engine finds the
routes present and types nothing (an incomplete path gets only its missing routes). Orphans are
never registered. --dry-run shows what would be registered and registers nothing.

Needs a reviewer or admin token.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, err := outputFormat(cmd)
			if err != nil {
				return err
			}
			if segment == "" {
				return errors.New("--segment is required")
			}
			req := client.AdoptRequest{DryRun: dryRun, FromDevices: fromDevices}
			var lines []int
			switch {
			case csvPath != "" && fromDevices:
				return errors.New("--csv and --from-devices: give only one")
			case csvPath != "":
				f, err := os.Open(csvPath)
				if err != nil {
					return fmt.Errorf("--csv: %w", pathError(err))
				}
				req.Hosts, lines, err = readHostsCSV(f, csvPath)
				f.Close()
				if err != nil {
					return err
				}
			}
			c, err := clientFromCmd(cmd)
			if err != nil {
				return err
			}
			rep, err := c.Adopt(cmd.Context(), segment, req)
			if err != nil {
				return csvLineError(err, csvPath, lines)
			}
			if format == "json" {
				return writeJSONTo(cmd.OutOrStdout(), rep)
			}
			writeAdoptReport(cmd.OutOrStdout(), rep)
			return nil
		},
	}
	addClientFlags(cmd)
	cmd.Flags().StringVar(&segment, "segment", "", "the segment whose devices to read (required)")
	cmd.Flags().StringVar(&csvPath, "csv", "", "register the hosts of this CSV file of name,address lines")
	cmd.Flags().BoolVar(&fromDevices, "from-devices", false, "register every matched host, named host-A-B-C-D after its address")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "show what would be registered; register nothing")
	return cmd
}

// readHostsCSV reads name,address lines (an optional header line "name,address" first) and
// returns the hosts with the line each came from. Errors name the file, line and column.
func readHostsCSV(r io.Reader, name string) ([]client.AdoptHost, []int, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = 2
	cr.TrimLeadingSpace = true
	cr.Comment = '#'
	var hosts []client.AdoptHost
	var lines []int
	for first := true; ; first = false {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return nil, nil, fmt.Errorf("%s line %d, column %d: %w", name, pe.Line, pe.Column, pe.Err)
			}
			return nil, nil, fmt.Errorf("%s: %w", name, err)
		}
		line, _ := cr.FieldPos(0)
		if first && strings.EqualFold(rec[0], "name") && strings.EqualFold(rec[1], "address") {
			continue
		}
		if _, err := netip.ParseAddr(strings.TrimSpace(rec[1])); err != nil {
			_, col := cr.FieldPos(1)
			return nil, nil, fmt.Errorf("%s line %d, column %d: %q is not an IP address", name, line, col, rec[1])
		}
		hosts = append(hosts, client.AdoptHost{Name: strings.TrimSpace(rec[0]), Address: strings.TrimSpace(rec[1])})
		lines = append(lines, line)
	}
	if len(hosts) == 0 {
		return nil, nil, fmt.Errorf("%s holds no hosts (want name,address lines)", name)
	}
	return hosts, lines, nil
}

var hostsFieldRE = regexp.MustCompile(`^hosts\[(\d+)\]\.(name|address)$`)

// csvLineError names the CSV line and column of a problem the server found in hosts[i].
func csvLineError(err error, path string, lines []int) error {
	var p *client.Problem
	if !errors.As(err, &p) {
		return err
	}
	m := hostsFieldRE.FindStringSubmatch(p.Field)
	if m == nil {
		return err
	}
	i, _ := strconv.Atoi(m[1])
	if i >= len(lines) {
		return err
	}
	col := 1
	if m[2] == "address" {
		col = 2
	}
	return fmt.Errorf("%s line %d, column %d (%s): %s", path, lines[i], col, m[2], p.Detail)
}

// writeAdoptReport prints the report as tables for a person.
func writeAdoptReport(out io.Writer, rep client.AdoptReport) {
	for _, d := range rep.Devices {
		if d.Status != "ok" {
			tprintf(out, "device %s could not be read (%s): %s\n", d.Device, d.ErrorKind, d.Error)
		}
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "SUBNET\tHOST ADDRESS\tHOST\tPATH\tACTION")
	incomplete := 0
	for _, s := range rep.Subnets {
		path := "complete"
		if !s.Complete {
			incomplete++
			path = "missing on " + strings.Join(s.Missing, ", ")
		}
		host := "-"
		if s.Host != nil {
			host = *s.Host
		}
		action := s.Action
		switch {
		case s.Error != nil:
			action += ": " + *s.Error
		case s.State != nil && s.Change != nil:
			action += fmt.Sprintf(" (%s, change #%d %s)", *s.State, s.Change.ID, s.Change.Status)
		}
		tprintf(w, "%s\t%s\t%s\t%s\t%s\n", s.Subnet, s.Address, host, path, action)
	}
	w.Flush()
	if len(rep.Orphans) > 0 {
		tprintf(out, "\n%s (in the pool, belong to no host of segment %s; never registered):\n", countOf(len(rep.Orphans), "orphan", "orphans"), rep.Segment)
		w = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "DEVICE\tPREFIX\tNEXT HOP\tREASON")
		for _, o := range rep.Orphans {
			tprintf(w, "%s\t%s\t%s\t%s\n", o.Device, o.Prefix, o.NextHop, o.Reason)
		}
		w.Flush()
	}
	for _, h := range rep.Unmatched {
		tprintf(out, "not found on the devices: %s %s (not registered)\n", h.Name, h.Address)
	}
	tprintf(out, "\n%s found on segment %s, %d with an incomplete path", countOf(len(rep.Subnets), "subnet", "subnets"), rep.Segment, incomplete)
	if incomplete > 0 && !rep.DryRun {
		tprintf(out, " (their changes add only the missing routes)")
	}
	if rep.DryRun {
		tprintf(out, "; nothing registered")
	}
	fmt.Fprintln(out)
}
