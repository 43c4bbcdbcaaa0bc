package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
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

// addClientFlags adds the flags every command that talks to a running server takes, the one
// place they are defined: --server, --token, --token-file, --ca-file, and the output flags
// (addOutputFlags). Call it once the command's subcommands are added: --output-file applies
// to each of them.
func addClientFlags(cmd *cobra.Command, formats ...string) {
	f := cmd.PersistentFlags()
	f.String("server", "", "server URL, e.g. https://returnpath.example:8080 (or RETURNPATH_SERVER, or server: in the config file)")
	f.String("token", "", "API token (prefer RETURNPATH_TOKEN, --token-file or token: in the config file: flags show in ps)")
	f.String("token-file", "", "read the API token from this file (first line)")
	f.String("ca-file", "", "PEM CA certificates to trust besides the system roots (or RETURNPATH_CA_FILE)")
	addOutputFlags(cmd, formats...)
}

// formatsAnnotation holds, on the --output flag, the formats a command accepts.
const formatsAnnotation = "returnpath_formats"

// addOutputFlags adds -o/--output (text, json and the given formats) and --output-file to cmd
// and its subcommands, and makes each of them write to --output-file when it is given.
func addOutputFlags(cmd *cobra.Command, formats ...string) {
	formats = append([]string{"text", "json"}, formats...)
	f := cmd.PersistentFlags()
	f.StringP("output", "o", "text", "output format: "+strings.Join(formats, ", "))
	_ = f.SetAnnotation("output", formatsAnnotation, formats)
	f.String("output-file", "", "write the output to this file instead of standard output (errors still go to standard error)")
	writeToOutputFile(cmd)
}

// writeToOutputFile wraps the run of cmd and of its subcommands: with --output-file, the
// command's output goes to that file (created or truncated, closed at the end).
func writeToOutputFile(cmd *cobra.Command) {
	for _, sub := range cmd.Commands() {
		writeToOutputFile(sub)
	}
	run := cmd.RunE
	if run == nil {
		return
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) (err error) {
		path, _ := cmd.Flags().GetString("output-file")
		if path == "" {
			return run(cmd, args)
		}
		f, err := os.Create(path)
		if err != nil {
			return fmt.Errorf("--output-file: %w", pathError(err))
		}
		defer func() {
			if cerr := f.Close(); cerr != nil && err == nil {
				err = fmt.Errorf("--output-file: %w", cerr)
			}
		}()
		cmd.SetOut(f)
		return run(cmd, args)
	}
}

// outputFormat returns -o/--output, refusing a format the command does not take.
func outputFormat(cmd *cobra.Command) (string, error) {
	fl := cmd.Flags().Lookup("output")
	if fl == nil {
		return "text", nil
	}
	o := fl.Value.String()
	formats := fl.Annotations[formatsAnnotation]
	if o == "" {
		o = "text"
	}
	if !slices.Contains(formats, o) {
		return "", fmt.Errorf("--output: want %s, got %q", orList(formats), o)
	}
	return o, nil
}

// orList joins words as "a, b or c".
func orList(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}

// clientFromCmd builds an API client from --server/--token (or --token-file), the RETURNPATH_*
// variables, or the config file, in that order of precedence.
func clientFromCmd(cmd *cobra.Command, opts ...client.Option) (*client.Client, error) {
	cfg, err := loadConfig(configFlag(cmd), cmd.Flags(), false)
	if err != nil {
		return nil, err
	}
	return clientFromConfig(cmd, cfg, opts...)
}

// clientFromConfig is clientFromCmd for a configuration already loaded.
func clientFromConfig(cmd *cobra.Command, cfg *Config, opts ...client.Option) (*client.Client, error) {
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
	ca, _ := cmd.Flags().GetString("ca-file")
	if ca == "" {
		ca = os.Getenv("RETURNPATH_CA_FILE")
	}
	if ca != "" {
		opts = append([]client.Option{client.WithCAFile(ca)}, opts...)
	}
	opts = append([]client.Option{client.WithUserAgent("returnpath-cli")}, opts...)
	return client.New(cfg.Server, token, opts...), nil
}

// outputJSON reports whether --output json was asked for, rejecting unknown formats.
func outputJSON(cmd *cobra.Command) (bool, error) {
	o, err := outputFormat(cmd)
	return o == "json", err
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
