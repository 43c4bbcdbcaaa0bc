package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/returnpath/returnpath/internal/client"
)

// Exit codes of the client commands, beyond 0 (done) and 2 (any other error).
const (
	exitRejected = 3 // the change was rejected by a reviewer
	exitFailed   = 4 // the change failed or was rolled back on a device
	exitTimeout  = 5 // --wait ran out before the host reached its state
	exitStale    = 6 // approve: the plan changed since it was reviewed
)

// addClientFlags adds the flags every command that talks to a running server takes.
func addClientFlags(cmd *cobra.Command) {
	f := cmd.PersistentFlags()
	f.String("server", "", "server URL, e.g. https://returnpath.example:8080 (or RETURNPATH_SERVER, or server: in the config file)")
	f.String("token", "", "API token (prefer RETURNPATH_TOKEN, --token-file or token: in the config file: flags show in ps)")
	f.String("token-file", "", "read the API token from this file (first line)")
	f.String("ca-file", "", "PEM CA certificates to trust besides the system roots (or RETURNPATH_CA_FILE)")
	f.StringP("output", "o", "text", "text or json")
}

// clientFromCmd builds an API client from --server/--token (or --token-file), the RETURNPATH_*
// variables, or the config file, in that order of precedence.
func clientFromCmd(cmd *cobra.Command) (*client.Client, error) {
	cfg, err := loadConfig(configFlag(cmd), cmd.Flags(), false)
	if err != nil {
		return nil, err
	}
	token := cfg.Token
	if p, _ := cmd.Flags().GetString("token-file"); p != "" {
		if cmd.Flags().Changed("token") {
			return nil, errors.New("--token and --token-file: give only one")
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("--token-file: %w", pathError(err))
		}
		token, _, _ = strings.Cut(string(b), "\n")
		token = strings.TrimSpace(token)
		if token == "" {
			return nil, fmt.Errorf("--token-file %s is empty", p)
		}
	}
	var missing []string
	if cfg.Server == "" {
		missing = append(missing, "no server: pass --server URL, set RETURNPATH_SERVER, or put server: in the config file")
	}
	if token == "" {
		missing = append(missing, "no token: set RETURNPATH_TOKEN, pass --token-file PATH or --token T, or put token: in the config file")
	}
	if len(missing) > 0 {
		return nil, errors.New(strings.Join(missing, "; "))
	}
	var opts []client.Option
	ca, _ := cmd.Flags().GetString("ca-file")
	if ca == "" {
		ca = os.Getenv("RETURNPATH_CA_FILE")
	}
	if ca != "" {
		opts = append(opts, client.WithCAFile(ca))
	}
	opts = append(opts, client.WithUserAgent("returnpath-cli"))
	return client.New(cfg.Server, token, opts...), nil
}

// outputJSON reports whether --output json was asked for, rejecting unknown formats.
func outputJSON(cmd *cobra.Command) (bool, error) {
	o, _ := cmd.Flags().GetString("output")
	switch o {
	case "text", "":
		return false, nil
	case "json":
		return true, nil
	}
	return false, fmt.Errorf("--output: want text or json, got %q", o)
}

func writeJSONTo(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// isTerminal reports whether w is a terminal that should get colour (NO_COLOR turns it off).
func isTerminal(w io.Writer) bool {
	if _, ok := os.LookupEnv("NO_COLOR"); ok {
		return false
	}
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0 && os.Getenv("TERM") != "dumb"
}
