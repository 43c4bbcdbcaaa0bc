// Package gnmitarget is an in-process gNMI server for tests: it holds a device's
// configuration in ygot-generated structs and validates every SetRequest against the YANG
// schema (unknown leaves, malformed addresses and prefixes, list keys that disagree with
// their key leaves, missing config keys, leafrefs, writes to config false nodes) before it
// commits the whole request atomically. It serves Capabilities, Get and Set; Subscribe is
// not implemented.
//
// Two schemas are available: OpenConfig (ygot's bundled uncompressed OpenConfig structs,
// which include openconfig-network-instance) and a subset of the Nokia SR Linux native model
// (package srl). Targets listen on 127.0.0.1 only.
package gnmitarget

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/goyang/pkg/yang"
	"github.com/openconfig/ygot/ygot"
	"github.com/openconfig/ygot/ytypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// SetHook runs at the start of every Set RPC, before the request is validated. A non-nil
// error (ideally a gRPC status) fails the RPC and nothing is applied. Tests use it to make
// the device refuse, stall until the client gives up, or count requests.
type SetHook func(ctx context.Context, req *gpb.SetRequest) error

// Option configures a Target.
type Option func(*Target)

// WithTLS serves gNMI over TLS with cfg (plain gRPC without this option).
func WithTLS(cfg *tls.Config) Option { return func(t *Target) { t.tls = cfg } }

// WithCredentials requires every RPC to carry the username and password metadata that gNMI
// clients send (as gnmic does).
func WithCredentials(username, password string) Option {
	return func(t *Target) { t.user, t.pass = username, password }
}

// Target is a running in-process gNMI server.
type Target struct {
	gpb.UnimplementedGNMIServer

	model      *Model
	tls        *tls.Config
	user, pass string

	mu   sync.RWMutex
	root ygot.ValidatedGoStruct // replaced, never mutated, by a successful Set
	hook SetHook

	sets, gets atomic.Int64

	lis  net.Listener
	srv  *grpc.Server
	done chan struct{}
}

// Start creates a Target holding an empty configuration in model and serves it on
// 127.0.0.1 at a free port until Close.
func Start(model *Model, opts ...Option) (*Target, error) {
	t := &Target{model: model, root: model.newRoot(), done: make(chan struct{})}
	for _, o := range opts {
		o(t)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	var sopts []grpc.ServerOption
	if t.tls != nil {
		sopts = append(sopts, grpc.Creds(credentials.NewTLS(t.tls)))
	}
	sopts = append(sopts, grpc.MaxRecvMsgSize(256<<20))
	t.lis = lis
	t.srv = grpc.NewServer(sopts...)
	gpb.RegisterGNMIServer(t.srv, t)
	go func() {
		defer close(t.done)
		_ = t.srv.Serve(lis) // returns when Close stops the server
	}()
	return t, nil
}

// Addr returns the address the target listens on.
func (t *Target) Addr() net.Addr { return t.lis.Addr() }

// Close stops the server, ending open RPCs.
func (t *Target) Close() error {
	t.srv.Stop()
	<-t.done
	return nil
}

// SetHook installs h (nil removes it).
func (t *Target) SetHook(h SetHook) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.hook = h
}

// Counts returns how many Set and Get RPCs the target has served.
func (t *Target) Counts() (sets, gets int64) { return t.sets.Load(), t.gets.Load() }

// Apply validates and commits req as a Set RPC would, without the RPC (for seeding a
// device with configuration that is not returnpath's).
func (t *Target) Apply(req *gpb.SetRequest) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.apply(req)
}

// Config returns the current configuration tree (*uexampleoc.Device or *srl.Device). The
// target never mutates a tree it has handed out, and the caller must not either.
func (t *Target) Config() ygot.ValidatedGoStruct {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.root
}

// JSON returns the whole configuration as RFC 7951 JSON, for test failure messages.
func (t *Target) JSON() (string, error) {
	t.mu.RLock()
	root := t.root
	t.mu.RUnlock()
	return ygot.EmitJSON(root, &ygot.EmitJSONConfig{Format: ygot.RFC7951, Indent: "  ",
		RFC7951Config: &ygot.RFC7951JSONConfig{AppendModuleName: true}})
}

