package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/credential"
	"github.com/gatehouse-dev/gatehouse/internal/doctor"
	"github.com/gatehouse-dev/gatehouse/internal/profile"
	"github.com/gatehouse-dev/gatehouse/internal/upstream"
)

const doctorSynopsis = "(--config FILE | --url URL) [--token TOKEN] [--profile FILE]... [--json] [--timeout 10s] [--skip NAME]..."

// runDoctor: gatehouse doctor (docs/doctor.md).
func runDoctor(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "doctor", doctorSynopsis)
	cfgPath := fs.String("config", "", "the gateway's configuration file: check it, the identity provider, upstreams and stores, and the gateway at public_url or listen when it runs")
	gwURL := fs.String("url", "", "a deployed gateway's base URL: check health, /v1/models, refusal of unauthenticated and bypassing requests, and TLS")
	token := fs.String("token", "", "a user's token (from 'gatehouse token') to check an authenticated request; default $GATEHOUSE_DOCTOR_TOKEN")
	var profiles, skips stringList
	fs.Var(&profiles, "profile", "a deployed client profile (.mobileconfig, .reg, .json) to compare with the identity configuration; repeatable")
	fs.Var(&skips, "skip", "check name to skip; repeatable")
	asJSON := fs.Bool("json", false, "write the report as JSON")
	timeout := fs.Duration("timeout", 10*time.Second, "time limit of each check")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *cfgPath == "" && *gwURL == "" {
		return usagef("give --config FILE or --url URL (or both)")
	}
	if *gwURL != "" {
		if u, err := url.Parse(*gwURL); err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			return usagef("--url %q is not an absolute http(s) URL", *gwURL)
		}
	}
	if *token == "" {
		*token = e.getenv("GATEHOUSE_DOCTOR_TOKEN")
	}
	checks := doctorChecks(e, doctorInput{cfgPath: *cfgPath, url: *gwURL, token: *token, profiles: profiles})
	skipped := map[string]bool{}
	for _, s := range skips {
		skipped[s] = true
	}
	for i, c := range checks {
		if skipped[c.Name()] {
			checks[i] = doctor.Fixed(c.Name(), doctor.Skipf("skipped (--skip)"))
		}
	}
	rep := doctor.Run(ctx, checks, doctor.RunOptions{Timeout: *timeout})
	var err error
	if *asJSON {
		err = rep.WriteJSON(e.stdout)
	} else {
		err = rep.WriteText(e.stdout)
	}
	if err != nil {
		return err
	}
	if rep.Failed() {
		return exitCode(1)
	}
	return nil
}

type doctorInput struct {
	cfgPath  string
	url      string
	token    string
	profiles []string
}

// doctorChecks builds every check from the flags and the configuration.
func doctorChecks(e *env, in doctorInput) []doctor.Check {
	var checks []doctor.Check
	gw := doctor.GatewayOptions{Token: in.token}
	var clockURLs, tlsURLs []string
	var roots *x509.CertPool
	if in.url != "" {
		gw.Candidates = []string{in.url}
		gw.Required = true
		tlsURLs = append(tlsURLs, in.url)
	}
	if in.cfgPath != "" {
		cfg, valid := doctorConfig(e, in.cfgPath)
		checks = append(checks, valid)
		if cfg != nil {
			c, r, clock, tlsu := configChecks(e, cfg, in)
			checks = append(checks, c...)
			roots = r
			clockURLs = append(clockURLs, clock...)
			tlsURLs = append(tlsURLs, tlsu...)
			if len(cfg.Models) > 0 {
				gw.Model = cfg.Models[0].ID
			}
			if in.url == "" {
				gw.Candidates = gatewayCandidates(cfg)
				tlsURLs = append(tlsURLs, cfg.PublicURL)
			}
		}
	}
	if in.url != "" {
		clockURLs = append(clockURLs, strings.TrimRight(in.url, "/")+"/healthz")
	}
	gw.Client = doctor.NewHTTPClient(&tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots})
	checks = append(checks,
		doctor.ClockSkew(doctor.ClockOptions{URLs: clockURLs, Tolerance: clockTolerance(e, in.cfgPath)}),
		doctor.TLSExpiry(doctor.TLSOptions{URLs: tlsURLs, Roots: roots}),
	)
	checks = append(checks, doctor.NewGateway(gw).Checks()...)
	return checks
}

