package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"

	"github.com/jackc/pgx/v5"

	"github.com/returnpath/returnpath/internal/fabric"
)

type hopJSON struct {
	Device  string   `json:"device,omitempty"`
	Devices []string `json:"devices,omitempty"`
	NextHop string   `json:"next_hop"` // "host", or the fixed next hop of NextHop.Addr ("" for none)
	// NextHop6 is the fixed IPv6 next hop of the per-family form, when there is one.
	NextHop6 string `json:"next_hop6,omitempty"`
}

// toHopJSON stores a hop's next hop field by field, so that loading it back is exact.
func toHopJSON(h fabric.Hop) hopJSON {
	j := hopJSON{Device: h.Device, Devices: h.Devices, NextHop: "host"}
	if !h.NextHop.Host {
		j.NextHop = ""
		if h.NextHop.Addr.IsValid() {
			j.NextHop = h.NextHop.Addr.String()
		}
		if h.NextHop.Addr6.IsValid() {
			j.NextHop6 = h.NextHop.Addr6.String()
		}
	}
	return j
}

// fromHopJSON is toHopJSON's inverse.
func fromHopJSON(j hopJSON) (fabric.Hop, error) {
	hop := fabric.Hop{Device: j.Device, Devices: j.Devices}
	var err error
	switch {
	case j.NextHop == "host":
		hop.NextHop.Host = true
	case j.NextHop != "":
		if hop.NextHop.Addr, err = netip.ParseAddr(j.NextHop); err != nil {
			return hop, fmt.Errorf("next hop %q: %w", j.NextHop, err)
		}
	}
	if j.NextHop6 != "" {
		if hop.NextHop.Addr6, err = netip.ParseAddr(j.NextHop6); err != nil {
			return hop, fmt.Errorf("next hop %q: %w", j.NextHop6, err)
		}
	}
	return hop, nil
}

// SyncInventory makes the database's copy of the inventory match inv, in one transaction.
// It refuses to drop or reshape a pool that live hosts still hold subnets of. It files no
// reroute: the service syncs through Changes.SyncInventory.
func (db *DB) SyncInventory(ctx context.Context, inv *fabric.Inventory) error {
	return db.inTx(ctx, func(tx pgx.Tx) error {
		if err := lockInventory(ctx, tx); err != nil {
			return err
		}
		return syncInventoryTx(ctx, tx, inv)
	})
}

