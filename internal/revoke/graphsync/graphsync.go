// Package graphsync copies Entra ID account state into revocations: it
// polls Microsoft Graph (app-only credentials, User.Read.All) for the
// accountEnabled and signInSessionsValidFromDateTime of the users the
// gateway has recently seen, and revokes accordingly (security.md §6.6.4):
//
//   - accountEnabled = false, or the user deleted (404): a user revocation
//     (source entra-sync), removed again when the account is re-enabled;
//
//   - signInSessionsValidFromDateTime later than the last one copied (an
//     admin's "revoke sessions", a password reset): a "before" revocation
//     for that user, so tokens issued earlier stop working.
//
//   - the gateway's own app disabled in the tenant (its service principal's
//     accountEnabled = false, "Enabled for users to sign in?" = No): a kill
//     switch (kind all), removed when the app is enabled again; this makes
//     "disable the app registration" effective within one Interval.
//
// Graph is polled per user (GET /v1.0/users/{oid}?$select=...), at most once
// per Interval, only for users seen within ForgetAfter and users with an
// entra-sync revocation in force. With FailClosedAfter, users of the tenant
// are refused once no pass has succeeded for that long (Guard).
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
	"sync/atomic"
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
	// AppID is the gateway's app (client) ID; when set, its service
	// principal's accountEnabled is checked every pass (needs
	// Application.Read.All) and false acts as a kill switch.
	AppID string
	// FailClosedAfter: Guard refuses the tenant's users when no pass has
	// succeeded for this long. 0: off.
	FailClosedAfter time.Duration
	// MaxUsers bounds the users tracked. Default 100000.
	MaxUsers int
	// HTTPClient: default a client with a 30s timeout and no redirects.
	HTTPClient *http.Client
	Logger     *slog.Logger     // nil: discard
	Now        func() time.Time // nil: time.Now
}

// Syncer tracks seen users and polls Graph for them.
type Syncer struct {
	opts    Options
	log     *slog.Logger
	mu      sync.Mutex
	seen    map[string]time.Time // oid → last seen
	started time.Time
	lastOK  atomic.Int64 // unix ns of the last successful pass
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
	return &Syncer{opts: o, log: o.Logger, seen: map[string]time.Time{}, started: o.Now()}, nil
}

// StaleError is Guard's refusal.
type StaleError struct{ Since time.Duration }

func (e *StaleError) Error() string {
	return fmt.Sprintf("entra sync: no successful Graph sync for %v (fail_closed_after)", e.Since.Round(time.Second))
}

// Guard refuses users of the synced tenant when Graph data is older than
// FailClosedAfter (revoke.Options.Guard). The bound counts from start-up
// until the first pass succeeds.
func (s *Syncer) Guard(p identity.Principal) error {
	if s.opts.FailClosedAfter <= 0 || !strings.EqualFold(p.TenantID, s.opts.TenantID) {
		return nil
	}
	last := s.lastOK.Load()
	if last == 0 {
		last = s.started.UnixNano()
	}
	if age := time.Duration(s.opts.Now().UnixNano() - last); age > s.opts.FailClosedAfter {
		return &StaleError{Since: age}
	}
	return nil
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
	var appOff revoke.Revocation               // entra-sync kill switch
	for _, r := range list {
		if r.Source != revoke.SourceGraph || !r.Active(now) {
			continue
		}
		switch r.Kind {
		case revoke.KindAll:
			appOff = r
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
	var errs []error
	if s.opts.AppID != "" {
		if err := s.syncApp(ctx, appOff); err != nil {
			var ge *GraphError
			if errors.As(err, &ge) && ge.Status == http.StatusTooManyRequests {
				return err
			}
			errs = append(errs, fmt.Errorf("service principal of app %s: %w", s.opts.AppID, err))
		}
	}
	done := map[string]bool{}
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
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	s.lastOK.Store(s.opts.Now().UnixNano())
	return nil
}

// syncApp turns the service principal's accountEnabled into a kill switch.
func (s *Syncer) syncApp(ctx context.Context, cur revoke.Revocation) error {
	body, err := s.get(ctx, "/v1.0/servicePrincipals(appId='"+url.PathEscape(s.opts.AppID)+"')?$select=accountEnabled")
	if err != nil {
		return err
	}
	var sp struct {
		AccountEnabled *bool `json:"accountEnabled"`
	}
	if err := json.Unmarshal(body, &sp); err != nil || sp.AccountEnabled == nil {
		return errors.New("graph: service principal: accountEnabled missing")
	}
	switch {
	case !*sp.AccountEnabled && cur.ID == 0:
		r, err := s.opts.Store.Add(ctx, revoke.Revocation{Kind: revoke.KindAll, Actor: revoke.SourceGraph, Source: revoke.SourceGraph,
			Reason: "Entra: the gateway's app (appId " + s.opts.AppID + ") is disabled for sign-in in tenant " + s.opts.TenantID})
		if err != nil {
			return err
		}
		s.log.Warn("entra sync: the gateway's app is disabled in Entra; kill switch on", slog.Int64("id", r.ID), slog.String("app_id", s.opts.AppID))
	case *sp.AccountEnabled && cur.ID != 0:
		if _, err := s.opts.Store.Remove(ctx, cur.ID, revoke.SourceGraph, "Entra: the gateway's app is enabled again"); err != nil && !errors.Is(err, revoke.ErrNotFound) {
			return err
		}
		s.log.Warn("entra sync: the gateway's app is enabled again; kill switch off", slog.Int64("id", cur.ID))
	}
	return nil
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

// get performs one authenticated GET and returns the body of a 200; any
// other status is a *GraphError.
func (s *Syncer) get(ctx context.Context, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.opts.GraphURL+path, nil)
	if err != nil {
		return nil, err
	}
	if err := s.opts.Credential.Apply(ctx, req); err != nil {
		return nil, fmt.Errorf("graph: credential: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.opts.HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("graph: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil, fmt.Errorf("graph: reading the answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, parseError(resp, body)
	}
	return body, nil
}

// fetch reads one user's state.
func (s *Syncer) fetch(ctx context.Context, oid string) (UserState, error) {
	body, err := s.get(ctx, "/v1.0/users/"+url.PathEscape(oid)+"?$select=id,accountEnabled,signInSessionsValidFromDateTime")
	var ge *GraphError
	if errors.As(err, &ge) && ge.Status == http.StatusNotFound && ge.Code == "Request_ResourceNotFound" {
		return UserState{Found: false}, nil
	}
	if err != nil {
		return UserState{}, err
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
