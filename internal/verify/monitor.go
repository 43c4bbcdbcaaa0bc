package verify

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Drift kinds, the values of the kind label of returnpath_fabric_drift_routes.
const (
	KindMissing      = "missing"
	KindUnexpected   = "unexpected"
	KindWrongNextHop = "wrong_next_hop"
)

// Monitor runs the periodic drift check: every Interval it verifies the whole fabric, updates
// the drift gauges and, when something drifts, calls OnDrift.
type Monitor struct {
	verifier *Verifier
	interval time.Duration
	log      *slog.Logger

	// OnDrift, when set, is called after a check that found drift on at least one device,
	// with the full report. It is the hook for remediation (filing a "remediate" change that
	// restores intent, pending review); the monitor itself never changes a device.
	OnDrift func(ctx context.Context, r Report)

	drift       *prometheus.GaugeVec
	lastSuccess prometheus.Gauge
	reachable   *prometheus.GaugeVec
}

// NewMonitor returns a monitor that checks every interval (0 turns it off: Run returns at
// once) and registers its gauges on reg:
//
//   - returnpath_fabric_drift_routes{device,kind}: drifting routes per device and kind
//     (missing, unexpected, wrong_next_hop) at the last check that read the device;
//   - returnpath_verify_last_success_timestamp: Unix time of the last check that read every
//     device (drift or not);
//   - returnpath_fabric_device_reachable{device}: 1 when the last check read the device.
func NewMonitor(v *Verifier, interval time.Duration, reg prometheus.Registerer, log *slog.Logger) (*Monitor, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Monitor{
		verifier: v,
		interval: interval,
		log:      log,
		drift: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "returnpath_fabric_drift_routes",
			Help: "Routes on a device that differ from intent at the last drift check, by kind (missing, unexpected, wrong_next_hop).",
		}, []string{"device", "kind"}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "returnpath_verify_last_success_timestamp",
			Help: "Unix time of the last drift check that could read every device.",
		}),
		reachable: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "returnpath_fabric_device_reachable",
			Help: "1 when the last drift check could read the device, 0 when it could not.",
		}, []string{"device"}),
	}
	for _, c := range []prometheus.Collector{m.drift, m.lastSuccess, m.reachable} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Run checks once at start and then every interval until ctx is done. With a zero interval it
// returns at once: the check is off.
func (m *Monitor) Run(ctx context.Context) {
	if m.interval <= 0 {
		return
	}
	t := time.NewTicker(m.interval)
	defer t.Stop()
	for {
		if _, err := m.Check(ctx); err != nil && ctx.Err() == nil {
			m.log.Error("drift check", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Check verifies the whole fabric once, updates the gauges and calls OnDrift on drift. A
// device that could not be read keeps its last drift figures and is marked unreachable.
func (m *Monitor) Check(ctx context.Context) (Report, error) {
	// The periodic check reads every device: a shared reading would hide drift made since.
	r, err := m.verifier.Verify(ctx, Filter{Fresh: true})
	if err != nil {
		return r, err
	}
	for _, d := range r.Devices {
		if d.Status == StatusUnreachable {
			m.reachable.WithLabelValues(d.Device).Set(0)
			m.log.Warn("drift check could not read a device", "device", d.Device, "kind", d.ErrorKind, "err", d.Error)
			continue
		}
		m.reachable.WithLabelValues(d.Device).Set(1)
		m.drift.WithLabelValues(d.Device, KindMissing).Set(float64(len(d.Missing)))
		m.drift.WithLabelValues(d.Device, KindUnexpected).Set(float64(len(d.Unexpected)))
		m.drift.WithLabelValues(d.Device, KindWrongNextHop).Set(float64(len(d.WrongNextHop)))
		if d.Status == StatusDrift {
			m.log.Warn("drift", "device", d.Device, "missing", len(d.Missing), "unexpected", len(d.Unexpected), "wrong_next_hop", len(d.WrongNextHop))
		}
	}
	if r.Unreachable() == 0 {
		m.lastSuccess.Set(float64(r.CheckedAt.UnixNano()) / 1e9)
	}
	if r.Drifted() > 0 && m.OnDrift != nil {
		m.OnDrift(ctx, r)
	}
	return r, nil
}

// DriftRoutes returns the returnpath_fabric_drift_routes gauge.
func (m *Monitor) DriftRoutes() *prometheus.GaugeVec { return m.drift }

// LastSuccess returns the returnpath_verify_last_success_timestamp gauge.
func (m *Monitor) LastSuccess() prometheus.Gauge { return m.lastSuccess }
