package cli

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/audit/content"
	"github.com/gatehouse-dev/gatehouse/internal/audit/journal"
	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/limits"
	"github.com/gatehouse-dev/gatehouse/internal/metrics"
	"github.com/gatehouse-dev/gatehouse/internal/proxy"
	"github.com/gatehouse-dev/gatehouse/internal/server"
	"github.com/gatehouse-dev/gatehouse/internal/telemetry"
)

// gateway is everything `serve` runs. Its long-lived parts (audit trail,
// metrics, the limits counters) live as long as the process; the rest is a
// generation built from one configuration and swapped atomically on reload.
type gateway struct {
	log      *slog.Logger
	getenv   func(string) string
	recorder *audit.Recorder
	metrics  *metrics.Metrics
	tracing  *sdktrace.TracerProvider // nil when tracing is off; flushed by close
	instance string                   // audit.instance: this replica's name in the audit trail
	capture  *captureModes            // audit content capture, per mode
	closers  []func() error           // long-lived, run in reverse order by close

	cur    atomic.Pointer[generation]
	mu     sync.Mutex // serialises reloads
	retire sync.WaitGroup
}

// generation is the reloadable part of the gateway: identity, routing,
// governance and the handler built from one configuration.
type generation struct {
	cfg     *config.Config
	hash    [32]byte // of the file it came from
	handler http.Handler
	auth    authAdapter
	gov     *governance
	closers []func() error
	active  atomic.Int64 // requests being served by this generation
	retired atomic.Bool
}

func newLogger(w io.Writer, c config.Log) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: lvl}
	if c.Format == "text" {
		return slog.New(telemetry.NewLogHandler(slog.NewTextHandler(w, opts)))
	}
	return slog.New(telemetry.NewLogHandler(slog.NewJSONHandler(w, opts)))
}

// buildGateway wires every component from cfg. Only this step has side
// effects (opening the audit store, starting key refresh).
func buildGateway(ctx context.Context, cfg *config.Config, getenv func(string) string, log *slog.Logger) (g *gateway, err error) {
	g = &gateway{log: log, getenv: getenv}
	defer func() {
		if err != nil {
			g.close(context.Background())
			g = nil
		}
	}()

	store, inner, err := openAuditStore(ctx, cfg.Audit, log)
	if err != nil {
		return nil, err
	}
	g.closers = append(g.closers, store.Close)
	g.instance = auditInstance(cfg.Audit)
	// Only this instance's open records: with PostgreSQL other replicas'
	// requests may be in flight.
	if n, err := store.Recover(ctx, g.instance); err != nil {
		return nil, fmt.Errorf("audit: recovering records left open by a previous run: %w", err)
	} else if n > 0 {
		log.Warn("audit: records left open by a previous run were marked unfinished", slog.Int("records", n))
	}
	// Background work on the store (export, content retention) stops
	// before the store closes (closers run newest first).
	bgCtx, stopBG := context.WithCancel(context.Background())
	var bg sync.WaitGroup
	g.closers = append(g.closers, func() error { stopBG(); bg.Wait(); return nil })
	exporters, err := buildExporters(inner, cfg.Audit, os.Stdout, log)
	if err != nil {
		return nil, err
	}
	for _, x := range exporters {
		bg.Add(1)
		go func() { defer bg.Done(); _ = x.Run(bgCtx) }()
	}
	g.capture, err = buildCaptureModes(inner, cfg.Audit.Content)
	if err != nil {
		return nil, err
	}
	if cfg.Audit.Content.Retention > 0 {
		bg.Add(1)
		go func() {
			defer bg.Done()
			content.PurgeLoop(bgCtx, inner, cfg.Audit.Content.Retention, time.Hour, nil, func(n int, err error) {
				if err != nil {
					log.Warn("audit content retention: purge failed", slog.String("cause", err.Error()))
				} else if n > 0 {
					log.Info("audit content retention: purged captured content", slog.Int("records", n))
				}
			})
		}()
	}
	g.recorder = audit.NewRecorder(audit.RecorderOptions{
		Store:         store,
		FailOpen:      cfg.Audit.FailMode == "open",
		FlushInterval: cfg.Audit.FlushInterval,
		Logger:        log,
	})
	rec := g.recorder
	g.metrics = metrics.New(versionString(), metrics.Gauges{
		AuditQueueDepth:   func() float64 { st := rec.Stats(); return float64(st.BeginQueue + st.FinishQueue) },
		AuditWriteSeconds: func() float64 { return rec.Stats().WriteSeconds },
		AuditWrites:       func() float64 { st := rec.Stats(); return float64(st.BeginBatches + st.FinishBatches) },
		AuditMaxWrite:     func() float64 { return rec.Stats().MaxWriteLatency.Seconds() },
		AuditGaps:         func() float64 { return float64(rec.Stats().Gaps) },
		AuditRefused:      func() float64 { return float64(rec.Stats().Refused) },
		// The engine belongs to the current generation; its counters restart
		// on a reload, which Prometheus treats as a counter reset.
		LimitsStoreErrors: func() float64 { return float64(g.limitsStats().BackendErrors) },
		LimitsFailedOpen:  func() float64 { return float64(g.limitsStats().FailedOpen) },
		LimitsFailClosed:  func() float64 { return float64(g.limitsStats().FailedClosed) },
		KeySetRefreshes: func() float64 {
			if gen := g.cur.Load(); gen != nil && gen.auth.a != nil {
				return float64(gen.auth.a.KeySetFetches())
			}
			return 0
		},
	})

	if t := cfg.Tracing; t.Enabled() {
		g.tracing, err = telemetry.NewTracerProvider(ctx, telemetry.Options{
			Endpoint:    t.OTLPEndpoint,
			Headers:     t.HeaderValues(),
			SampleRatio: t.Ratio(),
			ServiceName: t.ServiceName,
			Version:     versionString(),
			Logger:      log,
		})
		if err != nil {
			return nil, err
		}
	}

	gen, err := g.buildGeneration(ctx, cfg, nil)
	if err != nil {
		return nil, err
	}
	g.cur.Store(gen)
	return g, nil
}

