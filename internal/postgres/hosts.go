package postgres

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/returnpath/returnpath/internal/fabric"
)

// Hosts is the host registry: it allocates docker0 subnets and records hosts.
type Hosts struct {
	db         *DB
	inv        atomic.Pointer[fabric.Inventory]   // swapped whole by a reload
	changes    *Changes                           // files the change for each registration and removal, when set
	pendingCap int                                // most pending hosts per segment (limits.pending_per_segment); 0: no cap
	leases     atomic.Pointer[fabric.LeasePolicy] // leases; the zero policy (off) until SetLeases
	registered atomic.Int64                       // hosts this process registered, for analyzeAfter
}

// SetChanges makes registrations and removals file changes.
func (s *Hosts) SetChanges(c *Changes) { s.changes = c }

// SetPendingCap caps the pending hosts of each segment (limits.pending_per_segment): past n,
// new registrations are refused until a reviewer approves or rejects some. 0 means no cap.
// The cap is checked before the insert, not under a lock, so registrations racing for a
// segment's last places may overshoot it by their number.
func (s *Hosts) SetPendingCap(n int) { s.pendingCap = n }

// pendingRetryAfter is what a registration refused by the pending cap is told to wait: a
// reviewer has to act first, so any figure is a guess; a minute keeps retrying hosts quiet.
const pendingRetryAfter = time.Minute

// NewHosts returns the registry for inv, which must already be synced into db.
func NewHosts(db *DB, inv *fabric.Inventory) *Hosts {
	s := &Hosts{db: db}
	s.inv.Store(inv)
	s.leases.Store(&fabric.LeasePolicy{})
	return s
}

// SetInventory makes registrations use inv from now on (a reload, once inv is synced).
func (s *Hosts) SetInventory(inv *fabric.Inventory) { s.inv.Store(inv) }

const hostColumns = `id, name, address, segment, coalesce(pool, '') AS pool, subnet, state, created_by, created_at, updated_at, address6, coalesce(pool6, '') AS pool6, subnet6, lease_renewed_at`

// withChange wraps a query for hostColumns so that each host also carries its newest change
// and its newest probe (one query for a whole page, rather than two per host when the API
// shows them).
func withChange(q string) string {
	return `SELECT h.*, c.id, c.status, coalesce(c.reason, ''), ` + probeColumns + ` FROM (` + q + `) h
		LEFT JOIN LATERAL (SELECT id, status, reason FROM changes WHERE host_id = h.id ORDER BY id DESC LIMIT 1) c ON true
		LEFT JOIN LATERAL (SELECT * FROM host_probes WHERE host_id = h.id ORDER BY id DESC LIMIT 1) p ON true
		ORDER BY h.name`
}

// scanHostView scans a row of withChange.
func scanHostView(row pgx.Row) (fabric.Host, error) {
	var h fabric.Host
	var state, reason string
	var cid *int64
	var cstatus *string
	var pr probeRow
	err := row.Scan(append([]any{&h.ID, &h.Name, &h.Address, &h.Segment, &h.Pool, &h.Subnet, &state, &h.CreatedBy, &h.CreatedAt, &h.UpdatedAt, &h.Address6, &h.Pool6, &h.Subnet6, &h.LeaseRenewedAt, &cid, &cstatus, &reason},
		pr.dest()...)...)
	h.State = fabric.HostState(state)
	if err == nil && cid != nil {
		h.Change = &fabric.ChangeRef{ID: *cid, Status: fabric.ChangeStatus(*cstatus), Reason: reason}
	}
	if err == nil {
		h.LastProbe = pr.probe(h.Name)
	}
	return h, err
}

func scanHost(row pgx.Row) (fabric.Host, error) {
	var h fabric.Host
	var state string
	err := row.Scan(&h.ID, &h.Name, &h.Address, &h.Segment, &h.Pool, &h.Subnet, &state, &h.CreatedBy, &h.CreatedAt, &h.UpdatedAt, &h.Address6, &h.Pool6, &h.Subnet6, &h.LeaseRenewedAt)
	h.State = fabric.HostState(state)
	return h, err
}

// maxAllocAttempts bounds how often one registration retries after losing a candidate
// subnet to a concurrent registration or to a subnet someone requested explicitly.
const maxAllocAttempts = 64

