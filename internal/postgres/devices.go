package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/returnpath/returnpath/internal/fabric"
)

// wakeTx makes sure an apply job will run for each device after tx commits, inserting one only
// where none is queued yet (returnpath_wake in migrations/0004 and 0015): a device never has more than
// one apply job waiting, however many changes and processes want it.
func (c *Changes) wakeTx(ctx context.Context, tx pgx.Tx, devices []string) error {
	if c.enq == nil || len(devices) == 0 {
		return nil
	}
	rows, err := tx.Query(ctx, `SELECT d FROM returnpath_wake($1) AS d`, devices)
	if err != nil {
		return formatError(err)
	}
	wake, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(wake) == 0 {
		return formatError(err)
	}
	// The jobs are queued to run at once, even for a device in its login backoff: the job
	// then snoozes for the rest of it, which River times precisely, where a job scheduled for
	// later waits for River's scheduler (every 5 s).
	return c.enq.EnqueueTx(ctx, tx, wake)
}

// DeviceWork is what an apply job learns when it begins a device's work.
type DeviceWork struct {
	// Wait > 0: the device's login backoff has that long to run; the job has not begun.
	Wait time.Duration
	// Unsettled: an earlier session's outcome is unknown, and the device may still be
	// working through what it was sent.
	Unsettled bool
}

// BeginDeviceWork is called by an apply job for device before it reads the device's ready
// ops. If the device's retry schedule allows a login now, it marks the job's work as started
// (new work from now on queues a new job); otherwise it changes nothing and says how long to
// wait.
func (c *Changes) BeginDeviceWork(ctx context.Context, device string) (DeviceWork, error) {
	for {
		now := c.db.Now()
		var started, unsettled bool
		var next *time.Time
		err := c.db.Pool.QueryRow(ctx, `
			WITH upd AS (UPDATE device_schedule SET job_queued = false
			             WHERE device = $1 AND (next_attempt_at IS NULL OR next_attempt_at <= $2) RETURNING 1)
			SELECT EXISTS (SELECT 1 FROM upd) OR NOT EXISTS (SELECT 1 FROM device_schedule WHERE device = $1),
			       (SELECT next_attempt_at FROM device_schedule WHERE device = $1),
			       coalesce((SELECT unsettled FROM device_schedule WHERE device = $1), false)`,
			device, now).Scan(&started, &next, &unsettled)
		if err != nil {
			return DeviceWork{}, formatError(err)
		}
		if started {
			// A device new to this database gets its row (nobody could have queued a job
			// through its flag yet).
			_, err := c.db.Pool.Exec(ctx, `INSERT INTO device_schedule (device) VALUES ($1) ON CONFLICT DO NOTHING`, device)
			return DeviceWork{Unsettled: unsettled}, formatError(err)
		}
		if next != nil && next.After(now) {
			// The job stays the device's queued job through its snooze: say so, so that the
			// kicker does not take it for lost.
			if _, err := c.db.Pool.Exec(ctx, `UPDATE device_schedule SET queued_at = now() WHERE device = $1 AND job_queued`, device); err != nil {
				return DeviceWork{}, formatError(err)
			}
			return DeviceWork{Wait: next.Sub(now), Unsettled: unsettled}, nil
		}
		// The schedule changed under the statement's snapshot: read it again.
	}
}

// DeviceUnreachable records a session that could not reach device, or whose outcome is unknown
// (unsettled): the device's failure count grows, its next login waits fabric.LoginBackoff, and
// an apply job is queued for then (unless one is queued already). An unsettled device stays so
// until a session finds it settled (DeviceReachable). It returns when the next login may happen.
func (c *Changes) DeviceUnreachable(ctx context.Context, device, reason string, unsettled bool) (time.Time, error) {
	var next time.Time
	err := c.db.inTx(ctx, func(tx pgx.Tx) error {
		var failures int
		err := tx.QueryRow(ctx, `
			INSERT INTO device_schedule (device, failures) VALUES ($1, 1)
			ON CONFLICT (device) DO UPDATE SET failures = device_schedule.failures + 1
			RETURNING failures`, device).Scan(&failures)
		if err != nil {
			return formatError(err)
		}
		next = c.db.Now().Add(fabric.LoginBackoff(failures))
		if _, err := tx.Exec(ctx, `UPDATE device_schedule SET next_attempt_at = $2, last_error = $3, unsettled = unsettled OR $4
			WHERE device = $1`, device, next, reason, unsettled); err != nil {
			return formatError(err)
		}
		return c.wakeTx(ctx, tx, []string{device})
	})
	return next, err
}

// DeviceReachable records a session that reached device and found it settled: its retry
// schedule starts over.
func (c *Changes) DeviceReachable(ctx context.Context, device string) error {
	_, err := c.db.Pool.Exec(ctx, `UPDATE device_schedule SET failures = 0, next_attempt_at = NULL, last_error = NULL, unsettled = false
		WHERE device = $1 AND (failures > 0 OR next_attempt_at IS NOT NULL OR unsettled)`, device)
	return formatError(err)
}

