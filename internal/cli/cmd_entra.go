package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/gatehouse-dev/gatehouse/internal/entra"
)

// runEntraRegister: gatehouse entra register (docs/rollout.md step 1).
func runEntraRegister(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "entra register", "--tenant TENANT_ID --name NAME [--app-role Claude.User] [--scope access_as_user] [--broker] [--dry-run]")
	var s entra.Spec
	fs.StringVar(&s.TenantID, "tenant", "", "directory (tenant) ID, a GUID (required)")
	fs.StringVar(&s.Name, "name", "", "display name of the app registration (required; re-runs find it by this name)")
	fs.StringVar(&s.AppID, "app-id", "", "update the registration with this client ID instead of finding it by name")
	fs.StringVar(&s.AppRole, "app-role", "", "create this app role for users (e.g. Claude.User) to gate access with identity.required_roles")
	fs.StringVar(&s.Scope, "scope", "", "expose this delegated scope under api://<client-id> (access-token mode), e.g. access_as_user")
	fs.BoolVar(&s.Broker, "broker", false, "add the OS broker redirect URIs (WAM on Windows, Company Portal on macOS)")
	fs.BoolVar(&s.AssignmentRequired, "assignment-required", false, "only users assigned to the enterprise application may sign in")
	var users, groups stringList
	fs.Var(&users, "assign", "assign --app-role to this user (UPN or object ID), repeatable")
	fs.Var(&groups, "assign-group", "assign --app-role to this group (object ID; needs Entra ID P1), repeatable")
	fs.BoolVar(&s.ReplaceWeb, "replace-web", false, "if the registration found uses the Web platform, create a new public client instead")
	fs.StringVar(&s.NewName, "new-name", "", "name for that new registration (default: NAME (public client))")
	dryRun := fs.Bool("dry-run", false, "print the Microsoft Graph calls without signing in or changing anything")
	token := fs.String("token", "", "Graph access token with Application.ReadWrite.All ('-' reads it from standard input; env GATEHOUSE_GRAPH_TOKEN); default: device code sign-in")
	graphURL := fs.String("graph-url", "", "Microsoft Graph base URL (env GATEHOUSE_GRAPH_URL; default https://graph.microsoft.com)")
	loginURL := fs.String("login-url", "", "Entra login base URL (env GATEHOUSE_LOGIN_URL; default https://login.microsoftonline.com)")
	loginClient := fs.String("login-client-id", "", "public client for the device code sign-in (default: Microsoft Graph Command Line Tools)")
	yes := fs.Bool("yes", false, "answer yes to the offer to create a new registration")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	s.AssignUsers, s.AssignGroups = users, groups
	if err := s.Validate(); err != nil {
		return usagef("%s", oneLine(err.Error()))
	}
	if *graphURL == "" {
		*graphURL = e.getenv("GATEHOUSE_GRAPH_URL")
	}
	if *graphURL == "" {
		*graphURL = "https://graph.microsoft.com"
	}
	if *loginURL == "" {
		*loginURL = e.getenv("GATEHOUSE_LOGIN_URL")
	}
	if *loginURL == "" {
		*loginURL = "https://login.microsoftonline.com"
	}

	if *dryRun {
		fmt.Fprintf(e.stdout, "# Dry run: the Microsoft Graph calls `gatehouse entra register` makes for tenant %s.\n", s.TenantID)
		fmt.Fprintf(e.stdout, "# Nothing is signed in to or changed. {id} and {appId} are assigned by Graph.\n\n")
		for i, c := range entra.Plan(s, entra.NewGUID) {
			fmt.Fprintf(e.stdout, "%d. %s %s/v1.0%s\n   # %s\n", i+1, c.Method, strings.TrimSuffix(*graphURL, "/"), c.Path, c.Why)
			if c.Body != nil {
				b, _ := json.MarshalIndent(c.Body, "   ", "  ")
				fmt.Fprintf(e.stdout, "   %s\n", b)
			}
			fmt.Fprintln(e.stdout)
		}
		fmt.Fprintf(e.stdout, "Issuer for the profiles: %s\n", entra.Issuer(*loginURL, s.TenantID))
		return nil
	}

	in := bufio.NewReader(e.stdin) // one reader: --token - and the prompt share stdin
	tok := *token
	if tok == "" {
		tok = e.getenv("GATEHOUSE_GRAPH_TOKEN")
	}
	if tok == "-" {
		line, err := in.ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		tok = strings.TrimSpace(line)
	}
	tok = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(tok), "Bearer "))
	if tok == "" {
		var err error
		tok, err = entra.DeviceCodeToken(ctx, entra.DeviceCodeOptions{LoginURL: *loginURL, TenantID: s.TenantID, ClientID: *loginClient, Prompt: e.stderr})
		if err != nil {
			return err
		}
	}
	g := entra.NewGraph(entra.GraphOptions{BaseURL: *graphURL, Token: tok})
	res, err := entra.Register(ctx, g, s, entra.NewGUID)
	var we *entra.WebPlatformError
	if errors.As(err, &we) {
		fmt.Fprintf(e.stderr, "%v.\n", we)
		newName := s.NewName
		if newName == "" {
			newName = s.Name + " (public client)"
		}
		if !*yes {
			fmt.Fprintf(e.stderr, "Create a new public-client registration named %q now? [y/N] ", newName)
			line, _ := in.ReadString('\n')
			if a := strings.ToLower(strings.TrimSpace(line)); a != "y" && a != "yes" {
				fmt.Fprintln(e.stderr, "\nNothing changed.")
				return exitCode(1)
			}
		}
		s.ReplaceWeb = true
		res, err = entra.Register(ctx, g, s, entra.NewGUID)
	}
	if err != nil {
		return err
	}
	for _, c := range res.Changes {
		fmt.Fprintf(e.stdout, "changed: %s\n", c)
	}
	if len(res.Changes) == 0 {
		fmt.Fprintln(e.stdout, "unchanged: the registration already matches")
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(e.stdout, "warning: %s\n", w)
	}
	if s.AppRole != "" && len(s.AssignUsers)+len(s.AssignGroups) == 0 {
		fmt.Fprintf(e.stdout, "note: assign users or groups to the role %s (--assign UPN, --assign-group ID, or Enterprise applications → Users and groups)\n", s.AppRole)
	}
	issuer := entra.Issuer(*loginURL, s.TenantID)
	fmt.Fprintf(e.stdout, "\nTenant ID:  %s\nClient ID:  %s\nIssuer:     %s\n", res.TenantID, res.ClientID, issuer)
	fmt.Fprintf(e.stdout, "\nNext: put the issuer and client ID into the gateway's config (identity.issuer, identity.audiences), then\n")
	fmt.Fprintf(e.stdout, "  gatehouse profile desktop --format mobileconfig --gateway-url https://<gateway> --client-id %s --issuer %s --out claude-desktop.mobileconfig\n", res.ClientID, issuer)
	fmt.Fprintf(e.stdout, "  gatehouse profile code --format mobileconfig --gateway-url https://<gateway> --client-id %s --issuer %s --out claude-code.mobileconfig\n", res.ClientID, issuer)
	return nil
}
