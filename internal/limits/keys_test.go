package limits

import (
	"testing"
	"time"
)

// TestWindowKeysMatchCounterKey: the cached keys are the keys CounterKey
// names, across minute, day and month boundaries and in a non-UTC zone;
// a scope unused for two minutes leaves the cache.
func TestWindowKeysMatchCounterKey(t *testing.T) {
	loc := time.FixedZone("UTC+5:45", 5*3600+45*60)
	e := &Engine{loc: loc, prefix: "gh"}
	times := []time.Time{
		time.Date(2026, 11, 30, 18, 13, 59, 0, time.UTC), // 23:58:59 local
		time.Date(2026, 11, 30, 18, 14, 0, 0, time.UTC),  // 23:59 local
		time.Date(2026, 11, 30, 18, 15, 0, 0, time.UTC),  // 1 December, 00:00 local
		time.Date(2026, 11, 30, 18, 15, 30, 0, time.UTC),
		time.Date(2026, 11, 30, 18, 14, 30, 0, time.UTC), // the clock went back
	}
	for _, now := range times {
		for _, sc := range []struct {
			kind  byte
			scope string
			id    string
		}{{'u', "u", "tenant/alice"}, {'g', "g", "group-1"}} {
			w := e.windowKeys(sc.kind, sc.id, now)
			for rule, got := range map[string]string{
				RuleRequestsPerMinute: w.rpm, RuleTokensPerMinute: w.tpm, RuleTokensPerDay: w.tpd,
				RuleUSDPerMonth: w.usd, RuleConcurrentStreams: w.conc,
			} {
				if want := e.CounterKey(sc.scope, sc.id, rule, now); got != want {
					t.Errorf("%s %s at %s: key %q, want %q", sc.scope, rule, now, got, want)
				}
			}
			local := now.In(loc)
			if want := local.Truncate(time.Minute).Add(time.Minute); !w.minuteEnd.Equal(want) {
				t.Errorf("minute end %s, want %s", w.minuteEnd, want)
			}
			if want := time.Date(local.Year(), local.Month(), local.Day()+1, 0, 0, 0, 0, loc); !w.dayEnd.Equal(want) {
				t.Errorf("day end %s, want %s", w.dayEnd, want)
			}
			if want := time.Date(local.Year(), local.Month()+1, 1, 0, 0, 0, 0, loc); !w.monthEnd.Equal(want) {
				t.Errorf("month end %s, want %s", w.monthEnd, want)
			}
		}
	}
	if w1, w2 := e.windowKeys('u', "tenant/alice", times[3]), e.windowKeys('u', "tenant/alice", times[3]); w1 != w2 {
		t.Error("the same scope and minute built its keys twice")
	}
	// Two minutes on, only the scope used since is kept.
	later := times[3].Add(2 * time.Minute)
	e.windowKeys('g', "group-1", later.Add(-time.Minute))
	e.windowKeys('g', "group-1", later)
	if _, ok := e.keys.cur[scopeID{'u', "tenant/alice"}]; ok {
		t.Error("an idle scope is still cached")
	}
	if _, ok := e.keys.prev[scopeID{'u', "tenant/alice"}]; ok {
		t.Error("an idle scope is still cached (previous minute)")
	}
	if _, ok := e.keys.cur[scopeID{'g', "group-1"}]; !ok {
		t.Error("an active scope left the cache")
	}
}
