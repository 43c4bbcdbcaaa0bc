package httpapi

import (
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"
)

// checkText refuses, with 400 naming the parameter, a query parameter or path segment that is
// not valid UTF-8 or holds a control character. No handler then sees one: PostgreSQL refuses
// NUL and invalid UTF-8 in text, which would otherwise surface as a 500, and no such value has
// a meaning in a host name, a cursor or a filter.
func (s *Server) checkText(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for key, values := range r.URL.Query() {
			if !cleanText(key) {
				s.writeError(w, r, badRequest(url.QueryEscape(key), fmt.Sprintf("query parameter %q is not valid UTF-8 text without control characters", key)))
				return
			}
			for _, v := range values {
				if !cleanText(v) {
					s.writeError(w, r, badRequest(key, fmt.Sprintf("%s: %q is not valid UTF-8 text without control characters", key, v)))
					return
				}
			}
		}
		if !cleanText(r.URL.Path) {
			field := s.pathParam(r.Method, r.URL.Path)
			s.writeError(w, r, badRequest(field, field+" is not valid UTF-8 text without control characters"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// pathParam names the path parameter of the route for method and path whose value is not
// clean text, or "path" when no route's parameter holds it.
func (s *Server) pathParam(method, path string) string {
	rctx := chi.NewRouteContext()
	if s.router.Match(rctx, method, path) {
		for i, k := range rctx.URLParams.Keys {
			// "*" is a mount's rest of the path, not a parameter of the route.
			if k != "*" && i < len(rctx.URLParams.Values) && !cleanText(rctx.URLParams.Values[i]) {
				return k
			}
		}
	}
	return "path"
}

// cleanText reports whether s is valid UTF-8 with no control character (C0, DEL, C1).
func cleanText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	return strings.IndexFunc(s, unicode.IsControl) < 0
}

// nulField returns the JSON name of the first string in v that holds a NUL character, which
// no text column can store. prefix is the name of v itself.
func nulField(v reflect.Value, prefix string) (string, bool) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return "", false
		}
		return nulField(v.Elem(), prefix)
	case reflect.String:
		return prefix, strings.ContainsRune(v.String(), 0)
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			if f, ok := nulField(v.Index(i), fmt.Sprintf("%s[%d]", prefix, i)); ok {
				return f, true
			}
		}
	case reflect.Map:
		iter := v.MapRange()
		for iter.Next() {
			name := joinField(prefix, fmt.Sprint(iter.Key().Interface()))
			if f, ok := nulField(iter.Key(), name); ok {
				return f, true
			}
			if f, ok := nulField(iter.Value(), name); ok {
				return f, true
			}
		}
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			sf := t.Field(i)
			if !sf.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
			if name == "-" {
				continue
			}
			if name == "" {
				name = sf.Name
			}
			if f, ok := nulField(v.Field(i), joinField(prefix, name)); ok {
				return f, true
			}
		}
	}
	return "", false
}

func joinField(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}
