package server

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/anthropic"
	"github.com/gatehouse-dev/gatehouse/internal/audit"
)

type modelEntry struct {
	Type            string `json:"type"`
	ID              string `json:"id"`
	DisplayName     string `json:"display_name"`
	CreatedAt       string `json:"created_at"`
	Description     string `json:"description,omitempty"`
	FamilyTier      string `json:"anthropic_family_tier,omitempty"`
	IsFamilyDefault bool   `json:"is_family_default,omitempty"`
}

type modelList struct {
	Data    []modelEntry `json:"data"`
	HasMore bool         `json:"has_more"`
	FirstID *string      `json:"first_id"`
	LastID  *string      `json:"last_id"`
}

// FamilyTier returns opus, sonnet or haiku when the model id names a Claude
// family (Claude Desktop uses it to recognise gateway models), else "".
func FamilyTier(id string) string {
	l := strings.ToLower(id)
	for _, f := range []string{"opus", "sonnet", "haiku"} {
		if strings.Contains(l, f) {
			return f
		}
	}
	return ""
}

// listModels answers GET /v1/models from configuration, in the Anthropic
// list shape with after_id/before_id/limit paging. It is authenticated and
// never redirects.
func (s *Server) listModels(w http.ResponseWriter, r *http.Request, rid string) {
	start := s.now()
	p, denial := s.opts.Auth.Authenticate(r.Context(), r)
	if denial != nil {
		rec := s.newRecord(r, rid, start)
		s.deny(w, r, rec, denial, start)
		return
	}
	rec := s.newRecord(r, rid, start)
	fillUser(rec, &p)
	q := r.URL.Query()
	limit := 20
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			anthropic.WriteError(w, http.StatusBadRequest, anthropic.InvalidRequestError, "limit: must be an integer from 1 to 1000.", rid)
			return
		}
		limit = n
	}
	all := s.opts.Models
	if s.opts.Admit != nil {
		ids := make([]string, 0, len(all))
		for _, m := range all {
			ids = append(ids, m.ID)
		}
		allowed := map[string]bool{}
		for _, id := range s.opts.Admit.AllowedModels(p, ids) {
			allowed[id] = true
		}
		var mine []Model
		for _, m := range all {
			if allowed[m.ID] {
				mine = append(mine, m)
			}
		}
		all = mine
	}
	lo, hi := 0, len(all)
	if after := q.Get("after_id"); after != "" {
		lo = len(all)
		for i, m := range all {
			if m.ID == after {
				lo = i + 1
			}
		}
	}
	if before := q.Get("before_id"); before != "" {
		for i, m := range all {
			if m.ID == before {
				hi = i
			}
		}
		if hi-lo > limit && q.Get("after_id") == "" {
			lo = hi - limit
		}
	}
	if lo > hi {
		lo = hi
	}
	page := all[lo:hi]
	more := false
	if len(page) > limit {
		page, more = page[:limit], true
	}
	out := modelList{Data: make([]modelEntry, 0, len(page)), HasMore: more}
	for _, m := range page {
		created := m.CreatedAt
		if created.IsZero() {
			created = time.Unix(0, 0)
		}
		out.Data = append(out.Data, modelEntry{
			Type: "model", ID: m.ID, DisplayName: m.DisplayName, CreatedAt: created.UTC().Format(time.RFC3339),
			Description: m.Description, FamilyTier: FamilyTier(m.ID), IsFamilyDefault: m.FamilyDefault,
		})
	}
	if n := len(out.Data); n > 0 {
		out.FirstID, out.LastID = &out.Data[0].ID, &out.Data[n-1].ID
	}
	b, _ := json.Marshal(out)
	rec.State, rec.Status = audit.StateCompleted, http.StatusOK
	rec.LatencyMS = ms(s.now().Sub(start))
	if err := s.opts.Audit.Begin(r.Context(), rec); err != nil {
		anthropic.WriteError(w, http.StatusServiceUnavailable, anthropic.APIError, "The gateway cannot record requests right now, so it is not accepting them. Please retry shortly.", rid)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "private, max-age=60")
	w.Write(b)
}
