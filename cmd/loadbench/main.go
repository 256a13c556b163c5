// Command loadbench is Gatehouse's reproducible load benchmark. It starts a
// stub Anthropic upstream, a bare httputil.ReverseProxy (the floor) and the
// real gatehouse binary in governed mode (identity with real RS256 tokens,
// audit at the default durability level; see docs/benchmarks.md), each proxy
// in its own process, then drives each target at several concurrency levels,
// streaming and not, and prints a results table: added p50/p99 latency over
// the direct path, time to first byte, throughput and the gateway's RSS.
//
//	go run ./cmd/loadbench -duration 10s -concurrency 1,16,64
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	fakeanthropic "github.com/gatehouse-dev/gatehouse/internal/fake/anthropic"
	"github.com/gatehouse-dev/gatehouse/internal/fake/idp"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "loadbench:", err)
		os.Exit(1)
	}
}

const (
	tenant   = "11111111-2222-4333-8444-555555555555"
	clientID = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
)

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("loadbench", flag.ContinueOnError)
	mode := fs.String("mode", "bench", "bench | bare-proxy (internal: the floor's process)")
	upstream := fs.String("upstream", "", "bare-proxy mode: upstream URL")
	listen := fs.String("listen", "127.0.0.1:0", "bare-proxy mode: listen address")
	duration := fs.Duration("duration", 10*time.Second, "measurement time per cell and target")
	rounds := fs.Int("rounds", 5, "split each cell's measurement into this many rounds, the targets taking turns")
	warmup := fs.Duration("warmup", time.Second, "warm-up time per cell")
	concList := fs.String("concurrency", "1,16,64", "comma-separated concurrency levels")
	streams := fs.String("stream", "both", "json | stream | both")
	gatehouseBin := fs.String("gatehouse", "", "path of a built gatehouse binary (default: build ./cmd/gatehouse)")
	sync := fs.String("sync", "crash", "audit.sync level for the gateway: crash | always")
	deltas := fs.Int("deltas", 5, "text deltas per streamed response")
	withAlways := fs.Bool("always", true, "also measure the gateway at audit.sync=always")
	slowN := fs.Int("slow-streams", 1000, "concurrent slow streams to hold open through the gateway (0: skip)")
	slowEvents := fs.Int("slow-events", 20, "events per slow stream")
	slowEvery := fs.Duration("slow-interval", 500*time.Millisecond, "time between a slow stream's events")
	memLimit := fs.String("gomemlimit", "", "run the gateway with this GOMEMLIMIT (e.g. 64MiB), as a container deployment sets it; empty: none")
	debugListen := fs.String("debug-listen", "", "serve the gateway's /debug/pprof/ on this loopback address (profile it while the load runs)")
	soak := fs.Duration("soak", 0, "run a constant streaming load this long and sample the gateway's RSS (e.g. 10m; 0: skip)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *mode == "bare-proxy" {
		return bareProxy(ctx, *upstream, *listen, stdout)
	}
	var levels []int
	for _, s := range strings.Split(*concList, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return fmt.Errorf("bad -concurrency %q", *concList)
		}
		levels = append(levels, n)
	}
	dir, err := os.MkdirTemp("", "loadbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	bin := *gatehouseBin
	if bin == "" {
		bin = filepath.Join(dir, "gatehouse")
		fmt.Fprintln(stderr, "building ./cmd/gatehouse ...")
		cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/gatehouse")
		cmd.Stdout, cmd.Stderr = stderr, stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("building gatehouse: %w", err)
		}
	}

	key := "sk-bench-key"
	stub, err := fakeanthropic.Start(fakeanthropic.Options{Key: key, Deltas: *deltas})
	if err != nil {
		return err
	}
	defer stub.Close()
	issuer, err := idp.Start(idp.Options{Tenants: []string{tenant}})
	if err != nil {
		return err
	}
	defer issuer.Close()
	user := idp.User{OID: "00000000-0000-4000-8000-0000000000be", Name: "Bench User", Username: "bench@contoso.example", Roles: []string{"Claude.User"}}
	token := issuer.IDToken(tenant, clientID, user, 2*time.Hour)

	self, err := os.Executable()
	if err != nil {
		return err
	}
	bare, bareURL, err := startChild(ctx, self, []string{"-mode", "bare-proxy", "-upstream", stub.URL()}, nil, "BARE_URL=")
	if err != nil {
		return fmt.Errorf("bare proxy: %w", err)
	}
	defer bare.stop()

	slowStub, err := fakeanthropic.Start(fakeanthropic.Options{Key: key, Deltas: *slowEvents, EventDelay: *slowEvery})
	if err != nil {
		return err
	}
	defer slowStub.Close()
	debugYAML := ""
	if *debugListen != "" {
		debugYAML = "debug_listen: " + *debugListen + "\n"
	}
	startGW := func(name, level string) (*child, string, error) {
		gwAddr, err := freeAddr()
		if err != nil {
			return nil, "", err
		}
		cfgPath := filepath.Join(dir, "gatehouse-"+name+".yaml")
		cfg := fmt.Sprintf(`listen: %s
identity:
  type: entra
  issuer: %s
  audiences: [%q]
  required_roles: ["Claude.User"]
upstreams:
  - name: stub
    provider: anthropic
    base_url: %s
    api_key: ${env:BENCH_UPSTREAM_KEY}
  - name: slow
    provider: anthropic
    base_url: %s
    api_key: ${env:BENCH_UPSTREAM_KEY}
models:
  - id: claude-sonnet-4-6
    upstream: stub
  - id: claude-slow-stream
    upstream: slow
policies:
  - name: everyone
    match: {}
    limits:
      requests_per_minute: 100000000
      tokens_per_minute: 100000000000
      concurrent_streams: 1000000
audit:
  sqlite: %s
  sync: %s
log:
  level: warn
%s`, gwAddr, issuer.Issuer(tenant), clientID, stub.URL(), slowStub.URL(), filepath.Join(dir, "audit-"+name+".db"), level, debugYAML)
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
			return nil, "", err
		}
		env := []string{"BENCH_UPSTREAM_KEY=" + key}
		if *memLimit != "" {
			env = append(env, "GOMEMLIMIT="+*memLimit)
		}
		gw, err := startProcess(ctx, bin, []string{"serve", "--config", cfgPath}, env)
		if err != nil {
			return nil, "", fmt.Errorf("gateway: %w", err)
		}
		u := "http://" + gwAddr
		if err := waitReady(ctx, u+"/readyz"); err != nil {
			gw.stop()
			return nil, "", fmt.Errorf("gateway not ready: %w", err)
		}
		return gw, u, nil
	}
	gw, gwURL, err := startGW("cells", *sync)
	if err != nil {
		return err
	}
	defer func() { gw.stop() }()

	targets := []target{
		{name: "direct", url: stub.URL(), header: http.Header{"X-Api-Key": {key}}},
		{name: "bare proxy", url: bareURL, header: http.Header{"X-Api-Key": {key}}, pid: bare.cmd.Process.Pid},
		{name: "gatehouse", url: gwURL, header: http.Header{"Authorization": {"Bearer " + token}}, pid: gw.cmd.Process.Pid},
	}
	var modes []bool
	switch *streams {
	case "json":
		modes = []bool{false}
	case "stream":
		modes = []bool{true}
	default:
		modes = []bool{false, true}
	}

	fmt.Fprintf(stdout, "# loadbench: %d CPU, GOMAXPROCS %d, %s, %s per cell, audit.sync=%s\n\n", runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version(), *duration, *sync)
	fmt.Fprintln(stdout, "| mode | conc | direct p50 | bare p50 / p99 | gatehouse p50 / p99 | added p50 bare → gatehouse (ratio) | TTFB p50 bare / gatehouse | req/s bare / gatehouse (ratio) | CPU per request bare / gatehouse | gatehouse RSS max | errors |")
	fmt.Fprintln(stdout, "|---|---|---|---|---|---|---|---|---|---|---|")
	for _, stream := range modes {
		for _, c := range levels {
			// The targets take turns in short rounds, so a slow spell on a
			// shared machine falls on all of them alike.
			var parts [3][]result
			for _, t := range targets {
				load(ctx, t, stream, c, *warmup)
			}
			for r := 0; r < *rounds; r++ {
				for i, t := range targets {
					parts[i] = append(parts[i], load(ctx, t, stream, c, *duration/time.Duration(*rounds)))
				}
			}
			var res [3]result
			for i := range targets {
				res[i] = merge(parts[i])
			}
			d, b, g := res[0], res[1], res[2]
			addB, addG := b.p50-d.p50, g.p50-d.p50
			mode := "json"
			if stream {
				mode = "stream"
			}
			fmt.Fprintf(stdout, "| %s | %d | %s | %s / %s | %s / %s | %s → %s (%.2fx) | %s / %s | %.0f / %.0f (%.0f%%) | %s / %s | %.1f MB | %d/%d/%d |\n",
				mode, c, us(d.p50), us(b.p50), us(b.p99), us(g.p50), us(g.p99), us(addB), us(addG), ratio(addG, addB),
				us(b.ttfb50), us(g.ttfb50), b.rps, g.rps, 100*g.rps/b.rps, us(b.cpuPerReq), us(g.cpuPerReq), float64(g.rssMax)/(1<<20), d.errors, b.errors, g.errors)
		}
	}
	auth := http.Header{"Authorization": {"Bearer " + token}}
	if *withAlways && *sync != "always" {
		gw2, u2, err := startGW("always", "always")
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "\n## audit.sync=always (every begin-record fsynced before forwarding)\n\n| mode | conc | gatehouse p50 / p99 | req/s |\n|---|---|---|---|\n")
		for _, c := range levels {
			t := target{name: "gatehouse-always", url: u2, header: auth}
			load(ctx, t, false, c, *warmup)
			r := load(ctx, t, false, c, *duration)
			fmt.Fprintf(stdout, "| json | %d | %s / %s | %.0f |\n", c, us(r.p50), us(r.p99), r.rps)
		}
		gw2.stop()
	}
	if *slowN > 0 {
		fmt.Fprintf(stdout, "\n## %d concurrent slow streams (%d events, one every %s)\n\n", *slowN, *slowEvents, *slowEvery)
		fmt.Fprintf(stdout, "| target | streams completed | largest gap between events | p99 gap | RSS max | of which file-backed | wall time |\n|---|---|---|---|---|---|---|\n")
		// The floor first, in its own process in front of the slow stub;
		// then a fresh gateway too, so neither starts with a heap the
		// cells above grew.
		bareSlow, bareSlowURL, err := startChild(ctx, self, []string{"-mode", "bare-proxy", "-upstream", slowStub.URL()}, nil, "BARE_URL=")
		if err != nil {
			return fmt.Errorf("bare proxy: %w", err)
		}
		gw.stop()
		if gw, gwURL, err = startGW("slow", *sync); err != nil {
			bareSlow.stop()
			return err
		}
		rows := []struct {
			name string
			url  string
			hdr  http.Header
			pid  int
		}{
			{"bare proxy", bareSlowURL, http.Header{"X-Api-Key": {key}}, bareSlow.cmd.Process.Pid},
			{"gatehouse", gwURL, auth, gw.cmd.Process.Pid},
		}
		for _, row := range rows {
			res := slowStreams(ctx, row.url, row.hdr, *slowN, row.pid)
			fmt.Fprintf(stdout, "| %s | %d / %d | %s | %s | %.1f MB | %.1f MB | %s |\n", row.name, res.completed, *slowN, res.maxGap.Round(time.Millisecond), res.p99Gap.Round(time.Millisecond), float64(res.rssMax)/(1<<20), float64(res.rssFile)/(1<<20), res.wall.Round(time.Millisecond))
		}
		bareSlow.stop()
	}
	if *soak > 0 {
		fmt.Fprintf(stdout, "\n## soak: %s of streaming load at concurrency 16\n\n", *soak)
		samples := soakRSS(ctx, target{name: "gatehouse", url: gwURL, header: auth, pid: gw.cmd.Process.Pid}, *soak)
		fmt.Fprintf(stdout, "| minute | gatehouse RSS |\n|---|---|\n")
		for _, sm := range samples {
			fmt.Fprintf(stdout, "| %.1f | %.1f MB |\n", sm.at.Minutes(), float64(sm.rss)/(1<<20))
		}
	}
	return nil
}

