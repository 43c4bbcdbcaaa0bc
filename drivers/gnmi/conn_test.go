package gnmi

import (
	"errors"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/returnpath/returnpath/drivers"
)

func TestClassify(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		err  error
		op   string
		sent bool
		want drivers.Kind
	}{
		{"refused before send", status.Error(codes.Unavailable, "connection error: dial tcp 127.0.0.1:1: connect: connection refused"), "apply", false, drivers.KindUnreachable},
		{"deadline before send", status.Error(codes.DeadlineExceeded, "context deadline exceeded"), "apply", false, drivers.KindUnreachable},
		{"deadline after send", status.Error(codes.DeadlineExceeded, "context deadline exceeded"), "apply", true, drivers.KindIndeterminate},
		{"connection lost after send", status.Error(codes.Unavailable, "error reading from server: EOF"), "apply", true, drivers.KindIndeterminate},
		{"read lost", status.Error(codes.Unavailable, "error reading from server: EOF"), "read", false, drivers.KindUnreachable},
		{"invalid argument", status.Error(codes.InvalidArgument, "bad leaf"), "apply", true, drivers.KindRejected},
		{"failed precondition", status.Error(codes.FailedPrecondition, "in use"), "apply", true, drivers.KindRejected},
		{"not found on set", status.Error(codes.NotFound, "no such path"), "apply", true, drivers.KindRejected},
		{"invalid argument on read", status.Error(codes.InvalidArgument, "bad path"), "read", false, drivers.KindInternal},
		{"aborted after send", status.Error(codes.Aborted, "commit conflict"), "apply", true, drivers.KindIndeterminate},
		{"unauthenticated", status.Error(codes.Unauthenticated, "bad password"), "connect", false, drivers.KindAuth},
		{"permission denied", status.Error(codes.PermissionDenied, "read-only user"), "apply", true, drivers.KindAuth},
		{"unknown CA", status.Error(codes.Unavailable, `connection error: desc = "transport: authentication handshake failed: tls: failed to verify certificate: x509: certificate signed by unknown authority"`), "connect", false, drivers.KindHostKey},
		{"wrong name", status.Error(codes.Unavailable, `transport: authentication handshake failed: tls: failed to verify certificate: x509: certificate is valid for a.test, not b.test`), "connect", false, drivers.KindHostKey},
		{"client cert refused", status.Error(codes.Unavailable, `transport: authentication handshake failed: remote error: tls: certificate required`), "connect", false, drivers.KindAuth},
		{"not a status", errors.New("dial tcp: lookup device: no such host"), "connect", false, drivers.KindUnreachable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := classify("dev1", tc.op, tc.err, tc.sent)
			if got.Kind != tc.want {
				t.Errorf("kind = %s, want %s (%v)", got.Kind, tc.want, got)
			}
			if got.Device != "dev1" || got.Op != tc.op {
				t.Errorf("device/op = %q/%q, want dev1/%s", got.Device, got.Op, tc.op)
			}
			if s, _ := status.FromError(tc.err); !strings.Contains(got.Error(), s.Message()) {
				t.Errorf("error %q lost the device's message %q", got, s.Message())
			}
		})
	}
}
