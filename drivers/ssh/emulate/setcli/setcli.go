// Package setcli is the part shared by returnpath's emulations of "set"-style candidate/commit
// CLIs (Junos, VyOS; see drivers/ssh/emulate/junos and .../vyos): a configuration held as a set
// of statements, each the words of one "set" line, a running configuration guarded by a lock,
// a commit that merges one session's changes into it, and the test hooks every emulated device
// offers (make the next commit fail, drop the connection during the next commit, count
// commits). Prompts, grammar, validation and texts are the vendor emulation's; the SSH side is
// drivers/ssh/emulate/cliserver's.
//
// It is test support: nothing in returnpath's binary imports it.
package setcli

import (
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/returnpath/returnpath/drivers/ssh/emulate/cliserver"
)

// Config is a configuration as the statements "display set" (Junos) or "show configuration
// commands" (VyOS) print: one entry per leaf, keyed by its words joined with single spaces,
// without the leading "set".
type Config map[string]struct{}

// Single says which keywords take one value that a later "set" replaces (Junos "tag", VyOS
// "distance"); every other keyword followed by a value adds to a list (a second "next-hop"
// is a second next hop).
type Single map[string]bool

// Set adds the statement words to c. A value of a Single keyword replaces the value the
// statement already had at that place.
func (c Config) Set(words []string, single Single) {
	for i, w := range words[:len(words)-1] {
		if !single[w] {
			continue
		}
		prefix := strings.Join(words[:i+1], " ") + " "
		for k := range c {
			if v, ok := strings.CutPrefix(k, prefix); ok && firstWord(v) != words[i+1] {
				delete(c, k)
			}
		}
	}
	c[strings.Join(words, " ")] = struct{}{}
}

func firstWord(s string) string {
	w, _, _ := strings.Cut(s, " ")
	return w
}

// Delete removes every statement at or below words and reports whether there was one.
func (c Config) Delete(words []string) bool {
	path := strings.Join(words, " ")
	found := false
	for k := range c {
		if k == path || strings.HasPrefix(k, path+" ") {
			delete(c, k)
			found = true
		}
	}
	return found
}

// Has reports whether a statement exists at or below words.
func (c Config) Has(words []string) bool {
	path := strings.Join(words, " ")
	for k := range c {
		if k == path || strings.HasPrefix(k, path+" ") {
			return true
		}
	}
	return false
}

// Lines returns the statements at or below words (all of them for none), sorted word by word
// with addresses and prefixes in numeric order, as the vendors list them.
func (c Config) Lines(words ...string) [][]string {
	var out [][]string
	path := strings.Join(words, " ")
	for k := range c {
		if path == "" || k == path || strings.HasPrefix(k, path+" ") {
			out = append(out, strings.Fields(k))
		}
	}
	slices.SortFunc(out, compareStatements)
	return out
}

func compareStatements(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if c := compareWords(a[i], b[i]); c != 0 {
			return c
		}
	}
	return len(a) - len(b)
}

func compareWords(a, b string) int {
	pa, errA := netip.ParsePrefix(a)
	pb, errB := netip.ParsePrefix(b)
	if errA == nil && errB == nil {
		if c := pa.Addr().Compare(pb.Addr()); c != 0 {
			return c
		}
		return pa.Bits() - pb.Bits()
	}
	aa, errA := netip.ParseAddr(a)
	ab, errB := netip.ParseAddr(b)
	if errA == nil && errB == nil {
		return aa.Compare(ab)
	}
	return strings.Compare(a, b)
}

// Clone returns a copy of c.
func (c Config) Clone() Config { return maps.Clone(c) }

// Options configure a Device.
type Options struct {
	Username string
	Password string
	// Shell runs the vendor CLI of one login session.
	Shell func(s *cliserver.Session)
}

// Device is the vendor-independent half of an emulated device: its SSH server, its running
// configuration and its test hooks. A vendor emulation embeds it.
type Device struct {
	*cliserver.Server // SSH: Addr, HostKey, Close

	mu         sync.Mutex
	running    Config
	failCommit string // text of the next commit's failure; "" for none
	dropCommit bool   // close the connection during the next commit, after applying it
	commits    int
}

// Start starts a device with an empty configuration.
func Start(opts Options) (*Device, error) {
	d := &Device{running: Config{}}
	srv, err := cliserver.Start(cliserver.Options{Username: opts.Username, Password: opts.Password, Shell: opts.Shell})
	if err != nil {
		return nil, err
	}
	d.Server = srv
	return d, nil
}

// Running returns a copy of the running configuration.
func (d *Device) Running() Config {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.running.Clone()
}

// Update changes the running configuration out of band (as another administrator would).
func (d *Device) Update(change func(Config)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	change(d.running)
}

// FailNextCommit makes the next commit (or commit check) fail as a whole with text: the
// running configuration is left as it was and the candidate stays as it is.
func (d *Device) FailNextCommit(text string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.failCommit = text
}

// DropNextCommit makes the next commit apply the candidate and then close the connection
// before answering: the client cannot know whether it landed.
func (d *Device) DropNextCommit() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.dropCommit = true
}

// Commits returns how many commits changed the running configuration.
func (d *Device) Commits() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.commits
}

// TakeFailure returns, and clears, the text FailNextCommit set; "" when the next commit may
// proceed. A vendor's "commit check" calls it as its commit does.
func (d *Device) TakeFailure() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	text := d.failCommit
	d.failCommit = ""
	return text
}

// Commit merges the changes a session made to its copy (candidate, taken from running as
// base) into the running configuration, so that a statement someone else committed meanwhile
// survives, as Junos private candidates and VyOS sessions commit. It returns the running
// configuration from before (for a confirmed commit's rollback), and drop when the
// connection must close now (DropNextCommit). A commit that changes nothing is not counted.
func (d *Device) Commit(base, candidate Config) (before Config, drop bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	before = d.running.Clone()
	changed := false
	for k := range base {
		if _, ok := candidate[k]; !ok {
			delete(d.running, k)
			changed = true
		}
	}
	for k := range candidate {
		if _, ok := base[k]; !ok {
			d.running[k] = struct{}{}
			changed = true
		}
	}
	if changed {
		d.commits++
	}
	drop, d.dropCommit = d.dropCommit, false
	return before, drop
}

// Replace sets the running configuration to c (a rollback), counted as a commit.
func (d *Device) Replace(c Config) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.running = c.Clone()
	d.commits++
}

// Changed reports whether candidate differs from base.
func Changed(base, candidate Config) bool { return !maps.Equal(base, candidate) }