// Register places and records a host. It returns the host and whether it was created now;
// registering the same name and addresses again returns the existing host (bootstrap retries
// safely). Allocation is race-free across processes: the database's exclusion constraints are
// the final judge, and a candidate lost to a concurrent registration is simply skipped. A
// dual-stack registration (reg.Address6) gets both subnets or neither: both are recorded by
// one statement, and the candidates of a registration that fails are handed back.
func (s *Hosts) Register(ctx context.Context, actor fabric.Actor, reg fabric.Registration) (fabric.Host, bool, error) {
	inv := s.inv.Load()
	reg, seg, pool, err := inv.Place(reg)
	if err != nil {
		return fabric.Host{}, false, err
	}
	pools := allocPools{v4: pool} // v4 is the zero Pool in an IPv6-only segment; v6 as below
	if reg.Address6.IsValid() {
		pools.v6, _ = inv.Pool(seg.Pool6) // Place checked it exists
	}
	if !actor.MaySegment(seg.Name) {
		field, addr := "address", reg.Address
		if !addr.IsValid() {
			field, addr = "address6", reg.Address6
		}
		return fabric.Host{}, false, fabric.FieldErrorf(fabric.EFORBIDDEN, field,
			"%s %s is in segment %s, and token %s may register hosts only in %s", field, addr, seg.Name, actor.Name, strings.Join(actor.Segments, ", "))
	}
	if err := s.checkPendingCap(ctx, reg, seg.Name); err != nil {
		return fabric.Host{}, false, err
	}
	for range maxAllocAttempts {
		h, created, retry, err := s.tryRegister(ctx, actor, reg, seg, pools)
		if !retry && !created && repeated(h, reg, err) {
			// The same host registering again renews its lease (and may cancel its
			// lease-expiry removal): the renewal timer may run either command.
			h, err = s.renew(ctx, actor, reg.Name, reg.Address)
			return h, false, err
		}
		if !retry {
			if created {
				s.analyzeAfter(ctx, s.registered.Add(1))
			}
			return s.withLease(h), created, err
		}
	}
	return fabric.Host{}, false, fabric.Errorf(fabric.EUNAVAILABLE, "no subnet could be allocated after %d attempts under heavy contention; try again", maxAllocAttempts)
}

// analyzeAfter refreshes the planner's statistics of the tables a registration writes after
// this process's 64th, 128th, ... 65,536th registration. Statement plans are cached per
// connection: one made while hosts was nearly empty scans it, and keeps doing so until the
// table is analyzed, which autovacuum does only once a minute at most. A fresh registry
// onboarding a fleet (thousands of registrations in that minute) would otherwise scan the whole
// table for every registration. Past 65,536 the table is large enough that autovacuum's
// statistics keep the plans right. It runs in the background once the registration committed
// (on a large table ANALYZE takes a while, and the registration must not wait for it); a
// failure only leaves the statistics to autovacuum.
func (s *Hosts) analyzeAfter(ctx context.Context, n int64) {
	if n < 64 || n > 1<<16 || n&(n-1) != 0 {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		_, _ = s.db.Pool.Exec(ctx, `ANALYZE hosts, changes, change_ops`)
	}()
}

// allocPools are the pools a registration allocates from: its IPv4 pool, and its IPv6 pool
// when it is dual-stack (v6.Name is "" otherwise).
type allocPools struct{ v4, v6 fabric.Pool }

