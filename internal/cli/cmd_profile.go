package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/profile"
)

const profileSynopsis = "desktop|code|all --format mobileconfig|reg|json (--gateway-url URL --client-id ID --issuer URL | --config FILE) [--model ID]... [--out FILE]"

// runProfile: gatehouse profile desktop|code --format ... (docs/profiles.md).
func runProfile(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "profile", profileSynopsis)
	format := fs.String("format", "", "mobileconfig (macOS: Jamf, Intune), reg (Windows), or json (Desktop: key/value set; Code: managed-settings.json)")
	cfgPath := fs.String("config", "", "read the gateway URL (public_url), issuer (identity.issuer), client ID (identity.audiences[0]) and models from the gateway's configuration file")
	gw := fs.String("gateway-url", "", "the gateway's public base URL (overrides --config)")
	clientID := fs.String("client-id", "", "the public-client app registration's client ID (overrides --config)")
	issuer := fs.String("issuer", "", "OIDC issuer, e.g. https://login.microsoftonline.com/<tenant-id>/v2.0 (overrides --config)")
	var models, headers stringList
	fs.Var(&models, "model", "model ID, repeatable; the first is the default (overrides the config's models)")
	fs.Var(&headers, "header", "extra non-secret header 'Name: value', repeatable")
	out := fs.String("out", "", "write to FILE instead of standard output")
	outDir := fs.String("out-dir", "", "with 'all': the directory for every profile of both clients")
	tokenType := fs.String("token-type", "", "id_token (default) or access_token")
	scopes := fs.String("scopes", "", "scopes for access_token mode, e.g. api://<api-app-id>/access_as_user")
	broker := fs.Bool("broker", false, "Desktop: sign in through the OS broker (WAM / Company Portal; Entra only)")
	keepChooser := fs.Bool("keep-mode-chooser", false, "Desktop: keep the 'sign in to Claude.ai' option (default: hidden)")
	helper := fs.String("helper", "", "Code: apiKeyHelper command (default: gatehouse token with the issuer and client ID)")
	helperTTL := fs.Int("helper-ttl-ms", 0, "Code: CLAUDE_CODE_API_KEY_HELPER_TTL_MS (default 300000)")
	desktopHelper := fs.String("desktop-helper", "", "Desktop: absolute path of a credential-helper executable instead of Desktop's own sign-in (reads client.json; see docs/profiles.md)")
	regKeep := fs.Bool("reg-keep-existing", false, "reg: add to the key's existing values instead of replacing the key")
	mcx := fs.Bool("mcx", false, "mobileconfig: Jamf Custom Settings (com.apple.ManagedClient.preferences) form")
	org := fs.String("organization", "", "mobileconfig: PayloadOrganization")
	providerName := fs.String("provider", "", "with --config: the identity.providers entry to use (when there are several)")
	ident := fs.String("identifier", "", "mobileconfig: PayloadIdentifier (default dev.gatehouse.profile.<client>)")

	var client string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		client, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return exitCode(2)
	}
	if client == "" && fs.NArg() == 1 {
		client = fs.Arg(0)
	} else if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	switch {
	case client == "all":
		if *outDir == "" || *out != "" || *format != "" {
			return usagef("'gatehouse profile all' writes every format for both clients: give --out-dir DIR (not --out or --format)")
		}
	case client != string(profile.Desktop) && client != string(profile.Code):
		return usagef("say which client: gatehouse profile %s", profileSynopsis)
	case *format == "":
		return usagef("--format is required (mobileconfig, reg or json)")
	}

	o := profile.Options{
		BearerTokenType: *tokenType, Scopes: *scopes, Broker: *broker, KeepDeploymentModeChooser: *keepChooser,
		HelperCommand: *helper, HelperTTLMillis: *helperTTL, Organization: *org, Identifier: *ident,
		DesktopHelper: *desktopHelper, MCX: *mcx, RegKeepExisting: *regKeep,
	}
	if *cfgPath != "" {
		// Only non-secret fields are read, so the file's secret references
		// need not resolve on the machine generating profiles.
		data, err := os.ReadFile(*cfgPath)
		if err != nil {
			return fmt.Errorf("reading %s: %w", *cfgPath, err)
		}
		cfg, err := config.Decode(data)
		if err != nil {
			return fmt.Errorf("%s: %w", *cfgPath, err)
		}
		o.GatewayURL = cfg.PublicURL
		p, err := profileProvider(cfg, *providerName)
		if err != nil {
			return err
		}
		o.Issuer = p.Issuer
		if strings.Contains(o.Issuer, "{tenantid}") && len(p.AllowedTenants) == 1 {
			o.Issuer = strings.ReplaceAll(o.Issuer, "{tenantid}", p.AllowedTenants[0])
		}
		if p.TokenMode == "access_token" {
			// audiences hold the API's app ID; the client is a separate app.
			o.BearerTokenType = "access_token"
			if len(p.AllowedClients) > 0 {
				o.ClientID = p.AllowedClients[0]
			}
		} else if len(p.Audiences) > 0 {
			o.ClientID = p.Audiences[0]
		}
		for _, m := range cfg.Models {
			o.Models = append(o.Models, m.ID)
		}
		if o.GatewayURL == "" && *gw == "" {
			return usagef("%s has no public_url: pass --gateway-url", *cfgPath)
		}
	} else if *gw == "" || *clientID == "" || *issuer == "" {
		return usagef("give --gateway-url, --client-id and --issuer, or --config FILE")
	}
	if *tokenType != "" {
		o.BearerTokenType = *tokenType
	}
	if *gw != "" {
		o.GatewayURL = *gw
	}
	if *clientID != "" {
		o.ClientID = *clientID
	}
	if *issuer != "" {
		o.Issuer = *issuer
	}
	if len(models) > 0 {
		o.Models = models
	}
	for _, h := range headers {
		name, val, ok := strings.Cut(h, ":")
		if !ok {
			return usagef("--header %q: want 'Name: value'", h)
		}
		if o.CustomHeaders == nil {
			o.CustomHeaders = map[string]string{}
		}
		o.CustomHeaders[strings.TrimSpace(name)] = strings.TrimSpace(val)
	}

	if client == "all" {
		return writeAllProfiles(e, o, *outDir)
	}
	data, err := profile.Generate(profile.Client(client), profile.Format(*format), o)
	if err != nil {
		return err
	}
	if *out == "" {
		_, err = e.stdout.Write(data)
		return err
	}
	// A profile is non-secret metadata: world-readable is fine.
	if err := os.WriteFile(*out, data, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "wrote %s (%s profile for Claude %s; suggested name %s)\n", *out, *format, map[string]string{"desktop": "Desktop", "code": "Code"}[client], profile.FileName(profile.Client(client), profile.Format(*format)))
	if client == "desktop" {
		fmt.Fprintln(e.stderr, "remember: push a Claude Code profile too, or the CLI bypasses the gateway (gatehouse profile code ...)")
	} else {
		fmt.Fprintln(e.stderr, "remember: push a Claude Desktop profile too, or Desktop bypasses the gateway (gatehouse profile desktop ...)")
	}
	return nil
}

