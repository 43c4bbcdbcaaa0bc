package gnmi

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/ygot/ygot"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/drivers/gnmi/gnmitarget"
	"github.com/returnpath/returnpath/drivers/route"
)

// Test credentials: not secret, but the suite checks that errors never reveal them.
const (
	testUser     = "rpadmin"
	testPassword = "pw-7f3c9e1a"
	testVRF      = "blue"
	testServer   = "gnmi-target.test"
)

var (
	testPool  = netip.MustParsePrefix("172.20.0.0/16")
	testPool6 = netip.MustParsePrefix("2001:db8:a00::/48")
)

// testPKI is a throwaway CA with a server and a client certificate, as PEM files.
type testPKI struct {
	dir                   string
	caFile, otherCAFile   string
	clientCert, clientKey string
	serverTLS             *tls.Config
	caPool                *x509.CertPool
}

func newPKI(t testing.TB) *testPKI {
	t.Helper()
	dir := t.TempDir()
	caCert, caKey, caPEM := newCA(t, "returnpath test CA")
	_, _, otherPEM := newCA(t, "some other CA")
	p := &testPKI{dir: dir, caFile: filepath.Join(dir, "ca.pem"), otherCAFile: filepath.Join(dir, "other-ca.pem")}
	writeFile(t, p.caFile, caPEM)
	writeFile(t, p.otherCAFile, otherPEM)

	srvCert := issue(t, caCert, caKey, &x509.Certificate{
		Subject:     pkix.Name{CommonName: testServer},
		DNSNames:    []string{testServer},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	cliCert := issue(t, caCert, caKey, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "returnpath"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	p.clientCert, p.clientKey = filepath.Join(dir, "client.pem"), filepath.Join(dir, "client-key.pem")
	writeFile(t, p.clientCert, cliCert.certPEM)
	writeFile(t, p.clientKey, cliCert.keyPEM)

	pair, err := tls.X509KeyPair(srvCert.certPEM, srvCert.keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	p.caPool = x509.NewCertPool()
	p.caPool.AddCert(caCert)
	p.serverTLS = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	return p
}

// mTLS returns a server TLS config that requires a client certificate from the test CA.
// It stops at TLS 1.2, where the server refuses a missing certificate inside the handshake;
// with TLS 1.3 the refusal arrives after the client's handshake is done, and the client may
// see only a broken connection.
func (p *testPKI) mTLS() *tls.Config {
	c := p.serverTLS.Clone()
	c.ClientAuth = tls.RequireAndVerifyClientCert
	c.ClientCAs = p.caPool
	c.MaxVersion = tls.VersionTLS12
	return c
}

type issued struct{ certPEM, keyPEM []byte }

func newCA(t testing.TB, name string) (*x509.Certificate, *ecdsa.PrivateKey, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func issue(t testing.TB, ca *x509.Certificate, caKey *ecdsa.PrivateKey, tmpl *x509.Certificate) issued {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = big.NewInt(time.Now().UnixNano())
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return issued{
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}),
	}
}

func writeFile(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// device is a running test target with the driver config that reaches it.
type device struct {
	target   *gnmitarget.Target
	cfg      drivers.Config
	platform route.Platform
	pki      *testPKI
}

// startDevice starts a target for platform, over TLS when pki is not nil, seeded with the
// default network-instance and testVRF, and returns a driver config for it.
func startDevice(t testing.TB, platform route.Platform, pki *testPKI, opts ...gnmitarget.Option) *device {
	t.Helper()
	var model *gnmitarget.Model
	var err error
	switch platform {
	case route.PlatformOpenConfig:
		model, err = gnmitarget.OpenConfig()
	case route.PlatformNokiaSRL:
		model, err = gnmitarget.SRLinux()
	}
	if err != nil {
		t.Fatal(err)
	}
	base := []gnmitarget.Option{gnmitarget.WithCredentials(testUser, testPassword)}
	if pki != nil {
		base = append(base, gnmitarget.WithTLS(pki.serverTLS))
	}
	opts = append(base, opts...) // the caller's options win
	tg, err := gnmitarget.Start(model, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tg.Close() })
	d := &device{target: tg, platform: platform, pki: pki}
	if err := tg.Apply(d.seed()); err != nil {
		t.Fatalf("seed target: %v", err)
	}
	d.cfg = drivers.Config{
		Name:           "gnmi-" + string(platform),
		Platform:       platform,
		Address:        netip.MustParseAddrPort(tg.Addr().String()),
		Managed:        []netip.Prefix{testPool},
		Username:       testUser,
		Password:       testPassword,
		ConnectTimeout: 5 * time.Second,
		OpTimeout:      30 * time.Second,
	}
	if pki != nil {
		d.cfg.GNMI.CAFile = pki.caFile
	} else {
		d.cfg.GNMI.Insecure = true
	}
	return d
}

func mustPath(t testing.TB, s string) *gpb.Path {
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

func upd(p *gpb.Path, v string) *gpb.Update { return &gpb.Update{Path: p, Val: jv(v)} }

// seed creates the network-instances a device has out of the box, plus testVRF.
func (d *device) seed() *gpb.SetRequest {
	p := func(s string) *gpb.Path { q, _ := ygot.StringToStructuredPath(s); return q }
	if d.platform == route.PlatformNokiaSRL {
		return &gpb.SetRequest{Update: []*gpb.Update{
			upd(p("/network-instance[name=default]"), `{"name":"default","type":"default"}`),
			upd(p("/network-instance[name="+testVRF+"]"), `{"name":"`+testVRF+`","type":"ip-vrf"}`),
		}}
	}
	return &gpb.SetRequest{Update: []*gpb.Update{
		upd(p("/network-instances/network-instance[name=DEFAULT]"),
			`{"name":"DEFAULT","config":{"name":"DEFAULT","type":"openconfig-network-instance-types:DEFAULT_INSTANCE"}}`),
		upd(p("/network-instances/network-instance[name="+testVRF+"]"),
			`{"name":"`+testVRF+`","config":{"name":"`+testVRF+`","type":"openconfig-network-instance-types:L3VRF"}}`),
	}}
}

func (d *device) ni(vrf string) string {
	if vrf != route.DefaultVRF {
		return vrf
	}
	if d.platform == route.PlatformNokiaSRL {
		return "default"
	}
	return "DEFAULT"
}

// reject returns a route on prefix p that the device refuses, and a substring of the
// device's answer. On OpenConfig the route names a network-instance that does not exist, which
// the schema refuses (its name leafref has no config/name). The SR Linux subset lets a route
// create its network-instance, so there the target refuses p the way SR Linux fails a commit
// it cannot apply.
func (d *device) reject(p netip.Prefix) (route.Route, string) {
	r := route.Route{VRF: "nosuch", Prefix: p, NextHop: netip.MustParseAddr("10.10.10.101")}
	if p.Addr().Is6() {
		r.NextHop = netip.MustParseAddr("2001:db8:10::101")
	}
	if d.platform == route.PlatformOpenConfig {
		return r, "InvalidArgument: validation"
	}
	d.target.SetHook(func(_ context.Context, req *gpb.SetRequest) error {
		for _, u := range req.Update {
			if e := u.GetPath().GetElem(); len(e) == 3 && e[2].GetKey()["prefix"] == p.String() {
				return status.Error(codes.FailedPrecondition, "network-instance nosuch does not exist")
			}
		}
		return nil
	})
	return r, "FailedPrecondition: network-instance nosuch does not exist"
}

// foreignGroup names the group an operator would have made for a planted SR Linux route.
func foreignGroup(r route.Route) string {
	return "ops-" + strings.NewReplacer("/", "_", ":", "_").Replace(r.Prefix.String())
}

// plant adds r to the device directly, written by hand rather than by the driver, as an
// operator's route would be.
func (d *device) plant(_ context.Context, r route.Route) error {
	ni := d.ni(r.VRF)
	var req *gpb.SetRequest
	if d.platform == route.PlatformNokiaSRL {
		g := foreignGroup(r)
		gp, err := ygot.StringToStructuredPath(fmt.Sprintf("/network-instance[name=%s]/next-hop-groups/group[name=%s]", ni, g))
		if err != nil {
			return err
		}
		rp, err := ygot.StringToStructuredPath(fmt.Sprintf("/network-instance[name=%s]/static-routes/route[prefix=%s]", ni, r.Prefix))
		if err != nil {
			return err
		}
		req = &gpb.SetRequest{Update: []*gpb.Update{
			upd(gp, fmt.Sprintf(`{"name":%q,"nexthop":[{"index":7,"ip-address":%q}]}`, g, r.NextHop)),
			upd(rp, fmt.Sprintf(`{"prefix":%q,"next-hop-group":%q}`, r.Prefix, g)),
		}}
	} else {
		pp := fmt.Sprintf("/network-instances/network-instance[name=%s]/protocols/protocol[identifier=STATIC][name=DEFAULT]", ni)
		proto, err := ygot.StringToStructuredPath(pp)
		if err != nil {
			return err
		}
		sp, err := ygot.StringToStructuredPath(pp + fmt.Sprintf("/static-routes/static[prefix=%s]", r.Prefix))
		if err != nil {
			return err
		}
		req = &gpb.SetRequest{Update: []*gpb.Update{
			upd(proto, `{"identifier":"openconfig-policy-types:STATIC","name":"DEFAULT","config":{"identifier":"openconfig-policy-types:STATIC","name":"DEFAULT"}}`),
			upd(sp, fmt.Sprintf(`{"prefix":%q,"config":{"prefix":%q,"description":"ops"},"next-hops":{"next-hop":[{"index":"ops","config":{"index":"ops","next-hop":%q}}]}}`, r.Prefix, r.Prefix, r.NextHop)),
		}}
	}
	return d.target.Apply(req)
}

// plantNextHops adds p via nhs to the default network-instance directly, under next-hop
// indexes a device chooses for itself and returnpath never does: on OpenConfig
// "AUTO_<n>_<address>" and the bare address, as vendors name them; on SR Linux an operator's
// group with indexes from 7 on.
func (d *device) plantNextHops(_ context.Context, p netip.Prefix, nhs []netip.Addr) error {
	ni := d.ni(route.DefaultVRF)
	var req *gpb.SetRequest
	if d.platform == route.PlatformNokiaSRL {
		g := foreignGroup(route.Route{Prefix: p})
		var hops []string
		for i, nh := range nhs {
			hops = append(hops, fmt.Sprintf(`{"index":%d,"ip-address":%q}`, 7+i, nh))
		}
		req = &gpb.SetRequest{Update: []*gpb.Update{
			upd(mustParse(fmt.Sprintf("/network-instance[name=%s]/next-hop-groups/group[name=%s]", ni, g)),
				fmt.Sprintf(`{"name":%q,"nexthop":[%s]}`, g, strings.Join(hops, ","))),
			upd(mustParse(fmt.Sprintf("/network-instance[name=%s]/static-routes/route[prefix=%s]", ni, p)),
				fmt.Sprintf(`{"prefix":%q,"next-hop-group":%q}`, p, g)),
		}}
		return d.target.Apply(req)
	}
	pp := fmt.Sprintf("/network-instances/network-instance[name=%s]/protocols/protocol[identifier=STATIC][name=DEFAULT]", ni)
	var hops []string
	for i, nh := range nhs {
		idx := nh.String()
		if i%2 == 0 {
			idx = fmt.Sprintf("AUTO_%d_%s", i+1, nh)
		}
		hops = append(hops, fmt.Sprintf(`{"index":%q,"config":{"index":%q,"next-hop":%q}}`, idx, idx, nh))
	}
	req = &gpb.SetRequest{Update: []*gpb.Update{
		upd(mustParse(pp), `{"identifier":"openconfig-policy-types:STATIC","name":"DEFAULT","config":{"identifier":"openconfig-policy-types:STATIC","name":"DEFAULT"}}`),
		upd(mustParse(pp+fmt.Sprintf("/static-routes/static[prefix=%s]", p)),
			fmt.Sprintf(`{"prefix":%q,"config":{"prefix":%q},"next-hops":{"next-hop":[%s]}}`, p, p, strings.Join(hops, ","))),
	}}
	return d.target.Apply(req)
}

// mustParse parses a path the test built from known-good parts.
func mustParse(s string) *gpb.Path {
	p, err := ygot.StringToStructuredPath(s)
	if err != nil {
		panic(fmt.Sprintf("path %q: %v", s, err))
	}
	return p
}

// remove deletes r from the device directly.
func (d *device) remove(_ context.Context, r route.Route) error {
	ni := d.ni(r.VRF)
	var paths []string
	if d.platform == route.PlatformNokiaSRL {
		paths = []string{
			fmt.Sprintf("/network-instance[name=%s]/static-routes/route[prefix=%s]", ni, r.Prefix),
			fmt.Sprintf("/network-instance[name=%s]/next-hop-groups/group[name=%s]", ni, foreignGroup(r)),
		}
	} else {
		paths = []string{fmt.Sprintf("/network-instances/network-instance[name=%s]/protocols/protocol[identifier=STATIC][name=DEFAULT]/static-routes/static[prefix=%s]", ni, r.Prefix)}
	}
	req := &gpb.SetRequest{}
	for _, s := range paths {
		p, err := ygot.StringToStructuredPath(s)
		if err != nil {
			return err
		}
		req.Delete = append(req.Delete, p)
	}
	return d.target.Apply(req)
}

// leaves returns every leaf of the target's configuration as path string -> value, read
// with ygot's own renderer (independent of the driver's decoder).
func (d *device) leaves() (map[string]string, error) {
	ns, err := ygot.TogNMINotifications(d.target.Config(), 0, ygot.GNMINotificationsConfig{UsePathElem: true})
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, n := range ns {
		for _, u := range n.Update {
			p := &gpb.Path{Elem: append(append([]*gpb.PathElem{}, n.GetPrefix().GetElem()...), u.Path.Elem...)}
			s, err := ygot.PathToString(p)
			if err != nil {
				return nil, err
			}
			out[s] = strings.Trim(fmt.Sprint(leafValue(u.Val)), `"`)
		}
	}
	return out, nil
}

func leafValue(v *gpb.TypedValue) any {
	switch x := v.GetValue().(type) {
	case *gpb.TypedValue_StringVal:
		return x.StringVal
	case *gpb.TypedValue_UintVal:
		return x.UintVal
	case *gpb.TypedValue_IntVal:
		return x.IntVal
	case *gpb.TypedValue_BoolVal:
		return x.BoolVal
	}
	return v.String()
}

// list returns every static route on the device, managed or not, read from the target's
// own tree.
func (d *device) list(context.Context) ([]route.Route, error) {
	lv, err := d.leaves()
	if err != nil {
		return nil, err
	}
	var out []route.Route
	vrf := func(ni string) string {
		if ni == d.ni(route.DefaultVRF) {
			return route.DefaultVRF
		}
		return ni
	}
	for path, val := range lv {
		p, err := ygot.StringToStructuredPath(path)
		if err != nil {
			return nil, err
		}
		el := p.Elem
		switch d.platform {
		case route.PlatformOpenConfig:
			// /network-instances/network-instance[name]/protocols/protocol/static-routes/static[prefix]/next-hops/next-hop[index]/config/next-hop
			if len(el) != 10 || el[4].Name != "static-routes" || el[8].Name != "config" || el[9].Name != "next-hop" {
				continue
			}
			out = append(out, route.Route{VRF: vrf(el[1].Key["name"]), Prefix: netip.MustParsePrefix(el[5].Key["prefix"]), NextHop: netip.MustParseAddr(val)})
		case route.PlatformNokiaSRL:
			// /network-instance[name]/static-routes/route[prefix]/next-hop-group
			if len(el) != 4 || el[1].Name != "static-routes" || el[3].Name != "next-hop-group" {
				continue
			}
			ni := el[0].Key["name"]
			for gp, ip := range lv {
				if strings.HasPrefix(gp, fmt.Sprintf("/network-instance[name=%s]/next-hop-groups/group[name=%s]/nexthop[", ni, val)) && strings.HasSuffix(gp, "]/ip-address") {
					out = append(out, route.Route{VRF: vrf(ni), Prefix: netip.MustParsePrefix(el[2].Key["prefix"]), NextHop: netip.MustParseAddr(ip)})
				}
			}
		}
	}
	return out, nil
}

// srlGroups returns the names of the next-hop-groups per network-instance on an SR Linux
// target.
func (d *device) srlGroups(t testing.TB) map[string][]string {
	t.Helper()
	lv, err := d.leaves()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for path := range lv {
		p, err := ygot.StringToStructuredPath(path)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Elem) == 4 && p.Elem[1].Name == "next-hop-groups" && p.Elem[3].Name == "name" {
			ni := p.Elem[0].Key["name"]
			out[ni] = append(out[ni], p.Elem[2].Key["name"])
		}
	}
	return out
}
