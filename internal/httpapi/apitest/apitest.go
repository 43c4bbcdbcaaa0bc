// Package apitest checks HTTP exchanges against api/openapi.yaml: a test client whose every
// response must be declared by the contract and match its schema.
package apitest

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"

	"github.com/returnpath/returnpath/api"
)

var (
	once sync.Once
	v    validator.Validator
	verr []error
)

func load() (validator.Validator, []error) {
	once.Do(func() {
		doc, err := libopenapi.NewDocument(api.OpenAPI)
		if err != nil {
			verr = []error{err}
			return
		}
		v, verr = validator.NewValidator(doc)
		if len(verr) == 0 {
			if ok, errs := v.ValidateDocument(); !ok {
				for _, e := range errs {
					verr = append(verr, e)
				}
			}
		}
	})
	return v, verr
}

// Transport validates each response against the contract and fails the test on a mismatch.
// T must be the test (or subtest) the exchange belongs to; it is only told of errors, never
// stopped, so the client may be used from any goroutine.
type Transport struct {
	T    testing.TB
	Base http.RoundTripper
}

// RoundTrip performs the exchange and validates it.
func (c *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	val, errs := load()
	if len(errs) != 0 {
		// An error, not Fatalf: RoundTrip may run on a goroutine other than the test's.
		c.T.Errorf("api/openapi.yaml is not a valid OpenAPI document: %v", errs)
		return nil, fmt.Errorf("api/openapi.yaml is not a valid OpenAPI document: %v", errs)
	}
	base := c.Base
	if base == nil {
		base = http.DefaultTransport
	}
	resp, err := base.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	check := resp
	check.Body = io.NopCloser(bytes.NewReader(body))
	if ok, verrs := val.ValidateHttpResponse(req, check); !ok {
		var msgs []string
		for _, e := range verrs {
			m := e.Message + ": " + e.Reason
			for _, se := range e.SchemaValidationErrors {
				m += " [" + se.FieldPath + ": " + se.Reason + "]"
			}
			msgs = append(msgs, m)
		}
		c.T.Errorf("%s %s -> %d does not match api/openapi.yaml:\n  %s\n  body: %s", req.Method, req.URL.Path, resp.StatusCode, strings.Join(msgs, "\n  "), body)
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}

// Client returns an http.Client whose responses are validated against the contract.
func Client(t testing.TB) *http.Client {
	return &http.Client{Transport: &Transport{T: t}}
}