type slowResult struct {
	completed      int
	maxGap, p99Gap time.Duration
	rssMax         int64
	rssFile        int64 // file-backed part of the sample that was rssMax
	wall           time.Duration
}

// slowStreams holds n streams open at once and measures the gaps between
// the events each receives: a stall shows as a gap far above the interval.
func slowStreams(ctx context.Context, base string, hdr http.Header, n, pid int) slowResult {
	tr := &http.Transport{MaxIdleConnsPerHost: n, DisableCompression: true}
	client := &http.Client{Transport: tr}
	defer tr.CloseIdleConnections()
	var mu sync.Mutex
	var gaps []time.Duration
	res := slowResult{}
	stop := make(chan struct{})
	go func() {
		for {
			if r, f := rssParts(pid); r > res.rssMax {
				mu.Lock()
				res.rssMax, res.rssFile = r, f
				mu.Unlock()
			}
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	start := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/messages", strings.NewReader(strings.Replace(streamBody, "claude-sonnet-4-6", "claude-slow-stream", 1)))
			for k, v := range hdr {
				req.Header[k] = v
			}
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				return
			}
			defer resp.Body.Close()
			buf := make([]byte, 4096)
			last := time.Now()
			var my []time.Duration
			complete, got := false, false
			for {
				n, err := resp.Body.Read(buf)
				if n > 0 {
					now := time.Now()
					if got {
						my = append(my, now.Sub(last)) // the first read is time to first byte, not a gap
					}
					got, last = true, now
					if strings.Contains(string(buf[:n]), "message_stop") {
						complete = true
					}
				}
				if err != nil {
					break
				}
			}
			mu.Lock()
			gaps = append(gaps, my...)
			if complete && resp.StatusCode == 200 {
				res.completed++
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	close(stop)
	res.wall = time.Since(start)
	res.p99Gap = pct(gaps, 99)
	res.maxGap = pct(gaps, 100)
	return res
}

type rssSample struct {
	at  time.Duration
	rss int64
}

// soakRSS runs streaming load at concurrency 16 for d, sampling RSS.
func soakRSS(ctx context.Context, t target, d time.Duration) []rssSample {
	var out []rssSample
	start := time.Now()
	done := make(chan struct{})
	go func() {
		load(ctx, target{name: t.name, url: t.url, header: t.header}, true, 16, d)
		close(done)
	}()
	tick := time.NewTicker(30 * time.Second)
	defer tick.Stop()
	out = append(out, rssSample{0, rss(t.pid)})
	for {
		select {
		case <-done:
			out = append(out, rssSample{time.Since(start), rss(t.pid)})
			return out
		case <-tick.C:
			out = append(out, rssSample{time.Since(start), rss(t.pid)})
		}
	}
}

func ratio(a, b time.Duration) float64 {
	if b <= 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func us(d time.Duration) string { return fmt.Sprintf("%.0fµs", float64(d.Nanoseconds())/1000) }

type target struct {
	name   string
	url    string
	header http.Header
	pid    int
}

type result struct {
	lat, ttfb []time.Duration // every request's latency and time to first byte
	elapsed   time.Duration
	cpu       time.Duration // the target process's CPU time during the run
	n, errors int
	p50, p99  time.Duration
	ttfb50    time.Duration
	rps       float64
	rssMax    int64
	cpuPerReq time.Duration // the target process's CPU time (user+system) per request
}

const jsonBody = `{"model":"claude-sonnet-4-6","max_tokens":256,"messages":[{"role":"user","content":"Write one short sentence about gateways."}]}`
const streamBody = `{"model":"claude-sonnet-4-6","max_tokens":256,"stream":true,"messages":[{"role":"user","content":"Write one short sentence about gateways."}]}`

// load runs c workers against t for d and measures every request.
func load(ctx context.Context, t target, stream bool, c int, d time.Duration) result {
	tr := &http.Transport{MaxIdleConnsPerHost: c, MaxConnsPerHost: c, DisableCompression: true}
	client := &http.Client{Transport: tr}
	defer tr.CloseIdleConnections()
	body := jsonBody
	if stream {
		body = streamBody
	}
	end := time.Now().Add(d)
	var mu sync.Mutex
	var lat, ttfb []time.Duration
	errs := 0
	var rssMax int64
	stopRSS := make(chan struct{})
	var rssWG sync.WaitGroup
	if t.pid != 0 {
		rssWG.Add(1)
		go func() {
			defer rssWG.Done()
			for {
				if r := rss(t.pid); r > rssMax {
					rssMax = r
				}
				select {
				case <-stopRSS:
					return
				case <-time.After(100 * time.Millisecond):
				}
			}
		}()
	}
	var wg sync.WaitGroup
	cpu0 := cpuTime(t.pid)
	start := time.Now()
	for i := 0; i < c; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var myLat, myTTFB []time.Duration
			myErr := 0
			buf := make([]byte, 32<<10)
			for time.Now().Before(end) && ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, t.url+"/v1/messages", strings.NewReader(body))
				for k, v := range t.header {
					req.Header[k] = v
				}
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("anthropic-version", "2023-06-01")
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					myErr++
					continue
				}
				var first time.Duration
				for {
					n, rerr := resp.Body.Read(buf)
					if n > 0 && first == 0 {
						first = time.Since(t0)
					}
					if rerr != nil {
						break
					}
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					myErr++
					continue
				}
				myLat = append(myLat, time.Since(t0))
				myTTFB = append(myTTFB, first)
			}
			mu.Lock()
			lat = append(lat, myLat...)
			ttfb = append(ttfb, myTTFB...)
			errs += myErr
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := cpuTime(t.pid) - cpu0
	close(stopRSS)
	rssWG.Wait()
	return merge([]result{{lat: lat, ttfb: ttfb, elapsed: elapsed, cpu: cpu, errors: errs, rssMax: rssMax}})
}

