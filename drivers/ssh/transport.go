package ssh

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"

	"github.com/scrapli/scrapligo/transport"
	"golang.org/x/crypto/ssh"
)

// shellTransport is a scrapligo transport over an already authenticated SSH client. Unlike
// scrapligo's standard transport it asks for no terminal: vtysh then reads its input without
// kernel echo, so a whole batch can be written at once and vtysh's own echo of each line,
// followed by that line's answer, comes back strictly in order. It also lets dial own the
// host key policy (accept-new) and classify connection errors.
type shellTransport struct {
	client *ssh.Client
	pty    bool // ask for a terminal first (EOS's CLI expects one; vtysh must not have one)

	mu      sync.Mutex
	session *ssh.Session
	stdin   io.WriteCloser
	stdout  io.Reader
	buf     []byte // read buffer, used by the read loop only
}

var _ transport.Implementation = (*shellTransport)(nil)

// Open starts the login shell (for an FRR user, vtysh via sshd's ForceCommand).
func (t *shellTransport) Open(*transport.Args) error {
	s, err := t.client.NewSession()
	if err != nil {
		return err
	}
	stdin, err := s.StdinPipe()
	if err != nil {
		s.Close()
		return err
	}
	stdout, err := s.StdoutPipe()
	if err != nil {
		s.Close()
		return err
	}
	// vtysh prints its errors on stdout; nothing the driver parses comes on stderr.
	s.Stderr = io.Discard
	if t.pty {
		// No local echo from the terminal: the CLI's line editor echoes each line itself. A
		// wide terminal keeps long route lines from wrapping.
		modes := ssh.TerminalModes{ssh.ECHO: 0, ssh.TTY_OP_ISPEED: 38400, ssh.TTY_OP_OSPEED: 38400}
		if err := s.RequestPty("vt100", 0, 32767, modes); err != nil {
			s.Close()
			return err
		}
	}
	if err := s.Shell(); err != nil {
		s.Close()
		return err
	}
	t.mu.Lock()
	t.session, t.stdin, t.stdout = s, stdin, stdout
	t.mu.Unlock()
	return nil
}

// Close ends the session and the connection.
func (t *shellTransport) Close() error {
	t.mu.Lock()
	s := t.session
	t.session = nil
	t.mu.Unlock()
	var errs []error
	if s != nil {
		if err := s.Close(); err != nil && !errors.Is(err, io.EOF) {
			errs = append(errs, err)
		}
	}
	if err := t.client.Close(); err != nil && !isClosedErr(err) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// IsAlive reports whether the session is open.
func (t *shellTransport) IsAlive() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.session != nil
}

// Read reads up to n bytes of the shell's output; it blocks until some arrive. vtysh echoes
// a batch a few bytes at a time, so reads are small: they land in one reused buffer and only
// what arrived is copied out (a fresh n-byte buffer per read cost 100 MB per 5,000 routes).
// scrapligo calls Read from its single read loop only.
func (t *shellTransport) Read(n int) ([]byte, error) {
	t.mu.Lock()
	r := t.stdout
	t.mu.Unlock()
	if r == nil {
		return nil, io.EOF
	}
	if len(t.buf) < n {
		t.buf = make([]byte, n)
	}
	n, err := r.Read(t.buf[:n])
	if n > 0 {
		return bytes.Clone(t.buf[:n]), nil
	}
	return nil, err
}

// Write writes b to the shell's input.
func (t *shellTransport) Write(b []byte) error {
	t.mu.Lock()
	w := t.stdin
	t.mu.Unlock()
	if w == nil {
		return io.ErrClosedPipe
	}
	_, err := w.Write(b)
	return err
}

func isClosedErr(err error) bool {
	return err == nil || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed)
}