func (g *gateway) limitsStats() limits.Stats {
	if gen := g.cur.Load(); gen != nil && gen.gov != nil && gen.gov.Engine != nil {
		return gen.gov.Engine.Stats()
	}
	return limits.Stats{}
}

// buildGeneration builds the reloadable components from cfg. prev, when
// set, lends its limits counters so a reload resets nobody's usage.
func (g *gateway) buildGeneration(ctx context.Context, cfg *config.Config, prev *generation) (gen *generation, err error) {
	gen = &generation{cfg: cfg}
	defer func() {
		if err != nil {
			gen.close(g.log)
			gen = nil
		}
	}()
	log := g.log
	auth, err := buildAuthenticator(ctx, cfg, log, g.metrics)

	if err != nil {
		return nil, err
	}
	gen.auth = auth
	gen.closers = append(gen.closers, func() error { auth.Close(); return nil })

	dispatcher, err := buildDispatcher(cfg, g.getenv, log)
	if err != nil {
		return nil, err
	}
	fwd := proxy.New(proxy.Options{
		Dispatcher:       dispatcher,
		Logger:           log,
		WriteIdleTimeout: cfg.Server.WriteIdleTimeout,
	})

	var prevGov *governance
	if prev != nil {
		prevGov = prev.gov
	}
	gen.gov, err = buildGovernanceReusing(ctx, cfg, log, prevGov)
	if err != nil {
		return nil, err
	}
	gen.closers = append(gen.closers, gen.gov.Close)

	var metricsHandler http.Handler
	if cfg.MetricsListen == "" {
		metricsHandler = g.metrics.Handler()
	}
	var tracer *telemetry.Tracer // nil: tracing off
	if g.tracing != nil {
		ups := make([]telemetry.Upstream, 0, len(cfg.Upstreams))
		for _, u := range cfg.Upstreams {
			ups = append(ups, telemetry.Upstream{Name: u.Name, BaseURL: u.BaseURL, Provider: u.Provider})
		}
		tracer = telemetry.NewTracer(g.tracing, ups...)
	}
	models := make([]server.Model, 0, len(cfg.Models))
	for _, m := range cfg.Models {
		models = append(models, server.Model{
			ID: m.ID, DisplayName: m.DisplayName, Description: m.Description, CreatedAt: m.CreatedAt,
			FamilyDefault: m.FamilyDefault, Upstream: m.Upstream, UpstreamModel: m.UpstreamModel,
		})
	}
	gen.handler = server.New(server.Options{
		Auth:               &gen.auth,
		Audit:              g.recorder,
		Forward:            fwd,
		Models:             models,
		MaxBodyBytes:       cfg.Server.MaxBodyBytes,
		MaxRequestDuration: cfg.Server.MaxRequestDuration,
		Logger:             log,
		Observer:           g.metrics,
		Metrics:            metricsHandler,
		Admit:              &admitAdapter{e: gen.gov.Engine, m: g.metrics, log: log},
		Tracer:             tracer,
		Instance:           g.instance,
		Capture:            g.capture,
	})
	return gen, nil
}

