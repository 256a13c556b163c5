package cli

import (
	"testing"
	"testing/fstest"
)

func TestContainerMemoryLimit(t *testing.T) {
	tests := []struct {
		name  string
		files fstest.MapFS
		want  int64
		ok    bool
	}{
		{"no cgroup", fstest.MapFS{}, 0, false},
		{"v2 limit", fstest.MapFS{"sys/fs/cgroup/memory.max": {Data: []byte("536870912\n")}}, 536870912, true},
		{"v2 unlimited", fstest.MapFS{"sys/fs/cgroup/memory.max": {Data: []byte("max\n")}}, 0, false},
		{"v1 limit", fstest.MapFS{"sys/fs/cgroup/memory/memory.limit_in_bytes": {Data: []byte("268435456\n")}}, 268435456, true},
		{"v1 unlimited", fstest.MapFS{"sys/fs/cgroup/memory/memory.limit_in_bytes": {Data: []byte("9223372036854771712\n")}}, 0, false},
		{"garbage", fstest.MapFS{"sys/fs/cgroup/memory.max": {Data: []byte("lots")}}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _, ok := containerMemoryLimit(tt.files)
			if got != tt.want || ok != tt.ok {
				t.Fatalf("containerMemoryLimit = %d, %v; want %d, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
	if got := softMemoryLimit(1000); got != 900 {
		t.Fatalf("softMemoryLimit(1000) = %d", got)
	}
}