func (s *Hosts) tryRegister(ctx context.Context, actor fabric.Actor, reg fabric.Registration, seg fabric.Segment, pools allocPools) (h fabric.Host, created, retry bool, err error) {
	// The candidates are taken before the transaction, in a statement of their own, so that no
	// registration holds a connection while it waits for another (a pool of N connections
	// would otherwise deadlock under N concurrent registrations) and nobody queues behind
	// the cursor's row lock for a whole transaction. A candidate that goes unused is handed
	// back; one lost to a crash in between is found again by the gap scan.
	cand, cand6 := reg.Subnet, reg.Subnet6
	var taken, taken6 netip.Prefix
	defer func() {
		if !created {
			s.giveBack(context.WithoutCancel(ctx), pools.v4.Name, taken)
			s.giveBack(context.WithoutCancel(ctx), pools.v6.Name, taken6)
		}
	}()
	need4, need6 := pools.v4.Name != "" && !cand.IsValid(), reg.Address6.IsValid() && !cand6.IsValid()
	if need4 || need6 {
		var exists bool
		taken, taken6, exists, err = s.candidate(ctx, reg, pools, need4, need6)
		if err != nil {
			return h, false, false, err
		}
		if exists {
			existing, found, err := s.existing(ctx, s.db.Pool, reg)
			if found || err != nil {
				return existing, false, false, err
			}
			return h, false, true, nil // removed in the meantime: start again
		}
		if need4 {
			cand = taken
		}
		if need6 {
			cand6 = taken6
		}
	}
	if reg.Subnet.IsValid() || (reg.Subnet6.IsValid() && !need6) {
		// A requested subnet skipped the candidate step, or its check for a retry.
		if existing, found, err := s.existing(ctx, s.db.Pool, reg); found || err != nil {
			return existing, false, false, err
		}
	}
	now := s.db.Now()
	h = fabric.Host{Name: reg.Name, Address: reg.Address, Segment: seg.Name, Pool: pools.v4.Name, Subnet: cand,
		State: fabric.HostPending, CreatedBy: actor.Name, CreatedAt: now, UpdatedAt: now, LeaseRenewedAt: now}
	if reg.Address6.IsValid() {
		h.Address6, h.Pool6, h.Subnet6 = reg.Address6, pools.v6.Name, cand6
	}
	var ops []fabric.ChangeOp
	auto := false
	if s.changes != nil {
		if ops, err = s.inv.Load().PlanChange(fabric.ChangeAdd, h, s.changes.preview); err != nil {
			return h, false, false, err
		}
		_, auto = s.changes.policy.AutoApproval(changeRequest(actor, &h, fabric.ChangeAdd))
	}
	if auto || (s.changes != nil && s.changes.events != nil) {
		// The apply job and the webhooks' deliveries must be queued in the transaction that
		// files the change.
		err = s.db.inTx(ctx, func(tx pgx.Tx) error {
			if created, _, err = s.insertHost(ctx, tx, actor, &h, ops); err != nil || !created {
				return err
			}
			if h.Change != nil {
				ch := fabric.Change{ID: h.Change.ID, Kind: fabric.ChangeAdd, Status: h.Change.Status, Host: &h, RequestedBy: actor.Name,
					RequestedOwner: actor.Principal(), PlanHash: fabric.PlanHash(ops), CreatedAt: now, UpdatedAt: now, Ops: ops}
				if err := s.changes.emitTx(ctx, tx, ch, now); err != nil {
					return err
				}
			}
			if !auto {
				return nil
			}
			return s.changes.enqueueTx(ctx, tx, firstStageDevices(ops))
		})
	} else {
		// One statement, so no explicit transaction: it is atomic on its own.
		created, _, err = s.insertHost(ctx, s.db.Pool, actor, &h, ops)
	}
	if err != nil || created {
		return h, created, false, err
	}
	// Someone holds the name, an address or an overlapping subnet. Find out who.
	if existing, found, err := s.existing(ctx, s.db.Pool, reg); found || err != nil {
		return existing, false, false, err
	}
	var holder string
	var v4 bool
	err = s.db.Pool.QueryRow(ctx, `SELECT name, coalesce(subnet && $1, false) FROM hosts
		WHERE state <> 'removed' AND (subnet && $1 OR subnet6 && $2) ORDER BY 2 DESC LIMIT 1`, cand, h.Subnet6).Scan(&holder, &v4)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		// The conflicting registration rolled back in the meantime: try again.
	case err != nil:
		return h, false, false, formatError(err)
	case v4 && reg.Subnet.IsValid():
		return h, false, false, fabric.FieldErrorf(fabric.ECONFLICT, "subnet", "%s overlaps the subnet of host %s", cand, holder)
	case !v4 && reg.Subnet6.IsValid():
		return h, false, false, fabric.FieldErrorf(fabric.ECONFLICT, "subnet6", "%s overlaps the IPv6 subnet of host %s", cand6, holder)
	case v4:
		taken = netip.Prefix{} // held for good by holder: nothing to hand back
	default:
		taken6 = netip.Prefix{}
	}
	return h, false, true, nil
}

