package main

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
)

// ConfigError is every problem found in a configuration file, each naming its key: the file
// is checked whole, so that its author fixes it in one pass rather than one error per run.
type ConfigError struct {
	Path     string  // the file, "" when none was read
	Problems []error // each "key: what is wrong"
}

func (e *ConfigError) Error() string {
	msgs := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		msgs[i] = p.Error()
	}
	return e.header() + " " + strings.Join(msgs, "; ")
}

// header is the line before the list of problems, e.g. "config a.yaml: 2 problems:".
func (e *ConfigError) header() string {
	s := "config"
	if e.Path != "" {
		s += " " + e.Path
	}
	if len(e.Problems) == 1 {
		return s + ":"
	}
	return fmt.Sprintf("%s: %d problems:", s, len(e.Problems))
}

// Unwrap returns the problems for errors.Is and errors.As.
func (e *ConfigError) Unwrap() []error { return e.Problems }

// configError returns the problems as a *ConfigError, or nil when there are none.
func configError(path string, problems []error) error {
	if len(problems) == 0 {
		return nil
	}
	return &ConfigError{Path: path, Problems: problems}
}

// flatten splits err into the problems it joins (errors.Join, fabric.Errors, a ConfigError).
func flatten(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

// decodeProblems turns mapstructure's decode errors into one problem per key.
func decodeProblems(err error) []error {
	var out []error
	for _, e := range flatten(err) {
		var de *mapstructure.DecodeError
		if !errors.As(e, &de) {
			out = append(out, e)
			continue
		}
		cause := de.Unwrap()
		var ut *mapstructure.UnconvertibleTypeError
		var pe *mapstructure.ParseError
		switch {
		case errors.As(cause, &ut):
			// The value itself is not quoted: a misplaced secret must not reach a terminal.
			out = append(out, fmt.Errorf("%s: want %s, got %s", de.Name(), typeText(ut.Expected.Type()), typeText(reflect.TypeOf(ut.Value))))
		case errors.As(cause, &pe):
			out = append(out, fmt.Errorf("%s: want %s", de.Name(), typeText(pe.Expected.Type())))
		default:
			out = append(out, fmt.Errorf("%s: %w", de.Name(), cause))
		}
	}
	// mapstructure walks maps in no fixed order.
	slices.SortFunc(out, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return out
}

// typeText names a configuration value's type for a person.
func typeText(t reflect.Type) string {
	if t == nil {
		return "nothing"
	}
	if t == reflect.TypeOf(time.Duration(0)) {
		return "a duration such as 30s"
	}
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "a mapping of keys"
	}
	return t.String()
}

// credentialHints answers an unknown key that tries to put a secret into the file: returnpath
// reads secrets only from the environment or from files of their own, which is why the keys
// that hold them are named after where the secret is.
var credentialHints = map[string]struct {
	keys []string // the siblings that hold it; the hint applies where they are known
	text string
}{
	"password": {[]string{"password_env", "password_file", "private_key_file"},
		"the configuration file holds no passwords: set password_env (an environment variable that holds it), password_file (a file that holds it) or private_key_file (an SSH private key)"},
	"secret": {[]string{"secret_env"},
		"the configuration file holds no secrets: set secret_env, the environment variable that holds it"},
}

var indexRE = regexp.MustCompile(`\[\d+\]`)

// unknownKeyError explains a key of the file that Config does not have, e.g.
// "pools[0].subnet_lenght: unknown key; did you mean subnet_length?".
func unknownKeyError(key string) error {
	parent, leaf := "", key
	if i := strings.LastIndex(key, "."); i >= 0 {
		parent, leaf = key[:i], key[i+1:]
	}
	known, ok := knownKeys(reflect.TypeOf(Config{}), parent)
	if !ok {
		return fmt.Errorf("%s: unknown key", key)
	}
	if h, ok := credentialHints[leaf]; ok && slices.Contains(known, h.keys[0]) {
		return fmt.Errorf("%s: unknown key; %s", key, h.text)
	}
	if near := nearest(leaf, known); near != "" {
		return fmt.Errorf("%s: unknown key; did you mean %s?", key, near)
	}
	where := "here"
	if parent != "" {
		where = "in " + indexRE.ReplaceAllString(parent, "[]")
	}
	return fmt.Errorf("%s: unknown key (known %s: %s)", key, where, strings.Join(known, ", "))
}

// unknownKeys returns the keys of raw (a decoded YAML document) that t, a struct type with
// mapstructure tags, does not have, with their full paths ("pools[0].subnet_lenght"), sorted.
// Values under a map-typed field take any key.
func unknownKeys(raw map[string]any, t reflect.Type, prefix string) []string {
	var out []string
	t = structOf(t)
	if t == nil {
		return nil
	}
	for k, val := range raw {
		key := k
		if prefix != "" {
			key = prefix + "." + k
		}
		f, ok := fieldByKey(t, k)
		if !ok {
			out = append(out, key)
			continue
		}
		switch val := val.(type) {
		case map[string]any:
			out = append(out, unknownKeys(val, f.Type, key)...)
		case []any:
			for i, el := range val {
				if m, ok := el.(map[string]any); ok {
					out = append(out, unknownKeys(m, f.Type, fmt.Sprintf("%s[%d]", key, i))...)
				}
			}
		}
	}
	slices.Sort(out)
	return out
}

// knownKeys returns the keys Config accepts under parent ("" for the top level; indexes such
// as [0] are ignored), sorted; false when parent is not a mapping of known keys.
func knownKeys(t reflect.Type, parent string) ([]string, bool) {
	if parent != "" {
		for _, part := range strings.Split(indexRE.ReplaceAllString(parent, ""), ".") {
			t = structOf(t)
			if t == nil {
				return nil, false
			}
			f, ok := fieldByKey(t, part)
			if !ok {
				return nil, false
			}
			t = f.Type
		}
	}
	t = structOf(t)
	if t == nil {
		return nil, false
	}
	var keys []string
	for i := range t.NumField() {
		if k := keyOf(t.Field(i)); k != "" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys, true
}

// structOf follows pointers, slices and arrays to a struct type; nil for anything else (a map
// takes any key).
func structOf(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	return t
}

func fieldByKey(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		if keyOf(t.Field(i)) == key {
			return t.Field(i), true
		}
	}
	return reflect.StructField{}, false
}

func keyOf(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	k, _, _ := strings.Cut(f.Tag.Get("mapstructure"), ",")
	if k == "-" {
		return ""
	}
	return k
}

// nearest returns the known key closest to key by edit distance, if one is close enough to be
// a typo of it (at most 2 edits, or a quarter of its length for long keys); "" otherwise.
func nearest(key string, known []string) string {
	best, bestD := "", max(2, len(key)/4)+1
	for _, k := range known {
		if d := levenshtein(key, k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

// levenshtein is the edit distance between a and b: insertions, deletions and substitutions
// of bytes (configuration keys are ASCII).
func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
