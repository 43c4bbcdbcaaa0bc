// Package ssh implements returnpath's drivers for devices reached over SSH: FRRouting's
// vtysh (platform frr, on scrapligo with an embedded platform definition), Arista EOS
// switches (platform arista_eos, on scrapligo's own arista_eos definition), Cisco switches
// and routers whose CLI applies each line as it is entered (cisco_nxos and cisco_iosxe on
// scrapligo's own definitions, line by line with undo, cisco.go) and plain Linux routers and firewalls managed
// with iproute2 (platform linux).
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

// Open connects to the device described by cfg with the driver of its platform.
func Open(ctx context.Context, cfg drivers.Config) (drivers.Driver, error) {
	switch cfg.Platform {
	case route.PlatformFRR:
		return openFRR(ctx, cfg)
	case route.PlatformLinux:
		return openLinux(ctx, cfg)
	case route.PlatformAristaEOS:
		return openEOS(ctx, cfg)
	case route.PlatformCiscoNXOS:
		return openNXOS(ctx, cfg)
	case route.PlatformCiscoIOSXE:
		return openIOSXE(ctx, cfg)
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
	case route.PlatformCiscoNXOS:
		return NXOSPreview(cfg, ops)
	case route.PlatformCiscoIOSXE:
		return IOSXEPreview(cfg, ops)
	}
	return nil, drivers.Errorf(drivers.KindInternal, cfg.Name, "preview", "platform %q is not an SSH platform", string(cfg.Platform))
}

// Factory returns a factory for every SSH platform; it dispatches on Config.Platform.
func Factory() drivers.Factory {
	return drivers.Factory{Open: Open, Preview: Preview}
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

// NXOSFactory returns the factory of platform cisco_nxos.
func NXOSFactory() drivers.Factory {
	return drivers.Factory{
		Open:    openNXOS,
		Preview: NXOSPreview,
	}
}

func openNXOS(ctx context.Context, cfg drivers.Config) (drivers.Driver, error) {
	d, err := OpenNXOS(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return d, nil
}

// IOSXEFactory returns the factory of platform cisco_iosxe.
func IOSXEFactory() drivers.Factory {
	return drivers.Factory{
		Open:    openIOSXE,
		Preview: IOSXEPreview,
	}
}

func openIOSXE(ctx context.Context, cfg drivers.Config) (drivers.Driver, error) {
	d, err := OpenIOSXE(ctx, cfg)
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
