package gnmi

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"

	"github.com/returnpath/returnpath/drivers"
)

// tlsConfig builds the client TLS configuration: the CA bundle (system roots when empty), an
// optional client certificate for mTLS and an optional server name override.
func tlsConfig(c drivers.GNMIConfig) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName, InsecureSkipVerify: c.SkipVerify} //nolint:gosec // SkipVerify only when configured, and warned about
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("gnmi ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("gnmi ca_file %s: no PEM certificate found", c.CAFile)
		}
		tc.RootCAs = pool
	}
	switch {
	case c.CertFile != "" && c.KeyFile != "":
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			// The error names the files, never the key's contents.
			return nil, fmt.Errorf("gnmi client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	case c.CertFile != "" || c.KeyFile != "":
		return nil, errors.New("gnmi client certificate: cert_file and key_file must be set together")
	}
	return tc, nil
}

// sentFlag records whether a request message was handed to the transport.
type sentFlag = atomic.Bool

type sentKey struct{}

func withSentFlag(ctx context.Context, f *sentFlag) context.Context {
	return context.WithValue(ctx, sentKey{}, f)
}

// sentTracker is a gRPC stats handler that sets the RPC's sentFlag once the request payload
// was written: before that, a failed Set cannot have reached the device and is safe to retry;
// after it, the outcome is unknown.
type sentTracker struct{}

func (sentTracker) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }
func (sentTracker) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return ctx
}
func (sentTracker) HandleConn(context.Context, stats.ConnStats) {}
func (sentTracker) HandleRPC(ctx context.Context, s stats.RPCStats) {
	if _, ok := s.(*stats.OutPayload); !ok {
		return
	}
	if f, ok := ctx.Value(sentKey{}).(*sentFlag); ok {
		f.Store(true)
	}
}

func isNotFound(err error) bool { return err != nil && status.Code(err) == codes.NotFound }

// statusText is the device's answer as "<code>: <message>".
func statusText(err error) string {
	s, _ := status.FromError(err)
	return s.Code().String() + ": " + s.Message()
}

// classify maps a gNMI/gRPC error to a driver error. sent says whether the request message
// reached the transport (only meaningful for Set: reads are always safe to retry).
func classify(device, op string, err error, sent bool) *drivers.Error {
	s, _ := status.FromError(err)
	kind := drivers.KindInternal
	msg := s.Message()
	switch code := s.Code(); {
	case code == codes.Unauthenticated || code == codes.PermissionDenied:
		kind = drivers.KindAuth
	case isCertError(msg):
		kind = drivers.KindHostKey
	case strings.Contains(msg, "remote error: tls:"):
		// The device's TLS stack refused us (client certificate missing or not trusted).
		kind = drivers.KindAuth
	case code == codes.InvalidArgument || code == codes.FailedPrecondition ||
		code == codes.NotFound || code == codes.AlreadyExists || code == codes.OutOfRange || code == codes.Unimplemented:
		// The device answered: a gNMI Set that returns an error was rolled back whole
		// (gNMI specification 3.4.3), so nothing of the batch was applied.
		kind = drivers.KindRejected
		if op != "apply" {
			kind = drivers.KindInternal // a read or handshake the device does not understand
		}
	case code == codes.Unavailable || code == codes.DeadlineExceeded || code == codes.Canceled:
		kind = drivers.KindUnreachable
		if sent {
			kind = drivers.KindIndeterminate
		}
	case code == codes.Unknown && !isStatus(err):
		// Not a gRPC status: the dial itself failed (refused, timed out).
		kind = drivers.KindUnreachable
	default:
		if sent {
			kind = drivers.KindIndeterminate
		}
	}
	return &drivers.Error{Kind: kind, Device: device, Op: op, Err: errors.New(s.Code().String() + ": " + msg)}
}

func isStatus(err error) bool {
	_, ok := status.FromError(err)
	return ok
}

// isCertError reports whether a gRPC transport message is a TLS certificate verification
// failure: the device's identity could not be established, which like an unknown SSH host
// key must not be retried blindly.
func isCertError(msg string) bool {
	for _, s := range []string{"x509:", "tls: failed to verify certificate", "certificate signed by unknown authority", "certificate is valid for"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}
