package memory_test

import (
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/limits"
	"github.com/gatehouse-dev/gatehouse/internal/limits/limitstest"
	"github.com/gatehouse-dev/gatehouse/internal/limits/memory"
)

func TestConformance(t *testing.T) {
	limitstest.Run(t, func(t *testing.T) limits.Backend { return memory.New() })
}

func BenchmarkAdmitSettle(b *testing.B) { limitstest.Bench(b, memory.New()) }
