package sqlite

import "os"

// SetFsync replaces the WAL fsync (tests inject failures). Call before the
// first write.
func SetFsync(s *Store, f func(*os.File) error) {
	s.walMu.Lock()
	defer s.walMu.Unlock()
	s.fsync = f
}
