// Package migrations holds returnpath's Postgres schema as forward-only SQL files, embedded
// in the binary and applied by internal/postgres under an advisory lock.
package migrations

import "embed"

// FS holds the NNNN_name.sql files.
//
//go:embed *.sql
var FS embed.FS
