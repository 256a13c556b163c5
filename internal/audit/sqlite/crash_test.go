package sqlite_test

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/audit/audittest"
	"github.com/gatehouse-dev/gatehouse/internal/audit/sqlite"
)

const crashChildEnv = "GATEHOUSE_AUDIT_CRASH_CHILD"

// crashKey is a fixed test key so parent and child agree.
var crashSeed = []byte("gatehouse-audit-crash-test-seed!")

// TestCrashChild is the child half of TestSIGKILLLosesNoBegunRecord: it
// writes records under load until killed, printing "B <id>" once Begin has
// returned (the moment the gateway would forward) and "F <id>" when it
// hands the finished record to the Recorder.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashChildEnv)
	if path == "" {
		t.Skip("child process of TestSIGKILLLosesNoBegunRecord")
	}
	s, err := sqlite.Open(context.Background(), sqlite.Options{Path: path,
		SigningKey: ed25519.NewKeyFromSeed(crashSeed), CheckpointEvery: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	r := audit.NewRecorder(audit.RecorderOptions{Store: s, FlushInterval: 5 * time.Millisecond})
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	say := func(format string, args ...any) {
		mu.Lock()
		fmt.Fprintf(out, format+"\n", args...)
		out.Flush()
		mu.Unlock()
	}
	say("READY")
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				rec := audittest.Sample(fmt.Sprintf("w%d-%d", w, i), 0)
				if err := r.Begin(context.Background(), rec); err != nil {
					say("E %v", err)
					return
				}
				say("B %s", rec.RequestID)
				if i%3 != 0 { // a third stay open, like long streams
					f := audittest.Finished(rec)
					say("F %s", f.RequestID)
					r.Finish(f)
				}
			}
		}()
	}
	wg.Wait()
}

func TestSIGKILLLosesNoBegunRecord(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	path := filepath.Join(t.TempDir(), "crash.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	begun, finishing := map[string]bool{}, map[string]bool{}
	sc := bufio.NewScanner(stdout)
	killed := false
	var timer *time.Timer
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "READY":
			// Let it run under load, then kill it mid-flight.
			timer = time.AfterFunc(400*time.Millisecond, func() { _ = cmd.Process.Signal(syscall.SIGKILL) })
		case strings.HasPrefix(line, "B "):
			begun[line[2:]] = true
		case strings.HasPrefix(line, "F "):
			finishing[line[2:]] = true
		case strings.HasPrefix(line, "E "):
			t.Errorf("child: %s", line)
		}
	}
	if timer != nil {
		timer.Stop()
	}
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
		killed = true
	}
	if !killed {
		t.Fatalf("child was not killed by SIGKILL: %v", err)
	}
	if len(begun) < 50 {
		t.Fatalf("only %d records begun before the kill; load too low to mean anything", len(begun))
	}

	s, err := sqlite.Open(context.Background(), sqlite.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	n, err := s.Recover(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	recs, err := s.List(context.Background(), audit.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]audit.Record{}
	for _, r := range recs {
		byID[r.RequestID] = r
	}
	unfinished := 0
	for id := range begun {
		r, ok := byID[id]
		if !ok {
			t.Errorf("record %s was begun (forwarded) but is missing after SIGKILL", id)
			continue
		}
		switch r.State {
		case audit.StateCompleted:
			if !finishing[id] {
				t.Errorf("%s completed but never finished", id)
			}
		case audit.StateUnfinished:
			unfinished++
			if r.Reason != "crash_recovered" {
				t.Errorf("%s: reason %q", id, r.Reason)
			}
		default:
			t.Errorf("%s: state %s after recovery", id, r.State)
		}
	}
	stored := 0
	for _, r := range recs {
		if r.State == audit.StateBegun {
			t.Errorf("%s still begun after recovery", r.RequestID)
		}
		if r.State == audit.StateUnfinished {
			stored++
		}
	}
	if stored != n || unfinished > n || n == 0 {
		t.Errorf("Recover reported %d; %d records unfinished, %d of them seen begun", n, stored, unfinished)
	}
	rep, err := s.Verify(context.Background(), ed25519.NewKeyFromSeed(crashSeed).Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Errorf("chain after crash and recovery: %v", rep.Problems)
	}
	t.Logf("killed after %d begun (%d finishing); %d records stored, %d recovered as unfinished, %d checkpoints",
		len(begun), len(finishing), len(recs), n, rep.Checkpoints)
}