func clockTolerance(e *env, path string) time.Duration {
	if path == "" {
		return 0
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	cfg, err := config.Decode(data)
	if err != nil {
		return 0
	}
	cfg.ApplyDefaults()
	return cfg.Identity.ClockSkew
}

// doctorConfig loads the configuration for the config-valid check. When
// the file is invalid but still decodes, the decoded configuration
// (unvalidated, defaulted, secrets resolved where they can be) is returned
// so that the other checks still run.
func doctorConfig(e *env, path string) (*config.Config, doctor.Check) {
	cfg, err := config.Load(path, e.getenv)
	if err == nil {
		return cfg, doctor.Fixed("config-valid", doctor.Okf("%s is valid", path))
	}
	problems := strings.Split(err.Error(), "\n")
	r := doctor.Failf("correct each problem listed (run `gatehouse config validate --config "+path+"` after editing)",
		"%s has %d problem(s):\n%s", path, len(problems), strings.Join(problems, "\n"))
	data, rerr := os.ReadFile(path)
	if rerr != nil {
		return nil, doctor.Fixed("config-valid", doctor.Failf("check the path and its permissions", "%v", rerr))
	}
	dec, derr := config.Decode(data)
	if derr != nil {
		return nil, doctor.Fixed("config-valid", r)
	}
	_ = dec.ResolveSecrets(e.getenv) // unresolved secrets stay empty; config-valid reports them
	dec.ApplyDefaults()
	return dec, doctor.Fixed("config-valid", r)
}

func gatewayCandidates(cfg *config.Config) []string {
	var out []string
	if cfg.PublicURL != "" {
		out = append(out, cfg.PublicURL)
	}
	if host, port, err := net.SplitHostPort(cfg.Listen); err == nil {
		switch host {
		case "", "0.0.0.0", "::":
			host = "127.0.0.1"
		}
		scheme := "http"
		if v, _ := lookupConfigString(cfg, "server", "tls", "cert_file"); v != "" {
			scheme = "https"
		}
		out = append(out, scheme+"://"+net.JoinHostPort(host, port))
	}
	return out
}

// configChecks builds the configuration-driven checks; it also returns the
// extra CA roots and the URLs for the clock and TLS checks.
func configChecks(e *env, cfg *config.Config, in doctorInput) (checks []doctor.Check, roots *x509.CertPool, clockURLs, tlsURLs []string) {
	id := cfg.Identity
	entra := id.Type == "entra" || (id.Type == "" && config.EntraTenantFromIssuer(id.Issuer) != "") ||
		(id.Type == "" && strings.Contains(strings.ToLower(id.Issuer), "login.microsoftonline.com"))
	idOpts := doctor.IdentityOptions{Issuer: id.Issuer, Entra: entra, Audiences: id.Audiences, PublicURL: cfg.PublicURL}
	for _, p := range in.profiles {
		data, err := os.ReadFile(p)
		if err != nil {
			idOpts.ProfileProblems = append(idOpts.ProfileProblems, fmt.Sprintf("%s: %v", p, err))
			continue
		}
		s, err := profile.Inspect(data)
		if err != nil {
			idOpts.ProfileProblems = append(idOpts.ProfileProblems, fmt.Sprintf("%s: %v", p, err))
			continue
		}
		idOpts.Profiles = append(idOpts.Profiles, doctor.Profile{Path: p, Client: string(s.Client), GatewayURL: s.GatewayURL, Issuer: s.Issuer, ClientID: s.ClientID, TokenType: s.TokenType})
	}
	ident := doctor.NewIdentity(idOpts)
	checks = append(checks, ident.IssuerFormat(), ident.Discovery(), ident.JWKS(), ident.Audience())
	if id.Issuer != "" {
		clockURLs = append(clockURLs, strings.TrimRight(id.Issuer, "/")+"/.well-known/openid-configuration")
		tlsURLs = append(tlsURLs, id.Issuer)
	}

	var caProblems []string
	for i := range cfg.Upstreams {
		u := &cfg.Upstreams[i]
		o := doctor.UpstreamOptions{Name: u.Name, Provider: u.Provider, BaseURL: u.BaseURL, Model: upstreamProbeModel(cfg, u.Name)}
		client, entra, problem := doctorUpstreamClients(e, u)
		if problem != "" {
			caProblems = append(caProblems, problem)
		}
		o.Client = client
		o.Credential, o.CredentialKind, o.CredentialProblem = doctorCredential(e, *u, entra)
		checks = append(checks, doctor.Upstream(o))
		clockURLs = append(clockURLs, u.BaseURL)
		tlsURLs = append(tlsURLs, u.BaseURL)
		if u.CABundle != "" {
			if data, err := os.ReadFile(u.CABundle); err == nil {
				if roots == nil {
					if roots, _ = x509.SystemCertPool(); roots == nil {
						roots = x509.NewCertPool()
					}
				}
				roots.AppendCertsFromPEM(data)
			}
		}
	}
	if len(caProblems) > 0 {
		checks = append(checks, doctor.Fixed("transport-settings", doctor.Failf("point ca_bundle at a readable PEM file of CA certificates, and proxy.url at http(s)://host:port",
			"%s", strings.Join(caProblems, "\n"))))
	}

	if cfg.Audit.Postgres != "" && cfg.Audit.SQLite == "" {
		checks = append(checks, doctor.Fixed("audit-store", doctor.Skipf("the audit trail is on PostgreSQL (see postgres-audit)")))
	} else {
		checks = append(checks, doctor.AuditSQLite(cfg.Audit.SQLite))
	}
	pw := cfg.Limits.RedisPassword.Value()
	checks = append(checks, doctor.Redis(cfg.Limits.Redis, pw))
	for _, role := range []string{"audit", "state"} {
		if dsn, ok := lookupConfigString(cfg, role, "postgres"); ok && dsn != "" {
			checks = append(checks, doctor.Postgres(role, dsn))
		}
	}
	return checks, roots, clockURLs, tlsURLs
}

// upstreamProbeModel is the upstream-side name (Foundry deployment) of the
// first model routed to the upstream.
func upstreamProbeModel(cfg *config.Config, upstream string) string {
	for i := range cfg.Models {
		for _, r := range cfg.Models[i].EffectiveRoutes() {
			if r.Upstream == upstream {
				if r.UpstreamModel != "" {
					return r.UpstreamModel
				}
				return cfg.Models[i].ID
			}
		}
	}
	return ""
}

// headerCredential adds the upstream's static headers before its credential,
// as the gateway does.
type headerCredential struct {
	headers map[string]string
	inner   credential.Credential
}

func (h headerCredential) Apply(ctx context.Context, r *http.Request) error {
	for k, v := range h.headers {
		r.Header.Set(k, v)
	}
	return h.inner.Apply(ctx, r)
}

// doctorCredential builds the upstream's credential as the gateway does
// (cli/upstreams.go), with short token retries so that a check fits its
// time limit. entra carries Entra token requests (the upstream's proxy and
// CA bundle).
func doctorCredential(e *env, u config.Upstream, entra *http.Client) (doctor.Credential, string, string) {
	tok := credential.TokenOptions{MaxAttempts: 2, RetryDelay: 200 * time.Millisecond, FetchTimeout: 8 * time.Second}
	entraTok := tok
	entraTok.HTTPClient = entra
	var (
		c    credential.Credential
		kind string
		err  error
	)
	unresolved := func(s config.Secret) string {
		return fmt.Sprintf("the secret %s did not resolve (see config-valid)", s.Ref())
	}
	switch {
	case u.APIKey.IsSet():
		kind = "api_key"
		if u.APIKey.Value() == "" {
			return nil, kind, unresolved(u.APIKey)
		}
		c, err = credential.NewStaticKey(u.Provider, u.APIKey.Value())
	case u.Auth != nil:
		kind = "bearer"
		if u.Auth.Bearer.Value() == "" {
			return nil, kind, unresolved(u.Auth.Bearer)
		}
		c, err = credential.NewStaticBearer(u.Auth.Bearer.Value())
	case u.Azure != nil && u.Azure.ManagedIdentity != nil:
		kind = "managed_identity"
		mi := u.Azure.ManagedIdentity
		c, err = credential.NewManagedIdentity(credential.ManagedIdentityOptions{TokenOptions: tok, Scope: u.Azure.Scope,
			ClientID: mi.ClientID, ResourceID: mi.ResourceID, Getenv: e.getenv, IMDSEndpoint: mi.Endpoint})
	case u.Azure != nil && u.Azure.WorkloadIdentity != nil:
		kind = "workload_identity"
		wi := u.Azure.WorkloadIdentity
		c, err = credential.NewWorkloadIdentity(credential.WorkloadIdentityOptions{TokenOptions: entraTok, Scope: u.Azure.Scope,
			ClientID: wi.ClientID, TenantID: wi.TenantID, TokenFile: wi.TokenFile, AuthorityHost: wi.AuthorityHost, Getenv: e.getenv})
	case u.Azure != nil && u.Azure.ServicePrincipal != nil:
		kind = "service_principal"
		sp := u.Azure.ServicePrincipal
		if sp.ClientSecret.IsSet() && sp.ClientSecret.Value() == "" {
			return nil, kind, unresolved(sp.ClientSecret)
		}
		c, err = credential.NewServicePrincipal(credential.ServicePrincipalOptions{TokenOptions: entraTok, Scope: u.Azure.Scope,
			TenantID: sp.TenantID, ClientID: sp.ClientID, ClientSecret: sp.ClientSecret.Value(), CertificateFile: sp.CertificateFile, AuthorityHost: sp.AuthorityHost})
	default:
		return nil, "", "no credential configured (see config-valid)"
	}
	if err != nil {
		return nil, kind, err.Error()
	}
	if len(u.Headers) > 0 {
		return headerCredential{headers: u.Headers, inner: c}, kind, ""
	}
	return c, kind, ""
}

// doctorUpstreamClients mirrors the gateway's upstream transport: verified
// TLS with the upstream's CA bundle, its proxy (never HTTPS_PROXY unless
// proxy.from_environment), no redirects. It returns the probe client, the
// client for Entra token requests, and a problem with the CA bundle or
// proxy, if any (the probe then goes without them).
func doctorUpstreamClients(e *env, u *config.Upstream) (probe, entra *http.Client, problem string) {
	var roots *x509.CertPool
	if u.CABundle != "" {
		pool, err := upstream.LoadCABundle(u.CABundle, true)
		if err != nil {
			problem = fmt.Sprintf("upstream %s: %v", u.Name, err)
		} else {
			roots = pool
		}
	}
	var po upstream.ProxyOptions
	if p := u.Proxy; p != nil {
		if p.FromEnvironment {
			po = upstream.ProxyFromEnv(e.getenv)
		} else {
			po = upstream.ProxyOptions{URL: p.URL, NoProxy: p.NoProxy}
		}
	}
	proxy, err := po.ProxyFunc()
	if err != nil {
		problem = strings.TrimPrefix(problem+"; ", "; ") + fmt.Sprintf("upstream %s: proxy: %v", u.Name, err)
		proxy = nil
	}
	probe = doctor.NewHTTPClient(&tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots})
	probe.Transport.(*http.Transport).Proxy = proxy
	return probe, credential.NewHTTPClient(proxy, roots), problem
}

