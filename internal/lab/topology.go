package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
)

type devicePlan struct {
	name, platform, user string
	mgmt                 netip.Prefix
}

func devicePlans() []devicePlan {
	return []devicePlan{
		{name: "sw1", platform: "frr", user: userFRR, mgmt: netip.MustParsePrefix("198.18.0.11/24")},
		{name: "fw1", platform: "linux", user: userLinux, mgmt: netip.MustParsePrefix("198.18.0.12/24")},
	}
}

type hostPlan struct {
	name, ctr             string
	uplink, gateway, mgmt netip.Prefix
	uplink6, gateway6     netip.Prefix // the same link's IPv6 addresses
}

func hostPlans(second bool) []hostPlan {
	h := []hostPlan{{
		name: "host1", ctr: "ctr1",
		uplink:   netip.MustParsePrefix("10.10.10.101/24"),
		gateway:  netip.MustParsePrefix("10.10.10.1/24"),
		mgmt:     netip.MustParsePrefix("198.18.0.21/24"),
		uplink6:  netip.MustParsePrefix("fd00:10:10:10::101/64"),
		gateway6: netip.MustParsePrefix("fd00:10:10:10::1/64"),
	}}
	if second {
		h = append(h, hostPlan{
			name: "host2", ctr: "ctr2",
			uplink:   netip.MustParsePrefix("10.10.30.101/24"),
			gateway:  netip.MustParsePrefix("10.10.30.1/24"),
			mgmt:     netip.MustParsePrefix("198.18.0.22/24"),
			uplink6:  netip.MustParsePrefix("fd00:10:10:30::101/64"),
			gateway6: netip.MustParsePrefix("fd00:10:10:30::1/64"),
		})
	}
	return h
}

// veth is one veth pair: dev in role ns (created there), peer in role peerNS.
type veth struct {
	ns, dev    string
	addr       netip.Prefix // zero: none
	addr6      netip.Prefix // zero: none
	master     string       // bridge in ns the dev joins
	peerNS     string
	peerDev    string
	peerAddr   netip.Prefix
	peerAddr6  netip.Prefix
	peerMaster string
}

var (
	fwInside  = netip.MustParsePrefix("10.10.20.2/24")
	swToFw    = netip.MustParsePrefix("10.10.20.1/24")
	fwOutside = netip.MustParsePrefix("203.0.113.1/24")
	inetSide  = netip.MustParsePrefix("203.0.113.2/24")

	// IPv6 is routed end to end, without NAT66: the "internet" host routes the lab's ULA
	// space back to the firewall, so a container's IPv6 reply needs exactly the return
	// routes returnpath adds on sw1 and fw1 (see docs/lab.md).
	fwInside6  = netip.MustParsePrefix("fd00:10:10:20::2/64")
	swToFw6    = netip.MustParsePrefix("fd00:10:10:20::1/64")
	fwOutside6 = netip.MustParsePrefix("fd00:203:0:113::1/64")
	inetSide6  = netip.MustParsePrefix("fd00:203:0:113::2/64")
	labULA     = netip.MustParsePrefix("fd00::/8")
)

// topology returns every veth pair, bridge and per-namespace setting of the lab.
type topology struct {
	veths      []veth
	bridges    map[string][]string // role -> bridge names
	addrs      map[string][]string // role -> "prefix dev name" extra addresses
	routes     map[string][]string // role -> ip route arguments
	forwarding map[string]bool     // role -> ipv4 and ipv6 forwarding
}

func newTopology(second bool) topology {
	t := topology{
		bridges: map[string][]string{"mgmt": {"mgmt0"}},
		addrs: map[string][]string{"mgmt": {serviceAddr.String() + " dev mgmt0"}, "inet": {
			netip.PrefixFrom(internetAddr, 32).String() + " dev lo",
			netip.PrefixFrom(internetAddr6, 128).String() + " dev lo nodad",
		}},
		routes:     map[string][]string{},
		forwarding: map[string]bool{"sw1": true, "fw1": true},
	}
	for _, d := range devicePlans() {
		t.veths = append(t.veths, veth{ns: "mgmt", dev: d.name, master: "mgmt0", peerNS: d.name, peerDev: "mgmt", peerAddr: d.mgmt})
	}
	for _, h := range hostPlans(second) {
		t.veths = append(t.veths,
			veth{ns: "mgmt", dev: h.name, master: "mgmt0", peerNS: h.name, peerDev: "mgmt", peerAddr: h.mgmt},
			veth{ns: "sw1", dev: h.name, addr: h.gateway, addr6: h.gateway6, peerNS: h.name, peerDev: "uplink", peerAddr: h.uplink, peerAddr6: h.uplink6},
			veth{ns: h.name, dev: h.ctr, master: "docker0", peerNS: h.ctr, peerDev: "eth0"},
		)
		t.bridges[h.name] = []string{"docker0"}
		t.routes[h.name] = []string{"default via " + h.gateway.Addr().String(), "::/0 via " + h.gateway6.Addr().String()}
		t.forwarding[h.name] = true
		// The firewall knows the rack segments; the container subnets are what returnpath adds.
		t.routes["fw1"] = append(t.routes["fw1"], h.uplink.Masked().String()+" via "+swToFw.Addr().String(),
			h.uplink6.Masked().String()+" via "+swToFw6.Addr().String())
	}
	t.veths = append(t.veths,
		veth{ns: "sw1", dev: "fw1", addr: swToFw, addr6: swToFw6, peerNS: "fw1", peerDev: "inside", peerAddr: fwInside, peerAddr6: fwInside6},
		veth{ns: "fw1", dev: "outside", addr: fwOutside, addr6: fwOutside6, peerNS: "inet", peerDev: "fw1", peerAddr: inetSide, peerAddr6: inetSide6},
	)
	t.routes["fw1"] = append(t.routes["fw1"], "default via "+inetSide.Addr().String(), "::/0 via "+inetSide6.Addr().String())
	// The internet routes the lab's IPv6 space to the firewall, as a provider routes a
	// customer's prefix: no NAT66, so only fw1's and sw1's routes decide the way back.
	t.routes["inet"] = append(t.routes["inet"], labULA.String()+" via "+fwOutside6.Addr().String())
	// sw1's default route (via fw1) is FRR configuration, see frr.go; inet only knows its
	// connected 203.0.113.0/24, so replies to un-NATed sources die there.
	return t
}

