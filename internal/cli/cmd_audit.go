package cli

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/audit/content"
	"github.com/gatehouse-dev/gatehouse/internal/audit/export"
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
	VerifyAnchored(ctx context.Context, pub ed25519.PublicKey, anchors []audit.Checkpoint) (*audit.VerifyReport, error)
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
	fs := newFlags(e, "audit show", "--config FILE [--content [--as NAME]] REQUEST_ID")
	path := fs.String("config", "", "configuration file (required)")
	withContent := fs.Bool("content", false, "also decrypt and print the captured prompt and response (the read is itself audited)")
	as := fs.String("as", "", "who is reading, recorded in the audit trail (default: $USER)")
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
	out := struct {
		audit.Record
		Content *shownContent `json:"content,omitempty"`
	}{Record: recs[0]}
	out.Time = out.Time.UTC()
	if *withContent {
		if out.Content, err = readContentAudited(ctx, e, cfg.Audit, id, operator(e, *as)); err != nil {
			return err
		}
	}
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(&out)
}

// shownContent is the captured content as `audit show --content` prints it.
type shownContent struct {
	Mode           string         `json:"mode"`
	RequestSHA256  string         `json:"request_sha256"`
	ResponseSHA256 string         `json:"response_sha256"`
	RequestBytes   int64          `json:"request_bytes"`
	ResponseBytes  int64          `json:"response_bytes"`
	Redactions     map[string]int `json:"redactions,omitempty"`
	Request        *string        `json:"request,omitempty"`
	Response       *string        `json:"response,omitempty"`
}

func operator(e *env, as string) string {
	if as != "" {
		return as
	}
	if u := e.getenv("USER"); u != "" {
		return u
	}
	return "unknown-operator"
}

// auditWriter is a writable store that also keeps content.
type auditWriter interface {
	audit.Store
	content.Store
}

func openAuditWriter(ctx context.Context, c config.Audit) (auditWriter, error) {
	if c.Postgres != "" {
		key, _ := auditSigningKey(c) // signs the cli chain when the operator holds the key
		st, err := auditpostgres.Open(ctx, auditpostgres.Options{DSN: c.Postgres, Instance: "cli", SigningKey: key})
		if err != nil {
			return nil, fmt.Errorf("opening the PostgreSQL audit store: %w", err)
		}
		return st, nil
	}
	st, err := auditsqlite.Open(ctx, auditsqlite.Options{Path: c.SQLite, Sync: c.Sync})
	if err != nil {
		return nil, fmt.Errorf("opening the audit database %s: %w", c.SQLite, err)
	}
	return st, nil
}

// recordOperatorAction writes a chained audit record of an operator's
// access to the audit trail itself (content read, purge). It must succeed
// before the action happens.
func recordOperatorAction(ctx context.Context, st audit.Store, who, path, subject, reason string) error {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	rec := &audit.Record{RequestID: fmt.Sprintf("audit_%x", b), Time: time.Now().UTC(), State: audit.StateCompleted,
		Method: "CLI", Path: path, UserName: who, UserKey: "operator:" + who, Reason: reason, Status: 200, Instance: "cli",
		UpstreamRequestID: subject}
	return st.Begin(ctx, []*audit.Record{rec})
}

func readContentAudited(ctx context.Context, e *env, c config.Audit, id, who string) (*shownContent, error) {
	st, err := openAuditWriter(ctx, c)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	ent, err := st.GetContent(ctx, id)
	if errors.Is(err, content.ErrNotFound) {
		fmt.Fprintf(e.stderr, "no content was captured for %s (audit.content.capture is %s)\n", id, c.Content.Capture)
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if err := recordOperatorAction(ctx, st, who, "/audit/content/"+id, id, "content_read"); err != nil {
		return nil, fmt.Errorf("refusing to show content: the read could not be audited: %w", err)
	}
	out := &shownContent{Mode: ent.Mode, RequestSHA256: ent.RequestSHA256, ResponseSHA256: ent.ResponseSHA256,
		RequestBytes: ent.RequestBytes, ResponseBytes: ent.ResponseBytes, Redactions: ent.Redactions}
	if len(ent.Sealed) > 0 {
		kr, err := buildContentKeyring(c.Content)
		if err != nil {
			return nil, err
		}
		txt, err := content.Open(kr, ent)
		if err != nil {
			return nil, err
		}
		out.Request, out.Response = &txt.Request, &txt.Response
	}
	return out, nil
}

// buildContentKeyring builds the content key ring from configuration.
func buildContentKeyring(c config.AuditContent) (*content.Keyring, error) {
	var keys []content.Key
	for _, k := range c.Keys {
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(k.Key.Value()))
		if err != nil {
			return nil, fmt.Errorf("audit.content.keys %q: not base64", k.ID)
		}
		keys = append(keys, content.Key{ID: k.ID, Secret: raw})
	}
	if len(keys) == 0 {
		return nil, errors.New("audit.content.keys: no key configured to decrypt captured content")
	}
	return content.NewKeyring(keys, c.ActiveKey)
}

