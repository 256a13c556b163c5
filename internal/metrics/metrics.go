// Package metrics exposes the gateway's Prometheus metrics on a registry it
// is given (never the global one). It implements the observer interface the
// HTTP server reports to, and reads gauges from the audit recorder and the
// other components through small functions.
//
// No metric carries a per-user label: cardinality stays bounded by the
// configuration (routes, models, upstreams, policies, reason codes).
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/gatehouse-dev/gatehouse/internal/anthropic"
)

// Buckets for request latency and time to first byte: 5 ms to 10 min,
// because model responses range from milliseconds (count_tokens) to long
// streams.
var latencyBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}

// Buckets for the gateway's own overhead: 50 µs to 1 s.
var overheadBuckets = []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1}

// Metrics holds every collector.
type Metrics struct {
	reg *prometheus.Registry

	requests       *prometheus.CounterVec
	latency        *prometheus.HistogramVec
	ttfb           *prometheus.HistogramVec
	overhead       prometheus.Histogram
	tokens         *prometheus.CounterVec
	upstreamErrors *prometheus.CounterVec
	authFailures   *prometheus.CounterVec
	limitDenials   *prometheus.CounterVec
	inFlight       prometheus.Gauge
	reloads        *prometheus.CounterVec
	propagation    prometheus.Histogram
}

// Gauges are read at scrape time from other components. Any may be nil.
type Gauges struct {
	AuditQueueDepth   func() float64
	AuditWriteSeconds func() float64 // total seconds spent writing (counter)
	AuditWrites       func() float64 // store writes (counter)
	AuditMaxWrite     func() float64 // longest single write, seconds
	AuditGaps         func() float64 // fail-open gaps (counter)
	AuditRefused      func() float64 // fail-closed refusals (counter)
	KeySetRefreshes   func() float64 // identity key-set fetches (counter)
	LimitsStoreErrors func() float64 // limits store calls that failed (counter)
	LimitsFailedOpen  func() float64 // requests admitted uncounted because the store failed (counter)
	LimitsFailClosed  func() float64 // requests refused because the store failed (counter)
}

