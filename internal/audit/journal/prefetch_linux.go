package journal

import (
	"os"

	"golang.org/x/sys/unix"
)

// prefetch asks the kernel to read a reused segment into its cache in the
// background, so that appends overwrite cached pages instead of reading
// each one from disk first.
func prefetch(f *os.File) {
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) { _ = unix.Fadvise(int(fd), 0, 0, unix.FADV_WILLNEED) })
}