// lockInventory serialises, until tx ends, every sync of the inventory across processes (two
// processes starting or reloading together).
func lockInventory(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('returnpath.inventory'))`)
	return formatError(err)
}

func syncInventoryTx(ctx context.Context, tx pgx.Tx, inv *fabric.Inventory) error {
	if err := syncPools(ctx, tx, inv.Pools); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `DELETE FROM segments`); err != nil {
		return formatError(err)
	}
	for _, s := range inv.Segments {
		hops := make([]hopJSON, 0, len(s.RouteVia))
		for _, h := range s.RouteVia {
			hops = append(hops, toHopJSON(h))
		}
		b, _ := json.Marshal(hops)
		if _, err := tx.Exec(ctx, `INSERT INTO segments (name, hosts, pool, route_via, hosts6, pool6) VALUES ($1, $2, $3, $4, $5, $6)`,
			s.Name, s.Hosts, s.Pool, b, s.Hosts6, s.Pool6); err != nil {
			return formatError(err)
		}
	}
	if _, err := tx.Exec(ctx, `DELETE FROM devices`); err != nil {
		return formatError(err)
	}
	for _, d := range inv.Devices {
		if _, err := tx.Exec(ctx, `INSERT INTO devices (name, platform, transport, address, vrf) VALUES ($1, $2, $3, $4, $5)`,
			d.Name, string(d.Platform), string(d.Transport), d.Address.String(), d.VRF); err != nil {
			return formatError(err)
		}
	}
	return nil
}

// loadInventoryTx reads the inventory as last synced: what the hosts' routes were planned
// from. An empty database gives an empty inventory.
func loadInventoryTx(ctx context.Context, tx pgx.Tx) (*fabric.Inventory, error) {
	inv := &fabric.Inventory{}
	rows, err := tx.Query(ctx, `SELECT name, prefix, subnet_length FROM pools ORDER BY name`)
	if err != nil {
		return nil, formatError(err)
	}
	var p fabric.Pool
	if _, err := pgx.ForEachRow(rows, []any{&p.Name, &p.Prefix, &p.SubnetLength}, func() error {
		inv.Pools = append(inv.Pools, p)
		return nil
	}); err != nil {
		return nil, formatError(err)
	}
	rows, err = tx.Query(ctx, `SELECT name, hosts, pool, route_via, hosts6, pool6 FROM segments ORDER BY name`)
	if err != nil {
		return nil, formatError(err)
	}
	var s fabric.Segment
	var via []byte
	if _, err := pgx.ForEachRow(rows, []any{&s.Name, &s.Hosts, &s.Pool, &via, &s.Hosts6, &s.Pool6}, func() error {
		var hops []hopJSON
		if err := json.Unmarshal(via, &hops); err != nil {
			return fmt.Errorf("segment %s: route_via: %w", s.Name, err)
		}
		seg := s
		seg.RouteVia = nil
		for _, h := range hops {
			hop, err := fromHopJSON(h)
			if err != nil {
				return fmt.Errorf("segment %s: %w", s.Name, err)
			}
			seg.RouteVia = append(seg.RouteVia, hop)
		}
		inv.Segments = append(inv.Segments, seg)
		return nil
	}); err != nil {
		return nil, formatError(err)
	}
	rows, err = tx.Query(ctx, `SELECT name, platform, transport, address, vrf FROM devices ORDER BY name`)
	if err != nil {
		return nil, formatError(err)
	}
	var d fabric.Device
	var platform, transport, address string
	if _, err := pgx.ForEachRow(rows, []any{&d.Name, &platform, &transport, &address, &d.VRF}, func() error {
		dev := d
		dev.Platform, dev.Transport = fabric.Platform(platform), fabric.Transport(transport)
		// Only the name and VRF matter to plans; an address that no longer parses is left empty.
		dev.Address, _ = netip.ParseAddrPort(address)
		inv.Devices = append(inv.Devices, dev)
		return nil
	}); err != nil {
		return nil, formatError(err)
	}
	return inv, nil
}

func syncPools(ctx context.Context, tx pgx.Tx, pools []fabric.Pool) error {
	type row struct {
		prefix netip.Prefix
		length int
		live   int64
	}
	rows, err := tx.Query(ctx, `
		SELECT p.name, p.prefix, p.subnet_length,
		       (SELECT count(*) FROM hosts h WHERE (h.pool = p.name OR h.pool6 = p.name) AND h.state <> 'removed')
		FROM pools p`)
	if err != nil {
		return formatError(err)
	}
	have := map[string]row{}
	for rows.Next() {
		var name string
		var r row
		if err := rows.Scan(&name, &r.prefix, &r.length, &r.live); err != nil {
			return formatError(err)
		}
		have[name] = r
	}
	if err := rows.Err(); err != nil {
		return formatError(err)
	}
	want := map[string]bool{}
	for _, p := range pools {
		want[p.Name] = true
		old, ok := have[p.Name]
		switch {
		case !ok:
			var id int64
			if err := tx.QueryRow(ctx, `INSERT INTO pools (name, prefix, subnet_length) VALUES ($1, $2, $3) RETURNING id`, p.Name, p.Prefix, p.SubnetLength).Scan(&id); err != nil {
				return formatError(err)
			}
			// The pool's allocation cursor (migration 0014): named after the id, never the name.
			if _, err := tx.Exec(ctx, fmt.Sprintf(`CREATE SEQUENCE pool_cursor_%d AS bigint MINVALUE 0 START 0`, id)); err != nil {
				return formatError(err)
			}
		case old.prefix != p.Prefix || old.length != p.SubnetLength:
			if old.live > 0 {
				return fabric.Errorf(fabric.ECONFLICT, "pool %s: changing it from %s (/%d subnets) to %s (/%d) while %d hosts hold subnets of it is not supported; remove those hosts first",
					p.Name, old.prefix, old.length, p.Prefix, p.SubnetLength, old.live)
			}
			if _, err := tx.Exec(ctx, `
				WITH p AS (UPDATE pools SET prefix = $2, subnet_length = $3, updated_at = now() WHERE name = $1 RETURNING id)
				SELECT setval(format('pool_cursor_%s', id)::regclass, 0, false) FROM p`, p.Name, p.Prefix, p.SubnetLength); err != nil {
				return formatError(err)
			}
			if _, err := tx.Exec(ctx, `DELETE FROM free_subnets WHERE pool = $1`, p.Name); err != nil {
				return formatError(err)
			}
		}
	}
	for name, old := range have {
		if want[name] {
			continue
		}
		if old.live > 0 {
			return fabric.Errorf(fabric.ECONFLICT, "pool %s was removed from the configuration but %d hosts still hold subnets of it; remove those hosts first", name, old.live)
		}
		var id int64
		if err := tx.QueryRow(ctx, `DELETE FROM pools WHERE name = $1 RETURNING id`, name).Scan(&id); err != nil {
			return formatError(err)
		}
		if _, err := tx.Exec(ctx, fmt.Sprintf(`DROP SEQUENCE IF EXISTS pool_cursor_%d`, id)); err != nil {
			return formatError(err)
		}
	}
	return nil
}

// PoolUsage returns the number of live hosts per configured pool.
func (db *DB) PoolUsage(ctx context.Context, inv *fabric.Inventory) ([]fabric.PoolUsage, error) {
	rows, err := db.Pool.Query(ctx, `
		SELECT pool, count(*) FROM (
			SELECT pool FROM hosts WHERE state <> 'removed' AND pool IS NOT NULL
			UNION ALL SELECT pool6 FROM hosts WHERE state <> 'removed' AND pool6 IS NOT NULL) p
		GROUP BY pool`)
	if err != nil {
		return nil, formatError(err)
	}
	counts, err := pgx.CollectRows(rows, pgx.RowToStructByPos[struct {
		Pool  string
		Count int64
	}])
	if err != nil {
		return nil, formatError(err)
	}
	by := map[string]int64{}
	for _, c := range counts {
		by[c.Pool] = c.Count
	}
	out := make([]fabric.PoolUsage, 0, len(inv.Pools))
	for _, p := range inv.Pools {
		out = append(out, fabric.PoolUsage{Pool: p, Allocated: by[p.Name]})
	}
	return out, nil
}

// HostsByState counts live and removed hosts by state, for metrics.
func (db *DB) HostsByState(ctx context.Context) (map[fabric.HostState]int64, error) {
	rows, err := db.Pool.Query(ctx, `SELECT state, count(*) FROM hosts GROUP BY state`)
	if err != nil {
		return nil, formatError(err)
	}
	out := map[fabric.HostState]int64{}
	var state string
	var n int64
	_, err = pgx.ForEachRow(rows, []any{&state, &n}, func() error {
		out[fabric.HostState(state)] = n
		return nil
	})
	return out, formatError(err)
}
