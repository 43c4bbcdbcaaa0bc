// Package ssh implements returnpath's drivers for devices reached over SSH: FRRouting's
// vtysh (platform frr, on scrapligo with an embedded platform definition), Arista EOS
// switches (platform arista_eos, on scrapligo's own arista_eos definition), Juniper Junos
// devices (platform juniper_junos, on scrapligo's juniper_junos definition), VyOS routers
// (platform vyos, on scrapligo's vyatta_vyos definition), Palo Alto
// firewalls (platform paloalto_panos, on scrapligo's paloalto_panos definition) and plain Linux
// routers and firewalls managed with iproute2 (platform linux).
//
// Both share one connection layer: golang.org/x/crypto/ssh with strict host key checking
// against the configured known_hosts file (accept-new only when set explicitly), password or
// key authentication, and a connect timeout. Rendering and parsing are pure functions with
// golden files in testdata/; no library type leaves the package.
package ssh

import (
	"context"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/drivers/route"
)

// Open connects to the device described by cfg with the driver of its platform (frr or
// linux).
func Open(ctx context.Context, cfg drivers.Config) (drivers.Driver, error) {
	switch cfg.Platform {
	case route.PlatformFRR:
		return openFRR(ctx, cfg)
	case route.PlatformLinux:
		return openLinux(ctx, cfg)
	case route.PlatformAristaEOS:
		return openEOS(ctx, cfg)
	case route.PlatformFortiOS:
		return openFortiOS(ctx, cfg)
	case route.PlatformJuniperJunos:
		return openJunos(ctx, cfg)
	case route.PlatformVyOS:
		return openVyOS(ctx, cfg)
	case route.PlatformPANOS:
		return openPANOS(ctx, cfg)
	case route.PlatformCiscoASA:
		return openASA(ctx, cfg)
	}
	return nil, drivers.Errorf(drivers.KindInternal, cfg.Name, "connect", "platform %q is not an SSH platform", string(cfg.Platform))
}

// Preview renders ops in the native syntax of cfg's platform, without contacting the device.
func Preview(cfg drivers.Config, ops []route.RouteOp) ([]string, error) {
	switch cfg.Platform {
	case route.PlatformFRR:
		return FRRPreview(cfg, ops)
	case route.PlatformLinux:
		return LinuxPreview(cfg, ops)
	case route.PlatformAristaEOS:
		return EOSPreview(cfg, ops)
	case route.PlatformFortiOS:
		return FortiOSPreview(cfg, ops)
	case route.PlatformJuniperJunos:
		return JunosPreview(cfg, ops)
	case route.PlatformVyOS:
		return VyOSPreview(cfg, ops)
	case route.PlatformPANOS:
		return PANOSPreview(cfg, ops)
	case route.PlatformCiscoASA:
		return ASAPreview(cfg, ops)
	}
	return nil, drivers.Errorf(drivers.KindInternal, cfg.Name, "preview", "platform %q is not an SSH platform", string(cfg.Platform))
}

// Check validates the platform's own settings in cfg, for the platforms that have any.
func Check(cfg drivers.Config) error {
	switch cfg.Platform {
	case route.PlatformFortiOS:
		return FortiOSCheck(cfg)
	case route.PlatformCiscoASA:
		return ASACheck(cfg)
	}
	return nil
}

// Factory returns a factory for every SSH platform; it dispatches on Config.Platform.
func Factory() drivers.Factory {
	return drivers.Factory{Open: Open, Preview: Preview, Check: Check}
}

// FRRFactory returns the factory of platform frr.
func FRRFactory() drivers.Factory {
	return drivers.Factory{
		Open:    openFRR,
		Preview: FRRPreview,
	}
}

// LinuxFactory returns the factory of platform linux.
func LinuxFactory() drivers.Factory {
	return drivers.Factory{
		Open:    openLinux,
		Preview: LinuxPreview,
	}
}

// EOSFactory returns the factory of platform arista_eos.
func EOSFactory() drivers.Factory {
	return drivers.Factory{
		Open:    openEOS,
		Preview: EOSPreview,
	}
}

// FortiOSFactory returns the factory of platform fortinet_fortios.
func FortiOSFactory() drivers.Factory {
	return drivers.Factory{
		Open:    openFortiOS,
		Preview: FortiOSPreview,
		Check:   FortiOSCheck,
	}
}

// ASAFactory returns the factory of platform cisco_asa.
func ASAFactory() drivers.Factory {
	return drivers.Factory{
		Open:    openASA,
		Preview: ASAPreview,
		Check:   ASACheck,
	}
}

func openASA(ctx context.Context, cfg drivers.Config) (drivers.Driver, error) {
	d, err := OpenASA(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return d, nil
}

func openFortiOS(ctx context.Context, cfg drivers.Config) (drivers.Driver, error) {
	d, err := OpenFortiOS(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return d, nil
}

// JunosFactory returns the factory of platform juniper_junos.
func JunosFactory() drivers.Factory {
	return drivers.Factory{
		Open:    openJunos,
		Preview: JunosPreview,
		Check:   JunosCheck,
	}
}

func openJunos(ctx context.Context, cfg drivers.Config) (drivers.Driver, error) {
	d, err := OpenJunos(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return d, nil
}

// VyOSFactory returns the factory of platform vyos.
func VyOSFactory() drivers.Factory {
	return drivers.Factory{
		Open:    openVyOS,
		Preview: VyOSPreview,
		Check:   VyOSCheck,
	}
}

func openVyOS(ctx context.Context, cfg drivers.Config) (drivers.Driver, error) {
	d, err := OpenVyOS(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return d, nil
}

// PANOSFactory returns the factory of platform paloalto_panos.
func PANOSFactory() drivers.Factory {
	return drivers.Factory{
		Open:    openPANOS,
		Preview: PANOSPreview,
		Check:   PANOSCheck,
	}
}

func openPANOS(ctx context.Context, cfg drivers.Config) (drivers.Driver, error) {
	d, err := OpenPANOS(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return d, nil
}

func openEOS(ctx context.Context, cfg drivers.Config) (drivers.Driver, error) {
	d, err := OpenEOS(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return d, nil
}

// openFRR and openLinux return a nil interface, not a typed nil, on error.
func openFRR(ctx context.Context, cfg drivers.Config) (drivers.Driver, error) {
	d, err := OpenFRR(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return d, nil
}

func openLinux(ctx context.Context, cfg drivers.Config) (drivers.Driver, error) {
	d, err := OpenLinux(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return d, nil
}
