// Package apitest checks HTTP exchanges against api/openapi.yaml: a test client whose every
// response must be declared by the contract and match its schema.
package apitest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	liberrors "github.com/pb33f/libopenapi-validator/errors"
	"github.com/pb33f/libopenapi-validator/schema_validation"
	"github.com/pb33f/libopenapi/datamodel/high/base"

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
	if err := Validate(req, resp, body); err != nil {
		c.T.Errorf("%s %s -> %d does not match api/openapi.yaml:\n  %v\n  body: %s", req.Method, req.URL.Path, resp.StatusCode, err, body)
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}

// Validate checks one exchange against the contract: the response's status must be declared
// for the request's operation and its body must match the declared schema. body is the
// response body, already read; resp.Body is left reading it again.
func Validate(req *http.Request, resp *http.Response, body []byte) error {
	val, errs := load()
	if len(errs) != 0 {
		return fmt.Errorf("api/openapi.yaml is not a valid OpenAPI document: %v", errs)
	}
	check := *resp
	check.Body = io.NopCloser(bytes.NewReader(body))
	defer func() { resp.Body = io.NopCloser(bytes.NewReader(body)) }()
	if ok, verrs := val.ValidateHttpResponse(req, &check); !ok {
		return errors.New(strings.Join(messages(verrs), "\n  "))
	}
	return nil
}

func messages(verrs []*liberrors.ValidationError) []string {
	var msgs []string
	for _, e := range verrs {
		m := e.Message + ": " + e.Reason
		for _, se := range e.SchemaValidationErrors {
			m += " [" + se.FieldPath + ": " + se.Reason + "]"
		}
		msgs = append(msgs, m)
	}
	return msgs
}

var (
	problemOnce   sync.Once
	problemSchema *base.Schema
	problemErr    error
)

// ValidateProblem checks an error response that no operation of the contract declares (an
// unknown path, a method the path does not serve): it must still be an
// application/problem+json document matching the contract's Problem schema, whose status is
// the response's own.
func ValidateProblem(resp *http.Response, body []byte) error {
	problemOnce.Do(func() {
		doc, err := libopenapi.NewDocument(api.OpenAPI)
		if err != nil {
			problemErr = err
			return
		}
		m, err := doc.BuildV3Model()
		if err != nil {
			problemErr = err
			return
		}
		proxy, ok := m.Model.Components.Schemas.Get("Problem")
		if !ok {
			problemErr = errors.New("no components.schemas.Problem")
			return
		}
		problemSchema, problemErr = proxy.BuildSchema()
	})
	if problemErr != nil {
		return fmt.Errorf("api/openapi.yaml: %w", problemErr)
	}
	if ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); ct != "application/problem+json" {
		return fmt.Errorf("Content-Type %q, want application/problem+json", resp.Header.Get("Content-Type"))
	}
	if ok, verrs := schema_validation.NewSchemaValidator().ValidateSchemaBytes(problemSchema, body); !ok {
		return fmt.Errorf("not a Problem of api/openapi.yaml: %s", strings.Join(messages(verrs), "; "))
	}
	var p struct {
		Status int `json:"status"`
	}
	if err := json.Unmarshal(body, &p); err != nil || p.Status != resp.StatusCode {
		return fmt.Errorf("the problem's status is %d, the response's %d (%v)", p.Status, resp.StatusCode, err)
	}
	return nil
}

// Client returns an http.Client whose responses are validated against the contract.
func Client(t testing.TB) *http.Client {
	return &http.Client{Transport: &Transport{T: t}}
}
