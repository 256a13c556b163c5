package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/gatehouse-dev/gatehouse/internal/credhelper"
)

// clientSettings is the optional per-machine settings file of the
// credential helper, for callers that cannot pass flags (Claude Desktop's
// inferenceCredentialHelper is a path without arguments):
// {"issuer": "...", "client_id": "...", "scopes": "...", "token_type": "..."}.
type clientSettings struct {
	Issuer    string `json:"issuer"`
	ClientID  string `json:"client_id"`
	Scopes    string `json:"scopes,omitempty"`
	TokenType string `json:"token_type,omitempty"`
}

// defaultClientSettingsPath is where IT can drop clientSettings.
func defaultClientSettingsPath(getenv func(string) string) string {
	switch runtime.GOOS {
	case "darwin":
		return "/Library/Application Support/Gatehouse/client.json"
	case "windows":
		if pd := getenv("ProgramData"); pd != "" {
			return filepath.Join(pd, "Gatehouse", "client.json")
		}
		return `C:\ProgramData\Gatehouse\client.json`
	default:
		return "/etc/gatehouse/client.json"
	}
}

type helperFlags struct {
	issuer, clientID, scopes, tokenType, settings, loginHint *string
}

func addHelperFlags(fs *flag.FlagSet) helperFlags {
	return helperFlags{
		issuer:    fs.String("issuer", "", "OIDC issuer (env GATEHOUSE_ISSUER)"),
		clientID:  fs.String("client-id", "", "public client ID (env GATEHOUSE_CLIENT_ID)"),
		scopes:    fs.String("scopes", "", "scopes (env GATEHOUSE_SCOPES; default \"openid profile email offline_access\")"),
		tokenType: fs.String("token-type", "", "id_token (default) or access_token (env GATEHOUSE_TOKEN_TYPE)"),
		settings:  fs.String("settings", "", "settings file with issuer/client_id/scopes/token_type (env GATEHOUSE_CLIENT_SETTINGS; default: the machine-wide client.json)"),
		loginHint: fs.String("login-hint", "", "account to pre-select at sign-in"),
	}
}

// helperFor builds the credential helper: flags, then environment, then the
// settings file.
func helperFor(e *env, f helperFlags, open func(context.Context, string) error) (*credhelper.Helper, error) {
	pick := func(flagVal, envName string) string {
		if flagVal != "" {
			return flagVal
		}
		return e.getenv(envName)
	}
	s := clientSettings{
		Issuer:    pick(*f.issuer, "GATEHOUSE_ISSUER"),
		ClientID:  pick(*f.clientID, "GATEHOUSE_CLIENT_ID"),
		Scopes:    pick(*f.scopes, "GATEHOUSE_SCOPES"),
		TokenType: pick(*f.tokenType, "GATEHOUSE_TOKEN_TYPE"),
	}
	if s.Issuer == "" || s.ClientID == "" {
		path := pick(*f.settings, "GATEHOUSE_CLIENT_SETTINGS")
		explicit := path != ""
		if !explicit {
			path = defaultClientSettingsPath(e.getenv)
		}
		data, err := os.ReadFile(path)
		switch {
		case err == nil:
			var fileS clientSettings
			if err := json.Unmarshal(data, &fileS); err != nil {
				return nil, fmt.Errorf("settings file %s is not valid JSON: %v", path, err)
			}
			if s.Issuer == "" {
				s.Issuer = fileS.Issuer
			}
			if s.ClientID == "" {
				s.ClientID = fileS.ClientID
			}
			if s.Scopes == "" {
				s.Scopes = fileS.Scopes
			}
			if s.TokenType == "" {
				s.TokenType = fileS.TokenType
			}
		case explicit || !errors.Is(err, os.ErrNotExist):
			return nil, fmt.Errorf("reading settings file: %v", err)
		}
	}
	if s.Issuer == "" || s.ClientID == "" {
		return nil, usagef("the issuer and client ID are unknown: pass --issuer and --client-id, or set GATEHOUSE_ISSUER and GATEHOUSE_CLIENT_ID, or install %s", defaultClientSettingsPath(e.getenv))
	}
	dir, err := credhelper.DefaultCacheDir(e.getenv)
	if err != nil {
		return nil, err
	}
	logLevel := slog.LevelWarn
	if e.getenv("GATEHOUSE_DEBUG") != "" {
		logLevel = slog.LevelDebug
	}
	o := credhelper.Options{
		Issuer: s.Issuer, ClientID: s.ClientID, Scopes: s.Scopes, TokenType: s.TokenType,
		Store:     credhelper.FileStore{Dir: dir},
		LoginHint: *f.loginHint,
		// stdout belongs to the token; diagnostics go to stderr.
		Logger:      slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: logLevel})),
		OpenBrowser: open,
	}
	return credhelper.New(o)
}

// runLogin: gatehouse login — interactive sign-in; prints who signed in.
func runLogin(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "login", "[--issuer URL --client-id ID] [--scopes S] [--token-type id_token|access_token]")
	hf := addHelperFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	open := credhelper.SystemBrowser(e.getenv)
	// Always print the URL: the browser may not come up, or the session may
	// have none (then open the URL in a browser that can reach this machine's
	// loopback address, e.g. through an SSH port forward).
	h, err := helperFor(e, hf, func(ctx context.Context, url string) error {
		fmt.Fprintf(e.stderr, "Opening the browser to sign in. If it does not open, visit:\n\n  %s\n\n", url)
		if open != nil {
			if err := open(ctx, url); err != nil {
				fmt.Fprintf(e.stderr, "(could not start the browser: %v)\n", err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	t, err := h.Login(ctx)
	if err != nil {
		return err
	}
	who := t.Username
	if who == "" {
		who = "the user"
	}
	fmt.Fprintf(e.stdout, "Signed in as %s. Claude Code and Claude Desktop can now get tokens with `gatehouse token`.\n", who)
	return nil
}

// runToken: gatehouse token — prints the token for apiKeyHelper (bare) or
// inferenceCredentialHelper (bare, or {"token": ...} with --json). Exits 1
// with one line on stderr when a sign-in is needed but impossible.
func runToken(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "token", "[--issuer URL --client-id ID] [--json] [--no-browser]")
	hf := addHelperFlags(fs)
	asJSON := fs.Bool("json", false, `print {"token":"..."} (Claude Desktop's credential-helper format) instead of the bare token`)
	noBrowser := fs.Bool("no-browser", false, "never open a browser; fail if a sign-in is needed")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var open func(context.Context, string) error
	// Claude Desktop re-runs its helper with CLAUDE_HELPER_CONTEXT=
	// mid-session-refresh to refresh silently: never pop a browser then.
	if !*noBrowser && e.getenv("CLAUDE_HELPER_CONTEXT") != "mid-session-refresh" {
		open = credhelper.SystemBrowser(e.getenv)
	}
	h, err := helperFor(e, hf, open)
	if err != nil {
		return err
	}
	tok, err := h.Token(ctx)
	if err != nil {
		return errors.New(oneLine(err.Error()))
	}
	if *asJSON {
		return json.NewEncoder(e.stdout).Encode(struct {
			Token string `json:"token"`
		}{tok})
	}
	_, err = fmt.Fprint(e.stdout, tok)
	return err
}

// runLogout: gatehouse logout — forgets the cached tokens.
func runLogout(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "logout", "[--issuer URL --client-id ID]")
	hf := addHelperFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	h, err := helperFor(e, hf, nil)
	if err != nil {
		return err
	}
	if err := h.Logout(); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, "Signed out: cached tokens removed.")
	return nil
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\r", " ")
	return strings.ReplaceAll(s, "\n", " ")
}