// profileProvider picks the identity provider a profile is for: the
// single-issuer form, the only entry of identity.providers, or the one named
// by --provider.
func profileProvider(cfg *config.Config, name string) (*config.IdentityProvider, error) {
	ps := cfg.Identity.Providers
	if len(ps) == 0 {
		if name != "" && name != "default" {
			return nil, usagef("--provider %q: the configuration has a single identity provider", name)
		}
		return &cfg.Identity.IdentityProvider, nil
	}
	if name == "" {
		if len(ps) == 1 {
			return &ps[0], nil
		}
		var names []string
		for _, p := range ps {
			names = append(names, p.Name)
		}
		return nil, usagef("the configuration lists %d identity providers (%s): choose one with --provider", len(ps), strings.Join(names, ", "))
	}
	for i := range ps {
		if ps[i].Name == name {
			return &ps[i], nil
		}
	}
	return nil, usagef("--provider %q is not in identity.providers", name)
}

// writeAllProfiles writes both clients' profiles in every format, so that
// neither client is left without one.
func writeAllProfiles(e *env, o profile.Options, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, c := range []profile.Client{profile.Desktop, profile.Code} {
		for _, f := range []profile.Format{profile.MobileConfig, profile.Reg, profile.JSON} {
			data, err := profile.Generate(c, f, o)
			if err != nil {
				return err // the same options for all: the first refusal says it
			}
			path := filepath.Join(dir, profile.FileName(c, f))
			if err := os.WriteFile(path, data, 0o644); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "wrote %s\n", path)
		}
	}
	return nil
}
