package cli

import (
	"io/fs"
	"strconv"
	"strings"
)

// containerMemoryLimit reads the memory limit of the container the process
// runs in from the cgroup filesystem under fsys (rooted at /): cgroup v2's
// memory.max, else cgroup v1's memory.limit_in_bytes. ok is false when
// there is none (no cgroup, "max", or v1's "unlimited" sentinel).
func containerMemoryLimit(fsys fs.FS) (limit int64, path string, ok bool) {
	for _, p := range []string{"sys/fs/cgroup/memory.max", "sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			continue
		}
		v := strings.TrimSpace(string(b))
		n, err := strconv.ParseInt(v, 10, 64)
		if v == "max" || err != nil || n <= 0 || n >= 1<<60 {
			return 0, "/" + p, false
		}
		return n, "/" + p, true
	}
	return 0, "", false
}

// softMemoryLimit is the Go runtime limit for a container limit: 90%,
// leaving room for what the runtime does not count (the binary's pages,
// SQLite's own allocations) before the kernel's OOM killer acts.
func softMemoryLimit(container int64) int64 { return container / 10 * 9 }
