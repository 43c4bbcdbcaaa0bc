package main

import (
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/returnpath/returnpath/internal/lab"
)

func newLabCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "lab",
		Short: "The network-namespace lab: an FRR switch, a Linux firewall and Docker hosts (root only)",
	}
	var dir string
	var second bool
	cmd.PersistentFlags().StringVar(&dir, "dir", lab.DefaultDir, "lab state directory")
	up := &cobra.Command{
		Use:   "up",
		Short: "Build the lab and write its returnpath.yaml",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := lab.Check(); err != nil {
				return err
			}
			l, err := lab.Up(cmd.Context(), lab.Options{Dir: dir, SecondHost: second})
			if err != nil {
				return err
			}
			cfg := filepath.Join(dir, "returnpath.yaml")
			if err := l.WriteConfig(cfg, "", "postgres:///returnpath?host=/run/postgresql"); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "lab %s is up in %s (took %s)\nconfiguration: %s\nrun the service inside it: ip netns exec %s returnpath serve --config %s\n",
				l.Name, dir, l.UpDuration().Round(1e6), cfg, l.Mgmt, cfg)
			return nil
		},
	}
	up.Flags().BoolVar(&second, "second-host", true, "add the second segment (a second docker host on another switch port)")
	down := &cobra.Command{
		Use:   "down",
		Short: "Remove everything the lab made, even after a crash",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := lab.Down(dir); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "lab is down")
			return nil
		},
	}
	status := &cobra.Command{
		Use:   "status",
		Short: "Show the lab's namespaces and daemons",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := lab.Load(dir)
			if err != nil {
				return err
			}
			st, err := l.Status(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Fprint(cmd.OutOrStdout(), st.String())
			if !st.Healthy() {
				return exitCode{code: 1}
			}
			return nil
		},
	}
	cmd.AddCommand(up, down, status)
	return cmd
}
