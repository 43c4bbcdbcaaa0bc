// Package pgcluster starts and stops a throwaway PostgreSQL cluster from the installed server
// binaries, listening only on a unix socket in its own directory. Tests, benchmarks and the
// demo use it when no database is given. PostgreSQL refuses to run as root, so as root the
// cluster runs as the "postgres" user.
package pgcluster

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// Cluster is a running throwaway cluster.
type Cluster struct {
	Dir     string // holds data/, the socket and the log
	bin     string
	runAs   *user.User // nil when not root
	options string     // the server settings, as pg_ctl -o takes them
	stopped bool
	halted  bool // shut down by Halt, data kept
}

// Options tune the cluster. Durable keeps fsync on (for benchmarks that compare with a real
// server); by default durability is traded for speed, as is right for tests.
type Options struct {
	Durable bool
	// Settings are extra "name=value" server settings.
	Settings []string
}

// BinDir returns the directory of the newest installed PostgreSQL server binaries.
func BinDir() (string, error) {
	if d := os.Getenv("PG_BINDIR"); d != "" {
		return d, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int {
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(a)))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(b)))
		return va - vb
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "initdb")); err == nil {
			return dirs[i], nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", fmt.Errorf("no PostgreSQL server binaries found (install the Debian package postgresql, or set PG_BINDIR)")
}

// Start initialises and starts a cluster in a new directory under parent ("" for the
// system's temporary directory).
func Start(ctx context.Context, parent string, opts Options) (*Cluster, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(parent, "rp-pg-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{Dir: dir, bin: bin}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("running as root and there is no 'postgres' user to run PostgreSQL as: %w", err)
		}
		c.runAs = u
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		// The parent must be traversable by postgres.
		if err := os.Chmod(dir, 0o755); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	data := filepath.Join(dir, "data")
	if err := c.run(ctx, "initdb", "-D", data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync", "--locale=C"); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	settings := []string{"listen_addresses=", "unix_socket_directories=" + dir, "max_connections=300", "shared_buffers=256MB"}
	if !opts.Durable {
		settings = append(settings, "fsync=off", "synchronous_commit=off", "full_page_writes=off")
	}
	settings = append(settings, opts.Settings...)
	var o []string
	for _, s := range settings {
		name, val, _ := strings.Cut(s, "=")
		o = append(o, fmt.Sprintf("-c %s='%s'", name, val))
	}
	c.options = strings.Join(o, " ")
	if err := c.start(ctx); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return c, nil
}

func (c *Cluster) start(ctx context.Context) error {
	if err := c.run(ctx, "pg_ctl", "-D", filepath.Join(c.Dir, "data"), "-l", filepath.Join(c.Dir, "postgres.log"), "-w", "-t", "60", "-o", c.options, "start"); err != nil {
		log, _ := os.ReadFile(filepath.Join(c.Dir, "postgres.log"))
		return fmt.Errorf("%w\n%s", err, log)
	}
	return nil
}

// Halt shuts the server down at once (pg_ctl -m immediate: no checkpoint, clients cut off,
// as a crash would) and keeps its data directory, so that Resume can start it again on the
// same socket. Fault-injection tests use it on a cluster of their own. Commits survive it
// only with synchronous_commit=on in Options.Settings: the default for tests turns it off,
// and an immediate shutdown loses what the WAL writer had not written yet.
func (c *Cluster) Halt(ctx context.Context) error {
	if c.stopped || c.halted {
		return fmt.Errorf("pgcluster %s: not running", c.Dir)
	}
	if err := c.run(ctx, "pg_ctl", "-D", filepath.Join(c.Dir, "data"), "-m", "immediate", "-w", "stop"); err != nil {
		return err
	}
	c.halted = true
	return nil
}

// Resume starts a cluster that Halt shut down; it runs crash recovery and serves the same
// databases on the same socket.
func (c *Cluster) Resume(ctx context.Context) error {
	if c.stopped || !c.halted {
		return fmt.Errorf("pgcluster %s: not halted", c.Dir)
	}
	if err := c.start(ctx); err != nil {
		return err
	}
	c.halted = false
	return nil
}

// URL returns a connection URL for database db over the cluster's unix socket.
func (c *Cluster) URL(db string) string {
	q := url.Values{"host": {c.Dir}, "user": {"postgres"}, "sslmode": {"disable"}}
	return "postgres:///" + db + "?" + q.Encode()
}

// Stop stops the server at once (unless Halt did) and removes its directory.
func (c *Cluster) Stop() error {
	if c.stopped {
		return nil
	}
	c.stopped = true
	var err error
	if !c.halted {
		err = c.run(context.Background(), "pg_ctl", "-D", filepath.Join(c.Dir, "data"), "-m", "immediate", "-w", "stop")
	}
	if rerr := os.RemoveAll(c.Dir); err == nil {
		err = rerr
	}
	return err
}

func (c *Cluster) run(ctx context.Context, name string, args ...string) error {
	path := filepath.Join(c.bin, name)
	var cmd *exec.Cmd
	if c.runAs != nil {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", c.runAs.Username, "--", path}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, path, args...)
	}
	cmd.Dir = c.Dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w: %s", name, err, strings.TrimSpace(out.String()))
	}
	return nil
}

// PID returns the process id of the cluster's server, from its postmaster.pid, and whether
// that process runs.
func (c *Cluster) PID() (int, bool) {
	b, err := os.ReadFile(filepath.Join(c.Dir, "data", "postmaster.pid"))
	if err != nil {
		return 0, false
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || pid <= 0 {
		return 0, false
	}
	return pid, syscall.Kill(pid, 0) == nil
}

// Find returns the clusters Start made under parent, e.g. to stop them after a crash.
func Find(parent string) []*Cluster {
	dirs, _ := filepath.Glob(filepath.Join(parent, "rp-pg-*"))
	bin, _ := BinDir()
	var out []*Cluster
	for _, d := range dirs {
		c := &Cluster{Dir: d, bin: bin}
		if os.Geteuid() == 0 {
			c.runAs, _ = user.Lookup("postgres")
		}
		out = append(out, c)
	}
	return out
}

// CreateDatabase creates a database on the cluster.
func (c *Cluster) CreateDatabase(ctx context.Context, name string) error {
	return c.run(ctx, "createdb", "-h", c.Dir, "-U", "postgres", name)
}
