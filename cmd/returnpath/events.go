package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/returnpath/returnpath/internal/events"
)

func newEventsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "events", Short: "Outgoing webhooks"}
	cmd.AddCommand(&cobra.Command{
		Use:   "test NAME",
		Short: "Send a signed test event to the webhook NAME and print its answer (needs no server)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig(configFlag(cmd), nil, true)
			if err != nil {
				return err
			}
			hook, err := cfg.webhook(args[0])
			if err != nil {
				return err
			}
			body, err := events.TestBody(hook.Name, hook.Format, time.Now())
			if err != nil {
				return err
			}
			// A test event is never queued: its delivery id is random, so that receivers which
			// deduplicate never mistake it for a real delivery.
			b := make([]byte, 8)
			_, _ = rand.Read(b)
			id := "test-" + hex.EncodeToString(b)
			ans, err := hook.Post(cmd.Context(), hook.Client(events.DefaultTimeout), id, events.EventTest, body)
			if err != nil {
				return fmt.Errorf("webhook %s: %w", hook.Name, err)
			}
			out := cmd.OutOrStdout()
			tprintf(out, "webhook %s answered %d %s to delivery %s\n", hook.Name, ans.Status, http.StatusText(ans.Status), id)
			if len(ans.Body) > 0 {
				fmt.Fprintln(out, term(string(ans.Body)))
			}
			if ans.Status < 200 || ans.Status > 299 {
				return exitCode{code: 1}
			}
			return nil
		},
	})
	return cmd
}