func (t *Target) authorize(ctx context.Context) error {
	if t.user == "" && t.pass == "" {
		return nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	u, p := first(md.Get("username")), first(md.Get("password"))
	if subtle.ConstantTimeCompare([]byte(u), []byte(t.user)) != 1 || subtle.ConstantTimeCompare([]byte(p), []byte(t.pass)) != 1 {
		return status.Error(codes.Unauthenticated, "invalid username or password")
	}
	return nil
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

// Capabilities lists the model's modules and the JSON_IETF encoding.
func (t *Target) Capabilities(ctx context.Context, _ *gpb.CapabilityRequest) (*gpb.CapabilityResponse, error) {
	if err := t.authorize(ctx); err != nil {
		return nil, err
	}
	return &gpb.CapabilityResponse{
		SupportedModels:    t.model.models,
		SupportedEncodings: []gpb.Encoding{gpb.Encoding_JSON_IETF},
		GNMIVersion:        "0.10.0",
	}, nil
}

// Set applies req atomically: every delete, replace and update, in that order, or none.
func (t *Target) Set(ctx context.Context, req *gpb.SetRequest) (*gpb.SetResponse, error) {
	if err := t.authorize(ctx); err != nil {
		return nil, err
	}
	t.sets.Add(1)
	t.mu.RLock()
	hook := t.hook
	t.mu.RUnlock()
	if hook != nil {
		if err := hook(ctx, req); err != nil {
			return nil, err
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.apply(req); err != nil {
		return nil, err
	}
	resp := &gpb.SetResponse{Prefix: req.Prefix, Timestamp: time.Now().UnixNano()}
	for _, p := range req.Delete {
		resp.Response = append(resp.Response, &gpb.UpdateResult{Path: p, Op: gpb.UpdateResult_DELETE})
	}
	for _, u := range req.Replace {
		resp.Response = append(resp.Response, &gpb.UpdateResult{Path: u.Path, Op: gpb.UpdateResult_REPLACE})
	}
	for _, u := range req.Update {
		resp.Response = append(resp.Response, &gpb.UpdateResult{Path: u.Path, Op: gpb.UpdateResult_UPDATE})
	}
	return resp, nil
}

// apply must be called with t.mu held for writing.
func (t *Target) apply(req *gpb.SetRequest) error {
	if len(req.UnionReplace) > 0 {
		return status.Error(codes.Unimplemented, "union_replace is not supported")
	}
	c, err := ygot.DeepCopy(t.root)
	if err != nil {
		return status.Errorf(codes.Internal, "copy configuration: %v", err)
	}
	next := c.(ygot.ValidatedGoStruct)
	ed := &editor{rs: t.model.rootSchema(), root: next, parents: map[string]parentNode{}}
	for _, p := range req.Delete {
		if err := ed.delete(join(req.Prefix, p)); err != nil {
			return err
		}
	}
	for _, u := range req.Replace {
		full := join(req.Prefix, u.Path)
		if err := ed.delete(full); err != nil {
			return err
		}
		if err := ed.update(full, u.Val); err != nil {
			return err
		}
	}
	for _, u := range req.Update {
		if err := ed.update(join(req.Prefix, u.Path), u.Val); err != nil {
			return err
		}
	}
	if err := next.Validate(); err != nil {
		return status.Errorf(codes.InvalidArgument, "validation: %s", firstLine(err.Error()))
	}
	t.root = next
	return nil
}

// editor applies one SetRequest's edits to a copy of the tree. Resolving a path from the root
// walks ygot's schema element by element, which dominates a large Set; so the parent of each
// edited node is resolved once and reused for its siblings.
type editor struct {
	rs      *yang.Entry
	root    ygot.GoStruct
	parents map[string]parentNode // by canonical path
}

type parentNode struct {
	schema *yang.Entry
	node   any
}

// parent returns the node holding p's last element, creating it when create is set; found
// is false when it does not exist and was not created.
func (e *editor) parent(p *gpb.Path, create bool) (parentNode, bool, error) {
	pp := &gpb.Path{Origin: p.Origin, Elem: p.Elem[:len(p.Elem)-1]}
	if len(pp.Elem) == 0 {
		return parentNode{e.rs, e.root}, true, nil
	}
	key := canonical(pp)
	if c, ok := e.parents[key]; ok {
		return c, true, nil
	}
	var c parentNode
	if create {
		n, s, err := ytypes.GetOrCreateNode(e.rs, e.root, pp)
		if err != nil {
			return parentNode{}, false, err
		}
		c = parentNode{s, n}
	} else {
		nodes, err := ytypes.GetNode(e.rs, e.root, pp, &ytypes.GetTolerateNil{})
		if status.Code(err) == codes.NotFound || (err == nil && (len(nodes) == 0 || isNil(nodes[0].Data))) {
			return parentNode{}, false, nil
		}
		if err != nil {
			return parentNode{}, false, err
		}
		c = parentNode{nodes[0].Schema, nodes[0].Data}
	}
	e.parents[key] = c
	return c, true, nil
}

// forget drops cached parents at or below p, which an edit of p may have replaced.
func (e *editor) forget(p *gpb.Path) {
	k := canonical(p)
	for key := range e.parents {
		if key == k || strings.HasPrefix(key, k+"/") {
			delete(e.parents, key)
		}
	}
}

func last(p *gpb.Path) *gpb.Path { return &gpb.Path{Elem: p.Elem[len(p.Elem)-1:]} }

func (e *editor) delete(path *gpb.Path) error {
	if err := checkPath(e.rs, path); err != nil {
		return err
	}
	if len(path.Elem) == 0 {
		return status.Error(codes.InvalidArgument, "delete of the whole configuration is not supported")
	}
	par, found, err := e.parent(path, false)
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "delete %s: %v", pathString(path), err)
	}
	if !found {
		return nil // nothing there: deleting a missing path is not an error
	}
	e.forget(path)
	if err := ytypes.DeleteNode(par.schema, par.node, last(path)); err != nil {
		return status.Errorf(codes.InvalidArgument, "delete %s: %v", pathString(path), err)
	}
	return nil
}

func (e *editor) update(path *gpb.Path, val *gpb.TypedValue) error {
	if err := checkPath(e.rs, path); err != nil {
		return err
	}
	if val == nil {
		return status.Errorf(codes.InvalidArgument, "update %s: no value", pathString(path))
	}
	if len(path.Elem) == 0 {
		return status.Error(codes.InvalidArgument, "update of the whole configuration is not supported")
	}
	var raw []byte
	switch v := val.Value.(type) {
	case *gpb.TypedValue_JsonIetfVal:
		raw = v.JsonIetfVal
	case *gpb.TypedValue_JsonVal:
		raw = v.JsonVal
		val = &gpb.TypedValue{Value: &gpb.TypedValue_JsonIetfVal{JsonIetfVal: raw}}
	}
	if raw != nil {
		var tree any
		if err := json.Unmarshal(raw, &tree); err != nil {
			return status.Errorf(codes.InvalidArgument, "update %s: invalid JSON: %v", pathString(path), err)
		}
		ent, err := entryAt(e.rs, path)
		if err != nil {
			return err
		}
		if err := checkWritable(ent, tree, pathString(path)); err != nil {
			return err
		}
	}
	par, _, err := e.parent(path, true)
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "update %s: %v", pathString(path), err)
	}
	e.forget(path)
	if err := ytypes.SetNode(par.schema, par.node, last(path), val, &ytypes.InitMissingElements{}); err != nil {
		return status.Errorf(codes.InvalidArgument, "update %s: %v", pathString(path), err)
	}
	return nil
}

