package verify

import (
	"context"

	"github.com/returnpath/returnpath/internal/fabric"
)

// AdoptReading is what Adopt found: how each device of the segment's path was read, and the
// routes inside the segment's pool matched to hosts.
type AdoptReading struct {
	Segment fabric.Segment
	// Devices is each device of the path, inside-out: status ok or unreachable (with the
	// error and its kind); the route lists of Device are left empty.
	Devices []Device
	Match   fabric.AdoptReport
}

// Unreachable returns how many devices of the path could not be read.
func (a AdoptReading) Unreachable() int {
	n := 0
	for _, d := range a.Devices {
		if d.Status == StatusUnreachable {
			n++
		}
	}
	return n
}

// Adopt reads every device of segment's return path now (fresh, through the shared readings
// and each device's session budget, at most Concurrency at once) and matches the routes they
// hold inside the segment's pool to hosts (fabric.Adopt), taking the registry's live hosts
// into account. An unknown segment is a *fabric.Error with code ENOTFOUND naming "segment".
func (v *Verifier) Adopt(ctx context.Context, segment string) (AdoptReading, error) {
	inv := v.inventory()
	seg, ok := inv.Segment(segment)
	if !ok {
		return AdoptReading{}, fabric.FieldErrorf(fabric.ENOTFOUND, "segment", "no segment named %q", segment)
	}
	if seg.Pool == "" {
		// Adoption matches IPv4 routes to IPv4 host addresses (fabric.Adopt).
		return AdoptReading{}, fabric.FieldErrorf(fabric.EINVALID, "segment", "segment %s is IPv6-only, and adopt brings IPv4 routes under management only; register its hosts with address6", seg.Name)
	}
	pool, ok := inv.Pool(seg.Pool)
	if !ok {
		return AdoptReading{}, fabric.Errorf(fabric.EINTERNAL, "segment %s names unknown pool %s", seg.Name, seg.Pool)
	}
	var devs []fabric.Device
	for _, stage := range seg.Stages() {
		for _, name := range stage {
			if d, ok := inv.Device(name); ok {
				devs = append(devs, d)
			}
		}
	}
	hosts, err := v.hosts(ctx)
	if err != nil {
		return AdoptReading{}, err
	}
	out := AdoptReading{Segment: seg, Devices: make([]Device, len(devs))}
	routes := make([][]fabric.Route, len(devs))
	v.eachDevice(ctx, devs, func(i int, d fabric.Device) {
		// maxAge 0: adoption registers what it sees, so it never answers from an older reading.
		r := v.readings.get(ctx, d.Name, 0, v.now, func(ctx context.Context) ([]fabric.Route, error) { return v.read(ctx, d) })
		if r.err != nil {
			out.Devices[i] = unreachable(d.Name, r.took, r.err)
			out.Devices[i].ReadAt = r.at
			return
		}
		out.Devices[i] = empty(d.Name)
		out.Devices[i].Status, out.Devices[i].TookMS, out.Devices[i].ReadAt = StatusOK, ms(r.took), r.at
		routes[i] = r.routes
	}, func(i int, d fabric.Device) { out.Devices[i] = unreachable(d.Name, 0, ctx.Err()) })
	read := map[string][]fabric.Route{}
	for i, d := range devs {
		if out.Devices[i].Status == StatusOK {
			read[d.Name] = append([]fabric.Route{}, routes[i]...) // present even when empty: read, holds nothing
		}
	}
	out.Match = fabric.Adopt(fabric.AdoptInput{Segment: seg, Pool: pool, Devices: devs, Routes: read, Known: hosts})
	return out, nil
}
