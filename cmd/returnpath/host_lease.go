package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/returnpath/returnpath/internal/client"
)

// newHostRenewCmd is host renew: what the renewal timer runs on every host.
func newHostRenewCmd() *cobra.Command {
	var name string
	cmd := &cobra.Command{
		Use:   "renew --name N",
		Short: "Renew the host's lease (leases); cancels its lease-expiry removal if that has not started",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			asJSON, err := outputJSON(cmd)
			if err != nil {
				return err
			}
			c, err := clientFromCmd(cmd)
			if err != nil {
				return err
			}
			h, err := c.RenewHost(cmd.Context(), name)
			if asJSON || err != nil {
				return emitJSON(cmd.OutOrStdout(), asJSON, h, err)
			}
			out := cmd.OutOrStdout()
			if h.Lease == nil {
				fmt.Fprintf(out, "host %s renewed (the server has no leases configured: nothing expires)\n", term(h.Name))
				return nil
			}
			fmt.Fprintf(out, "host %s renewed: its lease expires at %s\n", term(h.Name), h.Lease.ExpiresAt.UTC().Format(time.RFC3339))
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "the host's name (required)")
	_ = cmd.MarkFlagRequired("name")
	return cmd
}

// newHostListCmd is host list: live hosts, or with --stale those whose lease ran out.
func newHostListCmd() *cobra.Command {
	var stale bool
	cmd := &cobra.Command{
		Use:   "list [--stale]",
		Short: "List live hosts; --stale: only those whose lease is past its expiry and grace",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			asJSON, err := outputJSON(cmd)
			if err != nil {
				return err
			}
			c, err := clientFromCmd(cmd)
			if err != nil {
				return err
			}
			hosts := []client.Host{} // -o json prints [] for none, not null
			after := ""
			for {
				page, err := c.Hosts(cmd.Context(), stale, after)
				if err != nil {
					return err
				}
				hosts = append(hosts, page.Items...)
				if page.Next == nil {
					break
				}
				after = *page.Next
			}
			if asJSON {
				return emitJSON(cmd.OutOrStdout(), true, hosts, nil)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tADDRESS\tSUBNET\tSTATE\tLEASE EXPIRES")
			for _, h := range hosts {
				exp := "-"
				if h.Lease != nil {
					exp = h.Lease.ExpiresAt.UTC().Format(time.RFC3339)
					if h.Lease.Stale {
						exp += " (stale)"
					}
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", term(h.Name), h.Uplink(), h.Subnets(), term(h.State), exp)
			}
			return w.Flush()
		},
	}
	cmd.Flags().BoolVar(&stale, "stale", false, "only hosts whose lease is past its expiry and grace")
	return cmd
}
