package storetest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gildhq/gild/resource"
	"github.com/gildhq/gild/store"
)

// CrashChildTest is the test RunCrash runs in the child process. A backend's test file
// defines it as
//
//	func TestCrashChild(t *testing.T) { storetest.CrashChild(t) }
const CrashChildTest = "TestCrashChild"

// crashURLEnv carries the store URL to the child; its presence is what makes
// TestCrashChild a writer rather than a skipped test.
const crashURLEnv = "GILD_STORETEST_CRASH_URL"

const (
	crashCommits  = 300 // commits the parent waits for before it kills the child
	crashKeys     = 16  // resources the child rewrites, so most commits replace one
	commitPrefix  = "committed "
	childDeadline = 2 * time.Minute
)

func crashID(i int) string {
	return fmt.Sprintf("/subscriptions/crash/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm-%02d", i%crashKeys)
}

// CrashChild is the writer RunCrash kills. It skips unless RunCrash started it. It writes
// until killed, and reports each commit on stdout only after Update has returned nil, so
// every line it prints is a promise the store must keep.
func CrashChild(t *testing.T) {
	url := os.Getenv(crashURLEnv)
	if url == "" {
		t.Skip("the writer that storetest.RunCrash kills; it runs only in RunCrash's child process")
	}
	ctx := context.Background()
	s, err := store.Open(ctx, url)
	if err != nil {
		fmt.Fprintf(os.Stderr, "crash child: open: %v\n", err)
		os.Exit(2)
	}
	out := bufio.NewWriter(os.Stdout)
	begin := time.Now()
	for i := 0; ; i++ {
		if time.Since(begin) > childDeadline {
			// Never reached when the parent is alive: it kills the child well before.
			fmt.Fprintln(os.Stderr, "crash child: nobody killed me; giving up")
			os.Exit(4)
		}
		type commit struct{ id, etag string }
		var commits []commit
		err := s.Update(ctx, func(tx store.Tx) error {
			commits = commits[:0]
			// A read-modify-write guarded by If-Match, as the API does it.
			id := crashID(i)
			pre := store.Precondition{IfNoneMatch: "*"}
			if cur, err := tx.Get(ctx, resource.MustParse(id)); err == nil {
				pre = store.Precondition{IfMatch: cur.ETag}
			} else if !store.IsNotFound(err) {
				return err
			}
			r, _, err := tx.Put(ctx, crashResource(id, i), pre)
			if err != nil {
				return err
			}
			commits = append(commits, commit{r.ID, r.ETag})
			// Every third transaction writes a second resource, so a torn transaction
			// would show as one of a pair missing.
			if i%3 == 0 {
				id2 := crashID(i + crashKeys/2)
				r2, _, err := tx.Put(ctx, crashResource(id2, i), store.Precondition{})
				if err != nil {
					return err
				}
				commits = append(commits, commit{r2.ID, r2.ETag})
			}
			return tx.Audit(ctx, store.AuditEntry{Principal: "crash", Action: "PUT", ResourceID: id, AfterETag: r.ETag})
		})
		if err != nil {
			fmt.Fprintf(os.Stderr, "crash child: update %d: %v\n", i, err)
			os.Exit(3)
		}
		for _, c := range commits {
			fmt.Fprintf(out, "%s%s %s\n", commitPrefix, c.id, c.etag)
		}
		// Flushed per transaction: a line the parent has not got is a commit it does not
		// hold the store to.
		if err := out.Flush(); err != nil {
			os.Exit(5)
		}
	}
}

func crashResource(id string, i int) *resource.Resource {
	pid := resource.MustParse(id)
	return &resource.Resource{
		ID:         pid.String(),
		Name:       pid.Name(),
		Type:       pid.Type(),
		Location:   "local",
		Properties: []byte(fmt.Sprintf(`{"iteration":%d,"padding":%q}`, i, strings.Repeat("x", 512))),
	}
}

// RunCrash starts the test binary again as a writer on the store at url (the backend's
// TestCrashChild), kills it with SIGKILL once it has reported crashCommits commits,
// reopens the store and checks that every reported commit survived (the resource has
// that ETag or a later one), that the change sequence has no gap, and, for stores that
// offer it, that the file passes its integrity check.
func RunCrash(t *testing.T, url string) {
	t.Helper()
	if testing.Short() {
		t.Skip("the crash test starts a child process; skipped in -short mode")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+CrashChildTest+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashURLEnv+"="+url)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start child writer: %v", err)
	}

	type report struct{ id, etag string }
	var (
		mu       sync.Mutex
		reported []report
	)
	enough := make(chan struct{})
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		sc := bufio.NewScanner(stdout)
		signalled := false
		for sc.Scan() {
			line, ok := strings.CutPrefix(sc.Text(), commitPrefix)
			if !ok {
				continue // the test framework's own output
			}
			id, etag, ok := strings.Cut(line, " ")
			if !ok {
				continue
			}
			mu.Lock()
			reported = append(reported, report{id, etag})
			n := len(reported)
			mu.Unlock()
			if n >= crashCommits && !signalled {
				signalled = true
				close(enough)
			}
		}
	}()

	select {
	case <-enough:
	case <-readDone:
		cmd.Wait()
		t.Fatalf("the child writer stopped before it was killed (%d commits reported):\n%s", len(reported), stderr.String())
	case <-time.After(90 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("the child writer reported only %d of %d commits in 90s:\n%s", len(reported), crashCommits, stderr.String())
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatalf("SIGKILL the child writer: %v", err)
	}
	// Lines already in the pipe were printed after their commit, so they count too.
	<-readDone
	werr := cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(werr, &exit) || exit.ExitCode() != -1 {
		t.Fatalf("the child writer was not killed by the signal (%v):\n%s", werr, stderr.String())
	}
	t.Logf("killed the writer after %d reported commits", len(reported))

	ctx := context.Background()
	s, err := store.Open(ctx, url)
	if err != nil {
		t.Fatalf("reopen after the crash: %v", err)
	}
	defer s.Close()
	if ic, ok := s.(interface{ IntegrityCheck(context.Context) error }); ok {
		if err := ic.IntegrityCheck(ctx); err != nil {
			t.Fatalf("after the crash: %v", err)
		}
	}
	changes := allChanges(t, s)
	checkGapFree(t, s, changes)
	seqOf := map[string]int64{} // key + " " + etag -> seq of the change that set it
	for _, c := range changes {
		if c.Op == store.OpPut {
			seqOf[mustIDKey(c.ID)+" "+c.ETag] = c.Seq
		}
	}
	for _, r := range reported {
		key := mustIDKey(r.id)
		want, ok := seqOf[key+" "+r.etag]
		if !ok {
			t.Errorf("commit of %s with ETag %s was reported but is not in the change log", r.id, r.etag)
			continue
		}
		cur, err := s.Get(ctx, resource.MustParse(r.id))
		if err != nil {
			t.Errorf("commit of %s with ETag %s was reported but the resource is gone: %v", r.id, r.etag, err)
			continue
		}
		if got, ok := seqOf[key+" "+cur.ETag]; !ok || got < want {
			t.Errorf("%s has ETag %s, older than the reported commit's %s", r.id, cur.ETag, r.etag)
		}
	}
	if last := changes[len(changes)-1].Seq; int(last) < len(reported) {
		t.Errorf("%d commits reported but only %d changes stored", len(reported), last)
	}
}
