package postgres_test

import (
	"context"
	"strings"
	"testing"

	"github.com/gildhq/gild/store"
	"github.com/gildhq/gild/store/postgres"
	"github.com/gildhq/gild/store/postgres/pgtest"
	"github.com/gildhq/gild/store/storetest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := store.Open(context.Background(), pgtest.URL(t))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestCrash(t *testing.T) {
	storetest.RunCrash(t, pgtest.URL(t))
}

func TestCrashChild(t *testing.T) { storetest.CrashChild(t) }

func TestConcurrentOpen(t *testing.T) {
	storetest.RunConcurrentOpen(t, pgtest.URL(t))
}

// The postgresql scheme is the same backend.
func TestPostgresqlScheme(t *testing.T) {
	url := pgtest.URL(t)
	s, err := store.Open(context.Background(), "postgresql"+strings.TrimPrefix(url, "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, ok := s.(*postgres.Store); !ok {
		t.Fatalf("postgresql: opened a %T", s)
	}
}
