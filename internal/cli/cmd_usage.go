package cli

import (
	"cmp"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	auditsqlite "github.com/gatehouse-dev/gatehouse/internal/audit/sqlite"
	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/limits"
	"github.com/gatehouse-dev/gatehouse/internal/limits/memory"
	limitsredis "github.com/gatehouse-dev/gatehouse/internal/limits/redis"
	"github.com/gatehouse-dev/gatehouse/internal/policy"
	"github.com/gatehouse-dev/gatehouse/internal/pricing"
)

// This file holds the `gatehouse usage` report and the mapping of the
// governance config sections (policies, group_limits, limits, pricing)
// onto package limits, which buildGateway uses.

// governance is the admission engine built from the configuration.
type governance struct {
	Engine    *limits.Engine
	Pricing   *pricing.Table
	backend   limits.Backend
	closer    io.Closer // Redis client, if any (nil when borrowed from a previous generation)
	limitsCfg config.Limits
}

func sameLimitsStore(a, b config.Limits) bool {
	return a.Redis == b.Redis && a.RedisPassword.Value() == b.RedisPassword.Value() && a.Timeout == b.Timeout
}

// Close releases the Redis connection, if any.
func (g *governance) Close() error {
	if g == nil || g.closer == nil {
		return nil
	}
	return g.closer.Close()
}

func toPolicyLimits(l config.LimitSet) policy.Limits {
	return policy.Limits{RequestsPerMinute: l.RequestsPerMinute, TokensPerMinute: l.TokensPerMinute, TokensPerDay: l.TokensPerDay,
		USDPerMonth: l.USDPerMonth, ConcurrentStreams: l.ConcurrentStreams}
}

// buildGovernance maps the configuration onto a limits.Engine. It does not
// fail when Redis is unreachable (each policy's fail_mode decides per
// request); it logs it.
func buildGovernance(ctx context.Context, cfg *config.Config, log *slog.Logger) (*governance, error) {
	return buildGovernanceReusing(ctx, cfg, log, nil)
}

// buildGovernanceReusing is buildGovernance for a configuration reload:
// when the counter store's settings are unchanged it keeps prev's backend,
// so reloading never resets anyone's counters; the connection then belongs
// to the returned governance, not to prev.
func buildGovernanceReusing(ctx context.Context, cfg *config.Config, log *slog.Logger, prev *governance) (*governance, error) {
	var ps []policy.Policy
	for _, p := range cfg.Policies {
		ps = append(ps, policy.Policy{
			Name:   p.Name,
			Match:  policy.Match{Groups: p.Match.Groups, Roles: p.Match.Roles, Users: p.Match.Users, Tenants: p.Match.Tenants},
			Models: p.Models, MaxOutputTokens: p.MaxOutputTokens, Limits: toPolicyLimits(p.Limits),
			Shadow: p.Mode == config.PolicyModeShadow, FailOpen: p.FailMode == config.FailOpen,
			ContentCapture: p.ContentCapture,
		})
	}
	var gs []policy.GroupLimit
	for _, g := range cfg.GroupLimits {
		gs = append(gs, policy.GroupLimit{Group: g.Group, Name: g.Name, Limits: toPolicyLimits(g.Limits),
			Shadow: g.Mode == config.PolicyModeShadow, FailOpen: g.FailMode == config.FailOpen})
	}
	set, err := policy.New(ps, gs)
	if err != nil {
		return nil, fmt.Errorf("policies: %w", err)
	}
	var overrides []pricing.Price
	for _, p := range cfg.Pricing {
		pr := pricing.Price{Model: p.Model, Upstream: p.Upstream, Rates: pricing.Rates{Input: p.Input, Output: p.Output,
			CacheWrite5m: p.CacheWrite5m, CacheWrite1h: p.CacheWrite1h, CacheRead: p.CacheRead}}
		if lc := p.LongContext; lc != nil {
			pr.LongContextThreshold = lc.Threshold
			pr.LongContext = &pricing.Rates{Input: lc.Input, Output: lc.Output, CacheWrite5m: lc.CacheWrite5m, CacheWrite1h: lc.CacheWrite1h, CacheRead: lc.CacheRead}
		}
		overrides = append(overrides, pr)
	}
	prices, err := pricing.New(pricing.Options{Overrides: overrides})
	if err != nil {
		return nil, err
	}
	for _, m := range cfg.Models {
		if _, ok := prices.Lookup(m.ID, m.Upstream); !ok {
			log.Warn("model has no price: its cost is computed at the highest known rates; add it under pricing", slog.String("model", m.ID))
		}
	}
	g := &governance{Pricing: prices, limitsCfg: cfg.Limits}
	var backend limits.Backend = memory.New()
	switch {
	case prev != nil && sameLimitsStore(prev.limitsCfg, cfg.Limits):
		// Ownership of the connection moves to the new generation.
		backend, g.closer, prev.closer = prev.backend, prev.closer, nil
	case cfg.Limits.Redis != "":
		client, err := limitsredis.NewClient(cfg.Limits.Redis, cfg.Limits.RedisPassword.Value(), cfg.Limits.Timeout)
		if err != nil {
			return nil, err
		}
		rb, err := limitsredis.New(limitsredis.Options{Client: client})
		if err != nil {
			client.Close()
			return nil, err
		}
		pctx, cancel := context.WithTimeout(ctx, cfg.Limits.Timeout+time.Second)
		if err := rb.Ping(pctx); err != nil {
			log.Warn("limits: Redis is unreachable at start-up; policies' fail_mode applies until it is back", slog.Any("err", err))
		}
		cancel()
		backend, g.closer = rb, client
	}
	g.backend = backend
	g.Engine, err = limits.NewEngine(limits.Options{Policies: set, Backend: backend, Pricing: prices, Logger: log,
		KeyPrefix: cfg.Limits.KeyPrefix, StreamLease: cfg.Limits.StreamLease, CountCacheReads: cfg.Limits.CountCacheReads})
	if err != nil {
		g.Close()
		return nil, err
	}
	return g, nil
}

