// Package fabric is returnpath's domain: pools, segments, devices, hosts, routes, changes and
// the pure planning rules that connect them. It performs no I/O; Postgres, HTTP, device drivers
// and the apply engine live in packages around it.
package fabric

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Error codes. Their messages are safe to show to API users; the HTTP layer maps each code to a
// status in one table.
const (
	ECONFLICT     = "conflict"
	EINTERNAL     = "internal"
	EINVALID      = "invalid"
	ENOTFOUND     = "not_found"
	EUNAVAILABLE  = "unavailable"
	EFORBIDDEN    = "forbidden"
	EUNAUTHORIZED = "unauthorized"
	ETOOMANY      = "too_many_requests"
)

// Error is the domain error. Message is written for the API user; Field, when set, names the
// request field or configuration key at fault.
type Error struct {
	Code    string
	Field   string
	Message string
}

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %s", e.Field, e.Message)
	}
	return e.Message
}

// Errorf returns an *Error with the given code and formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// FieldErrorf returns an *Error with the given code that names the field at fault.
func FieldErrorf(code, field, format string, args ...any) *Error {
	return &Error{Code: code, Field: field, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL for any other
// non-nil error, and "" for nil.
func ErrorCode(err error) string {
	var e *Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &e):
		return e.Code
	default:
		return EINTERNAL
	}
}

// ErrorMessage returns the user-safe message of the first *Error in err's chain, and a generic
// text for any other error so that internal details never reach an API user.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}

// LimitError refuses a request because a limit was reached (a quota, a cap on concurrent
// requests). RetryAfter tells the caller when to try again; the API sends it as Retry-After.
type LimitError struct {
	Field      string // the limit's configuration key, e.g. "limits.registrations_per_minute"
	Message    string
	RetryAfter time.Duration
}

func (e *LimitError) Error() string { return e.Message }

// Unwrap makes the error an ETOOMANY *Error for the API's error table.
func (e *LimitError) Unwrap() error { return &Error{Code: ETOOMANY, Message: e.Message} }

// Errors is every error one validation found, in the order found, each an *Error naming its
// field: a configuration is checked whole, so that its author fixes it in one pass rather
// than one error per run. errors.As finds the first *Error in it.
type Errors []*Error

func (es Errors) Error() string {
	msgs := make([]string, len(es))
	for i, e := range es {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "; ")
}

// Unwrap returns the errors for errors.Is and errors.As.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// Err returns es as an error, or nil when it holds none.
func (es Errors) Err() error {
	if len(es) == 0 {
		return nil
	}
	return es
}
