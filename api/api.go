// Package api embeds returnpath's REST contract, api/openapi.yaml, so that the server can
// publish it and tests can check every response against it.
package api

import _ "embed"

// OpenAPI is the OpenAPI 3.1 document of the REST API.
//
//go:embed openapi.yaml
var OpenAPI []byte
