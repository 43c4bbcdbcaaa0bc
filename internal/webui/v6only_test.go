package webui_test

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/returnpath/returnpath/internal/fabric"
	"github.com/returnpath/returnpath/internal/webui"
)

// TestV6OnlyHostInTheDesk: a host of the IPv6-only segment shows its IPv6 address and subnet
// on its change and on the fabric page, and nothing of an IPv4 family it does not have.
func TestV6OnlyHostInTheDesk(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, webui.Config{})
	boot := fabric.Actor{Name: "boot", Role: fabric.RoleBootstrap, Owner: "alice"}
	h, _, err := e.hosts.Register(ctx, boot, fabric.Registration{Name: "six-1", Address6: netip.MustParseAddr("2001:db8:60::7")})
	if err != nil {
		t.Fatal(err)
	}
	id, _, _, ok := e.changes.HostChange(ctx, h.ID)
	if !ok {
		t.Fatal("no change filed")
	}
	b := e.browser(t)
	e.login(t, b, "bob")
	_, page := b.get(t, "/ui/changes/"+itoa(id))
	if !strings.Contains(page, "six-1 (2001:db8:60::7, subnet 2001:db8:b00::/64)") || strings.Contains(page, "invalid") {
		t.Errorf("the change page does not show six-1 by its IPv6 family alone:\n%s", page)
	}
	_, page = b.get(t, "/ui/fabric?q=2001:db8:b00")
	if !strings.Contains(page, "six-1") || !strings.Contains(page, "<code>2001:db8:b00::/64</code>") || strings.Contains(page, "invalid") {
		t.Errorf("the fabric page does not list six-1 with its IPv6 subnet alone:\n%s", page)
	}
	if _, page = b.get(t, "/ui/fabric?q=invalid"); strings.Contains(page, "six-1") {
		t.Errorf("a search for \"invalid\" finds six-1: its missing IPv4 family was matched as text")
	}
}