// New registers every collector on a fresh registry.
func New(version string, g Gauges) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{reg: reg}
	f := func(c prometheus.Collector) { reg.MustRegister(c) }
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gatehouse_requests_total",
		Help: "Requests answered, by route, status code, model and upstream."}, []string{"route", "status", "model", "upstream"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "gatehouse_request_duration_seconds",
		Help: "Time from a request's arrival to its last response byte.", Buckets: latencyBuckets}, []string{"route", "model"})
	m.ttfb = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "gatehouse_time_to_first_byte_seconds",
		Help: "Time from a request's arrival to the first response byte (for streams: time to the first event).", Buckets: latencyBuckets}, []string{"route", "model"})
	m.overhead = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "gatehouse_overhead_seconds",
		Help: "The gateway's own time before a request is sent upstream: authentication, body checks, admission and the durable audit write.", Buckets: overheadBuckets})
	m.tokens = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gatehouse_tokens_total",
		Help: "Tokens used, by model and kind (input, output, cache_creation, cache_read)."}, []string{"model", "kind"})
	m.upstreamErrors = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gatehouse_upstream_errors_total",
		Help: "Upstream failures by upstream and class (unreachable, timeout, credential, rate_limited, overloaded, server_error, client_error, stream_broken)."}, []string{"upstream", "class"})
	m.authFailures = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gatehouse_auth_failures_total",
		Help: "Refused credentials by reason code."}, []string{"reason"})
	m.limitDenials = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gatehouse_limit_denials_total",
		Help: "Requests refused (or, in shadow mode, that would have been) by a policy rule."}, []string{"rule", "policy", "mode"})
	m.inFlight = prometheus.NewGauge(prometheus.GaugeOpts{Name: "gatehouse_requests_in_flight", Help: "Requests being served now."})
	m.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gatehouse_config_reloads_total",
		Help: "Configuration reloads by result (applied, rejected)."}, []string{"result"})
	m.propagation = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "gatehouse_revocation_propagation_seconds",
		Help: "Delay between a revocation being recorded and this replica enforcing it.", Buckets: []float64{.01, .05, .1, .25, .5, 1, 2, 5, 10, 30}})
	for _, c := range []prometheus.Collector{m.requests, m.latency, m.ttfb, m.overhead, m.tokens, m.upstreamErrors, m.authFailures, m.limitDenials, m.inFlight, m.reloads, m.propagation} {
		f(c)
	}
	gauge := func(name, help string, fn func() float64, counter bool) {
		if fn == nil {
			return
		}
		if counter {
			f(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, fn))
		} else {
			f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, fn))
		}
	}
	gauge("gatehouse_audit_queue_depth", "Audit records waiting to be written.", g.AuditQueueDepth, false)
	gauge("gatehouse_audit_write_seconds_total", "Total time spent in audit store writes.", g.AuditWriteSeconds, true)
	gauge("gatehouse_audit_writes_total", "Audit store write transactions.", g.AuditWrites, true)
	gauge("gatehouse_audit_write_max_seconds", "Longest single audit store write so far.", g.AuditMaxWrite, false)
	gauge("gatehouse_audit_gaps_total", "Requests served without a durable audit record (fail-open mode only).", g.AuditGaps, true)
	gauge("gatehouse_audit_refused_total", "Requests refused because the audit store could not be written (fail-closed).", g.AuditRefused, true)
	gauge("gatehouse_limits_store_errors_total", "Limits store (Redis) calls that failed.", g.LimitsStoreErrors, true)
	gauge("gatehouse_limits_failed_open_total", "Requests admitted without counting because the limits store failed (fail_mode open).", g.LimitsFailedOpen, true)
	gauge("gatehouse_limits_failed_closed_total", "Requests refused because the limits store failed (fail_mode closed).", g.LimitsFailClosed, true)
	gauge("gatehouse_keyset_refreshes_total", "Identity-provider key-set fetches.", g.KeySetRefreshes, true)
	bi := prometheus.NewGauge(prometheus.GaugeOpts{Name: "gatehouse_build_info", Help: "Build information.", ConstLabels: prometheus.Labels{"version": version}})
	bi.Set(1)
	f(bi)
	f(collectors.NewGoCollector())
	f(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry returns the registry (for tests and extra collectors).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the Prometheus text exposition.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// Request records one answered request. model and upstream must come from
// configuration (unknown models are reported as "other").
func (m *Metrics) Request(route string, status int, model, upstream string, latency, ttfb, overhead time.Duration, u anthropic.Usage) {
	m.requests.WithLabelValues(route, statusLabel(status), model, upstream).Inc()
	m.latency.WithLabelValues(route, model).Observe(latency.Seconds())
	if ttfb > 0 {
		m.ttfb.WithLabelValues(route, model).Observe(ttfb.Seconds())
	}
	if overhead > 0 {
		m.overhead.Observe(overhead.Seconds())
	}
	if u != (anthropic.Usage{}) {
		m.tokens.WithLabelValues(model, "input").Add(float64(u.InputTokens))
		m.tokens.WithLabelValues(model, "output").Add(float64(u.OutputTokens))
		m.tokens.WithLabelValues(model, "cache_creation").Add(float64(u.CacheCreationInputTokens))
		m.tokens.WithLabelValues(model, "cache_read").Add(float64(u.CacheReadInputTokens))
	}
}

// UpstreamError counts one upstream failure.
func (m *Metrics) UpstreamError(upstream, class string) {
	m.upstreamErrors.WithLabelValues(upstream, class).Inc()
}

// AuthFailure counts one refused credential.
func (m *Metrics) AuthFailure(reason string) { m.authFailures.WithLabelValues(reason).Inc() }

// LimitDenial counts one policy denial; mode is enforce or shadow.
func (m *Metrics) LimitDenial(rule, policy, mode string) {
	m.limitDenials.WithLabelValues(rule, policy, mode).Inc()
}

// InFlight adjusts the in-flight gauge.
func (m *Metrics) InFlight(delta int) { m.inFlight.Add(float64(delta)) }

// Reload counts a configuration reload.
func (m *Metrics) Reload(applied bool) {
	if applied {
		m.reloads.WithLabelValues("applied").Inc()
	} else {
		m.reloads.WithLabelValues("rejected").Inc()
	}
}

// RevocationPropagated observes how long a revocation took to arrive.
func (m *Metrics) RevocationPropagated(d time.Duration) { m.propagation.Observe(d.Seconds()) }

func statusLabel(s int) string {
	if s >= 100 && s < 600 {
		return itoa3(s)
	}
	return "other"
}

func itoa3(s int) string {
	return string([]byte{byte('0' + s/100), byte('0' + s/10%10), byte('0' + s%10)})
}