// canonical renders p with sorted keys, as a cache key.
func canonical(p *gpb.Path) string {
	var b strings.Builder
	for _, el := range p.Elem {
		b.WriteByte('/')
		b.WriteString(localName(el.Name))
		ks := make([]string, 0, len(el.Key))
		for k := range el.Key {
			ks = append(ks, k)
		}
		sort.Strings(ks)
		for _, k := range ks {
			b.WriteString("[" + k + "=" + el.Key[k] + "]")
		}
	}
	return b.String()
}

// Get returns the configuration at each requested path as JSON_IETF. Paths may use "*" as
// a key value. A path with no data is NotFound, as the gNMI specification requires.
func (t *Target) Get(ctx context.Context, req *gpb.GetRequest) (*gpb.GetResponse, error) {
	if err := t.authorize(ctx); err != nil {
		return nil, err
	}
	t.gets.Add(1)
	if req.Encoding != gpb.Encoding_JSON_IETF && req.Encoding != gpb.Encoding_JSON {
		return nil, status.Errorf(codes.Unimplemented, "encoding %s is not supported (want JSON_IETF)", req.Encoding)
	}
	if req.Type != gpb.GetRequest_ALL && req.Type != gpb.GetRequest_CONFIG {
		return nil, status.Errorf(codes.Unimplemented, "data type %s is not supported: the target holds configuration only", req.Type)
	}
	t.mu.RLock()
	root := t.root
	t.mu.RUnlock()
	rs := t.model.rootSchema()
	now := time.Now().UnixNano()
	resp := &gpb.GetResponse{}
	for _, p := range req.Path {
		full := join(req.Prefix, p)
		if err := checkPath(rs, full); err != nil {
			return nil, err
		}
		nodes, err := ytypes.GetNode(rs, root, full, &ytypes.GetHandleWildcards{}, &ytypes.GetTolerateNil{})
		if status.Code(err) == codes.NotFound || (err == nil && len(nodes) == 0) {
			return nil, status.Errorf(codes.NotFound, "no data at %s", pathString(full))
		}
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "get %s: %v", pathString(full), err)
		}
		n := &gpb.Notification{Timestamp: now}
		for _, node := range nodes {
			if isNil(node.Data) {
				continue
			}
			tv, err := encode(node.Data)
			if err != nil {
				return nil, status.Errorf(codes.Internal, "encode %s: %v", pathString(node.Path), err)
			}
			if tv == nil {
				continue
			}
			n.Update = append(n.Update, &gpb.Update{Path: node.Path, Val: tv})
		}
		if len(n.Update) == 0 {
			return nil, status.Errorf(codes.NotFound, "no data at %s", pathString(full))
		}
		resp.Notification = append(resp.Notification, n)
	}
	return resp, nil
}

