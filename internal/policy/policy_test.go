package policy_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/policy"
)

const (
	engGroup = "11111111-1111-1111-1111-111111111111"
	finGroup = "22222222-2222-2222-2222-222222222222"
	tenantA  = "aaaaaaaa-0000-0000-0000-000000000000"
)

func testSet(t *testing.T) *policy.Set {
	t.Helper()
	s, err := policy.New([]policy.Policy{
		{Name: "everyone", Models: []string{"claude-haiku-4-5"}, MaxOutputTokens: 8000,
			Limits: policy.Limits{RequestsPerMinute: 10, TokensPerDay: 1000, USDPerMonth: 5, ConcurrentStreams: 2}},
		{Name: "engineering", Match: policy.Match{Groups: []string{engGroup}},
			Models: []string{"claude-sonnet-*", "claude-opus-4-6"}, MaxOutputTokens: 32000,
			Limits: policy.Limits{RequestsPerMinute: 60, TokensPerMinute: 400000}},
		{Name: "admins", Match: policy.Match{Roles: []string{"Gatehouse.Admin"}}, Shadow: true, FailOpen: true},
		{Name: "vip", Match: policy.Match{Users: []string{tenantA + "/vip-oid", "oid-only"}}, Models: []string{"*"}},
		{Name: "tenant-b", Match: policy.Match{Tenants: []string{"bbbb"}}, Limits: policy.Limits{TokensPerDay: 7}},
	}, []policy.GroupLimit{
		{Group: engGroup, Name: "eng", Limits: policy.Limits{USDPerMonth: 1000}},
		{Group: finGroup, Limits: policy.Limits{TokensPerDay: 99}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestResolve(t *testing.T) {
	s := testSet(t)
	tests := []struct {
		name       string
		p          identity.Principal
		want       string
		limits     policy.Limits
		maxOut     int64
		shadow     bool
		groupNames []string
	}{
		{"catch-all", identity.Principal{Key: "t/x", TenantID: tenantA}, "everyone",
			policy.Limits{RequestsPerMinute: 10, TokensPerDay: 1000, USDPerMonth: 5, ConcurrentStreams: 2}, 8000, false, nil},
		{"group match merged over catch-all", identity.Principal{Key: "t/e", Groups: []string{"zzz", engGroup}}, "engineering",
			policy.Limits{RequestsPerMinute: 60, TokensPerMinute: 400000, TokensPerDay: 1000, USDPerMonth: 5, ConcurrentStreams: 2}, 32000, false, []string{"eng"}},
		{"first match wins", identity.Principal{Key: "t/e", Groups: []string{engGroup}, Roles: []string{"Gatehouse.Admin"}}, "engineering",
			policy.Limits{RequestsPerMinute: 60, TokensPerMinute: 400000, TokensPerDay: 1000, USDPerMonth: 5, ConcurrentStreams: 2}, 32000, false, []string{"eng"}},
		{"role match, shadow", identity.Principal{Key: "t/a", Roles: []string{"Gatehouse.Admin"}, Groups: []string{finGroup}}, "admins",
			policy.Limits{RequestsPerMinute: 10, TokensPerDay: 1000, USDPerMonth: 5, ConcurrentStreams: 2}, 8000, true, []string{finGroup}},
		{"user key", identity.Principal{Key: tenantA + "/vip-oid"}, "vip",
			policy.Limits{RequestsPerMinute: 10, TokensPerDay: 1000, USDPerMonth: 5, ConcurrentStreams: 2}, 8000, false, nil},
		{"object id", identity.Principal{Key: "x/oid-only", ObjectID: "oid-only"}, "vip",
			policy.Limits{RequestsPerMinute: 10, TokensPerDay: 1000, USDPerMonth: 5, ConcurrentStreams: 2}, 8000, false, nil},
		{"display name never matches", identity.Principal{Key: "x/y", Username: "oid-only", Email: "oid-only"}, "everyone",
			policy.Limits{RequestsPerMinute: 10, TokensPerDay: 1000, USDPerMonth: 5, ConcurrentStreams: 2}, 8000, false, nil},
		{"tenant", identity.Principal{Key: "bbbb/1", TenantID: "bbbb"}, "tenant-b",
			policy.Limits{RequestsPerMinute: 10, TokensPerDay: 7, USDPerMonth: 5, ConcurrentStreams: 2}, 8000, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			eff, ok := s.Resolve(tt.p)
			if !ok {
				t.Fatal("no policy")
			}
			if eff.Name != tt.want || eff.Limits != tt.limits || eff.MaxOutputTokens != tt.maxOut || eff.Shadow != tt.shadow {
				t.Fatalf("got %s %+v max=%d shadow=%v; want %s %+v max=%d shadow=%v", eff.Name, eff.Limits, eff.MaxOutputTokens, eff.Shadow, tt.want, tt.limits, tt.maxOut, tt.shadow)
			}
			var gn []string
			for _, g := range eff.Groups {
				gn = append(gn, g.Name)
			}
			if !reflect.DeepEqual(gn, tt.groupNames) {
				t.Fatalf("groups %v, want %v", gn, tt.groupNames)
			}
		})
	}
}

func TestAllowsModel(t *testing.T) {
	s := testSet(t)
	eng, _ := s.Resolve(identity.Principal{Groups: []string{engGroup}})
	all, _ := s.Resolve(identity.Principal{Key: "t/x"})
	vip, _ := s.Resolve(identity.Principal{Key: tenantA + "/vip-oid"})
	for _, tt := range []struct {
		eff   policy.Effective
		model string
		want  bool
	}{
		{eng, "claude-sonnet-4-6", true},
		{eng, "claude-opus-4-6", true},
		{eng, "claude-opus-4-1", false},
		{eng, "claude-haiku-4-5", false}, // the specific list replaces the catch-all's
		{all, "claude-haiku-4-5", true},
		{all, "claude-sonnet-4-6", false},
		{vip, "anything-at-all", true},
	} {
		if got := tt.eff.AllowsModel(tt.model); got != tt.want {
			t.Errorf("%s.AllowsModel(%s) = %v, want %v", tt.eff.Name, tt.model, got, tt.want)
		}
	}
}

func TestNoCatchAllDenies(t *testing.T) {
	s, err := policy.New([]policy.Policy{{Name: "eng", Match: policy.Match{Groups: []string{engGroup}}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Resolve(identity.Principal{Key: "t/other"}); ok {
		t.Fatal("a user matching no policy got one")
	}
	if eff, ok := s.Resolve(identity.Principal{Key: "t/e", Groups: []string{engGroup}}); !ok || !eff.AllowsModel("x") {
		t.Fatal("eng user refused")
	}
}

func TestNoPolicies(t *testing.T) {
	s, err := policy.New(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	eff, ok := s.Resolve(identity.Principal{Key: "t/x"})
	if !ok || eff.Name != "default" || !eff.AllowsModel("claude-opus-4-6") || !eff.Limits.IsZero() || s.HasLimits() {
		t.Fatalf("no-policy config must allow everything unlimited: %+v", eff)
	}
}

func TestNewErrors(t *testing.T) {
	for name, ps := range map[string][]policy.Policy{
		"two catch-alls": {{Name: "a"}, {Name: "b"}},
		"duplicate name": {{Name: "a", Match: policy.Match{Roles: []string{"r"}}}, {Name: "a", Match: policy.Match{Roles: []string{"s"}}}},
		"bad glob":       {{Name: "a", Models: []string{"claude-["}}},
		"no name":        {{Match: policy.Match{Roles: []string{"r"}}}},
	} {
		if _, err := policy.New(ps, nil); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := policy.New(nil, []policy.GroupLimit{{Group: "g"}, {Group: "g"}}); err == nil {
		t.Error("duplicate group limit accepted")
	}
}

// FuzzAllowsModel: the model name comes from the client; matching must not
// panic, an exact entry always allows, and a name outside every pattern is
// refused.
func FuzzAllowsModel(f *testing.F) {
	for _, s := range []string{"claude-sonnet-4-6", "claude-sonnet-", "claude-opus-4-6", "", "*", "claude-sonnet-4-6/../x", "claude-[", "\x00"} {
		f.Add(s)
	}
	s, err := policy.New([]policy.Policy{{Name: "p", Models: []string{"claude-sonnet-*", "claude-opus-4-6", "claude-haiku-4-5"}}}, nil)
	if err != nil {
		f.Fatal(err)
	}
	eff, _ := s.Resolve(identity.Principal{Key: "k"})
	f.Fuzz(func(t *testing.T, model string) {
		got := eff.AllowsModel(model)
		want := model == "claude-opus-4-6" || model == "claude-haiku-4-5" ||
			(strings.HasPrefix(model, "claude-sonnet-") && !strings.Contains(model, "/"))
		if got != want {
			t.Fatalf("AllowsModel(%q) = %v, want %v", model, got, want)
		}
	})
}
