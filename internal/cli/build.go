package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/audit/journal"
	auditsqlite "github.com/gatehouse-dev/gatehouse/internal/audit/sqlite"
	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/proxy"
	"github.com/gatehouse-dev/gatehouse/internal/server"
)

// gateway is everything `serve` runs, built from one configuration.
type gateway struct {
	cfg      *config.Config
	log      *slog.Logger
	handler  http.Handler
	recorder *audit.Recorder
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
func buildGateway(ctx context.Context, cfg *config.Config, log *slog.Logger) (g *gateway, err error) {
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

	dispatcher, err := buildDispatcher(cfg)
	if err != nil {
		return nil, err
	}
	fwd := proxy.New(proxy.Options{
		Dispatcher:       dispatcher,
		Logger:           log,
		WriteIdleTimeout: cfg.Server.WriteIdleTimeout,
	})

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

// newUpstreamClient returns the HTTP client for one upstream: TLS verified
// (1.2 minimum), no proxy taken from the environment, no redirects followed,
// bounded connect and response-header waits.
func newUpstreamClient(u config.Upstream) *http.Client {
	dialer := &net.Dialer{Timeout: u.ConnectTimeout, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   u.ConnectTimeout,
		ResponseHeaderTimeout: u.ResponseHeaderTimeout,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   1024,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
		DisableCompression:    true,
	}
	return &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func buildDispatcher(cfg *config.Config) (proxy.Dispatcher, error) {
	targets := map[string]*proxy.Target{}
	for _, u := range cfg.Upstreams {
		base, err := url.Parse(u.BaseURL)
		if err != nil {
			return nil, fmt.Errorf("upstreams: %s: %w", u.Name, err)
		}
		header := "x-api-key"
		if u.Provider == config.ProviderFoundry {
			header = "api-key"
		}
		targets[u.Name] = &proxy.Target{
			Name:       u.Name,
			BaseURL:    base,
			Credential: proxy.HeaderCredential{Name: header, Value: u.APIKey.Value()},
			Client:     newUpstreamClient(u),
		}
	}
	d := &proxy.StaticDispatcher{Routes: map[string]proxy.Route{}}
	for _, m := range cfg.Models {
		d.Routes[m.ID] = proxy.Route{Target: targets[m.Upstream], UpstreamModel: m.UpstreamModel}
	}
	return d, nil
}
