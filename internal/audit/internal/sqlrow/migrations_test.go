package sqlrow

import (
	"testing"
	"testing/fstest"
)

func TestMigrationsInVersionOrder(t *testing.T) {
	fsys := fstest.MapFS{
		"m/0002_b.sql": {Data: []byte("B")},
		"m/0010_c.sql": {Data: []byte("C")},
		"m/0001_a.sql": {Data: []byte("A")},
	}
	all, latest, err := Migrations(fsys, "m")
	if err != nil {
		t.Fatal(err)
	}
	if latest != 10 || len(all) != 3 || all[0].Version != 1 || all[0].Body != "A" || all[2].Name != "0010_c.sql" {
		t.Fatalf("latest %d, migrations %+v", latest, all)
	}
	if _, _, err := Migrations(fstest.MapFS{"m/x_bad.sql": {Data: []byte("")}}, "m"); err == nil {
		t.Fatal("a migration without a version number was accepted")
	}
}
