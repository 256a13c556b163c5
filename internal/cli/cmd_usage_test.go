package cli

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/anthropic"
	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/limits"
	"github.com/gatehouse-dev/gatehouse/internal/pricing"
)

const usageConfig = `
listen: 127.0.0.1:0
identity:
  issuer: https://login.microsoftonline.com/11111111-2222-3333-4444-555555555555/v2.0
  audiences: ["aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"]
upstreams:
  - name: anthropic
    provider: anthropic
    base_url: https://api.anthropic.com
    api_key: ${env:UPSTREAM_KEY}
models:
  - id: claude-sonnet-4-6
  - id: claude-haiku-4-5
audit:
  sqlite: %s
policies:
  - name: everyone
    match: {}
    limits: {tokens_per_day: 100000000, usd_per_month: 100000}
pricing:
  - model: claude-haiku-4-5
    input: 1.1
    output: 5.5
    cache_write_5m: 1.375
    cache_write_1h: 2.2
    cache_read: 0.11
`

// TestUsageReportAgreesWithLimits drives requests through the engine built
// from the configuration, records them as the gateway does, and checks
// that `gatehouse usage` reports exactly what the limits counted: tokens
// per user per day and dollars per user per month.
func TestUsageReportAgreesWithLimits(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "gatehouse.yaml")
	if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf(usageConfig, filepath.Join(dir, "audit.db"))), 0o600); err != nil {
		t.Fatal(err)
	}
	getenv := func(k string) string {
		if k == "UPSTREAM_KEY" {
			return "sk-test"
		}
		return ""
	}
	e := &env{getenv: getenv, stdout: io.Discard, stderr: io.Discard}
	cfg, err := loadConfig(e, cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	gov, err := buildGovernance(ctx, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	defer gov.Close()
	store, _, err := openAuditStore(ctx, cfg.Audit, log)
	if err != nil {
		t.Fatal(err)
	}

	users := []identity.Principal{
		{Key: "tid/alice", Username: "alice@contoso.com", Groups: []string{"g-eng"}},
		{Key: "tid/bob", Username: "bob@contoso.com", Groups: []string{"g-eng", "g-legal"}},
		{Key: "tid/carol"},
	}
	groupInput := map[string]int64{}
	models := []string{"claude-sonnet-4-6", "claude-haiku-4-5"}
	rng := rand.New(rand.NewPCG(4, 2))
	now := time.Now().UTC()
	for i := 0; i < 60; i++ {
		u := users[rng.IntN(len(users))]
		model := models[rng.IntN(len(models))]
		rec := &audit.Record{RequestID: fmt.Sprintf("req-%d", i), Time: now, State: audit.StateBegun, Method: "POST", Path: "/v1/messages",
			UserKey: u.Key, UserName: u.Username, Model: model, Stream: true}
		res, err := gov.Engine.Admit(ctx, u, limits.Request{Model: model, EstimatedInputTokens: 20000, MaxTokens: 8000, Stream: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := store.Begin(ctx, []*audit.Record{rec}); err != nil {
			t.Fatal(err)
		}
		usage := anthropic.Usage{InputTokens: rng.Int64N(500), CacheCreationInputTokens: rng.Int64N(3000), CacheReadInputTokens: rng.Int64N(15000), OutputTokens: rng.Int64N(8000)}
		rec.State, rec.Status, rec.Usage = audit.StateCompleted, 200, usage
		rec.Groups = u.Groups // as the gateway records the governed groups
		for _, g := range u.Groups {
			groupInput[g] += usage.InputTokens
		}
		if i%7 == 3 { // interrupted streams are billed for what was produced
			rec.State = audit.StateInterrupted
		}
		rec.CostUSD = res.Settle(ctx, usage)
		if err := store.Finish(ctx, []*audit.Record{rec}); err != nil {
			t.Fatal(err)
		}
	}
	// A denied request: counted as denied, no tokens.
	if err := store.Begin(ctx, []*audit.Record{{RequestID: "req-denied", Time: now, State: audit.StateDenied, Status: 429, UserKey: "tid/alice", Model: "claude-sonnet-4-6"}}); err != nil {
		t.Fatal(err)
	}
	store.Close()

	run := func(args ...string) string {
		var out, errb bytes.Buffer
		if code := Run(ctx, append([]string{"usage", "--config", cfgPath}, args...), getenv, nil, &out, &errb); code != 0 {
			t.Fatalf("usage %v: exit %d: %s", args, code, errb.String())
		}
		return out.String()
	}
	parse := func(s string) map[string][]string {
		rows, err := csv.NewReader(strings.NewReader(s)).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		m := map[string][]string{}
		for _, r := range rows[1:] {
			m[r[2]] = r
		}
		return m
	}
	day := parse(run("--by", "user", "--period", "day", "--csv", "--date", now.Format("2006-01-02")))
	month := parse(run("--by", "user", "--period", "month", "--csv", "--date", now.Format("2006-01-02")))
	var requests int64
	for _, u := range users {
		row, ok := day[u.Key]
		if !ok {
			t.Fatalf("no row for %s", u.Key)
		}
		tokens, _ := strconv.ParseInt(row[12], 10, 64) // limit_tokens
		n, _ := strconv.ParseInt(row[4], 10, 64)
		requests += n
		peek := func(key string) int64 {
			r, err := gov.backend.Reserve(ctx, "peek", now, []limits.Op{{Key: key, Limit: -1, TTL: time.Hour}})
			if err != nil {
				t.Fatal(err)
			}
			return r.Values[0]
		}
		if want := peek(gov.Engine.CounterKey("u", u.Key, limits.RuleTokensPerDay, now)); tokens != want {
			t.Errorf("%s: report says %d tokens today, tokens_per_day counted %d", u.Key, tokens, want)
		}
		costNano := parseUSD(t, month[u.Key][11])
		if want := pricing.NanoUSD(peek(gov.Engine.CounterKey("u", u.Key, limits.RuleUSDPerMonth, now))); diff(costNano, want) > 1000 { // CSV has 6 decimals
			t.Errorf("%s: report says %s this month, usd_per_month counted %s", u.Key, costNano, want)
		}
	}
	if requests != 60 || day["tid/alice"][5] != "1" {
		t.Fatalf("requests %d, alice denied %s", requests, day["tid/alice"][5])
	}
	byGroup := parse(run("--by", "group", "--period", "week", "--csv", "--date", now.Format("2006-01-02")))
	for g, want := range groupInput {
		if got, _ := strconv.ParseInt(byGroup[g][6], 10, 64); got != want {
			t.Errorf("group %s: report says %d input tokens, records hold %d", g, got, want)
		}
	}
	if len(byGroup) != 2 {
		t.Errorf("by group: %v", byGroup)
	}
	byModel := parse(run("--by", "model", "--period", "week", "--csv", "--date", now.Format("2006-01-02")))
	if len(byModel) != 2 {
		t.Fatalf("by model: %v", byModel)
	}
	table := run("--by", "user", "--period", "month")
	if !strings.Contains(table, "alice@contoso.com (tid/alice)") || !strings.Contains(table, "TOTAL") {
		t.Fatalf("table:\n%s", table)
	}
	var errb bytes.Buffer
	if code := Run(ctx, []string{"usage", "--config", cfgPath, "--by", "team"}, getenv, nil, io.Discard, &errb); code != 2 || !strings.Contains(errb.String(), "--by must be") {
		t.Fatalf("bad --by: exit %d %s", code, errb.String())
	}
}

func diff(a, b pricing.NanoUSD) pricing.NanoUSD {
	if a > b {
		return a - b
	}
	return b - a
}

func parseUSD(t *testing.T, s string) pricing.NanoUSD {
	t.Helper()
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("cost %q: %v", s, err)
	}
	return pricing.FromUSD(f)
}

func TestPeriodBounds(t *testing.T) {
	at := time.Date(2026, 11, 24, 23, 59, 0, 0, time.UTC) // a Tuesday
	for _, tt := range []struct{ period, start, end string }{
		{"day", "2026-11-24", "2026-11-25"},
		{"week", "2026-11-23", "2026-11-30"},
		{"month", "2026-11-01", "2026-12-01"},
	} {
		s, e, err := periodBounds(tt.period, at)
		if err != nil || s.Format("2006-01-02") != tt.start || e.Format("2006-01-02") != tt.end {
			t.Errorf("%s: %v %v %v", tt.period, s, e, err)
		}
	}
	sunday := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	if s, _, _ := periodBounds("week", sunday); s.Format("2006-01-02") != "2026-11-23" {
		t.Errorf("week of a Sunday starts %v", s)
	}
	if _, _, err := periodBounds("year", at); err == nil {
		t.Error("year accepted")
	}
}
