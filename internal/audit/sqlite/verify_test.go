package sqlite_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/audit/audittest"
	"github.com/gatehouse-dev/gatehouse/internal/audit/content"
	"github.com/gatehouse-dev/gatehouse/internal/audit/sqlite"
)

// seedSigned writes 10 begun records (r0..r9), finishes the even ones,
// writes a signed checkpoint and closes. It returns the path and key.
func seedSigned(t *testing.T, extra func(s *sqlite.Store)) (string, ed25519.PrivateKey) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "a.db")
	s, err := sqlite.Open(context.Background(), sqlite.Options{Path: path, SigningKey: priv})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 10 {
		r := audittest.Sample(fmt.Sprint("r", i), time.Duration(i)*time.Second)
		if err := s.Begin(ctx, []*audit.Record{r}); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			if err := s.Finish(ctx, []*audit.Record{audittest.Finished(r)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if extra != nil {
		extra(s)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return path, priv
}

func verify(t *testing.T, path string, pub ed25519.PublicKey) *audit.VerifyReport {
	t.Helper()
	s, err := sqlite.Open(context.Background(), sqlite.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rep, err := s.Verify(context.Background(), pub)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func rawExec(t *testing.T, path string, stmts ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range stmts {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

func TestVerifyClean(t *testing.T) {
	path, priv := seedSigned(t, nil)
	rep := verify(t, path, priv.Public().(ed25519.PublicKey))
	if !rep.OK() {
		t.Fatalf("clean store has problems: %v", rep.Problems)
	}
	// 10 begins + 5 finishes.
	if rep.Entries != 15 || rep.Records != 10 || rep.Checkpoints != 1 || rep.Covered != 15 {
		t.Errorf("report %+v", rep)
	}
}

func TestVerifyDetectsTampering(t *testing.T) {
	tests := []struct {
		name   string
		tamper []string
		kind   string
		where  string // substring of the problem's String()
	}{
		{"edited record", []string{"UPDATE audit_records SET status = 500 WHERE request_id = 'r4'"},
			audit.ProblemEdited, "request r4: status: 200 → 500"},
		{"edited user of record", []string{"UPDATE audit_records SET user_key = 'tid-1/someone-else' WHERE request_id = 'r3'"},
			audit.ProblemEdited, "user_key: tid-1/oid-r3 → tid-1/someone-else"},
		{"edited chain entry", []string{"UPDATE audit_chain SET payload = replace(payload, '\"status\":200', '\"status\":201') WHERE seq = 2"},
			audit.ProblemEdited, "chain main entry 2"},
		{"deleted record and its entries", []string{
			"DELETE FROM audit_records WHERE request_id = 'r5'",
			"DELETE FROM audit_chain WHERE request_id = 'r5'"},
			audit.ProblemDeleted, "chain main entry 9: 1 entry missing"},
		{"deleted record only", []string{"DELETE FROM audit_records WHERE request_id = 'r7'"},
			audit.ProblemDeleted, "request r7: record is missing"},
		{"reordered entries", []string{
			"UPDATE audit_chain SET seq = -1 WHERE seq = 4",
			"UPDATE audit_chain SET seq = 4 WHERE seq = 5",
			"UPDATE audit_chain SET seq = 5 WHERE seq = -1"},
			audit.ProblemReordered, "chain main entry 4"},
		{"inserted record", []string{"INSERT INTO audit_records (request_id, time_ns, state) VALUES ('forged', 1, 'completed')"},
			audit.ProblemInserted, "request forged: record (seq 11) has no chain entry"},
		{"inserted entry", []string{"INSERT INTO audit_chain (seq, kind, request_id, payload, prev_hash, hash) VALUES (16, 'begin', 'forged', x'7b7d', x'00ff', x'00ff')"},
			audit.ProblemInserted, "chain main entry 16"},
		{"truncated tail", []string{
			"DELETE FROM audit_chain WHERE seq > 12",
			"DELETE FROM audit_records WHERE request_id IN ('r8', 'r9')"},
			audit.ProblemTruncated, "covers 15 entries but the chain ends at 12"},
		{"forged checkpoint", []string{"UPDATE audit_checkpoints SET note = replace(note, char(10) || '15' || char(10), char(10) || '14' || char(10))"},
			audit.ProblemBadSignature, "not signed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path, priv := seedSigned(t, nil)
			if rep := verify(t, path, priv.Public().(ed25519.PublicKey)); !rep.OK() {
				t.Fatalf("before tampering: %v", rep.Problems)
			}
			rawExec(t, path, tc.tamper...)
			rep := verify(t, path, priv.Public().(ed25519.PublicKey))
			found := false
			for _, p := range rep.Problems {
				if p.Kind == tc.kind && strings.Contains(p.String(), tc.where) {
					found = true
				}
			}
			if !found {
				t.Errorf("want a %s problem containing %q, got %v", tc.kind, tc.where, rep.Problems)
			}
		})
	}
}

// A forger without the key edits a record and re-computes the whole chain
// so that every link is valid: only the signed checkpoint exposes it.
func TestVerifyDetectsRechainedForgery(t *testing.T) {
	path, priv := seedSigned(t, nil)
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := db.Query("SELECT seq, kind, request_id, payload FROM audit_chain ORDER BY seq")
	if err != nil {
		t.Fatal(err)
	}
	type ent struct {
		seq      int64
		kind, id string
		payload  []byte
	}
	var ents []ent
	for rows.Next() {
		var e ent
		if err := rows.Scan(&e.seq, &e.kind, &e.id, &e.payload); err != nil {
			t.Fatal(err)
		}
		ents = append(ents, e)
	}
	rows.Close()
	prev := audit.GenesisHash()
	for _, e := range ents {
		if e.id == "r2" {
			e.payload = []byte(strings.Replace(string(e.payload), `"output_tokens":22`, `"output_tokens":2`, 1))
		}
		h := audit.HashEntry(prev, e.seq, e.kind, e.id, e.payload)
		if _, err := db.Exec("UPDATE audit_chain SET payload = ?, prev_hash = ?, hash = ? WHERE seq = ?", e.payload, prev, h, e.seq); err != nil {
			t.Fatal(err)
		}
		prev = h
	}
	if _, err := db.Exec("UPDATE audit_records SET output_tokens = 2 WHERE request_id = 'r2'"); err != nil {
		t.Fatal(err)
	}
	db.Close()

	// Without the key the forgery is consistent ...
	if rep := verify(t, path, nil); !rep.OK() {
		t.Fatalf("unsigned verify should not see a consistent forgery: %v", rep.Problems)
	}
	// ... with it, the checkpoint no longer matches.
	rep := verify(t, path, priv.Public().(ed25519.PublicKey))
	if len(rep.Problems) != 1 || rep.Problems[0].Kind != audit.ProblemRewritten {
		t.Fatalf("problems = %v, want one %s", rep.Problems, audit.ProblemRewritten)
	}
}

func TestVerifyWrongKey(t *testing.T) {
	path, _ := seedSigned(t, nil)
	other, _, _ := ed25519.GenerateKey(rand.Reader)
	rep := verify(t, path, other)
	if len(rep.Problems) != 1 || rep.Problems[0].Kind != audit.ProblemBadSignature {
		t.Fatalf("problems = %v", rep.Problems)
	}
}

func TestRecoverIsChained(t *testing.T) {
	path, priv := seedSigned(t, func(s *sqlite.Store) {
		n, err := s.Recover(context.Background(), "")
		if err != nil || n != 5 {
			t.Fatalf("Recover = %d, %v; want 5", n, err)
		}
	})
	rep := verify(t, path, priv.Public().(ed25519.PublicKey))
	if !rep.OK() || rep.Entries != 20 {
		t.Fatalf("report %+v", rep)
	}
}

func TestVerifyReportsUnsignedChain(t *testing.T) {
	path, priv := seedSigned(t, nil)
	rawExec(t, path, "DELETE FROM audit_checkpoints")
	rep := verify(t, path, priv.Public().(ed25519.PublicKey))
	if len(rep.Unsigned) != 1 || rep.Unsigned[0] != "main" || rep.Covered != 0 {
		t.Fatalf("report %+v", rep)
	}
	if rep := verify(t, path, nil); len(rep.Unsigned) != 0 {
		t.Fatalf("without a key nothing can be called unsigned: %+v", rep)
	}
}

func TestVerifyCoversCapturedContent(t *testing.T) {
	path, priv := seedSigned(t, func(s *sqlite.Store) {
		ctx := context.Background()
		for i, id := range []string{"r1", "r2", "r3"} {
			e := &content.Entry{RequestID: id, Time: time.Date(2026, 11, 24, 9, 0, i, 0, time.UTC), UserKey: "u" + id, Mode: content.ModeFull,
				RequestSHA256: "aa", ResponseSHA256: "bb", RequestBytes: 1, ResponseBytes: 2, KeyID: "k1", Sealed: []byte("ciphertext-" + id)}
			if err := s.PutContent(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
		if n, err := s.PurgeContent(ctx, "ur3", time.Time{}); err != nil || n != 1 {
			t.Fatalf("purge = %d, %v", n, err)
		}
	})
	pub := priv.Public().(ed25519.PublicKey)
	if rep := verify(t, path, pub); !rep.OK() || rep.Contents != 2 {
		t.Fatalf("clean: %+v", rep)
	}
	tests := []struct {
		name, tamper, kind, where string
	}{
		{"ciphertext swapped", "UPDATE audit_content SET sealed = x'00' WHERE request_id = 'r1'", audit.ProblemEdited, "request r1: captured content"},
		{"content deleted without purge", "DELETE FROM audit_content WHERE request_id = 'r2'", audit.ProblemDeleted, "request r2: captured content is missing"},
		{"purged content restored", "INSERT INTO audit_content (request_id, time_ns, mode, request_sha256, response_sha256, request_bytes, response_bytes) VALUES ('r3', 1, 'full', 'a', 'b', 1, 1)", audit.ProblemInserted, "after its audited purge"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, k := seedSigned(t, func(s *sqlite.Store) {
				ctx := context.Background()
				for _, id := range []string{"r1", "r2", "r3"} {
					if err := s.PutContent(ctx, &content.Entry{RequestID: id, Time: time.Now(), UserKey: "u" + id, Mode: content.ModeFull, KeyID: "k1", Sealed: []byte("x")}); err != nil {
						t.Fatal(err)
					}
				}
				if _, err := s.PurgeContent(ctx, "ur3", time.Time{}); err != nil {
					t.Fatal(err)
				}
			})
			rawExec(t, p, tc.tamper)
			rep := verify(t, p, k.Public().(ed25519.PublicKey))
			found := false
			for _, pr := range rep.Problems {
				if pr.Kind == tc.kind && strings.Contains(pr.String(), tc.where) {
					found = true
				}
			}
			if !found {
				t.Errorf("want %s %q, got %v", tc.kind, tc.where, rep.Problems)
			}
		})
	}
}
