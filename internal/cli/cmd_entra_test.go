package cli

import (
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/fake/graph"
)

func TestEntraRegisterCommand(t *testing.T) {
	g, err := graph.Start(graph.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	envm := map[string]string{
		"GATEHOUSE_GRAPH_URL":   g.URL(),
		"GATEHOUSE_LOGIN_URL":   "https://login.microsoftonline.com",
		"GATEHOUSE_GRAPH_TOKEN": graph.Token(rkTenant, "Application.ReadWrite.All", time.Now(), time.Hour),
	}
	code, out, stderr := rkRun(t, envm, "", "entra", "register", "--tenant", rkTenant, "--name", "Claude", "--app-role", "Claude.User")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	apps := g.Applications(rkTenant)
	if len(apps) != 1 {
		t.Fatalf("%d apps", len(apps))
	}
	appID := apps[0]["appId"].(string)
	for _, want := range []string{"Tenant ID:  " + rkTenant, "Client ID:  " + appID, "Issuer:     " + rkIssuer, "changed: created the application", "gatehouse profile desktop"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out+stderr, envm["GATEHOUSE_GRAPH_TOKEN"]) {
		t.Error("the Graph token was printed")
	}
	code, out, _ = rkRun(t, envm, "", "entra", "register", "--tenant", rkTenant, "--name", "Claude", "--app-role", "Claude.User")
	if code != 0 || !strings.Contains(out, "unchanged") || !strings.Contains(out, appID) {
		t.Errorf("re-run: exit %d\n%s", code, out)
	}
}

func TestEntraRegisterWebTrapPrompt(t *testing.T) {
	g, err := graph.Start(graph.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	g.PutApplication(rkTenant, map[string]any{"displayName": "Claude", "web": map[string]any{"redirectUris": []any{"http://127.0.0.1/callback"}}})
	envm := map[string]string{"GATEHOUSE_GRAPH_URL": g.URL(), "GATEHOUSE_GRAPH_TOKEN": graph.Token(rkTenant, "Application.ReadWrite.All", time.Now(), time.Hour)}

	code, _, stderr := rkRun(t, envm, "n\n", "entra", "register", "--tenant", rkTenant, "--name", "Claude")
	if code != 1 || !strings.Contains(stderr, "Web platform") || !strings.Contains(stderr, "[y/N]") || len(g.Applications(rkTenant)) != 1 {
		t.Fatalf("declined: exit %d, %d apps, stderr %q", code, len(g.Applications(rkTenant)), stderr)
	}
	code, out, stderr := rkRun(t, envm, "y\n", "entra", "register", "--tenant", rkTenant, "--name", "Claude")
	if code != 0 || len(g.Applications(rkTenant)) != 2 || !strings.Contains(out, `--name "Claude (public client)"`) {
		t.Fatalf("accepted: exit %d, %d apps\n%s\n%s", code, len(g.Applications(rkTenant)), out, stderr)
	}
}

func TestEntraRegisterDryRun(t *testing.T) {
	// No token, no reachable Graph: a dry run must not need either.
	envm := map[string]string{"GATEHOUSE_GRAPH_URL": "http://127.0.0.1:1"}
	code, out, stderr := rkRun(t, envm, "", "entra", "register", "--tenant", rkTenant, "--name", "Claude", "--app-role", "Claude.User", "--dry-run")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"GET http://127.0.0.1:1/v1.0/applications?$filter=", "POST http://127.0.0.1:1/v1.0/applications", `"Claude.User"`, `"http://127.0.0.1/callback"`, "POST http://127.0.0.1:1/v1.0/servicePrincipals", "Issuer for the profiles: " + rkIssuer} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run lacks %q:\n%s", want, out)
		}
	}
	if code, _, stderr := rkRun(t, nil, "", "entra", "register", "--tenant", "contoso", "--name", "x", "--dry-run"); code != 2 || !strings.Contains(stderr, "GUID") {
		t.Errorf("bad tenant: exit %d %q", code, stderr)
	}
}

func TestEntraRegisterAssign(t *testing.T) {
	g, err := graph.Start(graph.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	g.PutUser(rkTenant, "ada@contoso.example", "Ada")
	envm := map[string]string{"GATEHOUSE_GRAPH_URL": g.URL(), "GATEHOUSE_GRAPH_TOKEN": graph.Token(rkTenant, "Application.ReadWrite.All", time.Now(), time.Hour)}
	code, out, stderr := rkRun(t, envm, "", "entra", "register", "--tenant", rkTenant, "--name", "Claude", "--app-role", "Claude.User", "--assign", "ada@contoso.example")
	if code != 0 || !strings.Contains(out, "assigned Claude.User to user ada@contoso.example") || len(g.Assignments(rkTenant)) != 1 {
		t.Fatalf("exit %d\n%s\n%s", code, out, stderr)
	}
	code, _, stderr = rkRun(t, envm, "", "entra", "register", "--tenant", rkTenant, "--name", "Claude", "--assign", "ada@contoso.example")
	if code != 2 || !strings.Contains(stderr, "--app-role") {
		t.Errorf("assign without role: exit %d %q", code, stderr)
	}
}

func TestEntraRegisterTokenFromStdinThenPrompt(t *testing.T) {
	g, err := graph.Start(graph.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	g.PutApplication(rkTenant, map[string]any{"displayName": "Claude", "web": map[string]any{"redirectUris": []any{"https://old.example/cb"}}})
	tok := graph.Token(rkTenant, "Application.ReadWrite.All", time.Now(), time.Hour)
	code, out, stderr := rkRun(t, map[string]string{"GATEHOUSE_GRAPH_URL": g.URL()}, tok+"\ny\n", "entra", "register", "--tenant", rkTenant, "--name", "Claude", "--token", "-", "--new-name", "Claude Desktop SSO")
	if code != 0 || len(g.Applications(rkTenant)) != 2 || !strings.Contains(out, "created the application \"Claude Desktop SSO\"") {
		t.Fatalf("exit %d\n%s\n%s", code, out, stderr)
	}
}
