// Package events tells outgoing webhooks of changes and drift. Each event is queued, one River
// job and one webhook_deliveries row per matching webhook, in the transaction of the state
// change it tells of (postgres.EventSink); a worker POSTs it, signed, and retries on 5xx and
// on no answer until the retry deadline. Only the worker talks HTTP, with a timeout, so a
// slow receiver never slows registration or apply.
package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/returnpath/returnpath/internal/fabric"
)

// Queue is the River queue of deliveries, apart from the apply engine's so that a flood of
// deliveries never delays an apply.
const Queue = "returnpath_events"

// Config is the events block of the configuration, resolved.
type Config struct {
	Webhooks      []Webhook
	RetryDeadline time.Duration // how long a delivery is retried (default 1h)
	BaseURL       string        // ui.base_url: bodies link to the change there; "" for no link
	Timeout       time.Duration // one POST (default DefaultTimeout)
	// RetryBase is the wait before the first retry, doubled each time up to RetryMax
	// (defaults 5s and 5m).
	RetryBase, RetryMax time.Duration
	Concurrency         int // deliveries at once in this process (default 4)
}

func (c *Config) defaults() {
	if c.RetryDeadline <= 0 {
		c.RetryDeadline = time.Hour
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.RetryBase <= 0 {
		c.RetryBase = 5 * time.Second
	}
	if c.RetryMax <= 0 {
		c.RetryMax = 5 * time.Minute
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 4
	}
}

// Store is what the dispatcher needs of the delivery store (postgres.Deliveries implements it).
type Store interface {
	InsertTx(ctx context.Context, tx pgx.Tx, list []fabric.Delivery) ([]int64, error)
	Delivery(ctx context.Context, id int64) (fabric.Delivery, error)
	RecordAttempt(ctx context.Context, id int64, status fabric.DeliveryStatus, code int, lastError string) error
}

// Inserter queues River jobs inside a transaction (a *river.Client does).
type Inserter interface {
	InsertManyTx(ctx context.Context, tx pgx.Tx, params []river.InsertManyParams) ([]*rivertype.JobInsertResult, error)
}

// Dispatcher queues and delivers events.
type Dispatcher struct {
	cfg      Config
	pool     *pgxpool.Pool
	store    Store
	inserter Inserter
	hooks    map[string]Webhook
	clients  map[string]*http.Client
	log      *slog.Logger
	outcomes *prometheus.CounterVec
}

// New returns the dispatcher. Register its worker on a River client, and give it that client
// (SetInserter) before it is connected to the change store (postgres.Changes.SetEventSink).
func New(cfg Config, pool *pgxpool.Pool, store Store, log *slog.Logger, reg prometheus.Registerer) (*Dispatcher, error) {
	cfg.defaults()
	d := &Dispatcher{cfg: cfg, pool: pool, store: store, log: log, hooks: map[string]Webhook{}, clients: map[string]*http.Client{},
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "returnpath_webhook_deliveries_total",
			Help: "Webhook delivery attempts by webhook and outcome (delivered, retried, failed).",
		}, []string{"webhook", "outcome"})}
	for _, w := range cfg.Webhooks {
		d.hooks[w.Name] = w
		d.clients[w.Name] = w.Client(cfg.Timeout)
	}
	if reg != nil {
		if err := reg.Register(d.outcomes); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// SetInserter gives the dispatcher the River client its jobs are queued with.
func (d *Dispatcher) SetInserter(i Inserter) { d.inserter = i }

// Register adds the delivery worker to workers.
func (d *Dispatcher) Register(workers *river.Workers) error {
	return river.AddWorkerSafely[deliverArgs](workers, &worker{d: d})
}

// QueueConfig is the River configuration of Queue.
func (d *Dispatcher) QueueConfig() river.QueueConfig {
	return river.QueueConfig{MaxWorkers: d.cfg.Concurrency}
}

type deliverArgs struct {
	Delivery int64 `json:"delivery"`
}

func (deliverArgs) Kind() string { return "returnpath_webhook_delivery" }

// maxJobAttempts is only a backstop: the retry deadline ends a delivery long before.
const maxJobAttempts = 1000

// EmitTx queues, inside tx, one delivery of each event to each webhook that wants it
// (postgres.EventSink).
func (d *Dispatcher) EmitTx(ctx context.Context, tx pgx.Tx, events []fabric.Event) error {
	var list []fabric.Delivery
	for _, e := range events {
		for _, w := range d.cfg.Webhooks {
			if !w.Subscription.Wants(e) {
				continue
			}
			body, err := Body(e, w.Format, d.cfg.BaseURL)
			if err != nil {
				return fmt.Errorf("webhook %s: %w", w.Name, err)
			}
			dl := fabric.Delivery{Webhook: w.Name, Event: e.Kind, Body: body}
			if e.Change != nil {
				dl.ChangeID = e.Change.ID
			}
			list = append(list, dl)
		}
	}
	if len(list) == 0 {
		return nil
	}
	if d.inserter == nil {
		return fabric.Errorf(fabric.EINTERNAL, "webhook deliveries have no queue")
	}
	ids, err := d.store.InsertTx(ctx, tx, list)
	if err != nil {
		return err
	}
	params := make([]river.InsertManyParams, len(ids))
	for i, id := range ids {
		params[i] = river.InsertManyParams{Args: deliverArgs{Delivery: id}, InsertOpts: &river.InsertOpts{Queue: Queue, MaxAttempts: maxJobAttempts}}
	}
	_, err = d.inserter.InsertManyTx(ctx, tx, params)
	return err
}

// Emit queues events in a transaction of their own: for events that change no state in the
// database, such as drift found by the periodic check.
func (d *Dispatcher) Emit(ctx context.Context, events []fabric.Event) error {
	return pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error { return d.EmitTx(ctx, tx, events) })
}