// usageRow is one line of the usage report.
type usageRow struct {
	Key          string
	Name         string // display name (users), when known
	Requests     int64  // forwarded requests (what requests_per_minute counted)
	Denied       int64  // refused by the gateway
	Input        int64  // uncached input tokens
	CacheWrite   int64
	CacheRead    int64
	Output       int64
	CostNanoUSD  pricing.NanoUSD
	UnpricedReqs int64
}

func (r *usageRow) Tokens() int64 { return r.Input + r.CacheWrite + r.CacheRead + r.Output }

// Counted is what tokens_per_minute/tokens_per_day count of the row.
func (r *usageRow) Counted(countCacheReads bool) int64 {
	if countCacheReads {
		return r.Tokens()
	}
	return r.Tokens() - r.CacheRead
}

// periodBounds returns the calendar period (UTC, the limits' windows)
// containing t. Weeks start on Monday.
func periodBounds(period string, t time.Time) (time.Time, time.Time, error) {
	t = t.UTC()
	day := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	switch period {
	case "day":
		return day, day.AddDate(0, 0, 1), nil
	case "week":
		start := day.AddDate(0, 0, -((int(day.Weekday()) + 6) % 7))
		return start, start.AddDate(0, 0, 7), nil
	case "month":
		start := time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
		return start, start.AddDate(0, 1, 0), nil
	}
	return time.Time{}, time.Time{}, usagef("--period must be day, week or month, not %q", period)
}

// recordGroups returns the governed groups a record was counted against
// (the user's groups that policies and group limits name).
func recordGroups(r *audit.Record) []string { return r.Groups }

// aggregate groups records by user, group or model.
func aggregate(recs []audit.Record, by string) []*usageRow {
	rows := map[string]*usageRow{}
	add := func(key, name string, r *audit.Record) {
		row := rows[key]
		if row == nil {
			row = &usageRow{Key: key}
			rows[key] = row
		}
		if name != "" {
			row.Name = name
		}
		if r.State == audit.StateDenied {
			row.Denied++
			return
		}
		row.Requests++
		row.Input += r.Usage.InputTokens
		row.CacheWrite += r.Usage.CacheCreationInputTokens
		row.CacheRead += r.Usage.CacheReadInputTokens
		row.Output += r.Usage.OutputTokens
		row.CostNanoUSD += pricing.FromUSD(r.CostUSD)
	}
	for i := range recs {
		r := &recs[i]
		switch by {
		case "user":
			add(r.UserKey, r.UserName, r)
		case "model":
			add(r.Model, "", r)
		case "group":
			for _, g := range recordGroups(r) {
				add(g, "", r)
			}
		}
	}
	out := make([]*usageRow, 0, len(rows))
	for _, r := range rows {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b *usageRow) int {
		if c := cmp.Compare(b.CostNanoUSD, a.CostNanoUSD); c != 0 {
			return c
		}
		if c := cmp.Compare(b.Tokens(), a.Tokens()); c != 0 {
			return c
		}
		return cmp.Compare(a.Key, b.Key)
	})
	return out
}

