package sqlrow

import (
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
)

// Migration is one embedded schema migration, named NNNN_description.sql.
type Migration struct {
	Version int
	Name    string
	Body    string
}

// Migrations reads the *.sql files of dir in fsys in version order. Latest
// is the highest version, so a store can refuse a database newer than
// the binary.
func Migrations(fsys fs.FS, dir string) (all []Migration, latest int, err error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, 0, err
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	for _, e := range entries {
		v, err := strconv.Atoi(strings.SplitN(e.Name(), "_", 2)[0])
		if err != nil {
			return nil, 0, fmt.Errorf("migration %s: bad name", e.Name())
		}
		body, err := fs.ReadFile(fsys, dir+"/"+e.Name())
		if err != nil {
			return nil, 0, err
		}
		all = append(all, Migration{Version: v, Name: e.Name(), Body: string(body)})
		latest = v
	}
	return all, latest, nil
}
