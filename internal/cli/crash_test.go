package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	auditsqlite "github.com/gatehouse-dev/gatehouse/internal/audit/sqlite"
	fakeanthropic "github.com/gatehouse-dev/gatehouse/internal/fake/anthropic"
)

// TestMain lets a test re-execute this binary as a real gateway process
// (GATEHOUSE_TEST_CHILD=serve), so a test can SIGKILL it.
func TestMain(m *testing.M) {
	if os.Getenv("GATEHOUSE_TEST_CHILD") == "serve" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := Run(ctx, []string{"serve", "--config", os.Getenv("GATEHOUSE_TEST_CONFIG")}, os.Getenv, os.Stdin, os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

func startChildGateway(t *testing.T, h *harness) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "GATEHOUSE_TEST_CHILD=serve", "GATEHOUSE_TEST_CONFIG="+h.cfgPath, "TEST_UPSTREAM_KEY="+h.upstreamKey)
	cmd.Stdout, cmd.Stderr = h.logs, h.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h.waitReady()
	return cmd
}

// TestSIGKILLLosesNoRecord sends streaming load, kills the gateway with
// SIGKILL, restarts it and checks that every request that reached the
// upstream has its audit record, those cut off marked unfinished.
func TestSIGKILLLosesNoRecord(t *testing.T) {
	if testing.Short() {
		t.Skip("starts gateway processes")
	}
	// The in-process gateway only provides the fakes and the config file;
	// stop it and run real processes on the same configuration.
	h := startGateway(t, harnessOptions{stub: fakeanthropic.Options{EventDelay: 30 * time.Millisecond, Deltas: 20}})
	h.shutdown()
	child := startChildGateway(t, h)

	tok := h.token(userAda)
	var wg sync.WaitGroup
	stopLoad := make(chan struct{})
	var mu sync.Mutex
	sent := 0
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stopLoad:
					return
				default:
				}
				stream := i%2 == 0
				body := fmt.Sprintf(`{"model":"claude-sonnet-4-6","max_tokens":64,"stream":%v,"messages":[{"role":"user","content":"hi"}]}`, stream)
				req, _ := http.NewRequest(http.MethodPost, h.base+"/v1/messages", strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+tok)
				req.Header.Set("User-Agent", fmt.Sprintf("crashtest/%d-%d", w, i))
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return // the gateway died
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				mu.Lock()
				sent++
				mu.Unlock()
			}
		}(w)
	}
	time.Sleep(1500 * time.Millisecond)
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	child.Wait()
	close(stopLoad)
	wg.Wait()

	// Restart: the journal is replayed and open records are closed.
	child = startChildGateway(t, h)
	child.Process.Signal(syscall.SIGTERM)
	if err := child.Wait(); err != nil {
		t.Fatalf("restarted gateway did not stop cleanly: %v\n%s", err, h.logs.String())
	}

	st, err := auditsqlite.Open(context.Background(), auditsqlite.Options{Path: h.auditPath})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	recs, err := st.List(context.Background(), audit.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	byUA := map[string]audit.Record{}
	for _, r := range recs {
		byUA[r.UserAgent] = r
	}
	reached := 0
	unfinished := 0
	for _, up := range h.stub.Requests() {
		ua := up.Header.Get("User-Agent")
		if !strings.HasPrefix(ua, "crashtest/") {
			continue
		}
		reached++
		r, ok := byUA[ua]
		if !ok {
			t.Errorf("request %s reached the upstream but has no audit record", ua)
			continue
		}
		switch r.State {
		case audit.StateCompleted, audit.StateInterrupted:
		case audit.StateUnfinished:
			unfinished++
		default:
			t.Errorf("record %s left in state %s", ua, r.State)
		}
	}
	if reached < 20 {
		t.Fatalf("only %d requests reached the upstream: the load did not run", reached)
	}
	if unfinished == 0 {
		t.Errorf("no record was in flight at the kill (%d reached): the test proved nothing about recovery", reached)
	}
	t.Logf("%d requests reached the upstream (%d responses read by clients); %d were cut by SIGKILL and recovered as unfinished", reached, sent, unfinished)
}
