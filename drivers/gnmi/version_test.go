package gnmi

import (
	"testing"

	gpb "github.com/openconfig/gnmi/proto/gnmi"

	"github.com/returnpath/returnpath/internal/fabric"
)

// TestVersionFromCapabilities reads the in-process target's Capabilities through the driver.
func TestVersionFromCapabilities(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		platform fabric.Platform
		want     string
	}{
		{platform: fabric.PlatformOpenConfig, want: "gNMI 0.10.0, 3 models: openconfig-local-routing, openconfig-network-instance, openconfig-policy-types"},
		{platform: fabric.PlatformNokiaSRL, want: "gNMI 0.10.0, 3 models: srl_nokia-network-instance, srl_nokia-next-hop-groups, srl_nokia-static-routes"},
	} {
		t.Run(string(tc.platform), func(t *testing.T) {
			t.Parallel()
			dev := startDevice(t, tc.platform, nil)
			d := openDriver(t, dev.cfg)
			got, err := d.Version(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("Version = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestCapabilitiesLine(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		resp *gpb.CapabilityResponse
		want string
	}{
		{name: "no models, no version", resp: &gpb.CapabilityResponse{}, want: "gNMI (version not given), 0 models"},
		{name: "one model with version", resp: &gpb.CapabilityResponse{GNMIVersion: "0.7.0",
			SupportedModels: []*gpb.ModelData{{Name: "openconfig-network-instance", Version: "4.4.1"}}},
			want: "gNMI 0.7.0, 1 model: openconfig-network-instance 4.4.1"},
		{name: "more than three", resp: &gpb.CapabilityResponse{GNMIVersion: "0.8.0",
			SupportedModels: []*gpb.ModelData{{Name: "d"}, {Name: "c"}, {Name: "b"}, {Name: "a"}}},
			want: "gNMI 0.8.0, 4 models: a, b, c, ..."},
	} {
		if got := capabilitiesLine(tc.resp); got != tc.want {
			t.Errorf("%s: capabilitiesLine = %q, want %q", tc.name, got, tc.want)
		}
	}
}
