package httpapi

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/returnpath/returnpath/internal/fabric"
)

// ProblemContentType is the media type of every error response (RFC 9457).
const ProblemContentType = "application/problem+json"

// Problem is an RFC 9457 problem document with returnpath's extensions.
type Problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
	Code     string `json:"code"`
	Field    string `json:"field,omitempty"`
	// Reason names one refusal within a code, for clients to act on (e.g. plan_changed and
	// plan_hash_mismatch are both conflicts on plan_hash).
	Reason    string `json:"reason,omitempty"`
	RequestID string `json:"request_id,omitempty"`
	// Extra carries endpoint-specific details (e.g. the new plan when an approval is stale).
	Extra any `json:"extra,omitempty"`
}

// codeStatus maps domain error codes to HTTP statuses: the one place that does.
var codeStatus = map[string]int{
	fabric.EINVALID:      http.StatusUnprocessableEntity,
	fabric.EUNAUTHORIZED: http.StatusUnauthorized,
	fabric.EFORBIDDEN:    http.StatusForbidden,
	fabric.ENOTFOUND:     http.StatusNotFound,
	fabric.ECONFLICT:     http.StatusConflict,
	fabric.EUNAVAILABLE:  http.StatusServiceUnavailable,
	fabric.EINTERNAL:     http.StatusInternalServerError,
	fabric.ETOOMANY:      http.StatusTooManyRequests,
}

// requestError is an error of the HTTP exchange itself (malformed JSON, wrong media type,
// body too large): a status other than the domain table's, but a field all the same.
type requestError struct {
	status int
	field  string
	msg    string
}

func (e *requestError) Error() string { return e.msg }

func badRequest(field, msg string) error {
	return &requestError{status: http.StatusBadRequest, field: field, msg: msg}
}

// writeError answers with the problem document for err. Internal errors are logged with the
// request id and answered with a generic text, so that no internal detail (or secret) leaks.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	p := Problem{Instance: r.URL.Path, RequestID: requestID(r.Context())}
	var re *requestError
	var fe *fabric.Error
	switch {
	case errors.As(err, &re):
		p.Status, p.Field, p.Detail, p.Code = re.status, re.field, re.msg, fabric.EINVALID
	case errors.As(err, &fe):
		p.Status, p.Field, p.Detail, p.Code = codeStatus[fe.Code], fe.Field, fe.Message, fe.Code
		if p.Status == 0 {
			p.Status = http.StatusInternalServerError
		}
	default:
		p.Status, p.Code, p.Detail = http.StatusInternalServerError, fabric.EINTERNAL, "internal error; the server log has the details under this request_id"
	}
	if p.Status >= 500 && fe == nil || p.Code == fabric.EINTERNAL {
		s.log.ErrorContext(r.Context(), "internal error", "err", err, "request_id", p.RequestID, "path", r.URL.Path)
	}
	var extra interface{ ProblemExtra() any }
	if errors.As(err, &extra) {
		p.Extra = extra.ProblemExtra()
	}
	var reason interface{ ProblemReason() string }
	if errors.As(err, &reason) {
		p.Reason = reason.ProblemReason()
	}
	p.Type = "urn:returnpath:problem:" + p.Code
	p.Title = http.StatusText(p.Status)
	var limit *fabric.LimitError
	if errors.As(err, &limit) {
		p.Field = limit.Field // which limit: its configuration key
		// Whole seconds, rounded up: Retry-After takes no fractions (RFC 9110, 10.2.3).
		w.Header().Set("Retry-After", strconv.Itoa(int(max(1, (limit.RetryAfter+time.Second-1)/time.Second))))
	}
	if p.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="returnpath"`)
	}
	w.Header().Set("Content-Type", ProblemContentType)
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		slog.Default().Debug("write response", "err", err)
	}
}
