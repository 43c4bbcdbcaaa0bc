package gnmitarget

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/ygot/ygot"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"
)

func path(t *testing.T, s string) *gpb.Path {
	t.Helper()
	p, err := ygot.StringToStructuredPath(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func jv(s string) *gpb.TypedValue {
	return &gpb.TypedValue{Value: &gpb.TypedValue_JsonIetfVal{JsonIetfVal: []byte(s)}}
}

const (
	ocNI       = "/network-instances/network-instance[name=DEFAULT]"
	ocProto    = ocNI + "/protocols/protocol[identifier=STATIC][name=DEFAULT]"
	ocStat     = ocProto + "/static-routes/static[prefix=10.210.10.0/24]"
	ocGood     = `{"prefix":"10.210.10.0/24","config":{"prefix":"10.210.10.0/24"},"next-hops":{"next-hop":[{"index":"0","config":{"index":"0","next-hop":"10.10.10.101"}}]}}`
	ocProtoVal = `{"identifier":"openconfig-policy-types:STATIC","name":"DEFAULT","config":{"identifier":"openconfig-policy-types:STATIC","name":"DEFAULT"}}`

	srlRoute = "/network-instance[name=default]/static-routes/route[prefix=10.210.10.0/24]"
	srlGroup = "/network-instance[name=default]/next-hop-groups/group[name=g1]"
)

// start returns a target for model seeded with seed, and a client connected to it.
func start(t *testing.T, model func() (*Model, error), seed *gpb.SetRequest, opts ...Option) (*Target, gpb.GNMIClient) {
	t.Helper()
	m, err := model()
	if err != nil {
		t.Fatal(err)
	}
	tg, err := Start(m, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tg.Close() })
	if seed != nil {
		if err := tg.Apply(seed); err != nil {
			t.Fatalf("seed: %v", err)
		}
	}
	conn, err := grpc.NewClient(tg.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return tg, gpb.NewGNMIClient(conn)
}

func ocSeed(t *testing.T) *gpb.SetRequest {
	return &gpb.SetRequest{Update: []*gpb.Update{
		{Path: path(t, ocNI), Val: jv(`{"name":"DEFAULT","config":{"name":"DEFAULT","type":"openconfig-network-instance-types:DEFAULT_INSTANCE"}}`)},
		{Path: path(t, ocProto), Val: jv(ocProtoVal)},
	}}
}

func srlSeed(t *testing.T) *gpb.SetRequest {
	return &gpb.SetRequest{Update: []*gpb.Update{
		{Path: path(t, "/network-instance[name=default]"), Val: jv(`{"name":"default","type":"default"}`)},
	}}
}

type setCase struct {
	name string
	req  func(t *testing.T) *gpb.SetRequest
	want string // substring of the InvalidArgument message; "" means accepted
}

func upd(t *testing.T, p, v string) func(*testing.T) *gpb.SetRequest {
	return func(t *testing.T) *gpb.SetRequest {
		return &gpb.SetRequest{Update: []*gpb.Update{{Path: path(t, p), Val: jv(v)}}}
	}
}

// runSetCases applies each case to a fresh target and checks that refused requests leave
// the configuration exactly as it was.
func runSetCases(t *testing.T, model func() (*Model, error), seed func(*testing.T) *gpb.SetRequest, cases []setCase) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			tg, _ := start(t, model, seed(t))
			before, err := tg.JSON()
			if err != nil {
				t.Fatal(err)
			}
			err = tg.Apply(c.req(t))
			if c.want == "" {
				if err != nil {
					t.Fatalf("Apply = %v, want accepted", err)
				}
				return
			}
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Apply = %v, want InvalidArgument containing %q", err, c.want)
			}
			after, err := tg.JSON()
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(after, before); diff != "" {
				t.Errorf("a refused SetRequest changed the configuration (-after +before):\n%s", diff)
			}
		})
	}
}

