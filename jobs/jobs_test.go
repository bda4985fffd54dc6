package jobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gildhq/gild/jobs"
	"github.com/gildhq/gild/resource"
	"github.com/gildhq/gild/store"
	_ "github.com/gildhq/gild/store/postgres" // the postgres:// store
	"github.com/gildhq/gild/store/postgres/pgtest"
	"github.com/gildhq/gild/store/sqlite"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// backends are the stores the suite runs on: the same tests, SQLite and PostgreSQL.
var backends = map[string]func(t *testing.T) string{
	"sqlite":   func(t *testing.T) string { return sqlite.URL(filepath.Join(t.TempDir(), "gild.db")) },
	"postgres": func(t *testing.T) string { return pgtest.URL(t) },
}

func eachBackend(t *testing.T, test func(t *testing.T, url string)) {
	for name, url := range backends {
		t.Run(name, func(t *testing.T) { test(t, url(t)) })
	}
}

func open(t *testing.T, url string, opts jobs.Options) *jobs.Service {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	opts.Store = st
	s, err := jobs.New(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestWebhookChecks(t *testing.T) {
	err := jobs.CheckWebhook(&jobs.Webhook{Name: "-bad", URL: "ftp://x", Events: []string{"run.failed", "run.exploded"}, Scope: "/nope"})
	var re *resource.Error
	if !errors.As(err, &re) {
		t.Fatalf("want a resource error, got %v", err)
	}
	var targets []string
	for _, d := range re.Details {
		targets = append(targets, d.Target)
	}
	want := []string{"name", "scope", "url", "events[1]"}
	if strings.Join(targets, ",") != strings.Join(want, ",") {
		t.Fatalf("the errors name %v, want %v: %v", targets, want, err)
	}
	ok := jobs.Webhook{Name: "ops", URL: "https://example.com/hook", Events: []string{"*"}}
	if err := jobs.CheckWebhook(&ok); err != nil || ok.Scope != "/" {
		t.Fatalf("a good webhook: %v (scope %q)", err, ok.Scope)
	}
}

func TestSignature(t *testing.T) {
	body := []byte(`{"id":"x"}`)
	now := time.Unix(1_800_000_000, 0)
	h := http.Header{}
	h.Set("X-Gild-Timestamp", strconv.FormatInt(now.Unix(), 10))
	h.Set("X-Gild-Signature", jobs.Sign("s3cret", now.Unix(), body))
	if err := jobs.Verify("s3cret", h, body, now.Add(10*time.Second), time.Minute); err != nil {
		t.Fatalf("a good signature: %v", err)
	}
	for name, check := range map[string]func() error{
		"another secret":    func() error { return jobs.Verify("other", h, body, now, time.Minute) },
		"another body":      func() error { return jobs.Verify("s3cret", h, []byte(`{"id":"y"}`), now, time.Minute) },
		"replayed too late": func() error { return jobs.Verify("s3cret", h, body, now.Add(time.Hour), time.Minute) },
	} {
		if check() == nil {
			t.Errorf("%s: the signature was accepted", name)
		}
	}
}

// TestDeliveries queues events for webhooks and checks who gets what: the event types
// and scopes a webhook asked for, each event once however often it is published, signed,
// and retried until the receiver takes it.
func TestDeliveries(t *testing.T) {
	eachBackend(t, func(t *testing.T, url string) {
		var mu sync.Mutex
		fails := 1
		var got []*http.Request
		var bodies [][]byte
		recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			mu.Lock()
			defer mu.Unlock()
			got, bodies = append(got, r), append(bodies, b)
			if fails > 0 {
				fails--
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
		}))
		defer recv.Close()
		ctx := context.Background()
		s := open(t, url, jobs.Options{DeliveryRetryBase: 200 * time.Millisecond, ScheduleTick: time.Hour, EventsEvery: time.Hour})
		all, err := s.CreateWebhook(ctx, jobs.Webhook{Name: "all", URL: recv.URL + "/all", Events: []string{jobs.EventRunFailed}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateWebhook(ctx, jobs.Webhook{Name: "all", URL: recv.URL, Events: []string{"*"}}); !isCode(err, jobs.CodeWebhookExists) {
			t.Fatalf("a second webhook with the name: %v", err)
		}
		team, err := s.CreateWebhook(ctx, jobs.Webhook{Name: "team", URL: recv.URL + "/team", Events: []string{"*"}, Scope: "/subscriptions/pay"})
		if err != nil {
			t.Fatal(err)
		}
		list, err := s.Webhooks(ctx)
		if err != nil || len(list) != 2 || list[0].Secret != "" {
			t.Fatalf("the webhook list: %v %+v (secrets must not be listed)", err, list)
		}
		payRun := "/subscriptions/pay/resourceGroups/rg/providers/Microsoft.VirtualMachineImages/imageTemplates/t"
		otherRun := "/subscriptions/other/resourceGroups/rg/providers/Microsoft.VirtualMachineImages/imageTemplates/t"
		for range 2 { // the same event twice goes out once
			for _, ev := range []jobs.Event{
				{ID: "run.failed:1", Type: jobs.EventRunFailed, Subject: payRun, Data: json.RawMessage(`{"n":1}`)},
				{ID: "run.failed:2", Type: jobs.EventRunFailed, Subject: otherRun},
				{ID: "version.published:3", Type: jobs.EventVersionPublished, Subject: otherRun},
			} {
				if err := s.Publish(ctx, ev); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := s.Start(ctx); err != nil {
			t.Fatal(err)
		}
		defer s.Stop(context.Background())
		// all: run.failed:1 and :2; team: only run.failed:1 (its scope); one of the
		// three first POSTs fails and is retried.
		deadline := time.Now().Add(20 * time.Second)
		for {
			dAll, _ := s.Deliveries(ctx, "all", 10)
			dTeam, _ := s.Deliveries(ctx, "team", 10)
			if delivered(dAll) == 2 && delivered(dTeam) == 1 && len(dAll) == 2 && len(dTeam) == 1 {
				if dTeam[0].EventID != "run.failed:1" {
					t.Errorf("the team's webhook got %s, want run.failed:1 only", dTeam[0].EventID)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("deliveries after 20 s: all %+v, team %+v", dAll, dTeam)
			}
			time.Sleep(100 * time.Millisecond)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(got) != 4 {
			t.Errorf("the receiver got %d POSTs, want 4 (3 events, one retried)", len(got))
		}
		secrets := map[string]string{"/all": all.Secret, "/team": team.Secret}
		for i, r := range got {
			if err := jobs.Verify(secrets[r.URL.Path], r.Header, bodies[i], time.Now(), time.Minute); err != nil {
				t.Errorf("POST %d to %s: %v", i, r.URL.Path, err)
			}
		}
		var retried int
		for _, list := range [][]jobs.Delivery{must(s.Deliveries(ctx, "all", 10)), must(s.Deliveries(ctx, "team", 10))} {
			for _, d := range list {
				if len(d.Tries) == 2 && d.Tries[0].Status == 503 && d.Tries[1].Status == 200 {
					retried++
				}
			}
		}
		if retried != 1 {
			t.Errorf("%d deliveries show a 503 then a 200, want 1", retried)
		}
	})
}

func must(d []jobs.Delivery, err error) []jobs.Delivery {
	if err != nil {
		panic(err)
	}
	return d
}

func delivered(ds []jobs.Delivery) int {
	n := 0
	for _, d := range ds {
		if d.State == jobs.DeliveryDelivered {
			n++
		}
	}
	return n
}

func isCode(err error, code string) bool {
	var re *resource.Error
	return errors.As(err, &re) && re.Code == code
}

func TestJobList(t *testing.T) {
	eachBackend(t, func(t *testing.T, url string) {
		s := open(t, url, jobs.Options{})
		if _, err := s.List(context.Background(), []string{"sleeping"}, 10); !isCode(err, jobs.CodeBadState) {
			t.Fatalf("an unknown state: %v", err)
		}
		if _, err := s.List(context.Background(), []string{"failed"}, 10); err != nil {
			t.Fatal(err)
		}
	})
}
