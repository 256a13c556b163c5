package cli

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	auditpostgres "github.com/gatehouse-dev/gatehouse/internal/audit/postgres"
	auditsqlite "github.com/gatehouse-dev/gatehouse/internal/audit/sqlite"
	"github.com/gatehouse-dev/gatehouse/internal/config"
)

// This file holds the `gatehouse audit ...` commands: list, show, verify,
// keygen. They open the audit store read-only, so they are safe to run
// next to a serving gateway. Records still in the gateway's journal (not
// yet ingested, normally a few milliseconds) are not shown.

// auditReader is what the audit commands need of a store.
type auditReader interface {
	List(ctx context.Context, f audit.Filter) ([]audit.Record, error)
	Verify(ctx context.Context, pub ed25519.PublicKey) (*audit.VerifyReport, error)
	Close() error
}

func openAuditReader(ctx context.Context, c config.Audit) (auditReader, error) {
	if c.Postgres != "" {
		return openPostgresAuditReader(ctx, c)
	}
	st, err := auditsqlite.Open(ctx, auditsqlite.Options{Path: c.SQLite, ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("opening the audit database %s: %w", c.SQLite, err)
	}
	return st, nil
}

// parseTimeFlag reads RFC 3339, YYYY-MM-DD (UTC midnight) or a duration
// back from now ("24h", "90m").
func parseTimeFlag(name, v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	if t, err := time.Parse("2006-01-02", v); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, usagef("--%s %q is not RFC 3339, YYYY-MM-DD or a duration such as 24h", name, v)
}

func runAuditList(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "audit list", "--config FILE [--json|--csv] [--user U] [--since T] [--until T] [--model M] [--status N] [--denied] [--limit N]")
	path := fs.String("config", "", "configuration file (required)")
	asJSON := fs.Bool("json", false, "print JSON lines, one record per line (docs/audit.md)")
	asCSV := fs.Bool("csv", false, "print CSV with a header row")
	user := fs.String("user", "", "only this user: user_key (tid/oid), object id or user name")
	since := fs.String("since", "", "only records at or after this time: RFC 3339, YYYY-MM-DD or a duration back from now (24h)")
	until := fs.String("until", "", "only records before this time (same forms as --since)")
	model := fs.String("model", "", "only this model (as asked by the client)")
	status := fs.Int("status", 0, "only this HTTP status")
	denied := fs.Bool("denied", false, "only requests the gateway refused")
	limit := fs.Int("limit", 0, "at most this many records (0: all)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *asJSON && *asCSV {
		return usagef("--json and --csv are exclusive")
	}
	now := time.Now()
	f := audit.Filter{UserKey: *user, Model: *model, Status: *status, DeniedOnly: *denied, Limit: *limit}
	var err error
	if f.Since, err = parseTimeFlag("since", *since, now); err != nil {
		return err
	}
	if f.Until, err = parseTimeFlag("until", *until, now); err != nil {
		return err
	}
	cfg, err := loadConfig(e, *path)
	if err != nil {
		return err
	}
	st, err := openAuditReader(ctx, cfg.Audit)
	if err != nil {
		return err
	}
	defer st.Close()
	recs, err := st.List(ctx, f)
	if err != nil {
		return fmt.Errorf("reading the audit store: %w", err)
	}
	switch {
	case *asJSON:
		return audit.WriteJSONL(e.stdout, recs)
	case *asCSV:
		return audit.WriteCSV(e.stdout, recs)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME (UTC)\tREQUEST ID\tUSER\tMODEL\tSTATE\tSTATUS\tIN\tOUT\tLATENCY")
	for _, r := range recs {
		who := r.UserName
		if who == "" {
			who = r.UserKey
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%.0fms\n", r.Time.UTC().Format("2006-01-02 15:04:05"), r.RequestID,
			who, r.Model, r.State, r.Status, r.Usage.TotalInput(), r.Usage.OutputTokens, r.LatencyMS)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "%d records\n", len(recs))
	return nil
}

func runAuditShow(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "audit show", "--config FILE REQUEST_ID")
	path := fs.String("config", "", "configuration file (required)")
	// Accept the id before or after the flags.
	var id string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		id, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return exitCode(2)
	}
	if id == "" && fs.NArg() == 1 {
		id = fs.Arg(0)
	} else if fs.NArg() != 0 || id == "" {
		return usagef("give exactly one REQUEST_ID")
	}
	cfg, err := loadConfig(e, *path)
	if err != nil {
		return err
	}
	st, err := openAuditReader(ctx, cfg.Audit)
	if err != nil {
		return err
	}
	defer st.Close()
	recs, err := st.List(ctx, audit.Filter{RequestID: id})
	if err != nil {
		return fmt.Errorf("reading the audit store: %w", err)
	}
	if len(recs) == 0 {
		fmt.Fprintf(e.stderr, "gatehouse audit show: no record with request id %q\n", id)
		return exitCode(1)
	}
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	r := recs[0]
	r.Time = r.Time.UTC()
	return enc.Encode(&r)
}

