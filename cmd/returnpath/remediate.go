package main

import (
	"net/http"
	"net/url"

	"github.com/spf13/cobra"

	"github.com/returnpath/returnpath/internal/client"
)

func newRemediateCmd() *cobra.Command {
	var device, segment string
	cmd := &cobra.Command{
		Use:   "remediate [--device D] [--segment S]",
		Short: "File a change that restores intent where verify finds drift (it is reviewed like any change)",
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
			q := url.Values{}
			if device != "" {
				q.Set("device", device)
			}
			if segment != "" {
				q.Set("segment", segment)
			}
			path := "/v1/verify/remediate"
			if len(q) > 0 {
				path += "?" + q.Encode()
			}
			var ch client.Change
			if err := c.Do(cmd.Context(), http.MethodPost, path, nil, &ch); err != nil {
				return err
			}
			if asJSON {
				return writeJSONTo(cmd.OutOrStdout(), ch)
			}
			tprintf(cmd.OutOrStdout(), "filed remediate change #%d (%s) with %s; review it with 'returnpath changes show %d'\n", ch.ID, ch.Status, countOf(len(ch.Ops), "op", "ops"), ch.ID)
			return nil
		},
	}
	addClientFlags(cmd)
	cmd.Flags().StringVar(&device, "device", "", "only this device")
	cmd.Flags().StringVar(&segment, "segment", "", "only the devices and hosts of this segment")
	return cmd
}
