package cli

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/server"
)

func runServe(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "serve", "--config FILE")
	path := fs.String("config", "", "configuration file (required)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(e, *path)
	if err != nil {
		return err
	}
	log := newLogger(e.stderr, cfg.Log)
	return serve(ctx, cfg, e.getenv, log, nil)
}

// serve runs the gateway until ctx ends. When ready is non-nil it receives
// the bound address once the listener is up.
func serve(ctx context.Context, cfg *config.Config, getenv func(string) string, log *slog.Logger, ready func(addr net.Addr)) error {
	g, err := buildGateway(ctx, cfg, getenv, log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		g.close(context.Background())
		return fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	srv := server.NewHTTPServer(g.handler, server.HTTPOptions{
		ReadHeaderTimeout: cfg.Server.ReadHeaderTimeout,
		ReadTimeout:       cfg.Server.ReadTimeout,
		IdleTimeout:       cfg.Server.IdleTimeout,
		MaxHeaderBytes:    cfg.Server.MaxHeaderBytes,
		Logger:            log,
	})
	if cfg.MetricsListen != "" {
		mln, err := net.Listen("tcp", cfg.MetricsListen)
		if err != nil {
			ln.Close()
			g.close(context.Background())
			return fmt.Errorf("metrics_listen %s: %w", cfg.MetricsListen, err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", g.metrics.Handler())
		msrv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go msrv.Serve(mln)
		defer msrv.Close()
		log.Info("metrics listening", slog.String("addr", mln.Addr().String()))
	}
	scheme := "http"
	if t := cfg.Server.TLS; t != nil {
		cr, err := server.NewCertReloader(t.CertFile, t.KeyFile, log)
		if err != nil {
			ln.Close()
			g.close(context.Background())
			return err
		}
		srv.TLSConfig = cr.TLSConfig()
		scheme = "https"
	}
	log.Info("gatehouse listening", slog.String("scheme", scheme), slog.String("addr", ln.Addr().String()), slog.Int("models", len(cfg.Models)), slog.Int("upstreams", len(cfg.Upstreams)))
	if ready != nil {
		ready(ln.Addr())
	}
	serveErr := server.Serve(ctx, srv, ln, cfg.Server.ShutdownTimeout)
	cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	closeErr := g.close(cctx)
	if serveErr != nil {
		return serveErr
	}
	if closeErr != nil {
		return closeErr
	}
	log.Info("gatehouse stopped cleanly")
	return nil
}
