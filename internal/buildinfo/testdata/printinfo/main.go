// Command printinfo prints buildinfo.Read() as JSON, so that TestLinkerFlags can build it with
// the same -X flags the Makefile passes.
package main

import (
	"encoding/json"
	"os"

	"github.com/returnpath/returnpath/internal/buildinfo"
)

func main() {
	_ = json.NewEncoder(os.Stdout).Encode(buildinfo.Read())
}