// merge pools the samples of several runs against one target.
func merge(parts []result) result {
	var out result
	for _, p := range parts {
		out.lat = append(out.lat, p.lat...)
		out.ttfb = append(out.ttfb, p.ttfb...)
		out.elapsed += p.elapsed
		out.cpu += p.cpu
		out.errors += p.errors
		out.rssMax = max(out.rssMax, p.rssMax)
	}
	out.n = len(out.lat)
	out.p50, out.p99, out.ttfb50 = pct(out.lat, 50), pct(out.lat, 99), pct(out.ttfb, 50)
	if out.elapsed > 0 {
		out.rps = float64(out.n) / out.elapsed.Seconds()
	}
	if out.n > 0 {
		out.cpuPerReq = out.cpu / time.Duration(out.n)
	}
	return out
}

// cpuTime is the CPU time (user + system) pid has used, from
// /proc/PID/stat (clock ticks of 1/100 s, Linux's USER_HZ).
func cpuTime(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) may contain spaces: count from its ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[(len(d)-1)*p/100]
}

// rss returns the resident set size of pid in bytes (Linux).
func rss(pid int) int64 {
	total, _ := rssParts(pid)
	return total
}

// rssParts returns the resident set size of pid and the part of it that
// is file-backed: mostly the program's own code and tables, which the
// kernel maps from the page cache (and shares) rather than allocates.
func rssParts(pid int) (total, file int64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "VmRSS" && k != "RssFile") {
			continue
		}
		f := strings.Fields(v)
		if len(f) < 1 {
			continue
		}
		kb, _ := strconv.ParseInt(f[0], 10, 64)
		if k == "VmRSS" {
			total = kb << 10
		} else {
			file = kb << 10
		}
	}
	return total, file
}