// checkPendingCap refuses a registration in segment seg once seg holds pendingCap pending
// hosts. A registration whose name or address a live host holds goes through: it files
// nothing, and the caller needs its answer (the host again, or the conflict).
func (s *Hosts) checkPendingCap(ctx context.Context, reg fabric.Registration, seg string) error {
	if s.pendingCap <= 0 {
		return nil
	}
	var pending int
	var repeat bool
	err := s.db.Pool.QueryRow(ctx, `
		SELECT (SELECT count(*) FROM (SELECT 1 FROM hosts WHERE segment = $1 AND state = 'pending' LIMIT $2) p),
		       EXISTS (SELECT 1 FROM hosts WHERE state <> 'removed' AND (name = $3 OR address = $4))`,
		seg, s.pendingCap, reg.Name, reg.Address).Scan(&pending, &repeat)
	if err != nil {
		return formatError(err)
	}
	if repeat || pending < s.pendingCap {
		return nil
	}
	return &fabric.LimitError{Field: "limits.pending_per_segment", RetryAfter: pendingRetryAfter,
		Message: fmt.Sprintf("segment %s already has %d hosts waiting for review, the most limits.pending_per_segment allows; register again once some are approved or rejected", seg, pending)}
}

// insertHost records h and, when ops are given, its add change with its ops, events and the
// audit rows, in one statement (the registration's hot path: one round trip). The host is
// not inserted when a live host holds its name, address or an overlapping subnet; created is
// then false. It returns the rule that approved the change at once, if one did.
func (s *Hosts) insertHost(ctx context.Context, q querier, actor fabric.Actor, h *fabric.Host, ops []fabric.ChangeOp) (created bool, rule string, err error) {
	c := s.changes
	if c == nil {
		c = &Changes{} // with no ops, the statement files no change
	}
	status, rule, args := c.newChange(actor, changeRequest(actor, h, fabric.ChangeAdd), fabric.ChangeAdd, ops, h.CreatedAt)
	var hostID, changeID *int64
	err = q.QueryRow(ctx, `
		WITH h AS (
			INSERT INTO hosts (name, address, segment, pool, subnet, state, created_by, created_at, updated_at, address6, pool6, subnet6, lease_renewed_at)
			VALUES ($20, $21, $22, NULLIF($23, ''), $24, 'pending', $3, $6, $6, $26, NULLIF($27, ''), $28, $6) ON CONFLICT DO NOTHING RETURNING id),
		ha AS (
			INSERT INTO audit (at, actor, action, object, details)
			SELECT $6, $3, 'host.register', 'host/' || $20, $25::jsonb FROM h),`+fileChangeSQL+`
		SELECT (SELECT id FROM h), (SELECT id FROM c)`,
		append(args, h.Name, h.Address, h.Segment, h.Pool, h.Subnet, hostAudit(*h), h.Address6, h.Pool6, h.Subnet6)...,
	).Scan(&hostID, &changeID)
	if err != nil {
		return false, "", formatError(err)
	}
	if hostID == nil {
		return false, "", nil
	}
	h.ID = *hostID
	if changeID != nil {
		h.Change = &fabric.ChangeRef{ID: *changeID, Status: status}
	}
	return true, rule, nil
}

// hostAudit is the audit detail of a host's registration.
func hostAudit(h fabric.Host) map[string]any {
	d := map[string]any{"segment": h.Segment}
	if h.Subnet.IsValid() {
		d["address"], d["subnet"] = h.Address.String(), h.Subnet.String()
	}
	if h.Subnet6.IsValid() {
		d["address6"], d["subnet6"] = h.Address6.String(), h.Subnet6.String()
	}
	return d
}

// existing returns the live host registered under reg's name or one of its addresses. Same
// name and addresses is the idempotent repeat; anything else is a conflict naming the holder.
func (s *Hosts) existing(ctx context.Context, tx querier, reg fabric.Registration) (fabric.Host, bool, error) {
	rows, err := tx.Query(ctx, `SELECT `+hostColumns+` FROM hosts WHERE state <> 'removed' AND (name = $1 OR address = $2 OR address6 = $3)`,
		reg.Name, reg.Address, reg.Address6)
	if err != nil {
		return fabric.Host{}, false, formatError(err)
	}
	hosts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (fabric.Host, error) { return scanHost(r) })
	if err != nil {
		return fabric.Host{}, false, formatError(err)
	}
	for _, h := range hosts {
		if h.Name != reg.Name {
			continue
		}
		if h.Address != reg.Address {
			return h, true, fabric.FieldErrorf(fabric.ECONFLICT, "address", "host %s is already registered with address %s", h.Name, h.Address)
		}
		if h.Address6 != reg.Address6 {
			return h, true, fabric.FieldErrorf(fabric.ECONFLICT, "address6", "host %s is already registered with %s; remove it to register it with other addresses", h.Name, describeAddress6(h.Address6))
		}
		if reg.Subnet.IsValid() && reg.Subnet != h.Subnet {
			return h, true, fabric.FieldErrorf(fabric.ECONFLICT, "subnet", "host %s already holds subnet %s", h.Name, h.Subnet)
		}
		if reg.Subnet6.IsValid() && reg.Subnet6 != h.Subnet6 {
			return h, true, fabric.FieldErrorf(fabric.ECONFLICT, "subnet6", "host %s already holds IPv6 subnet %s", h.Name, h.Subnet6)
		}
		if h.State == fabric.HostRemoving {
			return h, true, fabric.FieldErrorf(fabric.ECONFLICT, "name", "host %s is being removed; register it again once it is removed", h.Name)
		}
		return h, true, nil
	}
	for _, h := range hosts {
		if reg.Address.IsValid() && h.Address == reg.Address {
			return h, true, fabric.FieldErrorf(fabric.ECONFLICT, "address", "address %s is already registered by host %s", reg.Address, h.Name)
		}
	}
	if len(hosts) > 0 {
		return hosts[0], true, fabric.FieldErrorf(fabric.ECONFLICT, "address6", "address6 %s is already registered by host %s", reg.Address6, hosts[0].Name)
	}
	return fabric.Host{}, false, nil
}