// lookupConfigString reads a string setting by its YAML path (for example
// "audit", "postgres"), so that doctor checks settings that other parts of
// the schema add without depending on their Go names. A section given as a
// struct is searched for a dsn or url field; a Secret or DSN (anything with
// Value() string) yields its resolved value. ok is false when the path does not exist in this schema.
func lookupConfigString(cfg *config.Config, path ...string) (string, bool) {
	v := reflect.ValueOf(cfg).Elem()
	for _, name := range path {
		f, ok := yamlField(v, name)
		if !ok {
			return "", false
		}
		v = f
	}
	return settingString(v, 0)
}

func settingString(v reflect.Value, depth int) (string, bool) {
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return "", true
		}
		v = v.Elem()
	}
	if vi, ok := v.Interface().(interface{ Value() string }); ok { // config.Secret, config.DSN
		return vi.Value(), true
	}
	switch {
	case v.Kind() == reflect.String:
		return v.String(), true
	case v.Kind() == reflect.Struct && depth < 2:
		for _, n := range []string{"dsn", "url"} {
			if f, ok := yamlField(v, n); ok {
				return settingString(f, depth+1)
			}
		}
	}
	return "", false
}

func yamlField(v reflect.Value, name string) (reflect.Value, bool) {
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return reflect.Value{}, false
		}
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return reflect.Value{}, false
	}
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		tag, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if tag == name && t.Field(i).IsExported() {
			return v.Field(i), true
		}
	}
	return reflect.Value{}, false
}