// bareProxy is the floor: the standard library's reverse proxy with no
// identity, no audit and no policy.
func bareProxy(ctx context.Context, upstream, listen string, stdout io.Writer) error {
	u, err := url.Parse(upstream)
	if err != nil {
		return err
	}
	rp := &httputil.ReverseProxy{
		Rewrite:       func(pr *httputil.ProxyRequest) { pr.SetURL(u) },
		FlushInterval: -1,
		ErrorLog:      log.New(io.Discard, "", 0), // clients cut at the end of a cell
		Transport:     &http.Transport{MaxIdleConnsPerHost: 1024, DisableCompression: true},
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "BARE_URL=http://%s\n", ln.Addr())
	srv := &http.Server{Handler: rp, ReadHeaderTimeout: 10 * time.Second}
	go func() { <-ctx.Done(); srv.Close() }()
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		return err
	}
	return nil
}

type child struct{ cmd *exec.Cmd }

func (c *child) stop() {
	if c.cmd.Process != nil {
		c.cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { c.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			c.cmd.Process.Kill()
		}
	}
}

func startProcess(ctx context.Context, bin string, args, env []string) (*child, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &child{cmd: cmd}, nil
}

// startChild runs bin and waits for a line "PREFIXvalue" on its stdout.
func startChild(ctx context.Context, bin string, args, env []string, prefix string) (*child, string, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	c := &child{cmd: cmd}
	buf := make([]byte, 256)
	var line string
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(line, "\n") && time.Now().Before(deadline) {
		n, err := out.Read(buf)
		line += string(buf[:n])
		if err != nil {
			break
		}
	}
	v, ok := strings.CutPrefix(strings.TrimSpace(line), prefix)
	if !ok {
		c.stop()
		return nil, "", fmt.Errorf("unexpected output %q", line)
	}
	go io.Copy(io.Discard, out)
	return c, v, nil
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func waitReady(ctx context.Context, u string) error {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(u)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer 200", u)
}