func describeAddress6(a netip.Addr) string {
	if !a.IsValid() {
		return "no address6"
	}
	return "address6 " + a.String()
}

// candidate takes the subnets to try, in one statement of its own: of the IPv4 pool when
// need4 and of the IPv6 pool when need6, for each a handed-back subnet first, else the next
// never-used one from the pool's cursor, unless a live host already holds reg's name or an
// address (a retrying bootstrap must not burn a subnet; exists is then true and the caller
// looks the host up). Only once a cursor has passed its pool's end does a second statement
// look for a gap left by a hand-back that never happened. When one family finds nothing the
// other's subnet is returned too, for the caller to hand back.
//
// The statement commits asynchronously: a crash may lose a free-list hand-out, but WAL is
// written in order, so any host registered with the subnet made it durable too. The cursor is
// a sequence (migration 0014), whose moves are never rolled back: a crash between nextval and
// the host's insert loses that subnet until the gap scan finds it.
func (s *Hosts) candidate(ctx context.Context, reg fabric.Registration, pools allocPools, need4, need6 bool) (taken, taken6 netip.Prefix, exists bool, err error) {
	var free, free6 *netip.Prefix
	var idx, idx6 *int64
	pool4, pool6 := "", ""
	if need4 {
		pool4 = pools.v4.Name
	}
	if need6 {
		pool6 = pools.v6.Name
	}
	// The two families' CTEs touch different rows and sequences (their pools' own), so one
	// statement may take both: a dual-stack registration costs no extra round trip. A cursor's
	// nextval takes no lock and may pass its pool's end; taken() then finds no subnet and the
	// gap scan runs.
	err = s.db.Pool.QueryRow(ctx, `
		WITH ex AS (
			SELECT 1 FROM hosts WHERE state <> 'removed' AND (name = $1 OR address = $2 OR address6 = $4) LIMIT 1),
		f AS (
			DELETE FROM free_subnets WHERE NOT EXISTS (SELECT 1 FROM ex) AND (pool, subnet) IN (
				SELECT pool, subnet FROM free_subnets WHERE pool = $3 ORDER BY subnet LIMIT 1 FOR UPDATE SKIP LOCKED)
			RETURNING subnet),
		c AS (
			SELECT nextval(format('pool_cursor_%s', id)::regclass) AS idx FROM pools
			WHERE name = $3 AND NOT EXISTS (SELECT 1 FROM ex) AND NOT EXISTS (SELECT 1 FROM f)),
		f6 AS (
			DELETE FROM free_subnets WHERE NOT EXISTS (SELECT 1 FROM ex) AND (pool, subnet) IN (
				SELECT pool, subnet FROM free_subnets WHERE pool = $5 ORDER BY subnet LIMIT 1 FOR UPDATE SKIP LOCKED)
			RETURNING subnet),
		c6 AS (
			SELECT nextval(format('pool_cursor_%s', id)::regclass) AS idx FROM pools
			WHERE name = $5 AND NOT EXISTS (SELECT 1 FROM ex) AND NOT EXISTS (SELECT 1 FROM f6))
		SELECT EXISTS (SELECT 1 FROM ex), (SELECT subnet FROM f), (SELECT idx FROM c), (SELECT subnet FROM f6), (SELECT idx FROM c6),
		       set_config('synchronous_commit', 'off', true) IS NOT NULL`,
		reg.Name, reg.Address, pool4, reg.Address6, pool6,
	).Scan(&exists, &free, &idx, &free6, &idx6, new(bool))
	if err != nil {
		return taken, taken6, false, formatError(err)
	}
	if exists {
		return taken, taken6, true, nil
	}
	// Both families' subnets are returned even when one failed, for the caller to hand back:
	// one family failing fails both.
	if need4 {
		taken = s.taken(pools.v4, free, idx)
	}
	if need6 {
		taken6 = s.taken(pools.v6, free6, idx6)
	}
	if need4 && !taken.IsValid() {
		taken, err = s.gap(ctx, pools.v4)
	}
	if need6 && !taken6.IsValid() && err == nil {
		taken6, err = s.gap(ctx, pools.v6)
	}
	return taken, taken6, false, err
}

