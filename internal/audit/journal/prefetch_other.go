//go:build !linux

package journal

import "os"

// prefetch is a no-op where fadvise is not available.
func prefetch(*os.File) {}