func (gen *generation) close(log *slog.Logger) {
	for i := len(gen.closers) - 1; i >= 0; i-- {
		if err := gen.closers[i](); err != nil {
			log.Warn("closing a retired configuration generation", slog.String("cause", err.Error()))
		}
	}
}

// ServeHTTP serves each request on the generation current when it arrived;
// a request keeps its generation to the end, so streams survive reloads.
func (g *gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	for {
		gen := g.cur.Load()
		gen.active.Add(1)
		if gen.retired.Load() { // swapped out between Load and Add: take the new one
			gen.active.Add(-1)
			continue
		}
		defer gen.active.Add(-1)
		gen.handler.ServeHTTP(w, r)
		return
	}
}

// reload validates the configuration file at path and, if it is good,
// builds and swaps in a new generation. A bad file or a failed build keeps
// the current generation serving. Either way the attempt is logged, counted
// and written to the audit trail.
func (g *gateway) reload(ctx context.Context, path, trigger string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	old := g.cur.Load()
	data, err := os.ReadFile(path)
	if err != nil {
		return g.reloadRejected(ctx, path, trigger, err)
	}
	sum := sha256.Sum256(data)
	if trigger == "file_change" && sum == old.hash {
		return nil
	}
	cfg, err := config.Parse(data, g.getenv)
	if err != nil {
		return g.reloadRejected(ctx, path, trigger, err)
	}
	if fixed := restartOnly(old.cfg, cfg); len(fixed) > 0 {
		g.log.Warn("configuration reload: these settings take effect only after a restart; the running values are kept",
			slog.String("settings", strings.Join(fixed, ", ")))
	}
	gen, err := g.buildGeneration(ctx, cfg, old)
	if err != nil {
		return g.reloadRejected(ctx, path, trigger, err)
	}
	gen.hash = sum
	g.cur.Store(gen)
	old.retired.Store(true)
	g.retire.Add(1)
	go func() {
		defer g.retire.Done()
		deadline := time.Now().Add(old.cfg.Server.MaxRequestDuration + time.Minute)
		for old.active.Load() > 0 && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		old.close(g.log)
	}()
	g.metrics.Reload(true)
	g.log.Info("configuration reloaded", slog.String("path", path), slog.String("trigger", trigger),
		slog.Int("models", len(cfg.Models)), slog.Int("upstreams", len(cfg.Upstreams)))
	g.auditReload(ctx, path, trigger, nil)
	return nil
}

func (g *gateway) reloadRejected(ctx context.Context, path, trigger string, err error) error {
	g.metrics.Reload(false)
	g.log.Error("configuration reload refused; the previous configuration keeps serving",
		slog.String("path", path), slog.String("trigger", trigger), slog.String("problems", err.Error()))
	g.auditReload(ctx, path, trigger, err)
	return err
}

// auditReload writes the reload (or its refusal) to the audit trail.
func (g *gateway) auditReload(ctx context.Context, path, trigger string, cause error) {
	rec := &audit.Record{
		RequestID: newEventID(), Time: time.Now().UTC(), Method: "RELOAD", Path: path,
		UserName: "gatehouse (" + trigger + ")", State: audit.StateCompleted, Status: http.StatusOK, Reason: "config_reloaded",
		Instance: g.instance,
	}
	if cause != nil {
		rec.State, rec.Status, rec.ErrorType, rec.Reason = audit.StateDenied, http.StatusBadRequest, "invalid_config", "config_rejected"
	}
	if err := g.recorder.Begin(ctx, rec); err != nil {
		g.log.Error("audit record of a configuration reload could not be written", slog.String("cause", err.Error()))
	}
}

func newEventID() string { return "gh_evt_" + randomHex(12) }