// taken returns the subnet a candidate statement took from pool (free list or cursor), if any.
func (s *Hosts) taken(pool fabric.Pool, free *netip.Prefix, idx *int64) netip.Prefix {
	switch {
	case free != nil:
		return *free
	case idx != nil:
		sub, _ := pool.Subnet(uint64(*idx))
		return sub
	}
	return netip.Prefix{}
}

// gap looks for a subnet of pool that no live host holds, once the pool's cursor has passed
// its end; the error says the pool is exhausted when there is none.
func (s *Hosts) gap(ctx context.Context, pool fabric.Pool) (netip.Prefix, error) {
	var taken netip.Prefix
	var err error
	if pool.Prefix.Addr().Is6() {
		taken, err = s.gap6(ctx, pool)
	} else {
		// This scan is linear in the pool's size, and runs only once the cursor has passed the
		// pool's end, i.e. when the pool is nearly full.
		err = s.db.Pool.QueryRow(ctx, `
			SELECT s FROM (
				SELECT set_masklen(($1::cidr)::inet + (i << ($3::int - $2::int)), $2::int)::cidr AS s
				FROM generate_series(0::bigint, $4 - 1) AS i) c
			WHERE NOT EXISTS (SELECT 1 FROM hosts h WHERE h.state <> 'removed' AND h.subnet && c.s)
			LIMIT 1`, pool.Prefix, pool.SubnetLength, pool.Prefix.Addr().BitLen(), int64(pool.Size())).Scan(&taken)
		if errors.Is(err, pgx.ErrNoRows) {
			err, taken = nil, netip.Prefix{}
		}
	}
	if err == nil && !taken.IsValid() {
		return taken, fabric.Errorf(fabric.ECONFLICT, "pool %s (%s) is exhausted: all %d /%d subnets are allocated", pool.Name, pool.Prefix, pool.Size(), pool.SubnetLength)
	}
	return taken, formatError(err)
}

// gap6 finds the first subnet of IPv6 pool p that no live host holds (invalid when there is
// none). Postgres's inet arithmetic adds at most a bigint, too little to step through IPv6
// subnets of /64 and shorter, so the walk runs here over the live subnets in order: like the
// IPv4 gap scan it runs only once the pool's cursor has passed its end, and is linear in the
// number of subnets held.
func (s *Hosts) gap6(ctx context.Context, p fabric.Pool) (netip.Prefix, error) {
	rows, err := s.db.Pool.Query(ctx, `SELECT subnet6 FROM hosts WHERE state <> 'removed' AND subnet6 <<= $1 ORDER BY subnet6`, p.Prefix)
	if err != nil {
		return netip.Prefix{}, err
	}
	held, err := pgx.CollectRows(rows, pgx.RowTo[netip.Prefix])
	if err != nil {
		return netip.Prefix{}, err
	}
	i := uint64(0)
	for _, h := range held {
		want, ok := p.Subnet(i)
		if !ok {
			return netip.Prefix{}, nil
		}
		if h.Addr().Compare(want.Addr()) > 0 {
			return want, nil // a gap before h
		}
		if h == want {
			i++
		}
	}
	want, _ := p.Subnet(i)
	return want, nil
}

// giveBack returns an unused subnet from the cursor to the free list.
func (s *Hosts) giveBack(ctx context.Context, pool string, sub netip.Prefix) {
	if !sub.IsValid() {
		return
	}
	_, _ = s.db.Pool.Exec(ctx, `INSERT INTO free_subnets (pool, subnet) VALUES ($1, $2) ON CONFLICT DO NOTHING`, pool, sub)
}

