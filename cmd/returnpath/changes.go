package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	xterm "golang.org/x/term"

	"github.com/returnpath/returnpath/internal/client"
)

func newChangesCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "changes",
		Short: "Review route changes: list, show the device lines, approve, reject, retry",
		Long: `Review route changes from the terminal.

Exit codes: 0 done; 2 error (also: approve refused a hash that is not the change's plan
hash, or was not confirmed); 6 approve or retry: the plan changed since it was shown (review it
again).`,
	}
	cmd.AddCommand(newChangesListCmd(), newChangesShowCmd(), newChangesApproveCmd(), newChangesRejectCmd(), newChangesRetryCmd())
	addClientFlags(cmd)
	return cmd
}

func newChangesListCmd() *cobra.Command {
	var status, host string
	var limit int
	cmd := &cobra.Command{
		Use:   "list [--status pending] [--host NAME]",
		Short: "List changes, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			asJSON, err := outputJSON(cmd)
			if err != nil {
				return err
			}
			if limit < 0 {
				return errors.New("--limit: must not be negative")
			}
			c, err := clientFromCmd(cmd)
			if err != nil {
				return err
			}
			f := client.ChangeFilter{Status: status, Host: host, Limit: min(max(limit, 1), 1000)}
			if limit == 0 {
				f.Limit = 1000
			}
			items, err := c.AllChanges(cmd.Context(), f, limit)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				if items == nil {
					items = []client.Change{}
				}
				return writeJSONTo(out, items)
			}
			return printChangeList(out, items)
		},
	}
	cmd.Flags().StringVar(&status, "status", "", "only changes in this status: pending, approved, applying, applied, rejected, failed, rolled_back")
	cmd.Flags().StringVar(&host, "host", "", "only changes for this host")
	cmd.Flags().IntVar(&limit, "limit", 100, "at most this many changes (0: all)")
	return cmd
}

func printChangeList(out io.Writer, items []client.Change) error {
	if len(items) == 0 {
		_, err := fmt.Fprintln(out, "no changes")
		return err
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tKIND\tSTATUS\tHOST\tSUBNET\tOPS\tREQUESTED BY\tAPPROVED BY\tCREATED")
	for _, ch := range items {
		host, subnet := "-", "-"
		switch {
		case ch.Host != nil:
			host, subnet = ch.Host.Name, ch.Host.Subnets()
		case ch.Segment != nil:
			host = "segment " + *ch.Segment // a reroute moves every host of a segment
		}
		tprintf(w, "%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", ch.ID, ch.Kind, ch.Status, host, subnet, len(ch.Ops),
			ch.RequestedBy, deref(ch.ApprovedBy), ch.CreatedAt.UTC().Format(time.DateTime+"Z"))
	}
	return w.Flush()
}

func deref(s *string) string {
	if s == nil || *s == "" {
		return "-"
	}
	return *s
}

func changeID(arg string) (int64, error) {
	id, err := strconv.ParseInt(strings.TrimPrefix(arg, "#"), 10, 64)
	if err != nil || id < 1 {
		return 0, fmt.Errorf("change ID: want a positive whole number, got %q", arg)
	}
	return id, nil
}

func newChangesShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show ID",
		Short: "Show a change: per device, the native lines in the order they will be applied, and its history",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, err := outputJSON(cmd)
			if err != nil {
				return err
			}
			id, err := changeID(args[0])
			if err != nil {
				return err
			}
			c, err := clientFromCmd(cmd)
			if err != nil {
				return err
			}
			ch, err := c.Change(cmd.Context(), id)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return writeJSONTo(out, ch)
			}
			return printChange(out, ch, isTerminal(out))
		},
	}
}

// ANSI colours for show on a terminal.
const (
	ansiGreen = "\x1b[32m"
	ansiRed   = "\x1b[31m"
	ansiBold  = "\x1b[1m"
	ansiDim   = "\x1b[2m"
	ansiReset = "\x1b[0m"
)

