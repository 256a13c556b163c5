package cli

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/fake/idp"
)

// TestAttackCatalogueThroughGateway replays every row of the attack
// catalogue (security.md §2) against the running gateway: each gets the
// expected 401/403, the upstream receives nothing, and the audit trail
// holds a denial with the expected reason.
func TestAttackCatalogueThroughGateway(t *testing.T) {
	h := startGateway(t, harnessOptions{logLevel: "warn"})
	attacks := idp.Attacks(h.idp, testTenant, testClientID)
	if len(attacks) < 50 {
		t.Fatalf("only %d attacks in the catalogue", len(attacks))
	}
	rows := map[int]bool{}
	for i, a := range attacks {
		url := h.base + "/v1/messages"
		if a.Query != "" {
			url += "?" + a.Query
		}
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(okBody))
		for k, vv := range a.Header {
			req.Header[k] = vv
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("User-Agent", "attack/"+strconv.Itoa(i))
		resp, err := h.client.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", a.Name, err)
		}
		typ, _, _ := errorBody(t, resp)
		wantType := map[int]string{401: "authentication_error", 403: "permission_error"}[a.WantStatus]
		if resp.StatusCode != a.WantStatus || typ != wantType {
			t.Errorf("row %d %s: %d %s, want %d", a.Row, a.Name, resp.StatusCode, typ, a.WantStatus)
		}
		rows[a.Row] = true
	}
	if n := h.stub.Count(); n != 0 {
		t.Fatalf("the upstream received %d requests during the attack run", n)
	}
	recs := h.records()
	byUA := map[string]audit.Record{}
	for _, r := range recs {
		byUA[r.UserAgent] = r
	}
	for i, a := range attacks {
		r, ok := byUA["attack/"+strconv.Itoa(i)]
		switch {
		case !ok:
			t.Errorf("row %d %s: no audit record", a.Row, a.Name)
		case r.State != audit.StateDenied || r.Status != a.WantStatus || (a.WantReason != "" && r.Reason != a.WantReason):
			t.Errorf("row %d %s: audit %s %d %q, want denied %d %q", a.Row, a.Name, r.State, r.Status, r.Reason, a.WantStatus, a.WantReason)
		}
	}
	t.Logf("%d attacks covering %d catalogue rows: all refused, audited, upstream untouched", len(attacks), len(rows))
}