func TestOpenConfigValidation(t *testing.T) {
	t.Parallel()
	runSetCases(t, OpenConfig, ocSeed, []setCase{
		{"valid route", upd(t, ocStat, ocGood), ""},
		{"bad next hop address", upd(t, ocStat, strings.Replace(ocGood, "10.10.10.101", "10.10.300.101", 1)), "does not match regular expression"},
		{"bad prefix length", upd(t, ocProto+"/static-routes/static[prefix=10.210.10.0/33]", `{"prefix":"10.210.10.0/33","config":{"prefix":"10.210.10.0/33"}}`), "does not match regular expression"},
		{"key mismatch", upd(t, ocStat, `{"prefix":"10.210.11.0/24","config":{"prefix":"10.210.11.0/24"}}`), "!= map key"},
		{"config key differs", upd(t, ocStat, `{"prefix":"10.210.10.0/24","config":{"prefix":"10.210.11.0/24"}}`), "not equal to any target nodes"},
		{"missing config key", upd(t, ocStat, `{"prefix":"10.210.10.0/24"}`), "is empty set"},
		{"missing next hop config", upd(t, ocStat, `{"prefix":"10.210.10.0/24","config":{"prefix":"10.210.10.0/24"},"next-hops":{"next-hop":[{"index":"0"}]}}`), "is empty set"},
		{"unknown leaf", upd(t, ocStat, `{"prefix":"10.210.10.0/24","config":{"prefix":"10.210.10.0/24","colour":"red"}}`), "unexpected field colour"},
		{"unknown path", upd(t, ocProto+"/static-routes/route[prefix=10.210.10.0/24]", `{}`), "unknown element"},
		{"state is read-only", upd(t, ocStat, `{"prefix":"10.210.10.0/24","config":{"prefix":"10.210.10.0/24"},"state":{"prefix":"10.210.10.0/24"}}`), "config false"},
		{"protocol not created", upd(t, ocNI+"/protocols/protocol[identifier=STATIC][name=OTHER]/static-routes/static[prefix=10.210.10.0/24]", ocGood), "is empty set"},
		{"one bad update refuses all", func(t *testing.T) *gpb.SetRequest {
			return &gpb.SetRequest{Update: []*gpb.Update{
				{Path: path(t, ocStat), Val: jv(ocGood)},
				{Path: path(t, ocProto+"/static-routes/static[prefix=10.210.12.0/24]"), Val: jv(`{"prefix":"10.210.12.0/24"}`)},
			}}
		}, "is empty set"},
		{"delete of a missing route", func(t *testing.T) *gpb.SetRequest {
			return &gpb.SetRequest{Delete: []*gpb.Path{path(t, ocProto+"/static-routes/static[prefix=10.210.99.0/24]")}}
		}, ""},
		{"non-key used as key", func(t *testing.T) *gpb.SetRequest {
			return &gpb.SetRequest{Delete: []*gpb.Path{path(t, ocProto+"/static-routes/static[description=x]")}}
		}, "is not a key"},
	})
}

func TestSRLinuxValidation(t *testing.T) {
	t.Parallel()
	group := `{"name":"g1","nexthop":[{"index":0,"ip-address":"10.10.10.101"}]}`
	both := func(t *testing.T) *gpb.SetRequest {
		return &gpb.SetRequest{Update: []*gpb.Update{
			{Path: path(t, srlGroup), Val: jv(group)},
			{Path: path(t, srlRoute), Val: jv(`{"prefix":"10.210.10.0/24","next-hop-group":"g1"}`)},
		}}
	}
	runSetCases(t, SRLinux, srlSeed, []setCase{
		{"route and group together", both, ""},
		{"route without its group", upd(t, srlRoute, `{"prefix":"10.210.10.0/24","next-hop-group":"g1"}`), "next-hop-groups/group/name from field NextHopGroup value g1"},
		{"bad ip-address", upd(t, srlGroup, `{"name":"g1","nexthop":[{"index":0,"ip-address":"10.10.10.1011"}]}`), "does not match"},
		{"index is a number", upd(t, srlGroup, `{"name":"g1","nexthop":[{"index":"zero","ip-address":"10.10.10.101"}]}`), "expect float64"},
		{"unknown leaf", upd(t, srlRoute, `{"prefix":"10.210.10.0/24","next-hop":"10.10.10.101"}`), "unexpected field"},
		{"bad admin-state", upd(t, srlGroup, `{"name":"g1","admin-state":"up"}`), "admin-state"},
	})
	// A group a route still uses cannot be deleted.
	t.Run("group in use", func(t *testing.T) {
		t.Parallel()
		tg, _ := start(t, SRLinux, srlSeed(t))
		if err := tg.Apply(both(t)); err != nil {
			t.Fatal(err)
		}
		err := tg.Apply(&gpb.SetRequest{Delete: []*gpb.Path{path(t, srlGroup)}})
		if status.Code(err) != codes.InvalidArgument {
			t.Fatalf("delete of a used group = %v, want InvalidArgument", err)
		}
		if err := tg.Apply(&gpb.SetRequest{Delete: []*gpb.Path{path(t, srlRoute), path(t, srlGroup)}}); err != nil {
			t.Fatalf("delete of route and group together = %v", err)
		}
	})
}

