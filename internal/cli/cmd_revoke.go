package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/user"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/credential"
	"github.com/gatehouse-dev/gatehouse/internal/metrics"
	"github.com/gatehouse-dev/gatehouse/internal/revoke"
	"github.com/gatehouse-dev/gatehouse/internal/revoke/graphsync"
	revokepg "github.com/gatehouse-dev/gatehouse/internal/revoke/postgres"
	revokesqlite "github.com/gatehouse-dev/gatehouse/internal/revoke/sqlite"
)

// openStateStore opens the configured state store: PostgreSQL when
// state.postgres is set, else the SQLite file.
func openStateStore(ctx context.Context, cfg *config.Config) (revoke.Store, string, error) {
	st, _, err := cfg.StateSettings()
	if err != nil {
		return nil, "", err
	}
	if st.Postgres.IsSet() {
		s, err := revokepg.Open(ctx, revokepg.Options{DSN: st.Postgres.Value(), Schema: st.PostgresSchema})
		if err != nil {
			return nil, "", fmt.Errorf("state store (PostgreSQL, state.postgres): %w", err)
		}
		return s, "postgres schema " + st.PostgresSchema, nil
	}
	s, err := revokesqlite.Open(ctx, revokesqlite.Options{Path: st.SQLite})
	if err != nil {
		return nil, "", fmt.Errorf("state store (SQLite %s): %w", st.SQLite, err)
	}
	return s, "sqlite " + st.SQLite, nil
}

// startRevocations opens the state store and starts the revocation
// snapshot the authenticator consults on every request. close stops both.
func startRevocations(ctx context.Context, cfg *config.Config, log *slog.Logger, m *metrics.Metrics) (*revoke.Snapshot, func() error, error) {
	_, rc, err := cfg.StateSettings()
	if err != nil {
		return nil, nil, err
	}
	store, where, err := openStateStore(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	opts := revoke.Options{
		Store:           store,
		Logger:          log.With(slog.String("component", "revoke")),
		PollInterval:    rc.PollInterval,
		ReloadInterval:  rc.ReloadInterval,
		FailClosedAfter: rc.FailClosedAfter,
	}
	if m != nil {
		opts.OnPropagated = m.RevocationPropagated
	}
	var syncer *graphsync.Syncer
	if es := rc.EntraSync; es.Enabled {
		cred, err := credential.NewServicePrincipal(credential.ServicePrincipalOptions{
			TokenOptions:  credential.TokenOptions{Logger: log},
			Scope:         strings.TrimSuffix(es.GraphURL, "/") + "/.default",
			TenantID:      es.TenantID,
			ClientID:      es.ClientID,
			ClientSecret:  es.ClientSecret.Value(),
			AuthorityHost: es.AuthorityHost,
		})
		if err == nil {
			syncer, err = graphsync.New(graphsync.Options{
				Store: store, Credential: cred, TenantID: es.TenantID, GraphURL: es.GraphURL,
				Interval: es.Interval, ForgetAfter: es.ForgetAfter, AppID: es.AppID, FailClosedAfter: es.FailClosedAfter,
				Logger: log.With(slog.String("component", "entra-sync")),
			})
		}
		if err != nil {
			store.Close()
			return nil, nil, fmt.Errorf("revocation.entra_sync: %w", err)
		}
		opts.Observe, opts.Guard = syncer.Observe, syncer.Guard
	}
	snap, err := revoke.Start(ctx, opts)
	if err != nil {
		store.Close()
		return nil, nil, err
	}
	stopSync := func() {}
	if syncer != nil {
		sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		done := make(chan struct{})
		go func() { defer close(done); syncer.Run(sctx) }()
		stopSync = func() { cancel(); <-done }
	}
	log.Info("revocations enforced", slog.String("store", where), slog.Int("active", snap.Active()), slog.Int64("version", snap.Version()), slog.Bool("entra_sync", syncer != nil))
	return snap, func() error { stopSync(); snap.Close(); return store.Close() }, nil
}

// revokeFlags are the flags every revoke command takes.
type revokeFlags struct {
	fs     *flag.FlagSet
	config *string
	reason *string
	until  *string
}

func newRevokeFlags(e *env, name, synopsis string) *revokeFlags {
	fs := newFlags(e, name, synopsis)
	return &revokeFlags{
		fs:     fs,
		config: fs.String("config", "", "configuration file (required)"),
		reason: fs.String("reason", "", "why (recorded with who made the change; required)"),
		until:  fs.String("until", "", "lapse at this time: RFC 3339 (2026-12-01T00:00:00Z) or a duration from now (24h); default: until removed"),
	}
}

// parse accepts flags before and after the positional arguments and
// returns exactly want positionals (with -1: any number up to one).
func (f *revokeFlags) parse(args []string, want int) ([]string, error) {
	var pos []string
	for {
		if err := f.fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, exitCode(2)
		}
		if f.fs.NArg() == 0 {
			break
		}
		pos = append(pos, f.fs.Arg(0))
		args = f.fs.Args()[1:]
	}
	if len(pos) != want {
		if len(pos) < want {
			return nil, usagef("missing argument; see -h")
		}
		return nil, usagef("unexpected argument %q", pos[want])
	}
	return pos, nil
}

