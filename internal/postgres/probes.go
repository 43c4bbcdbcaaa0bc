package postgres

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/returnpath/returnpath/internal/fabric"
)

// probeColumns are host_probes' columns as withChange selects them, from the alias p; a host
// with no probe has them all NULL.
const probeColumns = `p.target, p.port, p.source, p.result, p.sent, p.received, p.rtt_us, p.probed_at, p.recorded_by`

// probeRow scans probeColumns, each nullable.
type probeRow struct {
	target, source *netip.Addr
	port           *int32
	result, by     *string
	sent, received *int32
	rttUS          *int64
	at             *time.Time
}

func (r *probeRow) dest() []any {
	return []any{&r.target, &r.port, &r.source, &r.result, &r.sent, &r.received, &r.rttUS, &r.at, &r.by}
}

// probe returns the probe scanned, nil when the host has none.
func (r *probeRow) probe(host string) *fabric.Probe {
	if r.target == nil {
		return nil
	}
	return &fabric.Probe{Host: host, Target: netip.AddrPortFrom(*r.target, uint16(*r.port)), Source: *r.source,
		Result: fabric.ProbeResult(*r.result), Sent: int(*r.sent), Received: int(*r.received),
		RTT: time.Duration(*r.rttUS) * time.Microsecond, At: r.at.UTC(), By: *r.by}
}

// probesKept is how many probes per host the history keeps: a timer re-probing every few
// minutes would otherwise grow the table without bound, and only the newest is judged.
const probesKept = 100

// RecordProbe records a return-path probe that host name reported and returns the host with
// it as its last probe. It refuses (ENOTFOUND) a host that is not registered, (EFORBIDDEN) a
// token scoped to other segments, and (EINVALID, naming the field) a probe the domain rejects
// (fabric.Inventory.ValidateProbe); nothing is recorded then.
func (s *Hosts) RecordProbe(ctx context.Context, actor fabric.Actor, name string, p fabric.Probe) (fabric.Host, error) {
	now := s.db.Now()
	var h fabric.Host
	err := pgx.BeginFunc(ctx, s.db.Pool, func(tx pgx.Tx) error {
		var err error
		// FOR SHARE: a removal cannot complete between the check and the insert.
		h, err = scanHost(tx.QueryRow(ctx, `SELECT `+hostColumns+` FROM hosts WHERE name = $1 AND state <> 'removed' FOR SHARE`, strings.ToLower(name)))
		if err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return fabric.Errorf(fabric.ENOTFOUND, "no host named %q", name)
			}
			return formatError(err)
		}
		if !actor.MaySegment(h.Segment) {
			return fabric.Errorf(fabric.EFORBIDDEN, "host %s is in segment %s, and token %s may report only for hosts in %s",
				h.Name, h.Segment, actor.Name, strings.Join(actor.Segments, ", "))
		}
		p.Host, p.By = h.Name, actor.Name
		if err := s.inv.Load().ValidateProbe(h, p, now); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `
			WITH ins AS (
				INSERT INTO host_probes (host_id, target, port, source, result, sent, received, rtt_us, probed_at, recorded_at, recorded_by)
				VALUES (@host, @target, @port, @source, @result, @sent, @received, @rtt_us, @at, @now, @by))
			DELETE FROM host_probes WHERE host_id = @host AND id <= (
				SELECT id FROM host_probes WHERE host_id = @host ORDER BY id DESC OFFSET @kept - 1 LIMIT 1)`,
			pgx.NamedArgs{"host": h.ID, "target": p.Target.Addr(), "port": int(p.Target.Port()), "source": p.Source,
				"result": string(p.Result), "sent": p.Sent, "received": p.Received, "rtt_us": p.RTT.Microseconds(),
				"at": p.At, "now": now, "by": actor.Name, "kept": probesKept})
		return formatError(err)
	})
	if err != nil {
		return fabric.Host{}, err
	}
	h.LastProbe = &p
	return h, nil
}

// HostsFailingProbe counts the active hosts whose last probe got no reply, for metrics.
func (db *DB) HostsFailingProbe(ctx context.Context) (int64, error) {
	var n int64
	err := db.Pool.QueryRow(ctx, `
		SELECT count(*) FROM hosts h
		CROSS JOIN LATERAL (SELECT result FROM host_probes WHERE host_id = h.id ORDER BY id DESC LIMIT 1) p
		WHERE h.state = 'active' AND p.result = 'failed'`).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count hosts failing their probe: %w", formatError(err))
	}
	return n, nil
}