// restartOnly lists the settings that differ between a and b but are bound
// at start-up (listeners, audit store, TLS files, HTTP server limits).
func restartOnly(a, b *config.Config) []string {
	var out []string
	check := func(name string, x, y any) {
		if !reflect.DeepEqual(x, y) {
			out = append(out, name)
		}
	}
	check("listen", a.Listen, b.Listen)
	check("metrics_listen", a.MetricsListen, b.MetricsListen)
	check("debug_listen", a.DebugListen, b.DebugListen)
	check("audit", a.Audit, b.Audit)
	check("log", a.Log, b.Log)
	check("tracing", a.Tracing, b.Tracing)
	check("server.tls", a.Server.TLS, b.Server.TLS)
	check("server.read_header_timeout", a.Server.ReadHeaderTimeout, b.Server.ReadHeaderTimeout)
	check("server.read_timeout", a.Server.ReadTimeout, b.Server.ReadTimeout)
	check("server.idle_timeout", a.Server.IdleTimeout, b.Server.IdleTimeout)
	check("server.max_header_bytes", a.Server.MaxHeaderBytes, b.Server.MaxHeaderBytes)
	check("server.shutdown_timeout", a.Server.ShutdownTimeout, b.Server.ShutdownTimeout)
	return out
}

// close flushes the audit trail and releases everything.
func (g *gateway) close(ctx context.Context) error {
	var errs []error
	g.retire.Wait()
	if gen := g.cur.Load(); gen != nil {
		gen.close(g.log)
	}
	if g.recorder != nil {
		if err := g.recorder.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("audit: flushing: %w", err))
		}
	}
	for i := len(g.closers) - 1; i >= 0; i-- {
		if err := g.closers[i](); err != nil {
			errs = append(errs, err)
		}
	}
	if g.tracing != nil {
		// Export the spans of the requests that just finished. A collector
		// that is down costs at most 5 s and never fails the exit.
		tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if err := g.tracing.Shutdown(tctx); err != nil {
			g.log.Warn("tracing: spans not flushed at shutdown", slog.String("cause", err.Error()))
		}
		cancel()
	}
	return errors.Join(errs...)
}

// recoveringStore is an audit store that can close records a crash left open.
type recoveringStore interface {
	audit.Store
	Recover(ctx context.Context, instance string) (int, error)
}

// openAuditStore opens the configured store. A SQLite store gets the
// journal in front (the write before forwarding is one append, decisions
// D1); with PostgreSQL that write is a committed transaction. inner is the
// store itself, for exporters, content and verification.
func openAuditStore(ctx context.Context, c config.Audit, log *slog.Logger) (recoveringStore, auditInner, error) {
	inner, err := openAuditInner(ctx, c, log)
	if err != nil {
		return nil, nil, err
	}
	if c.Postgres != "" {
		return inner, inner, nil
	}
	j, err := journal.Open(ctx, inner, journal.Options{Dir: c.SQLite + ".journal", Sync: c.Sync, Logger: log})
	if err != nil {
		inner.Close()
		return nil, nil, fmt.Errorf("audit: opening the journal of %s: %w", c.SQLite, err)
	}
	return j, inner, nil
}

// captureModes holds a capturer for each content-capture mode the
// configuration can ask for, so a policy can override the gateway-wide
// mode per user.
type captureModes struct {
	global string
	byMode map[string]*content.Capturer
}

func buildCaptureModes(st content.Store, c config.AuditContent) (*captureModes, error) {
	cm := &captureModes{global: c.Capture, byMode: map[string]*content.Capturer{}}
	if cm.global == "" {
		cm.global = content.ModeOff
	}
	for _, mode := range []string{content.ModeMetadata, content.ModeRedacted, content.ModeFull} {
		mc := c
		mc.Capture = mode
		if (mode == content.ModeRedacted || mode == content.ModeFull) && len(c.Keys) == 0 {
			continue // config validation refuses policies asking for these without keys
		}
		cp, err := buildCapturer(st, mc)
		if err != nil {
			return nil, err
		}
		cm.byMode[mode] = cp
	}
	return cm, nil
}

// Mode implements server.Capturer.
func (cm *captureModes) Mode() string { return cm.global }

// Capture implements server.Capturer.
func (cm *captureModes) Capture(ctx context.Context, mode, requestID string, t time.Time, userKey string, request, response []byte) error {
	cp, ok := cm.byMode[mode]
	if !ok {
		if mode == content.ModeOff {
			return nil
		}
		return fmt.Errorf("content capture mode %q is not available (redacted and full need audit.content.keys)", mode)
	}
	return cp.Capture(ctx, requestID, t, userKey, request, response)
}
