package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/gildhq/gild/api"
)

// benchClient keeps connections alive across the parallel clients, as a real client pool
// does; the default transport keeps only two idle connections per host.
var benchClient = &http.Client{Transport: &http.Transport{MaxIdleConns: 128, MaxIdleConnsPerHost: 128}}

func benchRequest(b *testing.B, e *env, method, path string, body []byte) {
	req, err := http.NewRequest(method, e.url+path+"?api-version="+api.Version, bytes.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+e.admin)
	req.Header.Set("Content-Type", "application/json")
	resp, err := benchClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		b.Fatalf("%s %s: %d", method, path, resp.StatusCode)
	}
}

// BenchmarkPutVM measures VM writes through the HTTP API on SQLite, from 16 concurrent
// clients over 1,000 VMs (creates, then replaces). Target: 2,000 writes/s on 2 cores.
func BenchmarkPutVM(b *testing.B) {
	e := newEnv(b)
	e.seed()
	body, _ := json.Marshal(vmBody("Debian"))
	var n atomic.Int64
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1) % 1000
			benchRequest(b, e, "PUT", fmt.Sprintf("%s/providers/%s/bench-%04d", rgPay, vmType, i), body)
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
}

// BenchmarkGetVM measures VM reads through the HTTP API on SQLite, from 16 concurrent
// clients over 1,000 VMs. Target: 10,000 reads/s on 2 cores.
func BenchmarkGetVM(b *testing.B) {
	e := newEnv(b)
	e.seed()
	body, _ := json.Marshal(vmBody("Debian"))
	for i := 0; i < 1000; i++ {
		benchRequest(b, e, "PUT", fmt.Sprintf("%s/providers/%s/bench-%04d", rgPay, vmType, i), body)
	}
	var n atomic.Int64
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1) % 1000
			benchRequest(b, e, "GET", fmt.Sprintf("%s/providers/%s/bench-%04d", rgPay, vmType, i), nil)
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reads/s")
}