// WakeDevicesWithWork queues an apply job for every device that has ready ops and none
// queued: the safety net for work whose job was lost. A device whose flag says a job is queued
// is repaired first when no job of kind jobKind waits for it (River discarded or cancelled it),
// nobody holds its apply lock, and the flag is older than flagGrace: the job that set it died
// with its process before it began (River shows it "running" until it rescues it, minutes
// later). The grace keeps a live job that was just fetched, and has not taken the lock yet,
// from being taken for lost.
func (c *Changes) WakeDevicesWithWork(ctx context.Context, jobKind string) error {
	rows, err := c.db.Pool.Query(ctx, `
		SELECT device FROM device_schedule s WHERE job_queued AND queued_at < now() - make_interval(secs => $2) AND NOT EXISTS (
			SELECT 1 FROM river_job j WHERE j.kind = $1 AND j.args->>'device' = s.device
			AND j.state IN ('available', 'pending', 'retryable', 'scheduled'))`, jobKind, flagGrace.Seconds())
	if err != nil {
		return formatError(err)
	}
	suspects, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return formatError(err)
	}
	for _, d := range suspects {
		unlock, free, err := c.db.TryLockDevice(ctx, d)
		if err != nil {
			return err
		}
		if !free {
			continue // a live job works the device and will see new work
		}
		_, err = c.db.Pool.Exec(ctx, `UPDATE device_schedule s SET job_queued = false WHERE device = $1 AND job_queued AND NOT EXISTS (
			SELECT 1 FROM river_job j WHERE j.kind = $2 AND j.args->>'device' = s.device
			AND j.state IN ('available', 'pending', 'retryable', 'scheduled'))`, d, jobKind)
		unlock()
		if err != nil {
			return formatError(err)
		}
	}
	return c.db.inTx(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `
			SELECT DISTINCT o.device FROM change_ops o JOIN changes c ON c.id = o.change_id
			WHERE o.status = 'pending' AND c.status IN ('approved', 'applying') ORDER BY 1`)
		if err != nil {
			return formatError(err)
		}
		devices, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return formatError(err)
		}
		return c.wakeTx(ctx, tx, devices)
	})
}

// flagGrace is how old a job_queued flag must be before the kicker may take its job for lost.
const flagGrace = 10 * time.Second

// DeviceSchedule is a device's retry state, for the API and the CLI.
type DeviceSchedule struct {
	Device        string
	Failures      int
	NextAttemptAt *time.Time
	LastError     string
}

// DeviceSchedules returns the retry state of every device the engine has worked.
func (c *Changes) DeviceSchedules(ctx context.Context) ([]DeviceSchedule, error) {
	rows, err := c.db.Pool.Query(ctx, `SELECT device, failures, next_attempt_at, coalesce(last_error, '')
		FROM device_schedule ORDER BY device`)
	if err != nil {
		return nil, formatError(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (DeviceSchedule, error) {
		var s DeviceSchedule
		err := r.Scan(&s.Device, &s.Failures, &s.NextAttemptAt, &s.LastError)
		return s, err
	})
	return out, formatError(err)
}

// TryDeviceSession takes one of max concurrent session slots for device, shared by apply,
// verify and drift checks across every process on this database. ok is false when all are in
// use. Like TryLockDevice, the slot is a session-level advisory lock on a connection of its
// own, and dies with it.
func (db *DB) TryDeviceSession(ctx context.Context, device string, max int) (release func(), ok bool, err error) {
	conn, err := db.Pool.Acquire(ctx)
	if err != nil {
		return nil, false, formatError(err)
	}
	var slot *int
	// One statement tries every slot in turn and stops at the first it gets.
	err = conn.QueryRow(ctx, `
		SELECT s FROM generate_series(0, $2 - 1) AS s
		WHERE pg_try_advisory_lock(hashtext('returnpath.session.' || $1), s) LIMIT 1`, device, max).Scan(&slot)
	if errors.Is(err, pgx.ErrNoRows) {
		conn.Release()
		return nil, false, nil
	}
	if err != nil {
		conn.Release()
		return nil, false, formatError(err)
	}
	return func() {
		_, err := conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(hashtext('returnpath.session.' || $1), $2)`, device, *slot)
		if err != nil {
			_ = conn.Conn().Close(context.WithoutCancel(ctx))
		}
		conn.Release()
	}, true, nil
}

// WantDeviceSession tells every process (ChannelSessionWant) that a caller waits for one of a
// device's session slots, so that a process keeping an idle session to it open lets it go.
// request names the device and the asking process (session.Devices.WantRequest).
func (db *DB) WantDeviceSession(ctx context.Context, request string) error {
	_, err := db.Pool.Exec(ctx, `SELECT pg_notify($1, $2)`, ChannelSessionWant, request)
	return formatError(err)
}
