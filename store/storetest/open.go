package storetest

import (
	"context"
	"sync"
	"testing"

	"github.com/gildhq/gild/store"
)

// RunConcurrentOpen opens the store at url (a new, empty database) from several
// goroutines at once, as several gild processes starting together would: the schema must
// be applied exactly once, every opener must succeed, a write through one store must be
// visible through another, and opening the migrated database again must change nothing.
func RunConcurrentOpen(t *testing.T, url string) {
	t.Helper()
	ctx := context.Background()
	const openers = 6
	stores := make([]store.Store, openers)
	errs := make([]error, openers)
	var wg sync.WaitGroup
	for i := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stores[i], errs[i] = store.Open(ctx, url)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("opener %d: %v", i, err)
		}
	}
	defer func() {
		for _, s := range stores {
			if s != nil {
				s.Close()
			}
		}
	}()
	if t.Failed() {
		t.FailNow()
	}
	written := mustPut(t, stores[0], newResource(t, vmAPI1, `{}`))
	for i, s := range stores {
		got, err := s.Get(ctx, mustID(t, vmAPI1))
		if err != nil || got.ETag != written.ETag {
			t.Errorf("store %d does not see the write through store 0: %v", i, err)
		}
	}
	for _, s := range stores {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	}

	again, err := store.Open(ctx, url)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer again.Close()
	got, err := again.Get(ctx, mustID(t, vmAPI1))
	if err != nil || got.ETag != written.ETag {
		t.Fatalf("after reopening, get = %v, %v; want ETag %s", got, err, written.ETag)
	}
	checkGapFree(t, again, allChanges(t, again))
}
