// Command returnpath plans, reviews and pushes the static return routes that Docker hosts'
// routable docker0 subnets need on the switches and firewalls of their return path.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
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
				printError(os.Stderr, ec.err)
			}
			os.Exit(ec.code)
		}
		printError(os.Stderr, err)
		os.Exit(2)
	}
}

// printError writes err for a person: a configuration's problems one per line, anything else
// on one line.
func printError(w io.Writer, err error) {
	if ce, ok := err.(*ConfigError); ok && len(ce.Problems) > 1 {
		fmt.Fprintln(w, "returnpath:", term(ce.header()))
		for _, p := range ce.Problems {
			fmt.Fprintln(w, "  "+term(p.Error()))
		}
		return
	}
	fmt.Fprintln(w, "returnpath:", term(err.Error()))
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

// Unwrap returns the error the exit status goes with.
func (e exitCode) Unwrap() error { return e.err }

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
	root.AddCommand(newServeCmd(), newMigrateCmd(), newTokenCmd(), newConfigCmd(), newLabCmd(), newHostCmd(), newChangesCmd(), newVerifyCmd(), newRemediateCmd(), newEventsCmd(), newDeviceCmd(), newAdoptCmd(),
		newVersionCmd(), newHealthcheckCmd())
	return root
}

func configFlag(cmd *cobra.Command) string {
	p, _ := cmd.Flags().GetString("config")
	return p
}
