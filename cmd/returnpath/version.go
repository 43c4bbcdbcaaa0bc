package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/returnpath/returnpath/internal/buildinfo"
)

func newVersionCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit, build date and Go version of this binary",
		Long: `Prints which build this is: the release version, the commit and build date the Makefile
stamped in (else the toolchain's record of the module version and VCS revision), and the Go
version. A running server reports the same in GET /healthz and the returnpath_build_info metric.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			asJSON, err := outputJSON(cmd)
			if err != nil {
				return err
			}
			info := buildinfo.Read()
			if asJSON {
				return writeJSONTo(cmd.OutOrStdout(), info)
			}
			writeVersion(cmd.OutOrStdout(), info)
			return nil
		},
	}
	addOutputFlags(cmd)
	return cmd
}

// writeVersion is the text of `returnpath version` and `returnpath --version`.
func writeVersion(w io.Writer, info buildinfo.Info) {
	fmt.Fprintf(w, "returnpath %s\ncommit:     %s\nbuild date: %s\ngo:         %s\n", term(info.Version), term(info.Commit), term(info.Date), term(info.GoVersion))
}
