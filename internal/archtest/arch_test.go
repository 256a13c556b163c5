package archtest

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

type pkg struct {
	ImportPath string
	Doc        string
	Deps       []string
}

func listPackages(t *testing.T) []pkg {
	t.Helper()
	out, err := exec.Command("go", "list", "-json", "github.com/gatehouse-dev/gatehouse/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// TestEveryPackageSaysWhatItIsFor: one package doc comment each.
func TestEveryPackageSaysWhatItIsFor(t *testing.T) {
	for _, p := range listPackages(t) {
		if strings.TrimSpace(p.Doc) == "" {
			t.Errorf("%s has no package doc comment", p.ImportPath)
		}
	}
}

// TestHotPathDependencies: the packages every request passes through keep
// their dependencies to the standard library and each other (style.md §5).
func TestHotPathDependencies(t *testing.T) {
	forbidden := []string{"database/sql", "github.com/jackc/", "modernc.org/", "github.com/redis/",
		"github.com/prometheus/", "go.opentelemetry.io/", "net/http/httptest"}
	leaves := map[string]bool{
		"github.com/gatehouse-dev/gatehouse/internal/identity":  true,
		"github.com/gatehouse-dev/gatehouse/internal/anthropic": true,
		"github.com/gatehouse-dev/gatehouse/internal/proxy":     true,
		"github.com/gatehouse-dev/gatehouse/internal/authn":     true,
	}
	seen := 0
	for _, p := range listPackages(t) {
		if !leaves[p.ImportPath] {
			continue
		}
		seen++
		for _, d := range p.Deps {
			for _, f := range forbidden {
				if strings.HasPrefix(d, f) {
					t.Errorf("%s depends on %s", p.ImportPath, d)
				}
			}
		}
	}
	if seen != len(leaves) {
		t.Fatalf("found %d of %d guarded packages: update this test", seen, len(leaves))
	}
}

// TestProductionCodeHasNoTestServers: fakes used by `gatehouse demo` listen
// with net.Listen, never httptest (which registers global flags).
func TestProductionCodeHasNoTestServers(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/gatehouse-dev/gatehouse/cmd/gatehouse").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range strings.Fields(string(out)) {
		if d == "net/http/httptest" || d == "testing" {
			t.Errorf("the gatehouse binary links %s", d)
		}
	}
}
