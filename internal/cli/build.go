package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/audit/journal"
	auditsqlite "github.com/gatehouse-dev/gatehouse/internal/audit/sqlite"
	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/metrics"
	"github.com/gatehouse-dev/gatehouse/internal/proxy"
	"github.com/gatehouse-dev/gatehouse/internal/server"
)

// gateway is everything `serve` runs, built from one configuration.
type gateway struct {
	cfg      *config.Config
	log      *slog.Logger
	handler  http.Handler
	recorder *audit.Recorder
	metrics  *metrics.Metrics
	closers  []func() error // run in reverse order by close
}

func newLogger(w io.Writer, c config.Log) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: lvl}
	if c.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// buildGateway wires every component from cfg. Only this step has side
// effects (opening the audit store, starting key refresh).
func buildGateway(ctx context.Context, cfg *config.Config, getenv func(string) string, log *slog.Logger) (g *gateway, err error) {
	g = &gateway{cfg: cfg, log: log}
	defer func() {
		if err != nil {
			g.close(context.Background())
			g = nil
		}
	}()

	auth, err := buildAuthenticator(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	g.closers = append(g.closers, func() error { auth.Close(); return nil })

	store, err := openAuditStore(ctx, cfg.Audit, log)
	if err != nil {
		return nil, err
	}
	g.closers = append(g.closers, store.Close)
	if n, err := store.Recover(ctx, ""); err != nil {
		return nil, fmt.Errorf("audit: recovering records left open by a previous run: %w", err)
	} else if n > 0 {
		log.Warn("audit: records left open by a previous run were marked unfinished", slog.Int("records", n))
	}
	g.recorder = audit.NewRecorder(audit.RecorderOptions{
		Store:         store,
		FailOpen:      cfg.Audit.FailMode == "open",
		FlushInterval: cfg.Audit.FlushInterval,
		Logger:        log,
	})

	dispatcher, err := buildDispatcher(cfg, getenv, log)
	if err != nil {
		return nil, err
	}
	fwd := proxy.New(proxy.Options{
		Dispatcher:       dispatcher,
		Logger:           log,
		WriteIdleTimeout: cfg.Server.WriteIdleTimeout,
	})

	rec := g.recorder
	g.metrics = metrics.New(versionString(), metrics.Gauges{
		AuditQueueDepth:   func() float64 { st := rec.Stats(); return float64(st.BeginQueue + st.FinishQueue) },
		AuditWriteSeconds: func() float64 { return rec.Stats().WriteSeconds },
		AuditWrites:       func() float64 { st := rec.Stats(); return float64(st.BeginBatches + st.FinishBatches) },
		AuditMaxWrite:     func() float64 { return rec.Stats().MaxWriteLatency.Seconds() },
		AuditGaps:         func() float64 { return float64(rec.Stats().Gaps) },
		AuditRefused:      func() float64 { return float64(rec.Stats().Refused) },
	})
	var metricsHandler http.Handler
	if cfg.MetricsListen == "" {
		metricsHandler = g.metrics.Handler()
	}

	gov, err := buildGovernance(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	g.closers = append(g.closers, gov.Close)

	models := make([]server.Model, 0, len(cfg.Models))
	for _, m := range cfg.Models {
		models = append(models, server.Model{
			ID: m.ID, DisplayName: m.DisplayName, Description: m.Description, CreatedAt: m.CreatedAt,
			FamilyDefault: m.FamilyDefault, Upstream: m.Upstream, UpstreamModel: m.UpstreamModel,
		})
	}
	g.handler = server.New(server.Options{
		Auth:               auth,
		Audit:              g.recorder,
		Forward:            fwd,
		Models:             models,
		MaxBodyBytes:       cfg.Server.MaxBodyBytes,
		MaxRequestDuration: cfg.Server.MaxRequestDuration,
		Logger:             log,
		Observer:           g.metrics,
		Admit:              admitAdapter{e: gov.Engine, m: g.metrics, log: log},
		Metrics:            metricsHandler,
	})
	return g, nil
}

// close flushes the audit trail and releases everything, newest first.
func (g *gateway) close(ctx context.Context) error {
	var errs []error
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
	return errors.Join(errs...)
}

// recoveringStore is an audit store that can close records a crash left open.
type recoveringStore interface {
	audit.Store
	Recover(ctx context.Context, instance string) (int, error)
}

func openAuditStore(ctx context.Context, c config.Audit, log *slog.Logger) (recoveringStore, error) {
	if dir := filepath.Dir(c.SQLite); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("audit: %w", err)
		}
	}
	st, err := auditsqlite.Open(ctx, auditsqlite.Options{Path: c.SQLite, Sync: c.Sync, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("audit: opening %s: %w", c.SQLite, err)
	}
	// The journal makes the write before forwarding one append (decisions
	// D1); SQLite receives the records moments later, in order.
	j, err := journal.Open(ctx, st, journal.Options{Dir: c.SQLite + ".journal", Sync: c.Sync, Logger: log})
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("audit: opening the journal of %s: %w", c.SQLite, err)
	}
	return j, nil
}