// buildCapturer maps audit.content onto a content.Capturer writing to st
// (for buildGateway).
func buildCapturer(st content.Store, c config.AuditContent) (*content.Capturer, error) {
	opts := content.Options{Mode: c.Capture, Store: st}
	if c.Capture == content.ModeRedacted || c.Capture == content.ModeFull {
		kr, err := buildContentKeyring(c)
		if err != nil {
			return nil, err
		}
		opts.Keyring = kr
	}
	if c.Capture == content.ModeRedacted {
		r, err := content.NewRedactor(content.RedactorOptions{NationalIDPatterns: c.NationalIDPatterns})
		if err != nil {
			return nil, fmt.Errorf("audit.content.%w", err)
		}
		opts.Redactor = r
	}
	return content.NewCapturer(opts)
}

func runAuditPurge(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "audit purge", "--config FILE --user USER_KEY [--before T] [--as NAME]")
	path := fs.String("config", "", "configuration file (required)")
	user := fs.String("user", "", "erase the captured content of this user (user_key, e.g. <tid>/<oid>)")
	before := fs.String("before", "", "only content recorded before this time (RFC 3339, YYYY-MM-DD or a duration back from now)")
	as := fs.String("as", "", "who requests the erasure, recorded in the audit trail (default: $USER)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *user == "" && *before == "" {
		return usagef("give --user (an erasure request) and/or --before (retention)")
	}
	t, err := parseTimeFlag("before", *before, time.Now())
	if err != nil {
		return err
	}
	cfg, err := loadConfig(e, *path)
	if err != nil {
		return err
	}
	st, err := openAuditWriter(ctx, cfg.Audit)
	if err != nil {
		return err
	}
	defer st.Close()
	subject := *user
	if subject == "" {
		subject = "*"
	}
	if err := recordOperatorAction(ctx, st, operator(e, *as), "/audit/purge", subject, "content_purge"); err != nil {
		return fmt.Errorf("refusing to purge: the erasure could not be audited: %w", err)
	}
	n, err := st.PurgeContent(ctx, *user, t)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "erased the captured content of %d request(s); the audit records themselves are kept\n", n)
	return nil
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
	fs := newFlags(e, "audit verify", "--config FILE [--anchors EXPORT.jsonl] [--json]")
	path := fs.String("config", "", "configuration file (required)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	anchorsPath := fs.String("anchors", "", "a JSON-lines export holding checkpoint events (kept outside the database); each must match the store")
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
	var anchors []audit.Checkpoint
	if *anchorsPath != "" {
		if pub == nil {
			return usagef("--anchors needs audit.verify_key or audit.signing_key to check the exported checkpoints")
		}
		f, err := os.Open(*anchorsPath)
		if err != nil {
			return err
		}
		anchors, err = export.ReadCheckpoints(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", *anchorsPath, err)
		}
	}
	st, err := openAuditReader(ctx, cfg.Audit)
	if err != nil {
		return err
	}
	defer st.Close()
	rep, err := st.VerifyAnchored(ctx, pub, anchors)
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
		if *anchorsPath != "" {
			fmt.Fprintf(e.stdout, "%d exported checkpoints checked from %s\n", rep.Anchors, *anchorsPath)
		}
		for _, c := range rep.Unsigned {
			fmt.Fprintf(e.stdout, "WARNING: chain %s has no checkpoint signed by this key: its entries are protected by the hash chain only\n", c)
		}
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

// buildExporters maps audit.export onto exporters reading src (for
// buildGateway: run each with go x.Run(ctx) and stop them with ctx).
func buildExporters(src export.Source, c config.Audit, stdout io.Writer, log *slog.Logger) ([]*export.Exporter, error) {
	var out []*export.Exporter
	for _, xc := range c.Export {
		headers := map[string]string{}
		for k, v := range xc.Headers {
			headers[k] = v.Value()
		}
		hopts := export.HTTPOptions{URL: xc.URL, Headers: headers}
		var sink export.Sink
		var err error
		switch xc.Type {
		case "jsonl":
			if xc.Path == "-" {
				sink = export.NewJSONLinesWriter(stdout)
			} else {
				sink = export.NewJSONLinesFile(xc.Path)
			}
		case "webhook":
			sink, err = export.NewWebhook(hopts)
		case "splunk_hec":
			sink, err = export.NewSplunkHEC(export.SplunkOptions{HTTPOptions: hopts, Token: xc.Token.Value(), Index: xc.Index})
		case "otlp":
			sink, err = export.NewOTLP(hopts)
		default:
			err = fmt.Errorf("unknown type %q", xc.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("audit.export %s: %w", xc.Name, err)
		}
		dir := xc.SpoolDir
		if dir == "" {
			dir = filepath.Join(c.SQLite+".export", xc.Name)
		}
		x, err := export.New(export.Options{Source: src, Sink: sink, Dir: dir, MaxSpoolBytes: xc.MaxSpoolBytes, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("audit.export %s: %w", xc.Name, err)
		}
		out = append(out, x)
	}
	return out, nil
}

// auditInstance is audit.instance, defaulting to the host name.
func auditInstance(c config.Audit) string {
	if c.Instance != "" {
		return c.Instance
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "gatehouse"
}

// auditSigningKey parses audit.signing_key (nil when unset).
func auditSigningKey(c config.Audit) (ed25519.PrivateKey, error) {
	if !c.SigningKey.IsSet() {
		return nil, nil
	}
	k, err := audit.ParseSigningKey(c.SigningKey.Value())
	if err != nil {
		return nil, fmt.Errorf("audit.signing_key: %w", err)
	}
	return k, nil
}

// auditSQLiteOptions maps the audit section onto the SQLite store's
// options for the serving gateway (for buildGateway's openAuditStore).
func auditSQLiteOptions(c config.Audit, log *slog.Logger) (auditsqlite.Options, error) {
	key, err := auditSigningKey(c)
	if err != nil {
		return auditsqlite.Options{}, err
	}
	return auditsqlite.Options{Path: c.SQLite, Sync: c.Sync, Logger: log, SigningKey: key, CheckpointEvery: c.CheckpointInterval}, nil
}

// auditPostgresOptions maps the audit section onto the PostgreSQL store's
// options for the serving gateway.
func auditPostgresOptions(c config.Audit, log *slog.Logger) (auditpostgres.Options, error) {
	key, err := auditSigningKey(c)
	if err != nil {
		return auditpostgres.Options{}, err
	}
	return auditpostgres.Options{DSN: c.Postgres, Instance: auditInstance(c), SigningKey: key,
		CheckpointEvery: c.CheckpointInterval, Retention: c.Retention, Logger: log}, nil
}

// auditInner is a fully featured audit store: records, recovery, hash
// chain verification, export source and content.
type auditInner interface {
	audit.Store
	audit.Recoverer
	audit.Verifier
	export.Source
	content.Store
}

// openAuditInner opens the configured store (SQLite or PostgreSQL) for
// the serving gateway with every audit option applied: signing key,
// checkpoint interval, instance, retention. buildGateway wraps a SQLite
// store with the journal and recovers with auditInstance(c).
func openAuditInner(ctx context.Context, c config.Audit, log *slog.Logger) (auditInner, error) {
	if c.Postgres != "" {
		o, err := auditPostgresOptions(c, log)
		if err != nil {
			return nil, err
		}
		st, err := auditpostgres.Open(ctx, o)
		if err != nil {
			return nil, fmt.Errorf("audit: opening PostgreSQL: %w", err)
		}
		return st, nil
	}
	if dir := filepath.Dir(c.SQLite); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("audit: %w", err)
		}
	}
	o, err := auditSQLiteOptions(c, log)
	if err != nil {
		return nil, err
	}
	st, err := auditsqlite.Open(ctx, o)
	if err != nil {
		return nil, fmt.Errorf("audit: opening %s: %w", c.SQLite, err)
	}
	return st, nil
}