// auditVerifyKey returns the public key to check checkpoints with:
// verify_key, else the public half of signing_key, else nil.
func auditVerifyKey(c config.Audit) (ed25519.PublicKey, error) {
	if c.VerifyKey != "" {
		return audit.ParseVerifyKey(c.VerifyKey)
	}
	if c.SigningKey.IsSet() {
		k, err := audit.ParseSigningKey(c.SigningKey.Value())
		if err != nil {
			return nil, err
		}
		return k.Public().(ed25519.PublicKey), nil
	}
	return nil, nil
}

func runAuditVerify(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "audit verify", "--config FILE [--json]")
	path := fs.String("config", "", "configuration file (required)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(e, *path)
	if err != nil {
		return err
	}
	pub, err := auditVerifyKey(cfg.Audit)
	if err != nil {
		return fmt.Errorf("audit.verify_key / audit.signing_key: %w", err)
	}
	st, err := openAuditReader(ctx, cfg.Audit)
	if err != nil {
		return err
	}
	defer st.Close()
	rep, err := st.Verify(ctx, pub)
	if err != nil {
		return fmt.Errorf("verifying the audit store: %w", err)
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		if pub == nil {
			fmt.Fprintln(e.stdout, "WARNING: no audit.verify_key or audit.signing_key configured: checkpoint signatures are not checked, so a truncated or re-chained log cannot be detected.")
		} else {
			fmt.Fprintf(e.stdout, "key %s\n", audit.KeyID(pub))
		}
		fmt.Fprintf(e.stdout, "%d records, %d chain entries, %d checkpoints (signed coverage: %d entries)\n",
			rep.Records, rep.Entries, rep.Checkpoints, rep.Covered)
		for _, p := range rep.Problems {
			fmt.Fprintf(e.stdout, "  %s\n", p)
		}
		if rep.OK() {
			fmt.Fprintln(e.stdout, "OK: the audit trail is intact")
		} else {
			fmt.Fprintf(e.stdout, "FAILED: %d problem%s\n", len(rep.Problems), map[bool]string{true: "", false: "s"}[len(rep.Problems) == 1])
		}
	}
	if !rep.OK() {
		return exitCode(1)
	}
	return nil
}

func runAuditKeygen(_ context.Context, e *env, args []string) error {
	fs := newFlags(e, "audit keygen", "")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	privPEM, pub, err := audit.EncodeKeys(priv)
	if err != nil {
		return err
	}
	fmt.Fprint(e.stdout, privPEM)
	fmt.Fprintf(e.stderr, "Store the private key above in a file readable only by the gateway and reference it:\n"+
		"  audit:\n    signing_key: ${file:/etc/gatehouse/audit-signing.pem}\n    verify_key: %s\n", pub)
	return nil
}

// openPostgresAuditReader opens the PostgreSQL store read-only.
func openPostgresAuditReader(ctx context.Context, c config.Audit) (auditReader, error) {
	st, err := auditpostgres.Open(ctx, auditpostgres.Options{DSN: c.Postgres, ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("opening the PostgreSQL audit store: %w", err)
	}
	return st, nil
}