func TestGet(t *testing.T) {
	t.Parallel()
	tg, c := start(t, OpenConfig, ocSeed(t), WithCredentials("u", "p"))
	if err := tg.Apply(&gpb.SetRequest{Update: []*gpb.Update{{Path: path(t, ocStat), Val: jv(ocGood)}}}); err != nil {
		t.Fatal(err)
	}
	ctx := metadata.AppendToOutgoingContext(t.Context(), "username", "u", "password", "p")
	get := func(ctx context.Context, p string, enc gpb.Encoding) (*gpb.GetResponse, error) {
		return c.Get(ctx, &gpb.GetRequest{Path: []*gpb.Path{path(t, p)}, Type: gpb.GetRequest_CONFIG, Encoding: enc})
	}
	if _, err := get(t.Context(), ocStat, gpb.Encoding_JSON_IETF); status.Code(err) != codes.Unauthenticated {
		t.Errorf("Get without credentials = %v, want Unauthenticated", err)
	}
	resp, err := get(ctx, "/network-instances/network-instance[name=*]/protocols/protocol[identifier=STATIC][name=DEFAULT]/static-routes/static[prefix=10.210.10.0/24]/next-hops/next-hop[index=0]/config/next-hop", gpb.Encoding_JSON_IETF)
	if err != nil {
		t.Fatal(err)
	}
	// Leaves come back as scalar TypedValues (ygot's encoding); subtrees as JSON_IETF.
	want := []*gpb.Update{{Path: path(t, ocStat+"/next-hops/next-hop[index=0]/config/next-hop"),
		Val: &gpb.TypedValue{Value: &gpb.TypedValue_StringVal{StringVal: "10.10.10.101"}}}}
	if diff := cmp.Diff(resp.Notification[0].Update, want, protocmp.Transform(), protocmp.IgnoreFields(&gpb.Path{}, "origin")); diff != "" {
		t.Errorf("Get leaf (-got +want):\n%s", diff)
	}
	if _, err := get(ctx, ocProto+"/static-routes/static[prefix=10.210.99.0/24]", gpb.Encoding_JSON_IETF); status.Code(err) != codes.NotFound {
		t.Errorf("Get of a missing route = %v, want NotFound", err)
	}
	if _, err := get(ctx, ocStat, gpb.Encoding_PROTO); status.Code(err) != codes.Unimplemented {
		t.Errorf("Get in PROTO = %v, want Unimplemented", err)
	}
	caps, err := c.Capabilities(ctx, &gpb.CapabilityRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(caps.SupportedEncodings, []gpb.Encoding{gpb.Encoding_JSON_IETF}); diff != "" {
		t.Errorf("encodings (-got +want):\n%s", diff)
	}
	if sets, gets := tg.Counts(); sets != 0 || gets != 3 {
		t.Errorf("Counts = %d sets, %d gets; want 0 and 3 (Apply is not an RPC; refused credentials are not counted)", sets, gets)
	}
}
