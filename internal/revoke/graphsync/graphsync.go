// Package graphsync copies Entra ID account state into revocations: it
// polls Microsoft Graph (app-only credentials, User.Read.All) for the
// accountEnabled and signInSessionsValidFromDateTime of the users the
// gateway has recently seen, and revokes accordingly (security.md §6.6.4):
//
//   - accountEnabled = false, or the user deleted (404): a user revocation
//     (source entra-sync), removed again when the account is re-enabled;
//   - signInSessionsValidFromDateTime later than the last one copied (an
//     admin's "revoke sessions", a password reset): a "before" revocation
//     for that user, so tokens issued earlier stop working.
//
// Graph is polled per user (GET /v1.0/users/{oid}?$select=...), at most once
// per Interval, only for users seen within ForgetAfter and users with an
// entra-sync revocation in force.
package graphsync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/revoke"
)

// Credential authenticates requests to Graph (credential.TokenCredential
// with scope https://graph.microsoft.com/.default satisfies it).
type Credential interface {
	Apply(ctx context.Context, r *http.Request) error
}

// Options configures New. Zero values are documented per field.
type Options struct {
	Store      revoke.Store // required
	Credential Credential   // required
	// TenantID: only users of this tenant are polled. Required.
	TenantID string
	// GraphURL: default https://graph.microsoft.com.
	GraphURL string
	// Interval between passes. Default 1m.
	Interval time.Duration
	// ForgetAfter: users not seen for this long are not polled. Default 24h.
	ForgetAfter time.Duration
	// CutoffWindow: a signInSessionsValidFromDateTime older than this is not
	// copied (every token issued before it has expired anyway). Default 28h
	// (the longest Entra access-token lifetime, CAE).
	CutoffWindow time.Duration
	// MaxUsers bounds the users tracked. Default 100000.
	MaxUsers int
	// HTTPClient: default a client with a 30s timeout and no redirects.
	HTTPClient *http.Client
	Logger     *slog.Logger     // nil: discard
	Now        func() time.Time // nil: time.Now
}

// Syncer tracks seen users and polls Graph for them.
type Syncer struct {
	opts Options
	log  *slog.Logger
	mu   sync.Mutex
	seen map[string]time.Time // oid → last seen
}