// printChange writes a change for a reviewer: a header, then the ops in apply order, a device
// heading each time the device changes, each op's native lines under it, then the events.
// Every value is escaped for the terminal (term): a reason or device output cannot forge a
// line, and a multi-line preview or output is split into lines first.
func printChange(out io.Writer, ch client.Change, colour bool) error {
	paint := func(code, s string) string {
		if !colour {
			return s
		}
		return code + s + ansiReset
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "%s\n", paint(ansiBold, tsprintf("change #%d: %s, %s", ch.ID, ch.Kind, ch.Status)))
	if ch.Host == nil && ch.Segment != nil {
		tprintf(w, "segment\t%s (every live host whose return path changed)\n", *ch.Segment)
	}
	if ch.Host != nil {
		tprintf(w, "host\t%s %s, subnet %s\n", ch.Host.Name, ch.Host.Uplink(), ch.Host.Subnets())
	}
	tprintf(w, "requested by\t%s at %s\n", ch.RequestedBy, ch.CreatedAt.UTC().Format(time.RFC3339))
	switch {
	case ch.ApprovedBy != nil && ch.Status == client.ChangeRejected:
		tprintf(w, "rejected by\t%s\n", *ch.ApprovedBy)
	case ch.ApprovedBy != nil:
		tprintf(w, "approved by\t%s\n", *ch.ApprovedBy)
	case ch.Status == client.ChangePending:
		fmt.Fprintf(w, "approved by\t- (awaiting review)\n")
	}
	if ch.Reason != nil && *ch.Reason != "" {
		tprintf(w, "reason\t%s\n", *ch.Reason)
	}
	tprintf(w, "plan hash\t%s\n", ch.PlanHash)
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(out, "\n%s\n", paint(ansiBold, countOf(len(ch.Ops), "op", "ops")+", in the order they are applied:"))
	device := ""
	for i, op := range ch.Ops {
		if op.Device != device || i == 0 {
			device = op.Device
			fmt.Fprintf(out, "\n  %s\n", paint(ansiBold, term(device)))
		}
		sign, code := "+", ansiGreen
		if op.Action == "delete" {
			sign, code = "-", ansiRed
		}
		state := term(op.Status)
		if op.Attempts > 0 {
			state += ", " + countOf(op.Attempts, "attempt", "attempts")
		}
		tprintf(out, "  %2d. %s %s via %s (vrf %s) ", i+1, sign, op.Prefix, op.NextHop, op.VRF)
		fmt.Fprintf(out, "%s\n", paint(ansiDim, "["+state+"]"))
		for _, line := range strings.Split(strings.TrimRight(op.Preview, "\n"), "\n") {
			if line != "" {
				fmt.Fprintf(out, "        %s\n", paint(code, term(line)))
			}
		}
		if r := retrying(op); r != "" {
			fmt.Fprintf(out, "        %s\n", paint(ansiDim, r))
		}
		if op.Error != nil && *op.Error != "" {
			label := "error: "
			if op.Status == "pending" {
				label = "last error: " // the op is still being retried
			}
			fmt.Fprintf(out, "        %s\n", paint(ansiRed, label+term(*op.Error)))
		}
		if op.Output != nil && *op.Output != "" {
			for _, line := range strings.Split(strings.TrimRight(*op.Output, "\n"), "\n") {
				fmt.Fprintf(out, "        %s %s\n", paint(ansiDim, "device said:"), term(line))
			}
		}
	}
	if len(ch.Events) > 0 {
		fmt.Fprintf(out, "\n%s\n", paint(ansiBold, "events:"))
		ew := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		for _, e := range ch.Events {
			tprintf(ew, "  %s\t%s\t%s\n", e.At.UTC().Format(time.RFC3339), e.What, e.Detail)
		}
		return ew.Flush()
	}
	return nil
}

// retrying says until when the engine retries an op whose device it could not reach, and when
// it next tries; "" for an op that is not being retried.
func retrying(op client.ChangeOp) string {
	var parts []string
	if op.GivesUpAt != nil {
		parts = append(parts, "retrying until "+op.GivesUpAt.UTC().Format(time.RFC3339)+" (apply.retry_deadline after the first error)")
	}
	if op.NextAttemptAt != nil {
		parts = append(parts, "next attempt at "+op.NextAttemptAt.UTC().Format(time.RFC3339))
	}
	return strings.Join(parts, "; ")
}