// worker delivers one delivery per job.
type worker struct {
	river.WorkerDefaults[deliverArgs]
	d *Dispatcher
}

// Timeout leaves the POST its own timeout and time to record the outcome.
func (w *worker) Timeout(*river.Job[deliverArgs]) time.Duration {
	return w.d.cfg.Timeout + 30*time.Second
}

// NextRetry backs off from RetryBase to RetryMax.
func (w *worker) NextRetry(j *river.Job[deliverArgs]) time.Time {
	return time.Now().Add(fabric.DeliveryBackoff(j.Attempt, w.d.cfg.RetryBase, w.d.cfg.RetryMax))
}

func (w *worker) Work(ctx context.Context, j *river.Job[deliverArgs]) error {
	d := w.d
	dl, err := d.store.Delivery(ctx, j.Args.Delivery)
	if fabric.ErrorCode(err) == fabric.ENOTFOUND {
		return nil
	}
	if err != nil {
		return err
	}
	if dl.Status != fabric.DeliveryPending {
		return nil // delivered already: a job River ran again after a crash
	}
	hook, ok := d.hooks[dl.Webhook]
	if !ok {
		d.outcomes.WithLabelValues(dl.Webhook, "failed").Inc()
		d.log.Warn("webhook delivery dropped: the webhook is no longer configured", "webhook", dl.Webhook, "delivery", dl.ID)
		return d.store.RecordAttempt(context.WithoutCancel(ctx), dl.ID, fabric.DeliveryFailed, 0,
			fmt.Sprintf("webhook %s is no longer configured", dl.Webhook))
	}
	ans, postErr := hook.Post(ctx, d.clients[hook.Name], strconv.FormatInt(dl.ID, 10), string(dl.Event), dl.Body)
	if postErr != nil && ctx.Err() != nil {
		// The process is stopping: the attempt did not happen as far as anyone can tell.
		// River runs the job again, here or in the next process.
		return ctx.Err()
	}
	status, retry := fabric.DecideDelivery(ans.Status, time.Since(dl.CreatedAt), d.cfg.RetryDeadline)
	lastErr := ""
	switch {
	case postErr != nil:
		lastErr = postErr.Error()
	case status != fabric.DeliveryDelivered:
		lastErr = fmt.Sprintf("the receiver answered %d %s", ans.Status, http.StatusText(ans.Status))
	}
	if status == fabric.DeliveryFailed && fabric.DeliveryRetryable(ans.Status) {
		lastErr += fmt.Sprintf(" (gave up after events.retry_deadline %s)", d.cfg.RetryDeadline)
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := d.store.RecordAttempt(rctx, dl.ID, status, ans.Status, lastErr); err != nil {
		return err
	}
	outcome := map[fabric.DeliveryStatus]string{fabric.DeliveryDelivered: "delivered", fabric.DeliveryFailed: "failed", fabric.DeliveryPending: "retried"}[status]
	d.outcomes.WithLabelValues(hook.Name, outcome).Inc()
	log := d.log.With("webhook", hook.Name, "delivery", dl.ID, "event", dl.Event, "attempt", j.Attempt, "status", ans.Status)
	switch {
	case retry:
		log.Info("webhook delivery will be retried", "err", lastErr)
		return errors.New(lastErr)
	case status == fabric.DeliveryFailed:
		log.Warn("webhook delivery failed", "err", lastErr)
	default:
		log.Debug("webhook delivered")
	}
	return nil
}