// Host returns the live host with the given name.
func (s *Hosts) Host(ctx context.Context, name string) (fabric.Host, error) {
	h, err := scanHostView(s.db.Pool.QueryRow(ctx, withChange(`SELECT `+hostColumns+` FROM hosts WHERE name = $1 AND state <> 'removed'`), name))
	if errors.Is(err, pgx.ErrNoRows) {
		return h, fabric.Errorf(fabric.ENOTFOUND, "no host named %q", name)
	}
	return s.withLease(h), formatError(err)
}

// List returns live hosts ordered by name, and the cursor for the next page ("" at the end).
func (s *Hosts) List(ctx context.Context, f fabric.HostFilter) ([]fabric.Host, string, error) {
	if f.Limit <= 0 || f.Limit > 1000 {
		f.Limit = 100
	}
	q := `SELECT ` + hostColumns + ` FROM hosts WHERE state <> 'removed' AND name > $1`
	args := []any{f.After}
	if f.Segment != "" {
		args = append(args, f.Segment)
		q += fmt.Sprintf(" AND segment = $%d", len(args))
	}
	if f.State != "" {
		args = append(args, string(f.State))
		q += fmt.Sprintf(" AND state = $%d", len(args))
	}
	if f.Stale {
		p := s.Leases()
		if !p.Enabled() {
			return nil, "", fabric.FieldErrorf(fabric.EINVALID, "stale", "leases are off (no leases in the configuration): no host is ever stale")
		}
		args = append(args, p.StaleBefore(s.db.Now()))
		q += fmt.Sprintf(" AND state IN ('pending', 'active') AND lease_renewed_at < $%d", len(args))
	}
	args = append(args, f.Limit+1)
	q += fmt.Sprintf(" ORDER BY name LIMIT $%d", len(args))
	rows, err := s.db.Pool.Query(ctx, withChange(q), args...)
	if err != nil {
		return nil, "", formatError(err)
	}
	hosts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (fabric.Host, error) { return scanHostView(r) })
	if err != nil {
		return nil, "", formatError(err)
	}
	next := ""
	if len(hosts) > f.Limit {
		hosts = hosts[:f.Limit]
		next = hosts[f.Limit-1].Name
	}
	for i := range hosts {
		hosts[i] = s.withLease(hosts[i])
	}
	return hosts, next, nil
}

// Remove marks a host for removal. Its routes are withdrawn by a change and its subnet is
// released only after they are gone; a host none of whose routes can be on any device (see
// fabric.NothingToRemove) is removed at once instead, its subnet released with no change filed.
func (s *Hosts) Remove(ctx context.Context, actor fabric.Actor, name string) (fabric.Host, error) {
	var h fabric.Host
	err := s.db.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		h, err = scanHost(tx.QueryRow(ctx, `SELECT `+hostColumns+` FROM hosts WHERE name = $1 AND state <> 'removed' FOR UPDATE`, name))
		if errors.Is(err, pgx.ErrNoRows) {
			return fabric.Errorf(fabric.ENOTFOUND, "no host named %q", name)
		}
		if err != nil {
			return formatError(err)
		}
		if !actor.MaySegment(h.Segment) {
			return fabric.Errorf(fabric.EFORBIDDEN, "host %s is in segment %s, and token %s may remove hosts only in %s", h.Name, h.Segment, actor.Name, strings.Join(actor.Segments, ", "))
		}
		if h.State == fabric.HostRemoving && s.changes == nil {
			return nil // already on its way out: repeating the request is harmless
		}
		now := s.db.Now()
		if s.changes != nil {
			// A pending add is superseded; one being applied must finish first, so that the
			// removal's deletes never race its adds on a device.
			var cid int64
			var status string
			err := tx.QueryRow(ctx, `SELECT id, status FROM changes WHERE host_id = $1 AND status IN ('pending', 'approved', 'applying') ORDER BY id DESC LIMIT 1 FOR UPDATE`, h.ID).Scan(&cid, &status)
			switch {
			case errors.Is(err, pgx.ErrNoRows):
				// A removing host with no live change is stuck (its remove change was rolled
				// back, failed or rejected): the repeated request files a new one below.
			case err != nil:
				return formatError(err)
			case h.State == fabric.HostRemoving:
				return nil // its remove change is under way: repeating the request is harmless
			case status == string(fabric.ChangePending):
				if err := s.changes.rejectTx(ctx, tx, cid, now, actor.Name, "superseded: the host is being removed"); err != nil {
					return err
				}
			default:
				return fabric.Errorf(fabric.ECONFLICT, "host %s: change %d is %s; remove the host once it has finished", name, cid, status)
			}
		}
		if s.changes != nil {
			released, err := s.releaseIfNothingToRemove(ctx, tx, actor, &h, now)
			if released || err != nil {
				return err
			}
		}
		if h.State != fabric.HostRemoving {
			if _, err := tx.Exec(ctx, `UPDATE hosts SET state = 'removing', updated_at = $2 WHERE id = $1`, h.ID, now); err != nil {
				return formatError(err)
			}
			h.State, h.UpdatedAt = fabric.HostRemoving, now
		}
		if err := insertAudit(ctx, tx, now, actor.Name, "host.remove", "host/"+name, subnetDetails(h, nil)); err != nil {
			return err
		}
		if s.changes != nil {
			if _, err := s.changes.createTx(ctx, tx, actor, h, fabric.ChangeRemove); err != nil {
				return err
			}
		}
		return nil
	})
	return s.withLease(h), err
}

