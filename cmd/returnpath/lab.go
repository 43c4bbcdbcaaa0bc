package main

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/returnpath/returnpath/internal/lab"
	"github.com/returnpath/returnpath/internal/pgcluster"
)

func newLabCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "lab",
		Short: "The network-namespace lab: an FRR switch, a Linux firewall and Docker hosts (root only)",
	}
	var dir, databaseURL string
	var second, ipv6 bool
	cmd.PersistentFlags().StringVar(&dir, "dir", lab.DefaultDir, "lab state directory")
	up := &cobra.Command{
		Use:   "up",
		Short: "Build the lab and write its returnpath.yaml",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := lab.Check(); err != nil {
				return err
			}
			l, err := lab.Up(cmd.Context(), lab.Options{Dir: dir, SecondHost: second, IPv6: ipv6})
			if err != nil {
				return err
			}
			dbURL := databaseURL
			if dbURL == "" {
				// A throwaway PostgreSQL inside the lab directory, stopped by lab down.
				pg, err := pgcluster.Start(cmd.Context(), dir, pgcluster.Options{})
				if err == nil {
					err = pg.CreateDatabase(cmd.Context(), "returnpath")
				}
				if err != nil {
					_ = lab.Down(dir)
					return fmt.Errorf("lab postgres: %w", err)
				}
				dbURL = pg.URL("returnpath")
			}
			cfg := filepath.Join(dir, "returnpath.yaml")
			if err := l.WriteConfig(cfg, "", dbURL); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "lab %s is up in %s (took %s)\nconfiguration: %s\nrun the service inside it: ip netns exec %s returnpath serve --config %s\n",
				l.Name, dir, l.UpDuration().Round(1e6), cfg, l.Mgmt, cfg)
			return nil
		},
	}
	up.Flags().BoolVar(&second, "second-host", true, "add the second segment (a second docker host on another switch port)")
	up.Flags().BoolVar(&ipv6, "ipv6", false, "write a dual-stack returnpath.yaml (pool6, hosts6, next hops per family); the lab's links have IPv6 either way")
	up.Flags().StringVar(&databaseURL, "database-url", "", "database for the lab's returnpath.yaml (default: a throwaway PostgreSQL in the lab directory)")
	down := &cobra.Command{
		Use:   "down",
		Short: "Remove everything the lab made, even after a crash",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, pg := range pgcluster.Find(dir) {
				if err := pg.Stop(); err != nil {
					fmt.Fprintln(cmd.ErrOrStderr(), "lab postgres:", err)
				}
			}
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
			out := cmd.OutOrStdout()
			fmt.Fprint(out, st.String())
			healthy := st.Healthy()
			// The lab's own PostgreSQL (none when lab up was given --database-url).
			for _, pg := range pgcluster.Find(dir) {
				pid, ok := pg.PID()
				healthy = healthy && ok
				fmt.Fprintf(out, "  postgres %-15s pid %-7d %s\n", "returnpath", pid, labUpDown(ok))
				fmt.Fprintf(out, "           database_url %s\n", pg.URL("returnpath"))
			}
			if !healthy {
				return exitCode{code: 1}
			}
			return nil
		},
	}
	env := &cobra.Command{
		Use:   "env",
		Short: "Print the lab's namespace names and addresses as shell variables (for scripts)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := lab.Load(dir)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "LAB_NAME=%s\nLAB_MGMT=%s\nLAB_SERVICE=%s\nLAB_INTERNET=%s\nLAB_CONFIG=%s\n", l.Name, l.Mgmt, l.Service, l.Internet, filepath.Join(dir, "returnpath.yaml"))
			fmt.Fprintf(out, "LAB_INTERNET6=%s\n", l.Internet6)
			for _, name := range []string{"sw1", "fw1"} {
				if d, ok := l.Devices[name]; ok {
					fmt.Fprintf(out, "LAB_%s=%s\n", strings.ToUpper(name), d.Namespace)
				}
			}
			for _, name := range []string{"host1", "host2"} {
				if h, ok := l.Hosts[name]; ok {
					fmt.Fprintf(out, "LAB_%s=%s\nLAB_%s_CTR=%s\nLAB_%s_UPLINK=%s\n", strings.ToUpper(name), h.Namespace,
						strings.ToUpper(name), h.Container, strings.ToUpper(name), h.Uplink)
					fmt.Fprintf(out, "LAB_%s_UPLINK6=%s\n", strings.ToUpper(name), h.Uplink6)
				}
			}
			return nil
		},
	}
	var host, daemonJSON string
	dockerd := &cobra.Command{
		Use:   "dockerd --host host1 --daemon-json FILE",
		Short: "Do what dockerd does at start with daemon.json's bip (and fixed-cidr-v6): address the lab host's docker0 and its container",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := lab.Load(dir)
			if err != nil {
				return err
			}
			b, err := os.ReadFile(daemonJSON)
			if err != nil {
				return err
			}
			var dj struct {
				Bip         string `json:"bip"`
				IPMasq      *bool  `json:"ip-masq"`
				IPv6        bool   `json:"ipv6"`
				FixedCIDRv6 string `json:"fixed-cidr-v6"`
			}
			if err := json.Unmarshal(b, &dj); err != nil {
				return fmt.Errorf("%s: %w", daemonJSON, err)
			}
			if dj.IPMasq == nil || *dj.IPMasq {
				return fmt.Errorf("%s: ip-masq is not false: this lab host never masquerades, set \"ip-masq\": false", daemonJSON)
			}
			// A host of an IPv6-only segment has no bip: dockerd would pick docker0's IPv4 subnet
			// itself, which returnpath does not route, so the lab gives it none.
			if dj.Bip != "" || !dj.IPv6 {
				bip, err := netip.ParsePrefix(dj.Bip)
				if err != nil {
					return fmt.Errorf("%s: bip %q: %w", daemonJSON, dj.Bip, err)
				}
				ctr, err := l.SetDockerBridge(cmd.Context(), host, bip)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: docker0 %s, container %s\n", host, bip, ctr)
			}
			if !dj.IPv6 || dj.FixedCIDRv6 == "" {
				return nil
			}
			// dockerd gives the bridge the first address of fixed-cidr-v6.
			p, err := netip.ParsePrefix(dj.FixedCIDRv6)
			if err != nil || p != p.Masked() {
				return fmt.Errorf("%s: fixed-cidr-v6 %q: want an IPv6 prefix without host bits", daemonJSON, dj.FixedCIDRv6)
			}
			gw := netip.PrefixFrom(p.Addr().Next(), p.Bits())
			ctr6, err := l.SetDockerBridge6(cmd.Context(), host, gw)
			if err != nil {
				return fmt.Errorf("%s: %w", daemonJSON, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: docker0 %s, container %s\n", host, gw, ctr6)
			return nil
		},
	}
	dockerd.Flags().StringVar(&host, "host", "host1", "lab docker host")
	dockerd.Flags().StringVar(&daemonJSON, "daemon-json", "", "the host's daemon.json")
	_ = dockerd.MarkFlagRequired("daemon-json")
	cmd.AddCommand(up, down, status, env, dockerd)
	return cmd
}

func labUpDown(ok bool) string {
	if ok {
		return "up"
	}
	return "DOWN"
}