// New validates opts.
func New(o Options) (*Syncer, error) {
	if o.Store == nil || o.Credential == nil {
		return nil, errors.New("graphsync: Store and Credential are required")
	}
	if !revoke.IsGUID(o.TenantID) {
		return nil, errors.New("graphsync: TenantID must be the directory's tenant ID (GUID)")
	}
	o.TenantID = strings.ToLower(o.TenantID)
	if o.GraphURL == "" {
		o.GraphURL = "https://graph.microsoft.com"
	}
	o.GraphURL = strings.TrimSuffix(o.GraphURL, "/")
	if o.Interval <= 0 {
		o.Interval = time.Minute
	}
	if o.ForgetAfter <= 0 {
		o.ForgetAfter = 24 * time.Hour
	}
	if o.CutoffWindow <= 0 {
		o.CutoffWindow = 28 * time.Hour
	}
	if o.MaxUsers <= 0 {
		o.MaxUsers = 100000
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Syncer{opts: o, log: o.Logger, seen: map[string]time.Time{}}, nil
}

// Observe records that p was let through (revoke.Options.Observe). Cheap:
// one map write under a mutex, at most one per user per second.
func (s *Syncer) Observe(p identity.Principal) {
	if p.ObjectID == "" || !strings.EqualFold(p.TenantID, s.opts.TenantID) {
		return
	}
	now := s.opts.Now()
	s.mu.Lock()
	if last, ok := s.seen[p.ObjectID]; !ok && len(s.seen) < s.opts.MaxUsers || ok && now.Sub(last) > time.Second {
		s.seen[p.ObjectID] = now
	}
	s.mu.Unlock()
}

// Run syncs every Interval until ctx ends.
func (s *Syncer) Run(ctx context.Context) {
	t := time.NewTicker(s.opts.Interval)
	defer t.Stop()
	for {
		if err := s.SyncOnce(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("entra sync: pass failed; revocations from Graph may be stale", slog.Any("error", err))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// UserState is what Graph says about one user.
type UserState struct {
	Found          bool
	AccountEnabled bool
	SessionsFrom   time.Time // signInSessionsValidFromDateTime; zero when null
}

// SyncOnce polls every tracked user once and applies the differences.
func (s *Syncer) SyncOnce(ctx context.Context) error {
	now := s.opts.Now()
	list, err := s.opts.Store.List(ctx, false)
	if err != nil {
		return err
	}
	disabled := map[string]revoke.Revocation{} // oid → entra-sync user revocation
	cutoff := map[string]time.Time{}           // oid → latest entra-sync cutoff
	for _, r := range list {
		if r.Source != revoke.SourceGraph || !r.Active(now) {
			continue
		}
		switch r.Kind {
		case revoke.KindUser:
			disabled[r.Subject] = r
		case revoke.KindBefore:
			if r.Before.After(cutoff[r.Subject]) {
				cutoff[r.Subject] = r.Before
			}
		}
	}
	s.mu.Lock()
	users := make([]string, 0, len(s.seen)+len(disabled))
	for oid, last := range s.seen {
		if now.Sub(last) > s.opts.ForgetAfter {
			delete(s.seen, oid)
			continue
		}
		users = append(users, oid)
	}
	s.mu.Unlock()
	for oid := range disabled {
		users = append(users, oid)
	}
	done := map[string]bool{}
	var errs []error
	for _, oid := range users {
		if done[oid] {
			continue
		}
		done[oid] = true
		st, err := s.fetch(ctx, oid)
		if err != nil {
			var ge *GraphError
			if errors.As(err, &ge) && (ge.Status == http.StatusTooManyRequests || ge.Status == http.StatusUnauthorized || ge.Status == http.StatusForbidden) {
				return err // throttled or not permitted: every further call would fail too
			}
			errs = append(errs, err)
			continue
		}
		if err := s.apply(ctx, oid, st, disabled[oid], cutoff[oid], now); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (s *Syncer) apply(ctx context.Context, oid string, st UserState, dis revoke.Revocation, cut time.Time, now time.Time) error {
	off := !st.Found || !st.AccountEnabled
	switch {
	case off && dis.ID == 0:
		reason := "Entra: account disabled (accountEnabled=false)"
		if !st.Found {
			reason = "Entra: user not found (deleted)"
		}
		r, err := s.opts.Store.Add(ctx, revoke.Revocation{Kind: revoke.KindUser, Subject: oid, Reason: reason, Actor: revoke.SourceGraph, Source: revoke.SourceGraph})
		if err != nil {
			return err
		}
		s.log.Warn("entra sync: user revoked", slog.Int64("id", r.ID), slog.String("oid", oid), slog.String("reason", reason))
	case !off && dis.ID != 0:
		if _, err := s.opts.Store.Remove(ctx, dis.ID, revoke.SourceGraph, "Entra: account enabled again"); err != nil && !errors.Is(err, revoke.ErrNotFound) {
			return err
		}
		s.log.Warn("entra sync: user revocation lifted", slog.Int64("id", dis.ID), slog.String("oid", oid))
	}
	if st.Found && !st.SessionsFrom.IsZero() && st.SessionsFrom.After(cut) && now.Sub(st.SessionsFrom) < s.opts.CutoffWindow {
		// It lapses when every token issued before the cutoff has expired.
		r, err := s.opts.Store.Add(ctx, revoke.Revocation{Kind: revoke.KindBefore, Subject: oid, Before: st.SessionsFrom, Until: st.SessionsFrom.Add(s.opts.CutoffWindow),
			Reason: "Entra: sign-in sessions revoked (signInSessionsValidFromDateTime)", Actor: revoke.SourceGraph, Source: revoke.SourceGraph})
		if err != nil {
			return err
		}
		s.log.Warn("entra sync: tokens issued before the user's session cutoff revoked", slog.Int64("id", r.ID), slog.String("oid", oid), slog.Time("before", st.SessionsFrom))
	}
	return nil
}

// GraphError is a non-2xx answer from Graph.
type GraphError struct {
	Status     int
	Code       string
	Message    string
	RetryAfter time.Duration
}

func (e *GraphError) Error() string {
	return fmt.Sprintf("graph: %d %s: %s", e.Status, e.Code, e.Message)
}

// fetch reads one user's state.
func (s *Syncer) fetch(ctx context.Context, oid string) (UserState, error) {
	u := s.opts.GraphURL + "/v1.0/users/" + url.PathEscape(oid) + "?$select=id,accountEnabled,signInSessionsValidFromDateTime"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return UserState{}, err
	}
	if err := s.opts.Credential.Apply(ctx, req); err != nil {
		return UserState{}, fmt.Errorf("graph: credential: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.opts.HTTPClient.Do(req)
	if err != nil {
		return UserState{}, fmt.Errorf("graph: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return UserState{}, fmt.Errorf("graph: reading the answer: %w", err)
	}
	if resp.StatusCode == http.StatusNotFound {
		ge := parseError(resp, body)
		if ge.Code == "Request_ResourceNotFound" {
			return UserState{Found: false}, nil
		}
		return UserState{}, ge
	}
	if resp.StatusCode != http.StatusOK {
		return UserState{}, parseError(resp, body)
	}
	return ParseUser(body)
}

func parseError(resp *http.Response, body []byte) *GraphError {
	ge := &GraphError{Status: resp.StatusCode}
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil {
		ge.Code, ge.Message = e.Error.Code, e.Error.Message
	}
	if len(ge.Message) > 300 {
		ge.Message = ge.Message[:300]
	}
	if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs > 0 {
		ge.RetryAfter = time.Duration(secs) * time.Second
	}
	return ge
}

// ParseUser reads a Graph user object with accountEnabled and
// signInSessionsValidFromDateTime. Both must be present (a missing
// accountEnabled means the $select was not honoured, and guessing would
// either lock users out or let them in).
func ParseUser(body []byte) (UserState, error) {
	var u struct {
		AccountEnabled *bool           `json:"accountEnabled"`
		SessionsFrom   json.RawMessage `json:"signInSessionsValidFromDateTime"`
	}
	if err := json.Unmarshal(body, &u); err != nil {
		return UserState{}, fmt.Errorf("graph: user: %w", err)
	}
	if u.AccountEnabled == nil {
		return UserState{}, errors.New("graph: user: accountEnabled missing")
	}
	st := UserState{Found: true, AccountEnabled: *u.AccountEnabled}
	if len(u.SessionsFrom) > 0 && string(u.SessionsFrom) != "null" {
		var s string
		if err := json.Unmarshal(u.SessionsFrom, &s); err != nil {
			return UserState{}, fmt.Errorf("graph: user: signInSessionsValidFromDateTime: %w", err)
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return UserState{}, fmt.Errorf("graph: user: signInSessionsValidFromDateTime: %w", err)
		}
		if t.Year() < 1970 || t.Year() > 9999 {
			return UserState{}, errors.New("graph: user: signInSessionsValidFromDateTime out of range")
		}
		st.SessionsFrom = t.UTC()
	}
	return st, nil
}