// revokeSession is one revoke command's configuration, store and logger.
type revokeSession struct {
	e     *env
	store revoke.Store
	log   *slog.Logger
	actor string
	now   time.Time
}

func (f *revokeFlags) open(ctx context.Context, e *env, needReason bool) (*revokeSession, error) {
	if *f.config == "" {
		return nil, usagef("--config FILE is required")
	}
	if needReason && strings.TrimSpace(*f.reason) == "" {
		return nil, usagef("--reason TEXT is required (it is recorded with who made the change)")
	}
	cfg, err := loadConfig(e, *f.config)
	if err != nil {
		return nil, err
	}
	store, _, err := openStateStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &revokeSession{e: e, store: store, log: newLogger(e.stderr, cfg.Log), actor: actor(e), now: time.Now()}, nil
}

// actor names who runs the command: the login name (the invoking user
// under sudo) and the host.
func actor(e *env) string {
	who := e.getenv("SUDO_USER")
	if who == "" {
		who = e.getenv("USER")
	}
	if who == "" {
		who = e.getenv("USERNAME")
	}
	if who == "" {
		if u, err := user.Current(); err == nil {
			who = u.Username
		}
	}
	if who == "" {
		who = "unknown"
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		who += "@" + h
	}
	return who
}

func (f *revokeFlags) untilTime(now time.Time) (time.Time, error) {
	if *f.until == "" {
		return time.Time{}, nil
	}
	t, err := revoke.ParseTime(*f.until, now)
	if err != nil {
		return t, usagef("--until: %v", err)
	}
	if !t.After(now) {
		return t, usagef("--until %s is not in the future", *f.until)
	}
	return t, nil
}

// add stores r and reports it.
func (s *revokeSession) add(ctx context.Context, f *revokeFlags, r revoke.Revocation) error {
	defer s.store.Close()
	until, err := f.untilTime(s.now)
	if err != nil {
		return err
	}
	r.Until, r.Reason, r.Actor, r.Source = until, *f.reason, s.actor, revoke.SourceCLI
	got, err := s.store.Add(ctx, r)
	if err != nil {
		return err
	}
	attrs := []any{slog.Int64("id", got.ID), slog.String("kind", string(got.Kind)), slog.String("subject", got.Subject),
		slog.String("reason", got.Reason), slog.String("actor", got.Actor)}
	if !got.Before.IsZero() {
		attrs = append(attrs, slog.Time("before", got.Before))
	}
	if !got.Until.IsZero() {
		attrs = append(attrs, slog.Time("until", got.Until))
	}
	s.log.Warn("revocation added", attrs...)
	lapse := "until removed"
	if !got.Until.IsZero() {
		lapse = "until " + got.Until.Format(time.RFC3339)
	}
	fmt.Fprintf(s.e.stdout, "revocation %d: %s, %s. Every gateway sharing this state store enforces it within seconds.\nLift it with: gatehouse revoke remove %d --reason TEXT\n", got.ID, got.Describe(), lapse, got.ID)
	return nil
}

func runRevokeUser(ctx context.Context, e *env, args []string) error {
	f := newRevokeFlags(e, "revoke user", "OID_OR_UPN --config FILE --reason TEXT [--until TIME]")
	pos, err := f.parse(args, 1)
	if err != nil {
		return err
	}
	s, err := f.open(ctx, e, true)
	if err != nil {
		return err
	}
	subject := strings.TrimSpace(pos[0])
	if strings.Contains(subject, "@") && !strings.ContainsAny(subject, "/|") {
		fmt.Fprintln(e.stderr, "note: matching by user principal name / e-mail uses display claims (preferred_username, upn, email), which can change; the object ID (oid) is the reliable key.")
	}
	return s.add(ctx, f, revoke.Revocation{Kind: revoke.KindUser, Subject: subject})
}

func runRevokeBefore(ctx context.Context, e *env, args []string) error {
	f := newRevokeFlags(e, "revoke before", "TIME [--user OID] --config FILE --reason TEXT [--until TIME]")
	user := f.fs.String("user", "", "only this user's tokens (object ID, or the user key tid/oid); default: everyone's")
	pos, err := f.parse(args, 1)
	if err != nil {
		return err
	}
	u := strings.TrimSpace(*user)
	if u != "" && strings.Contains(u, "@") && !strings.ContainsAny(u, "/|") {
		return usagef("--user takes the object ID (oid) or user key, not a user principal name")
	}
	s, err := f.open(ctx, e, true)
	if err != nil {
		return err
	}
	before, err := revoke.ParseTime(pos[0], s.now)
	if err != nil {
		s.store.Close()
		return usagef("TIME: %v", err)
	}
	return s.add(ctx, f, revoke.Revocation{Kind: revoke.KindBefore, Subject: u, Before: before})
}