// firstLine keeps the first of ygot's newline-separated validation errors, as a device
// reports the first problem of a commit; the others usually repeat it for another branch of
// a union type.
func firstLine(s string) string {
	first, rest, more := strings.Cut(s, "\n")
	if !more {
		return s
	}
	return fmt.Sprintf("%s (and %d more)", first, strings.Count(rest, "\n")+1)
}

func isNil(v any) bool {
	if v == nil {
		return true
	}
	switch rv := reflect.ValueOf(v); rv.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Interface:
		return rv.IsNil()
	}
	return false
}

func encode(data any) (*gpb.TypedValue, error) {
	if gs, ok := data.(ygot.GoStruct); ok {
		b, err := ygot.Marshal7951(gs, &ygot.RFC7951JSONConfig{AppendModuleName: true})
		if err != nil {
			return nil, err
		}
		return &gpb.TypedValue{Value: &gpb.TypedValue_JsonIetfVal{JsonIetfVal: b}}, nil
	}
	return ygot.EncodeTypedValue(data, gpb.Encoding_JSON_IETF)
}

// join prepends prefix's elements (and origin) to p.
func join(prefix, p *gpb.Path) *gpb.Path {
	if p == nil {
		p = &gpb.Path{}
	}
	if prefix == nil || len(prefix.Elem) == 0 {
		return p
	}
	elems := make([]*gpb.PathElem, 0, len(prefix.Elem)+len(p.Elem))
	elems = append(append(elems, prefix.Elem...), p.Elem...)
	return &gpb.Path{Origin: prefix.Origin, Elem: elems}
}

func pathString(p *gpb.Path) string {
	s, err := ygot.PathToString(p)
	if err != nil {
		return fmt.Sprint(p.GetElem())
	}
	return s
}

// checkPath rejects paths with an origin other than none or openconfig, and paths whose
// elements the schema does not know.
func checkPath(rs *yang.Entry, p *gpb.Path) error {
	switch p.Origin {
	case "", "openconfig":
	default:
		return status.Errorf(codes.InvalidArgument, "unsupported origin %q", p.Origin)
	}
	//lint:ignore SA1019 reading the deprecated field is how a target refuses clients that still send it
	if len(p.Element) > 0 {
		return status.Error(codes.InvalidArgument, "deprecated path element field is not supported")
	}
	_, err := entryAt(rs, p)
	return err
}

// entryAt walks the schema along p, refusing config false nodes.
func entryAt(rs *yang.Entry, p *gpb.Path) (*yang.Entry, error) {
	e := rs
	for i, el := range p.Elem {
		c := e.Dir[localName(el.Name)]
		if c == nil {
			return nil, status.Errorf(codes.InvalidArgument, "unknown element %q in %s", el.Name, pathString(p))
		}
		if c.IsList() {
			for k := range el.Key {
				if _, ok := c.Dir[k]; !ok || !isKey(c, k) {
					return nil, status.Errorf(codes.InvalidArgument, "%q is not a key of list %s", k, c.Name)
				}
			}
		} else if len(el.Key) > 0 {
			return nil, status.Errorf(codes.InvalidArgument, "element %d (%s) of %s is not a list but has keys", i, el.Name, pathString(p))
		}
		if c.ReadOnly() {
			return nil, status.Errorf(codes.InvalidArgument, "%s is config false (state) and cannot be set", pathString(p))
		}
		e = c
	}
	return e, nil
}

func isKey(list *yang.Entry, k string) bool {
	for _, f := range strings.Fields(list.Key) {
		if f == k {
			return true
		}
	}
	return false
}

// checkWritable walks a JSON value under schema entry e and refuses config false nodes.
// Unknown names are left to ytypes.Unmarshal, which rejects them.
func checkWritable(e *yang.Entry, v any, at string) error {
	switch x := v.(type) {
	case map[string]any:
		for k, cv := range x {
			c := e.Dir[localName(k)]
			if c == nil {
				continue
			}
			if c.ReadOnly() {
				return status.Errorf(codes.InvalidArgument, "update %s: %s is config false (state) and cannot be set", at, k)
			}
			if err := checkWritable(c, cv, at); err != nil {
				return err
			}
		}
	case []any:
		for _, item := range x {
			if err := checkWritable(e, item, at); err != nil {
				return err
			}
		}
	}
	return nil
}

// localName drops an RFC 7951 module qualifier ("module:name").
func localName(s string) string {
	if i := strings.IndexByte(s, ':'); i >= 0 {
		return s[i+1:]
	}
	return s
}
