package fleet_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gildhq/gild/agentproto"
	"github.com/gildhq/gild/api"
	"github.com/gildhq/gild/fleet"
	"github.com/gildhq/gild/resource"
	"github.com/gildhq/gild/store"
)

// benchMachines is how many machines report in the benchmarks; each report goes to a
// machine picked in turn, as a fleet's reports arrive.
const benchMachines = 2000

// realisticReport is the size of a real one: facts, a tattoo, and three assignments of
// twenty checks each, nothing changed since the last report (the common case).
func realisticReport(id string, at time.Time) agentproto.Report {
	rep := report(id, at, "1.0.0")
	for a := range 3 {
		ar := agentproto.AssignmentReport{Name: fmt.Sprintf("assignment-%d", a), Hash: "h", ComplianceStatus: agentproto.StatusCompliant,
			StartTime: at, EndTime: at, OperationType: "Consistency"}
		for c := range 20 {
			ar.Resources = append(ar.Resources, agentproto.ResourceReport{ResourceID: fmt.Sprintf("Ensure that setting %d is configured", c),
				ComplianceStatus: agentproto.StatusCompliant, Reasons: []agentproto.Reason{{Code: "SettingMatches", Phrase: "The setting is as expected."}},
				Expected: "Setting yes", Actual: "Setting yes"})
		}
		rep.Assignments = append(rep.Assignments, ar)
	}
	return rep
}

// enrollMany enrolls n machines straight into the store (enrollment is not what is
// measured) and loads them.
func enrollMany(b *testing.B, e *env, n int) ([]resource.ID, []string) {
	ids := make([]resource.ID, n)
	creds := make([]string, n)
	err := e.st.Update(e.ctx, func(tx store.Tx) error {
		for i := range n {
			ids[i] = e.rg.Child(fleet.TypeVM, fmt.Sprintf("vm-%05d", i))
			creds[i] = fmt.Sprintf("%sbench-%d", fleet.CredentialPrefix, i)
			if err := tx.PutMachine(e.ctx, store.Machine{ID: ids[i].String(), CredentialHash: fleet.HashSecret(creds[i])}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := e.fleet.Load(e.ctx); err != nil {
		b.Fatal(err)
	}
	return ids, creds
}

// BenchmarkReportIngestion measures reports committed per second on SQLite through the
// service, with 64 agents reporting at once. Target: at least 2,000 reports/s.
func BenchmarkReportIngestion(b *testing.B) {
	e := newEnv(b, nil)
	ids, _ := enrollMany(b, e, benchMachines)
	base := time.Now().UTC()
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				n := next.Add(1) - 1
				if n >= int64(b.N) {
					return
				}
				rep := realisticReport(fmt.Sprintf("r-%d", n), base.Add(time.Duration(n)*time.Millisecond))
				if _, err := e.fleet.Report(e.ctx, ids[n%int64(len(ids))], rep); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "reports/s")
}

// BenchmarkReportIngestionHTTP is the same through the API over real HTTP: JSON decoding,
// the agent's credential and the response included.
func BenchmarkReportIngestionHTTP(b *testing.B) {
	e := newEnv(b, nil)
	_, creds := enrollMany(b, e, benchMachines)
	srv := httptest.NewServer(api.New(e.cp, api.Options{Fleet: e.fleet}))
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	base := time.Now().UTC()
	var next atomic.Int64
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				n := next.Add(1) - 1
				if n >= int64(b.N) {
					return
				}
				body, _ := json.Marshal(realisticReport(fmt.Sprintf("r-%d", n), base.Add(time.Duration(n)*time.Millisecond)))
				req, _ := http.NewRequest(http.MethodPost, srv.URL+agentproto.PathReports, bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+creds[n%int64(len(creds))])
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				var out agentproto.ReportResponse
				err = json.NewDecoder(resp.Body).Decode(&out)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK {
					b.Errorf("report: %d %v", resp.StatusCode, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "reports/s")
}