func runRevokeToken(ctx context.Context, e *env, args []string) error {
	f := newRevokeFlags(e, "revoke token", "JTI_OR_SHA256 --config FILE --reason TEXT [--until TIME]")
	pos, err := f.parse(args, 1)
	if err != nil {
		return err
	}
	s, err := f.open(ctx, e, true)
	if err != nil {
		return err
	}
	subject := strings.TrimSpace(pos[0])
	if strings.Count(subject, ".") == 2 && len(subject) > 64 {
		// A raw token pasted by mistake: keep only its hash.
		sum := sha256.Sum256([]byte(subject))
		subject = hex.EncodeToString(sum[:])
		fmt.Fprintf(e.stderr, "note: that is a raw token; revoking its SHA-256 %s (the token itself is not stored).\n", subject)
	}
	return s.add(ctx, f, revoke.Revocation{Kind: revoke.KindToken, Subject: subject})
}

func runRevokeAll(ctx context.Context, e *env, args []string) error {
	f := newRevokeFlags(e, "revoke all", "--config FILE --reason TEXT [--until TIME]")
	if _, err := f.parse(args, 0); err != nil {
		return err
	}
	s, err := f.open(ctx, e, true)
	if err != nil {
		return err
	}
	fmt.Fprintln(e.stderr, "KILL SWITCH: every request to every gateway sharing this state store will be refused until this revocation is removed or lapses.")
	return s.add(ctx, f, revoke.Revocation{Kind: revoke.KindAll})
}

func runRevokeRemove(ctx context.Context, e *env, args []string) error {
	f := newRevokeFlags(e, "revoke remove", "ID --config FILE --reason TEXT")
	pos, err := f.parse(args, 1)
	if err != nil {
		return err
	}
	id, err := strconv.ParseInt(pos[0], 10, 64)
	if err != nil || id <= 0 {
		return usagef("ID %q is not a revocation id (see gatehouse revoke list)", pos[0])
	}
	if *f.until != "" {
		return usagef("--until does not apply to remove")
	}
	s, err := f.open(ctx, e, true)
	if err != nil {
		return err
	}
	defer s.store.Close()
	r, err := s.store.Remove(ctx, id, s.actor, strings.TrimSpace(*f.reason))
	if errors.Is(err, revoke.ErrNotFound) {
		return fmt.Errorf("no revocation %d in force (see gatehouse revoke list --all)", id)
	}
	if err != nil {
		return err
	}
	s.log.Warn("revocation removed", slog.Int64("id", r.ID), slog.String("kind", string(r.Kind)), slog.String("subject", r.Subject),
		slog.String("reason", r.RemovedReason), slog.String("actor", r.RemovedBy), slog.String("original_reason", r.Reason))
	fmt.Fprintf(e.stdout, "revocation %d removed: %s is no longer revoked by it.\n", r.ID, r.Describe())
	return nil
}

// listed is one revocation as `revoke list --json` prints it.
type listed struct {
	revoke.Revocation
	Active bool `json:"active"`
}

func runRevokeList(ctx context.Context, e *env, args []string) error {
	f := newRevokeFlags(e, "revoke list", "--config FILE [--json] [--all]")
	asJSON := f.fs.Bool("json", false, "print JSON")
	all := f.fs.Bool("all", false, "include removed revocations")
	if _, err := f.parse(args, 0); err != nil {
		return err
	}
	s, err := f.open(ctx, e, false)
	if err != nil {
		return err
	}
	defer s.store.Close()
	list, err := s.store.List(ctx, *all)
	if err != nil {
		return err
	}
	out := make([]listed, 0, len(list))
	for _, r := range list {
		out = append(out, listed{r, r.Active(s.now)})
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	writeRevocations(e.stdout, out)
	return nil
}

func writeRevocations(w io.Writer, list []listed) {
	if len(list) == 0 {
		fmt.Fprintln(w, "no revocations")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tKIND\tSUBJECT\tBEFORE\tUNTIL\tCREATED\tBY\tREASON")
	ts := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format(time.RFC3339)
	}
	for _, r := range list {
		state := "active"
		switch {
		case !r.Removed.IsZero():
			state = "removed"
		case !r.Active:
			state = "lapsed"
		}
		subject := r.Subject
		switch {
		case r.Kind == revoke.KindAll:
			subject = "(everyone)"
		case r.Kind == revoke.KindBefore && subject == "":
			subject = "(everyone)"
		}
		reason := strings.ReplaceAll(r.Reason, "\n", " ")
		if state == "removed" {
			reason += " [removed by " + r.RemovedBy + ": " + r.RemovedReason + "]"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, state, r.Kind, subject, ts(r.Before), ts(r.Until), ts(r.Created), r.Actor, reason)
	}
	tw.Flush()
}
