// Package ssh implements returnpath's drivers for devices reached over SSH:
//   - FRRouting's vtysh (platform frr, on scrapligo with an embedded platform definition) and
//     plain Linux routers and firewalls managed with iproute2 (platform linux);
//   - CLIs with a candidate configuration committed whole: Arista EOS configuration sessions
//     (arista_eos), Juniper Junos (juniper_junos), VyOS (vyos) and Palo Alto PAN-OS
//     (paloalto_panos), on scrapligo's own definitions;
//   - CLIs that apply each line as it is entered, where a refused line makes the driver undo
//     the batch's applied lines: Cisco NX-OS (cisco_nxos) and IOS XE (cisco_iosxe) on
//     scrapligo's definitions, Fortinet FortiOS (fortinet_fortios) and Cisco ASA (cisco_asa)
//     on definitions embedded here.
//
// All share one connection layer: golang.org/x/crypto/ssh with strict host key checking
// against the configured known_hosts file (accept-new only when set explicitly), password or
// key authentication, and a connect timeout. Rendering and parsing are pure functions with
// golden files in testdata/; no library type leaves the package. Every vendor platform is
// tested against an emulation in emulate/, built from the vendor's documentation.
package ssh

import (
	"context"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/drivers/route"
)

// factories maps every SSH platform to its driver.
func factories() map[route.Platform]drivers.Factory {
	return map[route.Platform]drivers.Factory{
		route.PlatformFRR:          FRRFactory(),
		route.PlatformLinux:        LinuxFactory(),
		route.PlatformAristaEOS:    EOSFactory(),
		route.PlatformJuniperJunos: JunosFactory(),
		route.PlatformVyOS:         VyOSFactory(),
		route.PlatformPANOS:        PANOSFactory(),
		route.PlatformCiscoNXOS:    NXOSFactory(),
		route.PlatformCiscoIOSXE:   IOSXEFactory(),
		route.PlatformFortiOS:      FortiOSFactory(),
		route.PlatformCiscoASA:     ASAFactory(),
	}
}

// Platforms lists the platforms this package has a driver for.
func Platforms() []route.Platform {
	var out []route.Platform
	for p := range factories() {
		out = append(out, p)
	}
	return out
}

// Open connects to the device described by cfg with the driver of its platform.
func Open(ctx context.Context, cfg drivers.Config) (drivers.Driver, error) {
	f, ok := factories()[cfg.Platform]
	if !ok {
		return nil, drivers.Errorf(drivers.KindInternal, cfg.Name, "connect", "platform %q is not an SSH platform", string(cfg.Platform))
	}
	return f.Open(ctx, cfg)
}

// Preview renders ops in the native syntax of cfg's platform, without contacting the device.
func Preview(cfg drivers.Config, ops []route.RouteOp) ([]string, error) {
	f, ok := factories()[cfg.Platform]
	if !ok {
		return nil, drivers.Errorf(drivers.KindInternal, cfg.Name, "preview", "platform %q is not an SSH platform", string(cfg.Platform))
	}
	return f.Preview(cfg, ops)
}

// Check validates the platform's own settings in cfg (see drivers.Factory.Check).
func Check(cfg drivers.Config) error {
	if f, ok := factories()[cfg.Platform]; ok && f.Check != nil {
		return f.Check(cfg)
	}
	return nil
}

// Factory returns a factory for every SSH platform; it dispatches on Config.Platform.
func Factory() drivers.Factory {
	return drivers.Factory{Open: Open, Preview: Preview, Check: Check}
}

// opener adapts a driver's typed Open to drivers.Factory.Open, returning a nil interface,
// not a typed nil, on error.
func opener[D drivers.Driver](open func(context.Context, drivers.Config) (D, error)) func(context.Context, drivers.Config) (drivers.Driver, error) {
	return func(ctx context.Context, cfg drivers.Config) (drivers.Driver, error) {
		d, err := open(ctx, cfg)
		if err != nil {
			return nil, err
		}
		return d, nil
	}
}

// FRRFactory returns the factory of platform frr.
func FRRFactory() drivers.Factory {
	return drivers.Factory{Open: opener(OpenFRR), Preview: FRRPreview}
}

// LinuxFactory returns the factory of platform linux.
func LinuxFactory() drivers.Factory {
	return drivers.Factory{Open: opener(OpenLinux), Preview: LinuxPreview}
}

// EOSFactory returns the factory of platform arista_eos.
func EOSFactory() drivers.Factory {
	return drivers.Factory{Open: opener(OpenEOS), Preview: EOSPreview}
}

// JunosFactory returns the factory of platform juniper_junos.
func JunosFactory() drivers.Factory {
	return drivers.Factory{Open: opener(OpenJunos), Preview: JunosPreview, Check: JunosCheck}
}

// VyOSFactory returns the factory of platform vyos.
func VyOSFactory() drivers.Factory {
	return drivers.Factory{Open: opener(OpenVyOS), Preview: VyOSPreview, Check: VyOSCheck}
}

// PANOSFactory returns the factory of platform paloalto_panos.
func PANOSFactory() drivers.Factory {
	return drivers.Factory{Open: opener(OpenPANOS), Preview: PANOSPreview, Check: PANOSCheck}
}

// NXOSFactory returns the factory of platform cisco_nxos.
func NXOSFactory() drivers.Factory {
	return drivers.Factory{Open: opener(OpenNXOS), Preview: NXOSPreview}
}

// IOSXEFactory returns the factory of platform cisco_iosxe.
func IOSXEFactory() drivers.Factory {
	return drivers.Factory{Open: opener(OpenIOSXE), Preview: IOSXEPreview}
}

// FortiOSFactory returns the factory of platform fortinet_fortios.
func FortiOSFactory() drivers.Factory {
	return drivers.Factory{Open: opener(OpenFortiOS), Preview: FortiOSPreview, Check: FortiOSCheck}
}

// ASAFactory returns the factory of platform cisco_asa.
func ASAFactory() drivers.Factory {
	return drivers.Factory{Open: opener(OpenASA), Preview: ASAPreview, Check: ASACheck}
}
