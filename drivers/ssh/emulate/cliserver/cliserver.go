// Package cliserver is the SSH side shared by returnpath's emulated network devices (see
// drivers/ssh/emulate/...): an in-process SSH server on 127.0.0.1 with password
// authentication and a fresh ed25519 host key, that runs one vendor CLI per login session.
// A vendor emulation supplies only its CLI, as a function of a Session: prompts, commands,
// configuration modes and output are the emulation's; echo, line reading, paging and dropping
// the connection are here.
//
// It is test support: nothing in returnpath's binary imports it.
package cliserver

import (
	"bufio"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"
)

// Options configure a Server.
type Options struct {
	Username string
	Password string
	// Shell runs the CLI of one login session; the session ends when it returns.
	Shell func(s *Session)
}

// Server is an SSH server on 127.0.0.1 running Options.Shell for every login session.
type Server struct {
	opts   Options
	ln     net.Listener
	signer ssh.Signer
	config *ssh.ServerConfig

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// Start listens on a free port of 127.0.0.1 and serves until Close.
func Start(opts Options) (*Server, error) {
	if opts.Shell == nil {
		return nil, errors.New("cliserver: no shell")
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, err
	}
	s := &Server{opts: opts, signer: signer, conns: map[net.Conn]struct{}{}}
	s.config = &ssh.ServerConfig{
		PasswordCallback: func(c ssh.ConnMetadata, pw []byte) (*ssh.Permissions, error) {
			if c.User() == opts.Username && string(pw) == opts.Password {
				return nil, nil
			}
			return nil, errors.New("access denied")
		},
	}
	s.config.AddHostKey(signer)
	s.ln, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

// Addr is the server's SSH address.
func (s *Server) Addr() netip.AddrPort {
	return netip.MustParseAddrPort(s.ln.Addr().String())
}

// HostKey is the server's SSH host key.
func (s *Server) HostKey() ssh.PublicKey { return s.signer.PublicKey() }

// Close stops the server and drops every session.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	err := s.ln.Close()
	s.wg.Wait()
	return err
}

func (s *Server) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() {
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
				c.Close()
			}()
			s.conn(c)
		}()
	}
}

func (s *Server) conn(c net.Conn) {
	sc, chans, reqs, err := ssh.NewServerConn(c, s.config)
	if err != nil {
		return
	}
	defer sc.Close()
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			_ = nc.Reject(ssh.UnknownChannelType, "only sessions")
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			return
		}
		shell := make(chan struct{})
		var pty bool
		go func() {
			once := sync.Once{}
			for r := range creqs {
				switch r.Type {
				case "pty-req":
					pty = true
					_ = r.Reply(true, nil)
				case "env", "window-change":
					_ = r.Reply(true, nil)
				case "shell":
					_ = r.Reply(true, nil)
					once.Do(func() { close(shell) })
				default:
					_ = r.Reply(false, nil)
				}
			}
		}()
		<-shell
		s.opts.Shell(&Session{ch: ch, sc: sc, in: bufio.NewReader(ch), User: sc.User(), PTY: pty})
		ch.Close()
		return
	}
}

// Session is one login session's terminal: what the client typed, and what the CLI prints.
type Session struct {
	User string // the login name
	PTY  bool   // the client asked for a terminal

	ch ssh.Channel
	sc *ssh.ServerConn
	in *bufio.Reader
}

// Write prints s, with every "\n" sent as CR LF as a terminal line discipline does. It
// reports whether the client is still there.
func (s *Session) Write(text string) bool {
	_, err := io.WriteString(s.ch, strings.ReplaceAll(text, "\n", "\r\n"))
	return err == nil
}

// ReadLine reads one line as a CLI's line editor does: it echoes characters as they arrive
// (a client waiting for the echo of what it typed before pressing return sees it), then the
// end of the line as CR LF. Carriage returns are ignored. ok is false when the client left.
func (s *Session) ReadLine() (line string, ok bool) {
	var buf, echo []byte
	for {
		b, err := s.in.ReadByte()
		if err != nil {
			return "", false
		}
		switch b {
		case '\r':
			continue
		case '\n':
			if len(echo) > 0 && !s.Write(string(echo)) {
				return "", false
			}
			return string(buf), s.Write("\n")
		}
		buf = append(buf, b)
		echo = append(echo, b)
		if s.in.Buffered() == 0 {
			if !s.Write(string(echo)) {
				return "", false
			}
			echo = echo[:0]
		}
	}
}

// ReadSecret reads one line without echoing it, as a password prompt does, then prints the
// end of the line. ok is false when the client left.
func (s *Session) ReadSecret() (line string, ok bool) {
	var buf []byte
	for {
		b, err := s.in.ReadByte()
		if err != nil {
			return "", false
		}
		switch b {
		case '\r':
			continue
		case '\n':
			return string(buf), s.Write("\n")
		}
		buf = append(buf, b)
	}
}

// Serve runs a command-line loop until the client leaves or handle says quit: it prints the
// prompt, reads a line, handles it, prints the output with output (which may page it), and
// prints the prompt again.
func (s *Session) Serve(prompt func() string, handle func(line string) (out string, quit bool), output func(out string) bool) {
	if !s.Write(prompt()) {
		return
	}
	for {
		line, ok := s.ReadLine()
		if !ok {
			return
		}
		out, quit := handle(line)
		if quit {
			return
		}
		if !output(out) || !s.Write(prompt()) {
			return
		}
	}
}

// ReadKey reads one keystroke, without echo (a pager's answer).
func (s *Session) ReadKey() (byte, bool) {
	b, err := s.in.ReadByte()
	return b, err == nil
}

// Page prints out page by page when it has pageLines lines or more: after every
// pageLines-1 lines it prints more (e.g. " --More-- ") and waits for a key, then erases the
// marker with a carriage return, spaces and a carriage return. 'q' stops the output. With
// pageLines 0 it prints out whole.
func (s *Session) Page(out string, pageLines int, more string) bool {
	if out == "" {
		return true
	}
	lines := strings.SplitAfter(out, "\n")
	if pageLines <= 1 || len(lines) < pageLines {
		return s.Write(out)
	}
	for i, l := range lines {
		if i > 0 && i%(pageLines-1) == 0 {
			if !s.Write(more) {
				return false
			}
			b, ok := s.ReadKey()
			if !ok {
				return false
			}
			if !s.Write("\r" + strings.Repeat(" ", len(more)) + "\r") {
				return false
			}
			if b == 'q' {
				return true
			}
		}
		if !s.Write(l) {
			return false
		}
	}
	return true
}

// Drop closes the whole SSH connection at once, as a device that reboots or a link that fails
// does: the client sees the stream end without a prompt.
func (s *Session) Drop() { s.sc.Close() }