// releaseIfNothingToRemove removes host h at once, releasing its subnet, when none of its
// routes can be on any device and actor may (fabric.ReleaseAtOnce): a remove change would
// only ask a reviewer to approve pushes of routes that were never installed. A change of the host still
// pending (a remove change of a host removed before this rule) is rejected as superseded.
func (s *Hosts) releaseIfNothingToRemove(ctx context.Context, tx pgx.Tx, actor fabric.Actor, h *fabric.Host, now time.Time) (bool, error) {
	changes, err := s.changes.hostChangesTx(ctx, tx, h.ID)
	if err != nil || !fabric.ReleaseAtOnce(*h, changes, actor) {
		return false, err
	}
	why := "no change was filed for it"
	for _, c := range changes {
		if c.Status == fabric.ChangePending {
			if err := s.changes.rejectTx(ctx, tx, c.ID, now, actor.Name, "superseded: the host was removed; nothing of it was on any device"); err != nil {
				return false, err
			}
			c.Status = fabric.ChangeRejected
		}
		if c.Kind == fabric.ChangeAdd {
			why = fmt.Sprintf("its add change %d was %s", c.ID, c.Status)
		}
	}
	if _, err := tx.Exec(ctx, `UPDATE hosts SET state = 'removed', updated_at = $2 WHERE id = $1`, h.ID, now); err != nil {
		return false, formatError(err)
	}
	if err := releaseSubnetsTx(ctx, tx, *h); err != nil {
		return false, err
	}
	if err := insertAudit(ctx, tx, now, actor.Name, "host.remove", "host/"+h.Name, subnetDetails(*h, nil)); err != nil {
		return false, err
	}
	if err := insertAudit(ctx, tx, now, actor.Name, "host.removed", "host/"+h.Name, subnetDetails(*h, map[string]any{"released": true,
		"nothing_to_remove": why})); err != nil {
		return false, err
	}
	h.State, h.UpdatedAt = fabric.HostRemoved, now
	return true, nil
}

// subnetDetails adds to d (a new map when nil) the audit detail naming host h's subnet: its
// IPv4 subnet as "subnet", as ever, or for a host of an IPv6-only segment its IPv6 subnet as
// "subnet6".
func subnetDetails(h fabric.Host, d map[string]any) map[string]any {
	if d == nil {
		d = map[string]any{}
	}
	if h.Subnet.IsValid() || !h.Subnet6.IsValid() {
		d["subnet"] = h.Subnet.String()
	} else {
		d["subnet6"] = h.Subnet6.String()
	}
	return d
}

// releaseSubnetsTx puts host h's subnets, of each family it has, on their pools' free lists.
func releaseSubnetsTx(ctx context.Context, tx pgx.Tx, h fabric.Host) error {
	if h.Subnet.IsValid() {
		if _, err := tx.Exec(ctx, `INSERT INTO free_subnets (pool, subnet) VALUES ($1, $2) ON CONFLICT DO NOTHING`, h.Pool, h.Subnet); err != nil {
			return formatError(err)
		}
	}
	if !h.Subnet6.IsValid() {
		return nil
	}
	_, err := tx.Exec(ctx, `INSERT INTO free_subnets (pool, subnet) VALUES ($1, $2) ON CONFLICT DO NOTHING`, h.Pool6, h.Subnet6)
	return formatError(err)
}
