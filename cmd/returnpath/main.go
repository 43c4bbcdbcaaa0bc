// Command returnpath plans, reviews and pushes the static return routes that Docker hosts'
// routable docker0 subnets need on the switches and firewalls of their return path.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/returnpath/returnpath/internal/buildinfo"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCmd().ExecuteContext(ctx)
	stop()
	if err != nil {
		var ec exitCode
		if errors.As(err, &ec) {
			if ec.err != nil {
				fmt.Fprintln(os.Stderr, "returnpath:", term(ec.err.Error()))
			}
			os.Exit(ec.code)
		}
		fmt.Fprintln(os.Stderr, "returnpath:", term(err.Error()))
		os.Exit(2)
	}
}

// exitCode carries a specific exit status out of a command (verify uses 1 and 2).
type exitCode struct {
	code int
	err  error
}

func (e exitCode) Error() string {
	if e.err != nil {
		return e.err.Error()
	}
	return fmt.Sprintf("exit status %d", e.code)
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "returnpath",
		Short:         "Return routes for Docker hosts' routable docker0 subnets, reviewed and pushed to switches and firewalls",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	// --version prints what `returnpath version` prints. Cobra renders it through a template:
	// the text goes in through a function so that nothing in it is read as template syntax.
	info := buildinfo.Read()
	root.Version = info.Version
	root.SetVersionTemplate(`{{versionText}}`)
	cobra.AddTemplateFunc("versionText", func() string {
		var b strings.Builder
		writeVersion(&b, info)
		return b.String()
	})
	root.PersistentFlags().String("config", "", "configuration file (default ./returnpath.yaml, then /etc/returnpath/returnpath.yaml)")
	root.AddCommand(newServeCmd(), newMigrateCmd(), newTokenCmd(), newConfigCmd(), newLabCmd(), newHostCmd(), newChangesCmd(), newVerifyCmd(), newRemediateCmd(), newEventsCmd(), newDeviceCmd(),
		newVersionCmd(), newHealthcheckCmd())
	return root
}

func configFlag(cmd *cobra.Command) string {
	p, _ := cmd.Flags().GetString("config")
	return p
}