func newChangesApproveCmd() *cobra.Command {
	var planHash string
	var yes bool
	cmd := &cobra.Command{
		Use:   "approve ID [--plan-hash H | --yes]",
		Short: "Approve a pending change; it is applied next",
		Long: `Approves a pending change, quoting the hash of its plan, so that only a plan someone was
shown is ever approved. With --plan-hash H (from 'changes show'), the plan with that hash is
approved. Without it, the change is fetched and its plan printed, then, on a terminal, you are
asked to confirm (y/N); --yes approves the printed plan without asking. Without --plan-hash or
--yes, approve refuses when standard input is not a terminal.

If the plan changed in between, the server refuses, the new plan is printed, and the exit code
is 6: review it and approve again. A hash that is not the change's plan hash at all (a typo,
another change's hash) is refused with exit code 2.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if yes && planHash != "" {
				return errors.New("--yes and --plan-hash: give only one (--yes approves the plan it prints)")
			}
			return changeAction(cmd, args[0], func(ctx context.Context, c *client.Client, id int64) (client.Change, error) {
				hash := planHash
				if hash == "" {
					ch, err := showForApproval(ctx, cmd, c, id, yes)
					if err != nil {
						return client.Change{}, err
					}
					hash = ch.PlanHash // the plan shown, and no other
				}
				ch, err := c.Approve(ctx, id, hash)
				var p *client.Problem
				if errors.As(err, &p) && p.Status == 409 {
					if stale, ok := p.StaleChange(); ok {
						if p.Reason == client.ReasonPlanHashMismatch {
							return client.Change{}, fmt.Errorf("change #%d: %s is not this change's plan hash (it is %s); check the hash (returnpath changes show %d)", id, hash, stale.PlanHash, id)
						}
						return stale, exitCode{code: exitStale, err: fmt.Errorf("change #%d: the plan changed since it was reviewed (%s); review the new plan (returnpath changes show %d) and approve again", id, p.Detail, stale.ID)}
					}
				}
				return ch, err
			}, "approved")
		},
	}
	cmd.Flags().StringVar(&planHash, "plan-hash", "", "approve only the plan with this hash (from changes show)")
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "without --plan-hash: approve the plan printed, without asking")
	return cmd
}

// showForApproval fetches a pending change and prints its plan, then asks for confirmation on
// a terminal (unless yes). It refuses where nobody can be asked: a plan is approved only once
// someone has seen it, here or through --plan-hash. With -o json the plan and the question go
// to standard error, keeping standard output for the JSON answer.
func showForApproval(ctx context.Context, cmd *cobra.Command, c *client.Client, id int64, yes bool) (client.Change, error) {
	in := cmd.InOrStdin()
	if !yes && !inputTerminal(in) {
		return client.Change{}, fmt.Errorf("change #%d: not approved: pass --plan-hash H (the hash of the plan you reviewed, from 'returnpath changes show %d') or --yes to approve the plan as it is now; without them approve asks on a terminal, and standard input is not one", id, id)
	}
	ch, err := c.Change(ctx, id)
	if err != nil {
		return ch, err
	}
	if ch.Status != client.ChangePending {
		return ch, fmt.Errorf("change #%d is %s, not pending: nothing to approve", id, ch.Status)
	}
	out := cmd.OutOrStdout()
	if asJSON, _ := outputJSON(cmd); asJSON {
		out = cmd.ErrOrStderr()
	}
	if err := printChange(out, ch, isTerminal(out)); err != nil {
		return ch, err
	}
	if yes {
		return ch, nil
	}
	fmt.Fprintf(out, "\nApprove this plan of change #%d (plan hash %s)? [y/N] ", id, ch.PlanHash)
	answer, _ := bufio.NewReader(in).ReadString('\n') // end of input answers no
	switch strings.ToLower(strings.TrimSpace(answer)) {
	case "y", "yes":
		return ch, nil
	}
	return client.Change{}, fmt.Errorf("change #%d not approved", id)
}

// inputTerminal reports whether r is a terminal a person can answer on. A reader may say so
// itself (Terminal() bool): tests stand in for a person that way.
func inputTerminal(r io.Reader) bool {
	if t, ok := r.(interface{ Terminal() bool }); ok {
		return t.Terminal()
	}
	f, ok := r.(*os.File)
	return ok && xterm.IsTerminal(int(f.Fd()))
}

func newChangesRejectCmd() *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   `reject ID --reason "..."`,
		Short: "Reject a pending change, saying why",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.TrimSpace(reason) == "" {
				return errors.New("--reason: say why the change is rejected")
			}
			return changeAction(cmd, args[0], func(ctx context.Context, c *client.Client, id int64) (client.Change, error) {
				return c.Reject(ctx, id, reason)
			}, "rejected")
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why (required; shown to whoever registered the host)")
	_ = cmd.MarkFlagRequired("reason")
	return cmd
}

func newChangesRetryCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "retry ID",
		Short: "Apply a failed or rolled-back change again, with its plan computed anew",
		Long: `Applies a failed or rolled_back change again from its first op. The server computes the
plan again from the current inventory; if it differs from the stored one, the new plan is
printed, the exit code is 6, and retrying again applies it.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return changeAction(cmd, args[0], func(ctx context.Context, c *client.Client, id int64) (client.Change, error) {
				ch, err := c.Retry(ctx, id)
				var p *client.Problem
				if errors.As(err, &p) && p.Status == 409 {
					if stale, ok := p.StaleChange(); ok {
						return stale, exitCode{code: exitStale, err: fmt.Errorf("change #%d: the plan changed since it was applied (%s); review the new plan (returnpath changes show %d) and retry again", id, p.Detail, stale.ID)}
					}
				}
				return ch, err
			}, "queued again")
		},
	}
}

// changeAction runs one review action and reports the change it answers with: in JSON, or as
// one line followed by the change as show prints it.
func changeAction(cmd *cobra.Command, arg string, act func(context.Context, *client.Client, int64) (client.Change, error), did string) error {
	asJSON, err := outputJSON(cmd)
	if err != nil {
		return err
	}
	id, err := changeID(arg)
	if err != nil {
		return err
	}
	c, err := clientFromCmd(cmd)
	if err != nil {
		return err
	}
	ch, err := act(cmd.Context(), c, id)
	out := cmd.OutOrStdout()
	if ch.ID == 0 {
		return err
	}
	if asJSON {
		return emitJSON(out, true, ch, err)
	}
	if err == nil {
		// "approved: now approved" says nothing twice; "approved: now applying" says something.
		if string(ch.Status) == did {
			tprintf(out, "change #%d %s\n\n", ch.ID, did)
		} else {
			tprintf(out, "change #%d %s: now %s\n\n", ch.ID, did, ch.Status)
		}
	}
	if perr := printChange(out, ch, isTerminal(out)); perr != nil && err == nil {
		return perr
	}
	return err
}
