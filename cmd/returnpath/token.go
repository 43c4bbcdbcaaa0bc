package main

import (
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/returnpath/returnpath/internal/fabric"
	"github.com/returnpath/returnpath/internal/postgres"
)

// cliActor names the audit actor for changes made from this command line.
const cliActor = fabric.ActorCLI

func openDB(cmd *cobra.Command) (*postgres.DB, error) {
	cfg, err := loadConfig(configFlag(cmd), cmd.Flags(), false)
	if err != nil {
		return nil, err
	}
	return postgres.Open(cmd.Context(), cfg.DatabaseURL)
}

// tokenFlags maps the fields of a token's validation errors to the flags that set them.
var tokenFlags = map[string]string{"name": "--name", "role": "--role", "owner": "--owner", "segments": "--segments"}

// flagError names the flag at fault in a token's validation error.
func flagError(err error) error {
	var fe *fabric.Error
	if errors.As(err, &fe) {
		if flag, ok := tokenFlags[fe.Field]; ok {
			return fmt.Errorf("%s: %s", flag, fe.Message)
		}
	}
	return err
}

func newTokenCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Manage API tokens (talks to the database directly)"}
	cmd.PersistentFlags().String("database-url", "", "PostgreSQL URL (overrides database_url)")
	var name, role, owner string
	var segments []string
	create := &cobra.Command{
		Use:   "create --name NAME --role viewer|bootstrap|reviewer|admin [--owner PERSON] [--segments SEG,...]",
		Short: "Create a token; its secret is printed once, alone on the last line",
		Long: `Create a token; its secret is printed once, alone on the last line.

--owner names the person who answers for the token. It is required for reviewer and admin
tokens: the four-eyes rule compares owners, so no two tokens of one owner approve each
other's changes. --segments scopes a bootstrap token to the named segments of the configured
inventory: it may register and remove hosts there only (default: every segment). The names
apply, drift-check, cli and system are the service's own and cannot be taken.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(configFlag(cmd), cmd.Flags(), false)
			if err != nil {
				return err
			}
			t := fabric.Token{Name: name, Role: fabric.Role(role), Owner: owner}
			var inv *fabric.Inventory
			if cmd.Flags().Changed("segments") {
				t.Segments = segments
				if inv, _, err = cfg.Inventory(); err != nil {
					return fmt.Errorf("--segments: the configured inventory, to check the segments against, is invalid: %w", err)
				}
			}
			if err := t.Validate(inv); err != nil {
				return flagError(err) // before connecting: a typo needs no database
			}
			db, err := postgres.Open(cmd.Context(), cfg.DatabaseURL)
			if err != nil {
				return err
			}
			defer db.Close()
			secret, err := db.CreateToken(cmd.Context(), cliActor, t, inv)
			if err != nil {
				return flagError(err)
			}
			out := cmd.OutOrStdout()
			tprintf(out, "created token %s with role %s, owner %s, segments %s; its secret is shown only now:\n",
				name, role, orDash(owner), segmentsText(t.Segments))
			fmt.Fprintln(out, secret)
			return nil
		},
	}
	create.Flags().StringVar(&name, "name", "", "token name (who or what uses it)")
	create.Flags().StringVar(&role, "role", "", "viewer, bootstrap, reviewer or admin")
	create.Flags().StringVar(&owner, "owner", "", "the person who answers for the token (required for reviewer and admin)")
	create.Flags().StringSliceVar(&segments, "segments", nil, "bootstrap only: the segments it may register and remove hosts in (default: all)")
	_ = create.MarkFlagRequired("name")
	_ = create.MarkFlagRequired("role")
	list := &cobra.Command{
		Use:   "list",
		Short: "List tokens (secrets are never stored, so never shown)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			db, err := openDB(cmd)
			if err != nil {
				return err
			}
			defer db.Close()
			tokens, err := db.Tokens(cmd.Context())
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tROLE\tOWNER\tSEGMENTS\tCREATED\tREVOKED")
			for _, t := range tokens {
				revoked := "-"
				if t.RevokedAt != nil {
					revoked = t.RevokedAt.Format("2006-01-02 15:04:05Z")
				}
				tprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", t.Name, t.Role, orDash(t.Owner), segmentsText(t.Segments),
					t.CreatedAt.Format("2006-01-02 15:04:05Z"), revoked)
			}
			return w.Flush()
		},
	}
	revoke := &cobra.Command{
		Use:   "revoke NAME",
		Short: "Revoke a token at once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			db, err := openDB(cmd)
			if err != nil {
				return err
			}
			defer db.Close()
			if err := db.RevokeToken(cmd.Context(), cliActor, args[0]); err != nil {
				return err
			}
			tprintf(cmd.OutOrStdout(), "revoked token %s\n", args[0])
			return nil
		},
	}
	cmd.AddCommand(create, list, revoke)
	return cmd
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// segmentsText shows a token's scope: "all" for an unscoped token.
func segmentsText(segments []string) string {
	if segments == nil {
		return "all"
	}
	return strings.Join(segments, ",")
}
