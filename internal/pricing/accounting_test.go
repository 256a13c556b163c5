package pricing_test

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/anthropic"
	"github.com/gatehouse-dev/gatehouse/internal/pricing"
)

// The accounting corpus (issue 4.5) lives in the repository's testdata
// because the gateway's end-to-end tests replay the same recordings.
const corpusDir = "../../testdata/accounting"

type accountingCase struct {
	File       string          `json:"file"`
	Model      string          `json:"model"`
	Complete   bool            `json:"complete"`
	StopReason string          `json:"stop_reason"`
	ErrorType  string          `json:"error_type"`
	Usage      anthropic.Usage `json:"usage"`
	CostUSD    string          `json:"cost_usd"`
	Why        string          `json:"why"`
}

func loadCorpus(t *testing.T) []accountingCase {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(corpusDir, "cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Cases []accountingCase `json:"cases"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	if len(m.Cases) < 10 {
		t.Fatalf("corpus has %d cases", len(m.Cases))
	}
	// Every recording has a case and every case a recording.
	files, _ := filepath.Glob(filepath.Join(corpusDir, "*.*"))
	seen := map[string]bool{}
	for _, c := range m.Cases {
		seen[c.File] = true
	}
	for _, f := range files {
		if base := filepath.Base(f); base != "cases.json" && !seen[base] {
			t.Errorf("%s has no entry in cases.json", base)
		}
	}
	return m.Cases
}

// parseNano reads a decimal dollar amount exactly (no floating point).
func parseNano(t *testing.T, s string) pricing.NanoUSD {
	t.Helper()
	whole, frac, _ := strings.Cut(s, ".")
	if len(frac) > 9 {
		t.Fatalf("cost %q has more than 9 decimals", s)
	}
	frac += strings.Repeat("0", 9-len(frac))
	w, err1 := strconv.ParseInt(whole, 10, 64)
	f, err2 := strconv.ParseInt(frac, 10, 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("bad cost %q", s)
	}
	return pricing.NanoUSD(w*1_000_000_000 + f)
}

// tapChunks feeds body to a fresh tap in chunks cut at random places.
func tapChunks(body []byte, r *rand.Rand, maxChunk int) *anthropic.SSETap {
	tap := anthropic.NewSSETap()
	for len(body) > 0 {
		n := 1 + r.IntN(maxChunk)
		if n > len(body) {
			n = len(body)
		}
		if _, err := tap.Write(body[:n]); err != nil {
			panic(err)
		}
		body = body[n:]
	}
	return tap
}

func TestAccountingCorpus(t *testing.T) {
	table, err := pricing.New(pricing.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range loadCorpus(t) {
		t.Run(c.File, func(t *testing.T) {
			body, err := os.ReadFile(filepath.Join(corpusDir, c.File))
			if err != nil {
				t.Fatal(err)
			}
			var got anthropic.Usage
			if strings.HasSuffix(c.File, ".sse") {
				// The same usage whatever the network's chunking: whole,
				// byte by byte, and random cuts.
				r := rand.New(rand.NewPCG(uint64(len(body)), 1))
				taps := []*anthropic.SSETap{tapChunks(body, r, len(body)), tapChunks(body, r, 1)}
				for i := 0; i < 50; i++ {
					taps = append(taps, tapChunks(body, r, 64))
				}
				got = taps[0].Usage()
				for i, tap := range taps {
					if u := tap.Usage(); u != got {
						t.Fatalf("chunking %d gives %+v, whole body gives %+v", i, u, got)
					}
					if tap.Complete() != c.Complete {
						t.Fatalf("Complete() = %v, want %v", tap.Complete(), c.Complete)
					}
					if tap.ErrorType() != c.ErrorType {
						t.Fatalf("ErrorType() = %q, want %q", tap.ErrorType(), c.ErrorType)
					}
					if c.StopReason != "" && tap.StopReason() != c.StopReason {
						t.Fatalf("StopReason() = %q, want %q", tap.StopReason(), c.StopReason)
					}
				}
			} else {
				u, _, ok := anthropic.UsageFromJSON(body)
				if !ok {
					t.Fatal("no usage in JSON body")
				}
				got = u
			}
			if got != c.Usage {
				t.Fatalf("usage\n got  %+v\n want %+v\n(%s)", got, c.Usage, c.Why)
			}
			cost := table.Cost(c.Model, "", got)
			if want := parseNano(t, c.CostUSD); cost.Total != want || !cost.Known {
				t.Fatalf("cost %s (known=%v), want %s (%s)", cost.Total, cost.Known, want, c.Why)
			}
		})
	}
}

// TestNoCacheDoubleCounting is the explicit proof for issue 4.5: the
// recording repeats the cumulative cache counts in message_delta, so a tap
// that adds message_delta usage to message_start usage (the Bifrost and
// LiteLLM bug) would record twice the cache tokens and bill
// $0.038046 instead of $0.021366. Each token is billed in exactly one
// category, and the categories add up to the total input.
func TestNoCacheDoubleCounting(t *testing.T) {
	body, err := os.ReadFile(filepath.Join(corpusDir, "sse_cache_write_read.sse"))
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(body, []byte(`"cache_read_input_tokens":30000`)); n != 2 {
		t.Fatalf("the recording must report the cache read twice (start and delta) to catch summing; found %d", n)
	}
	tap := anthropic.NewSSETap()
	tap.Write(body)
	u := tap.Usage()
	if u.CacheReadInputTokens != 30000 || u.CacheCreationInputTokens != 2048 || u.InputTokens != 12 {
		t.Fatalf("cache tokens counted wrong: %+v", u)
	}
	if u.TotalInput() != 12+2048+30000 {
		t.Fatalf("TotalInput = %d", u.TotalInput())
	}
	table, _ := pricing.New(pricing.Options{})
	good := table.Cost("claude-sonnet-4-6", "", u).Total
	doubled := u
	doubled.CacheReadInputTokens *= 2
	doubled.CacheCreationInputTokens *= 2
	doubled.CacheCreation5m *= 2
	bad := table.Cost("claude-sonnet-4-6", "", doubled).Total
	if good != 21_366_000 || bad != 38_046_000 {
		t.Fatalf("good %d bad %d", good, bad)
	}
	// input_tokens excludes cache tokens: billing cache reads again as
	// uncached input (the other classic bug) would cost more as well.
	asInput := anthropic.Usage{InputTokens: u.TotalInput(), OutputTokens: u.OutputTokens}
	if table.Cost("claude-sonnet-4-6", "", asInput).Total == good {
		t.Fatal("cost does not distinguish cached from uncached input")
	}
}