func runUsage(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "usage", "--config FILE [--by user|group|model] [--period day|week|month] [--date YYYY-MM-DD] [--csv]")
	path := fs.String("config", "", "configuration file (required)")
	by := fs.String("by", "user", "group rows by user, group or model")
	period := fs.String("period", "month", "calendar period (UTC, the same windows the limits count): day, week (Monday to Sunday) or month")
	date := fs.String("date", "", "a day inside the period to report (YYYY-MM-DD, UTC); default today")
	asCSV := fs.Bool("csv", false, "print CSV instead of a table")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch *by {
	case "user", "group", "model":
	default:
		return usagef("--by must be user, group or model, not %q", *by)
	}
	at := time.Now()
	if *date != "" {
		d, err := time.Parse("2006-01-02", *date)
		if err != nil {
			return usagef("--date %q is not YYYY-MM-DD", *date)
		}
		at = d
	}
	since, until, err := periodBounds(*period, at)
	if err != nil {
		return err
	}
	cfg, err := loadConfig(e, *path)
	if err != nil {
		return err
	}
	if cfg.Audit.Postgres != "" {
		return errors.New("gatehouse usage reads the SQLite audit store; this configuration uses PostgreSQL, which the report does not read yet")
	}
	// Read-only: a gateway may be running on the same database.
	store, err := auditsqlite.Open(ctx, auditsqlite.Options{Path: cfg.Audit.SQLite, ReadOnly: true})
	if err != nil {
		return fmt.Errorf("opening the audit store %s: %w", cfg.Audit.SQLite, err)
	}
	defer store.Close()
	recs, err := store.List(ctx, audit.Filter{Since: since, Until: until})
	if err != nil {
		return fmt.Errorf("reading the audit store: %w", err)
	}
	rows := aggregate(recs, *by)
	if *asCSV {
		return writeUsageCSV(e.stdout, *by, since, until, rows, cfg.Limits.CountCacheReads)
	}
	return writeUsageTable(e.stdout, *by, *period, since, until, rows, cfg.Limits.CountCacheReads)
}

func writeUsageCSV(w io.Writer, by string, since, until time.Time, rows []*usageRow, countCacheReads bool) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"period_start", "period_end", by, "name", "requests", "denied", "input_tokens", "cache_write_tokens", "cache_read_tokens", "output_tokens", "total_tokens", "cost_usd", "limit_tokens"})
	for _, r := range rows {
		_ = cw.Write([]string{since.Format(time.RFC3339), until.Format(time.RFC3339), r.Key, r.Name,
			strconv.FormatInt(r.Requests, 10), strconv.FormatInt(r.Denied, 10),
			strconv.FormatInt(r.Input, 10), strconv.FormatInt(r.CacheWrite, 10), strconv.FormatInt(r.CacheRead, 10),
			strconv.FormatInt(r.Output, 10), strconv.FormatInt(r.Tokens(), 10), fmt.Sprintf("%.6f", r.CostNanoUSD.USD()),
			strconv.FormatInt(r.Counted(countCacheReads), 10)})
	}
	cw.Flush()
	return cw.Error()
}

func writeUsageTable(w io.Writer, by, period string, since, until time.Time, rows []*usageRow, countCacheReads bool) error {
	fmt.Fprintf(w, "Usage by %s, %s %s to %s (UTC)\n\n", by, period, since.Format("2006-01-02"), until.Add(-time.Nanosecond).Format("2006-01-02"))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%s\tREQUESTS\tDENIED\tINPUT\tCACHE WRITE\tCACHE READ\tOUTPUT\tTOTAL TOKENS\tLIMIT TOKENS\tCOST USD\t\n", upper(by))
	var total usageRow
	for _, r := range rows {
		label := r.Key
		if r.Name != "" && r.Name != r.Key {
			label = r.Name + " (" + r.Key + ")"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%.4f\t\n", label, r.Requests, r.Denied, r.Input, r.CacheWrite, r.CacheRead, r.Output, r.Tokens(), r.Counted(countCacheReads), r.CostNanoUSD.USD())
		total.Requests += r.Requests
		total.Denied += r.Denied
		total.Input += r.Input
		total.CacheWrite += r.CacheWrite
		total.CacheRead += r.CacheRead
		total.Output += r.Output
		total.CostNanoUSD += r.CostNanoUSD
	}
	if by != "group" { // a request counts in every group of its user: no grand total
		fmt.Fprintf(tw, "TOTAL\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%.4f\t\n", total.Requests, total.Denied, total.Input, total.CacheWrite, total.CacheRead, total.Output, total.Tokens(), total.Counted(countCacheReads), total.CostNanoUSD.USD())
	}
	return tw.Flush()
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 32
		}
	}
	return string(b)
}
