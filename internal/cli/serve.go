package cli

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/gctune"
	"github.com/gatehouse-dev/gatehouse/internal/server"
)

func runServe(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "serve", "--config FILE")
	path := fs.String("config", "", "configuration file (required); reloaded on SIGHUP and when it changes")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(e, *path)
	if err != nil {
		return err
	}
	log := newLogger(e.stderr, cfg.Log)
	if e.getenv("GOMEMLIMIT") == "" {
		// In a container with a memory limit, collect harder as the limit
		// nears instead of being OOM-killed mid-stream. GOMEMLIMIT, when
		// set, is the operator's choice and wins.
		if limit, path, ok := containerMemoryLimit(os.DirFS("/")); ok {
			soft := softMemoryLimit(limit)
			debug.SetMemoryLimit(soft)
			log.Info("memory limit set from the container's", slog.String("cgroup_file", path),
				slog.Int64("container_bytes", limit), slog.Int64("go_soft_limit_bytes", soft))
		}
	}
	if e.getenv("GOGC") == "" {
		// GOGC, when set, is the operator's choice and wins.
		tuner := gctune.Start(gcHeadroom)
		defer tuner.Stop()
	}
	return serve(ctx, cfg, e.getenv, log, serveOptions{configPath: *path})
}

// gcHeadroom is how much the heap may grow between collections while the
// live heap is small (package gctune): at the cost of this much memory,
// the gateway spends a fraction of the CPU the default GOGC=100 spends
// collecting (docs/benchmarks.md).
const gcHeadroom = 24 << 20

type serveOptions struct {
	// configPath enables reloads (SIGHUP and file changes) when set.
	configPath string
	// watchInterval is how often the file is checked for changes. Default 2s.
	watchInterval time.Duration
	// ready receives the bound address once the listener is up.
	ready func(addr net.Addr)
}

// serve runs the gateway until ctx ends, then drains and flushes.
func serve(ctx context.Context, cfg *config.Config, getenv func(string) string, log *slog.Logger, o serveOptions) error {
	g, err := buildGateway(ctx, cfg, getenv, log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		g.close(context.Background())
		return fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	srv := server.NewHTTPServer(g, server.HTTPOptions{
		ReadHeaderTimeout: cfg.Server.ReadHeaderTimeout,
		ReadTimeout:       cfg.Server.ReadTimeout,
		IdleTimeout:       cfg.Server.IdleTimeout,
		MaxHeaderBytes:    cfg.Server.MaxHeaderBytes,
		Logger:            log,
	})
	if cfg.MetricsListen != "" {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", g.metrics.Handler())
		stop, err := sideListener(cfg.MetricsListen, mux, log, "metrics listening")
		if err != nil {
			ln.Close()
			g.close(context.Background())
			return fmt.Errorf("metrics_listen %s: %w", cfg.MetricsListen, err)
		}
		defer stop()
	}
	if cfg.DebugListen != "" {
		stop, err := sideListener(cfg.DebugListen, debugMux(), log, "debug profiles listening")
		if err != nil {
			ln.Close()
			g.close(context.Background())
			return fmt.Errorf("debug_listen %s: %w", cfg.DebugListen, err)
		}
		defer stop()
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
	if o.configPath != "" {
		stopWatch := watchConfig(ctx, g, o.configPath, o.watchInterval)
		defer stopWatch()
	}
	log.Info("gatehouse listening", slog.String("scheme", scheme), slog.String("addr", ln.Addr().String()),
		slog.Int("models", len(cfg.Models)), slog.Int("upstreams", len(cfg.Upstreams)))
	if o.ready != nil {
		o.ready(ln.Addr())
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

// watchConfig reloads the configuration on SIGHUP and whenever the file's
// contents change (checked every interval; this also catches Kubernetes
// ConfigMap updates, which swap a symlink).
func watchConfig(ctx context.Context, g *gateway, path string, interval time.Duration) (stop func()) {
	if interval <= 0 {
		interval = 2 * time.Second
	}
	if data, err := os.ReadFile(path); err == nil {
		g.cur.Load().hash = sha256.Sum256(data) // the running configuration
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-done:
				return
			case <-hup:
				_ = g.reload(ctx, path, "sighup")
			case <-t.C:
				_ = g.reload(ctx, path, "file_change")
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		close(done)
	}
}

// sideListener serves h on addr until the returned stop is called.
func sideListener(addr string, h http.Handler, log *slog.Logger, msg string) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	log.Info(msg, slog.String("addr", ln.Addr().String()))
	return func() { srv.Close() }, nil
}

// debugMux serves Go's runtime profiles for debug_listen (loopback only,
// enforced by config validation). Registered explicitly: nothing is served
// from http.DefaultServeMux.
func debugMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	return mux
}
