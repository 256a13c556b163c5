package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/anthropic"
	"github.com/gatehouse-dev/gatehouse/internal/limits"
	"github.com/gatehouse-dev/gatehouse/internal/limits/limitstest"
	limitsredis "github.com/gatehouse-dev/gatehouse/internal/limits/redis"
)

// testRedisURL returns GATEHOUSE_TEST_REDIS_URL, skipping locally and
// failing in CI when it is unset.
func testRedisURL(t *testing.T) string {
	t.Helper()
	u := os.Getenv("GATEHOUSE_TEST_REDIS_URL")
	if u == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("GATEHOUSE_TEST_REDIS_URL is not set; CI must run the shared-quota test")
		}
		t.Skip("set GATEHOUSE_TEST_REDIS_URL=redis://127.0.0.1:6379/0 to run the shared-quota test")
	}
	return u
}

func sharedQuotaYAML(redis, prefix string, tokensPerDay int) string {
	return fmt.Sprintf(`policies:
  - name: everyone
    match: {}
    models: [claude-sonnet-4-6]
    max_output_tokens: 2000
    limits: {tokens_per_day: %d, concurrent_streams: 1000}
limits:
  redis: %s
  key_prefix: %s
`, tokensPerDay, redis, prefix)
}

// responseUsage reads the usage of a Messages response, streamed or not.
func responseUsage(resp *http.Response) (anthropic.Usage, error) {
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return anthropic.Usage{}, err
	}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		tap := anthropic.NewSSETap()
		tap.Write(b)
		return tap.Usage(), nil
	}
	u, _, _ := anthropic.UsageFromJSON(b)
	return u, nil
}

// startGatewayProcess starts another gateway as a child OS process (see
// TestMain) with h's configuration (same IdP, upstream stub, policies and
// Redis) but its own listen address and audit database. It returns its
// base URL.
func startGatewayProcess(t *testing.T, h *harness) string {
	t.Helper()
	cfg, err := os.ReadFile(h.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	dir := t.TempDir()
	s := strings.Replace(string(cfg), "listen: "+strings.TrimPrefix(h.base, "http://"), "listen: "+addr, 1)
	s = strings.Replace(s, h.auditPath, filepath.Join(dir, "audit.db"), 1)
	path := filepath.Join(dir, "gatehouse.yaml")
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "GATEHOUSE_TEST_CHILD=serve", "GATEHOUSE_TEST_CONFIG="+path, "TEST_UPSTREAM_KEY="+h.upstreamKey)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	base := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(base + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return base
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("gateway process not ready:\n%s", logs.String())
	return ""
}

// TestSharedQuotaAcrossGateways runs two gateway processes sharing one
// Redis (this test process and a child OS process) and sends 600 requests
// concurrently (200 clients x 3), alternating between them, for one user
// with a daily token budget: together they never let the user past it,
// and Redis ends holding exactly the usage the responses reported.
func TestSharedQuotaAcrossGateways(t *testing.T) {
	if testing.Short() {
		t.Skip("starts gateway processes")
	}
	url := testRedisURL(t)
	prefix := "gh-e2e-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	const budget = 30000
	h := startGateway(t, harnessOptions{extraYAML: sharedQuotaYAML(url, prefix, budget), logLevel: "warn"})
	bases := []string{h.base, startGatewayProcess(t, h)}
	tok := h.token(userAda)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 200}}
	var served [2]atomic.Int64
	res := limitstest.Load(200, 3, func(w, i int) (int, anthropic.Usage, error) {
		g := (w + i) % 2
		body := fmt.Sprintf(`{"model":"claude-sonnet-4-6","max_tokens":%d,"stream":%v,"messages":[{"role":"user","content":"%s"}]}`,
			200+(w*7+i)%800, w%3 != 0, strings.Repeat("tell me more ", 1+w%40))
		req, _ := http.NewRequest(http.MethodPost, bases[g]+"/v1/messages", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("anthropic-version", "2023-06-01")
		resp, err := client.Do(req)
		if err != nil {
			return 0, anthropic.Usage{}, err
		}
		defer resp.Body.Close()
		if resp.StatusCode == 200 {
			served[g].Add(1)
		}
		u, err := responseUsage(resp)
		return resp.StatusCode, u, err
	})
	if len(res.Errors) > 0 {
		t.Fatalf("transport errors: %v", res.Errors)
	}
	if res.Statuses[200] == 0 || res.Statuses[429] == 0 || res.Statuses[200]+res.Statuses[429] != 600 {
		t.Fatalf("statuses %v: the load must both succeed and hit the budget, nothing else", res.Statuses)
	}
	if served[0].Load() == 0 || served[1].Load() == 0 {
		t.Fatalf("each gateway must serve part of the load: %d and %d", served[0].Load(), served[1].Load())
	}
	counted := res.Usage.Total() - res.Usage.CacheReadInputTokens // token limits skip cache reads by default
	if counted > budget {
		t.Fatalf("OVERSPENT across two gateways: %d tokens > %d", counted, budget)
	}
	// Redis holds exactly what the responses reported.
	c, err := limitsredis.NewClient(url, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	eng, err := limits.NewEngine(limits.Options{KeyPrefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	key := eng.CounterKey("u", testTenant+"/"+userAda.OID, limits.RuleTokensPerDay, time.Now())
	got, err := c.Get(context.Background(), key).Int64()
	if err != nil {
		t.Fatalf("reading %s: %v", key, err)
	}
	if got != counted {
		t.Fatalf("Redis counted %d tokens, the responses reported %d", got, counted)
	}
	t.Logf("two gateway processes: %v (served %d + %d), %d of %d tokens used", res.Statuses, served[0].Load(), served[1].Load(), counted, budget)
}