// creation returns the ip batch that creates ns's bridges and the veths it owns.
func (t topology) creation(l *Lab, role string) []string {
	var b []string
	for _, br := range t.bridges[role] {
		b = append(b, "link add name "+br+" type bridge")
	}
	for _, v := range t.veths {
		if v.ns == role {
			b = append(b, fmt.Sprintf("link add name %s type veth peer name %s netns %s", v.dev, v.peerDev, l.Name+"-"+v.peerNS))
		}
	}
	return b
}

// configuration returns the ip batch that addresses ns's links, brings them up and adds its
// routes. It runs once every namespace's creation batch is done.
func (t topology) configuration(role string) []string {
	b := []string{"link set dev lo up"}
	for _, br := range t.bridges[role] {
		b = append(b, "link set dev "+br+" up")
	}
	end := func(dev string, addr, addr6 netip.Prefix, master string) {
		if master != "" {
			b = append(b, "link set dev "+dev+" master "+master)
		}
		if addr.IsValid() {
			b = append(b, "addr add "+addr.String()+" dev "+dev)
		}
		if addr6.IsValid() {
			// nodad: duplicate address detection would hold the address tentative for a
			// second or two after the lab is up; nothing else uses these links.
			b = append(b, "addr add "+addr6.String()+" dev "+dev+" nodad")
		}
		b = append(b, "link set dev "+dev+" up")
	}
	for _, v := range t.veths {
		if v.ns == role {
			end(v.dev, v.addr, v.addr6, v.master)
		}
		if v.peerNS == role {
			end(v.peerDev, v.peerAddr, v.peerAddr6, v.peerMaster)
		}
	}
	for _, a := range t.addrs[role] {
		b = append(b, "addr add "+a)
	}
	for _, r := range t.routes[role] {
		b = append(b, "route add "+r)
	}
	return b
}

// buildNetwork creates the namespaces, links, addresses, routes, sysctls and NAT.
func (l *Lab) buildNetwork(ctx context.Context, second bool) error {
	t := newTopology(second)
	rs := roles(second)
	for _, r := range rs {
		if err := l.addNamespace(ctx, l.Name+"-"+r); err != nil {
			return err
		}
	}
	if err := forEach(rs, func(r string) error {
		return ipBatch(ctx, l.Name+"-"+r, t.creation(l, r))
	}); err != nil {
		return err
	}
	return forEach(rs, func(r string) error {
		ns := l.Name + "-" + r
		if err := ipBatch(ctx, ns, t.configuration(r)); err != nil {
			return err
		}
		fwd := "0"
		if t.forwarding[r] {
			fwd = "1"
		}
		// rp_filter off everywhere: the recipe's failure mode is the missing return route,
		// not a reverse-path drop on the firewall.
		if _, err := run(ctx, nil, "ip", "netns", "exec", ns, "sysctl", "-q", "-w",
			"net.ipv4.ip_forward="+fwd, "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0",
			"net.ipv6.conf.all.forwarding="+fwd); err != nil {
			return err
		}
		if r == "fw1" {
			return l.setupNAT(ctx, ns)
		}
		return nil
	})
}

// setupNAT hides everything leaving the firewall's outside interface behind its address.
func (l *Lab) setupNAT(ctx context.Context, ns string) error {
	rules := fmt.Sprintf(`table ip returnpath_lab {
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "outside" snat to %s
	}
}
`, fwOutside.Addr())
	_, err := run(ctx, []byte(rules), "ip", "netns", "exec", ns, "nft", "-f", "-")
	return err
}

// forEach runs f for every item concurrently and joins the errors.
func forEach(items []string, f func(string) error) error {
	var wg sync.WaitGroup
	errs := make([]error, len(items))
	for i, it := range items {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f(it)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
