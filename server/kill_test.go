package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gildhq/gild/api"
	"github.com/gildhq/gild/resource"
	"github.com/gildhq/gild/store"
	"github.com/gildhq/gild/store/postgres/pgtest"
	"github.com/gildhq/gild/store/sqlite"
)

// childEnv makes the test binary act as `gild serve` on the data directory it names.
const childEnv = "GILD_SERVER_TEST_CHILD_DATA"

// childRegionsEnv, when set, gives the child's image regions as comma-separated NAME=URL
// specs (Config.Regions); unset, the child has the default region.
const childRegionsEnv = "GILD_SERVER_TEST_CHILD_REGIONS"

// childAgentEnv and childCacheEnv, when set, give the child's Config.AgentBinary and
// Config.CacheDir; unset, the child has the defaults.
const (
	childAgentEnv = "GILD_SERVER_TEST_CHILD_AGENT"
	childCacheEnv = "GILD_SERVER_TEST_CHILD_CACHE"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(childEnv); dir != "" {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
		defer stop()
		var regions []string
		if specs := os.Getenv(childRegionsEnv); specs != "" {
			regions = strings.Split(specs, ",")
		}
		cfg := Config{DataDir: dir, Addr: "127.0.0.1:0", Regions: regions,
			AgentBinary: os.Getenv(childAgentEnv), CacheDir: os.Getenv(childCacheEnv), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Ready: func(addr string) { fmt.Printf("READY %s\n", addr) }}
		if os.Getenv(childJobsEnv) != "" {
			jobsChild(&cfg)
		}
		err := Run(ctx, cfg)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	pgtest.Main(m)
}

type child struct {
	cmd  *exec.Cmd
	addr string
}

// startChild starts a server on dir; env adds NAME=VALUE settings to its environment.
func startChild(t *testing.T, dir string, env ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), childEnv+"="+dir), env...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "READY "); ok {
				ready <- a
			}
		}
	}()
	select {
	case addr := <-ready:
		return &child{cmd: cmd, addr: addr}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("the server did not start within 30 s")
	}
	return nil
}

// must calls the API and fails t unless the answer's status is one of want.
func (c *child) must(t *testing.T, token, method, path string, body any, want ...int) map[string]any {
	t.Helper()
	code, m, err := c.do(t, token, method, path, body)
	if err != nil || !slices.Contains(want, code) {
		t.Fatalf("%s %s: %d %v %v, want %v", method, path, code, m, err, want)
	}
	return m
}

// runLog reads a run's log through the API.
func (c *child) runLog(token, id string) (int, string, error) {
	req, err := http.NewRequest("GET", "http://"+c.addr+id+"/log?api-version="+api.Version, nil)
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

func (c *child) do(t *testing.T, token, method, path string, body any) (int, map[string]any, error) {
	var rd io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, "http://"+c.addr+path+"?api-version="+api.Version, rd)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m, nil
}

// TestKilledMidWrite kills a serving gild with SIGKILL while clients are writing, restarts
// it on the same data directory, and checks that every write it acknowledged is there with
// the ETag it answered, that the database is intact, and that the change sequence has no
// gap.
func TestKilledMidWrite(t *testing.T) {
	dir := t.TempDir()
	c := startChild(t, dir)
	tokenBytes, err := os.ReadFile(filepath.Join(dir, AdminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, AdminTokenFile)); fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin.token has mode %v, want 0600", fi.Mode().Perm())
	}
	token := strings.TrimSpace(string(tokenBytes))
	for _, p := range []struct {
		path string
		body any
	}{{"/subscriptions/pay", map[string]any{}}, {"/subscriptions/pay/resourceGroups/prod", map[string]any{"location": "local"}}} {
		if code, body, err := c.do(t, token, "PUT", p.path, p.body); err != nil || code != 201 {
			t.Fatalf("PUT %s: %d %v %v", p.path, code, body, err)
		}
	}

	var mu sync.Mutex
	acked := map[string]string{} // id -> ETag the server answered
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				// Disks: no hook acts on them, so the test measures the store's writes alone.
				id := fmt.Sprintf("/subscriptions/pay/resourceGroups/prod/providers/Microsoft.Compute/disks/w%d-%05d", w, i)
				code, body, err := c.do(t, token, "PUT", id, map[string]any{"location": "local", "tags": map[string]string{"i": fmt.Sprint(i)}})
				if err != nil {
					return // the server is gone
				}
				if code != 201 {
					t.Errorf("PUT %s: %d %v", id, code, body)
					return
				}
				mu.Lock()
				acked[id] = body["etag"].(string)
				mu.Unlock()
			}
		}()
	}
	// Let writes flow, then kill without warning.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 300 || time.Now().After(deadline) {
			break
		}
	}
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = c.cmd.Wait()
	close(stop)
	wg.Wait()
	if len(acked) < 50 {
		t.Fatalf("only %d writes were acknowledged before the kill; the test proves little", len(acked))
	}

	c2 := startChild(t, dir)
	for id, etag := range acked {
		code, body, err := c2.do(t, token, "GET", id, nil)
		if err != nil || code != 200 {
			t.Fatalf("acknowledged write %s lost after SIGKILL: %d %v", id, code, err)
		}
		if body["etag"] != etag {
			t.Fatalf("%s: ETag %v after restart, %v acknowledged", id, body["etag"], etag)
		}
	}
	// The restarted server still takes writes.
	if code, _, err := c2.do(t, token, "PUT", "/subscriptions/pay/resourceGroups/after", map[string]any{"location": "local"}); err != nil || code != 201 {
		t.Fatalf("write after restart: %d %v", code, err)
	}
	if err := c2.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := c2.cmd.Wait(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}

	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "gild.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.IntegrityCheck(ctx); err != nil {
		t.Fatalf("database damaged: %v", err)
	}
	var last int64
	for {
		changes, err := st.Changes(ctx, last, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, ch := range changes {
			if ch.Seq != last+1 {
				t.Fatalf("change sequence jumps from %d to %d", last, ch.Seq)
			}
			last = ch.Seq
		}
		if len(changes) < 1000 {
			break
		}
	}
	page, err := st.List(ctx, store.ListQuery{Type: "Microsoft.Compute/disks", Limit: store.MaxPageSize})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range page.Items {
		if _, err := resource.Parse(r.ID); err != nil {
			t.Fatalf("stored ID does not parse: %v", err)
		}
	}
	t.Logf("%d writes acknowledged before SIGKILL, all present; %d changes, no gaps", len(acked), last)
}
