package events

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/internal/fabric"
)

// Headers of every POST.
const (
	// HeaderSignature is "sha256=" and the hex HMAC-SHA256 of the body under the webhook's
	// secret.
	HeaderSignature = "X-Returnpath-Signature"
	// HeaderDelivery is the delivery's id: the same on every attempt, for receivers to
	// deduplicate on.
	HeaderDelivery = "X-Returnpath-Delivery"
	// HeaderEvent is the event's kind, for routing without parsing the body.
	HeaderEvent = "X-Returnpath-Event"
)

// DefaultTimeout bounds one POST, from dialling to the end of the answer.
const DefaultTimeout = 10 * time.Second

// Webhook is one entry of events.webhooks, resolved: its secret read from the environment.
type Webhook struct {
	Name         string
	URL          string
	Subscription fabric.Subscription
	Format       Format
	Secret       drivers.Secret
	// RootCAs verifies the receiver's certificate; nil uses the system's roots.
	RootCAs *x509.CertPool
}

// Sign returns the X-Returnpath-Signature value of body under secret.
func Sign(secret drivers.Secret, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret.Reveal()))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Answer is what a receiver answered.
type Answer struct {
	Status int    // HTTP status; 0: no answer
	Body   []byte // at most maxAnswer bytes of it
}

// maxAnswer is how much of a receiver's answer is read: enough to show a person.
const maxAnswer = 64 << 10

// Client returns the HTTP client for posting to w: it verifies the receiver's certificate
// against w's roots and never follows a redirect (a POST must not silently turn into a GET
// somewhere else; the 3xx fails the delivery and the operator fixes the URL).
func (w Webhook) Client(timeout time.Duration) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: w.RootCAs}
	return &http.Client{Transport: tr, Timeout: timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// Post sends body, signed, to w as delivery id of event kind. The error says why there was
// no answer; it never holds the URL, whose path may be a credential (Slack's are).
func (w Webhook) Post(ctx context.Context, c *http.Client, id, kind string, body []byte) (Answer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return Answer{}, errors.New("the webhook's url is not a valid URL")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "returnpath-webhook")
	req.Header.Set(HeaderSignature, Sign(w.Secret, body))
	req.Header.Set(HeaderDelivery, id)
	req.Header.Set(HeaderEvent, kind)
	resp, err := c.Do(req)
	if err != nil {
		return Answer{}, noAnswer(err, c.Timeout)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return Answer{Status: resp.StatusCode}, nil // the status is the answer; the rest is courtesy
	}
	return Answer{Status: resp.StatusCode, Body: b}, nil
}

// noAnswer describes a failed request without its URL.
func noAnswer(err error, timeout time.Duration) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		if ue.Timeout() {
			return fmt.Errorf("no answer within %s", timeout)
		}
		err = ue.Err
	}
	return fmt.Errorf("no answer: %w", err)
}
