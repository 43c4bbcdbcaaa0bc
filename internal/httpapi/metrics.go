package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/returnpath/returnpath/internal/fabric"
)

// Metrics is the service's Prometheus registry. Other packages register their collectors on
// Registry so that /metrics serves everything.
type Metrics struct {
	Registry *prometheus.Registry
	requests *prometheus.HistogramVec
	probes   *prometheus.CounterVec
}

func newMetrics(s *Server) *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "returnpath_http_request_duration_seconds",
			Help:    "HTTP request latency by route pattern, method and status code.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"route", "method", "code"}),
		probes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "returnpath_probes_total",
			Help: "Return-path probes the hosts reported to this process, by result (ok, failed).",
		}, []string{"result"}),
	}
	for _, r := range []fabric.ProbeResult{fabric.ProbeOK, fabric.ProbeFailed} {
		m.probes.WithLabelValues(string(r)) // present at 0 before the first report
	}
	// The usual build_info idiom: a constant 1 whose labels say which build runs, so that
	// dashboards can join on it and alerts can spot replicas left on an old version.
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "returnpath_build_info",
		Help:        "Always 1; the labels say which build of returnpath this process runs.",
		ConstLabels: prometheus.Labels{"version": s.cfg.Build.Version, "commit": s.cfg.Build.Commit, "go_version": s.cfg.Build.GoVersion},
	})
	build.Set(1)
	m.Registry.MustRegister(m.requests, m.probes, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&registryCollector{s: s}, build)
	return m
}

func (m *Metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// observe records each request's latency under its route pattern (never the raw path, which
// would explode the label set) and logs it.
func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		route := "unmatched"
		if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
			route = rc.RoutePattern()
		}
		took := time.Since(start)
		s.metrics.requests.WithLabelValues(route, r.Method, strconv.Itoa(sw.status)).Observe(took.Seconds())
		if route != "/metrics" && route != "/healthz" {
			s.log.LogAttrs(r.Context(), levelFor(sw.status), "request",
				slog.String("request_id", requestID(r.Context())), slog.String("method", r.Method), slog.String("route", route),
				slog.String("path", r.URL.Path), slog.Int("status", sw.status), slog.Float64("took_ms", float64(took.Microseconds())/1000), slog.String("actor", callerName(r.Context())))
		}
	})
}

// registryCollector reads hosts by state and pool utilisation from the database at scrape time.
type registryCollector struct{ s *Server }

var (
	hostsDesc     = prometheus.NewDesc("returnpath_hosts", "Registered hosts by state.", []string{"state"}, nil)
	poolAllocDesc = prometheus.NewDesc("returnpath_pool_allocated_subnets", "Subnets held by live hosts, per pool.", []string{"pool"}, nil)
	poolSizeDesc  = prometheus.NewDesc("returnpath_pool_size_subnets", "Subnets a pool holds in all.", []string{"pool"}, nil)
	poolUtilDesc  = prometheus.NewDesc("returnpath_pool_utilisation_ratio", "Allocated share of each pool, 0 to 1.", []string{"pool"}, nil)
	probeFailDesc = prometheus.NewDesc("returnpath_hosts_probe_failing", "Active hosts whose last return-path probe got no reply.", nil, nil)
	staleDesc     = prometheus.NewDesc("returnpath_hosts_stale", "Pending and active hosts whose lease is past its expiry and grace (0 with leases off).", nil, nil)
)

func (c *registryCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- hostsDesc
	ch <- poolAllocDesc
	ch <- poolSizeDesc
	ch <- poolUtilDesc
	ch <- probeFailDesc
	ch <- staleDesc
}

func (c *registryCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if states, err := c.s.store.HostsByState(ctx); err == nil {
		for _, st := range []string{"pending", "active", "removing", "removed"} {
			ch <- prometheus.MustNewConstMetric(hostsDesc, prometheus.GaugeValue, float64(states[fabric.HostState(st)]), st)
		}
	}
	if pc, ok := c.s.store.(ProbeCounter); ok {
		if n, err := pc.HostsFailingProbe(ctx); err == nil {
			ch <- prometheus.MustNewConstMetric(probeFailDesc, prometheus.GaugeValue, float64(n))
		}
	}
	if lr, ok := c.s.hosts.(LeaseRegistry); ok {
		if n, err := lr.CountStale(ctx); err == nil {
			ch <- prometheus.MustNewConstMetric(staleDesc, prometheus.GaugeValue, float64(n))
		}
	}
	if usage, err := c.s.store.PoolUsage(ctx, c.s.inv.Load()); err == nil {
		for _, u := range usage {
			size := float64(u.Pool.Size())
			ch <- prometheus.MustNewConstMetric(poolAllocDesc, prometheus.GaugeValue, float64(u.Allocated), u.Pool.Name)
			ch <- prometheus.MustNewConstMetric(poolSizeDesc, prometheus.GaugeValue, size, u.Pool.Name)
			ch <- prometheus.MustNewConstMetric(poolUtilDesc, prometheus.GaugeValue, float64(u.Allocated)/size, u.Pool.Name)
		}
	}
}

func levelFor(status int) slog.Level {
	if status >= 500 {
		return slog.LevelError
	}
	return slog.LevelInfo
}

func callerName(ctx context.Context) string {
	if c, ok := ctx.Value(ctxCaller).(*caller); ok {
		return c.name
	}
	return ""
}
