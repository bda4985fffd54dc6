package sqlite_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/gildhq/gild/store"
	"github.com/gildhq/gild/store/sqlite"
	"github.com/gildhq/gild/store/storetest"
)

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := store.Open(context.Background(), sqlite.URL(filepath.Join(t.TempDir(), "gild.db")))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestCrash(t *testing.T) {
	storetest.RunCrash(t, sqlite.URL(filepath.Join(t.TempDir(), "gild.db")))
}

func TestCrashChild(t *testing.T) { storetest.CrashChild(t) }

func TestURLForms(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	ctx := context.Background()
	for _, u := range []string{
		"sqlite:relative.db",
		"sqlite:" + filepath.Join(dir, "opaque-abs.db"),
		"sqlite://" + filepath.Join(dir, "three-slashes.db"),
		sqlite.URL(filepath.Join(dir, "odd name?#%.db")),
		sqlite.URL("relative-helper.db") + "?synchronous=normal",
	} {
		s, err := store.Open(ctx, u)
		if err != nil {
			t.Errorf("open %s: %v", u, err)
			continue
		}
		if err := s.(*sqlite.Store).IntegrityCheck(ctx); err != nil {
			t.Errorf("%s: %v", u, err)
		}
		s.Close()
	}
	for _, name := range []string{"relative.db", "opaque-abs.db", "three-slashes.db", "odd name?#%.db", "relative-helper.db"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("the URL did not create the file it names: %v", err)
		}
	}
	for _, u := range []string{"sqlite://relative.db", "sqlite:///" + dir + "/x.db?cache=shared", "sqlite:///no/such/dir/x.db"} {
		if s, err := store.Open(ctx, u); err == nil {
			s.Close()
			t.Errorf("open %s: no error", u)
		} else {
			t.Logf("open %s: %v", u, err)
		}
	}
}

func TestConcurrentOpen(t *testing.T) {
	storetest.RunConcurrentOpen(t, sqlite.URL(filepath.Join(t.TempDir(), "gild.db")))
}

// TestFilesPrivate checks the database and its WAL files are readable by their owner only:
// they hold token hashes and the audit log.
func TestFilesPrivate(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(context.Background(), sqlite.URL(filepath.Join(dir, "gild.db")))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Update(context.Background(), func(tx store.Tx) error {
		return tx.Audit(context.Background(), store.AuditEntry{Principal: "p", Action: "PUT", ResourceID: "/subscriptions/s"})
	}); err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, name := range []string{"gild.db", "gild.db-wal", "gild.db-shm"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %v; others can read it", name, fi.Mode().Perm())
		}
	}
}
