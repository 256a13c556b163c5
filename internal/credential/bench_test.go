package credential_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/credential"
	"github.com/gatehouse-dev/gatehouse/internal/fake/azure"
)

// BenchmarkTokenApplyCached is the per-request cost of a cached Azure token.
func BenchmarkTokenApplyCached(b *testing.B) {
	f, _ := azure.Start(azure.Options{})
	defer f.Close()
	f.SetSystemAssignedIdentity("s")
	c, _ := credential.NewManagedIdentity(credential.ManagedIdentityOptions{IMDSEndpoint: f.URL()})
	req, _ := http.NewRequest(http.MethodPost, "https://x.invalid/", nil)
	if err := c.Apply(context.Background(), req); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		r, _ := http.NewRequest(http.MethodPost, "https://x.invalid/", nil)
		for pb.Next() {
			_ = c.Apply(context.Background(), r)
		}
	})
	if f.Issued() != 1 {
		b.Fatalf("issued %d tokens", f.Issued())
	}
}
