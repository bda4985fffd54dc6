package agentproto

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"
)

// FuzzReadRun: the host reads whatever a guest (or its console) sends, so neither the
// Decoder nor ReadRun may panic or loop on any input, and a run ReadRun accepts survives
// being written again by the Encoder. Run with: go test -fuzz=FuzzReadRun ./agentproto
func FuzzReadRun(f *testing.F) {
	f.Add([]byte(readyLine + "\n" + result1 + "\n" + result2 + "\n" + doneLine + "\n"))
	f.Add([]byte(serialBoot + readyLine + "\r\n" + doneLine))
	f.Add([]byte(readyLine + "\n{\"version\":1,\"type\":\"result\",\"result\":{\"name\":\"a\",\"status\":\"Error\",\"reasons\":null}}\n"))
	f.Add([]byte("{\"version\":2,\"type\":\"ready\"}\n"))
	f.Add([]byte(`{"version":1,"type":"ready","ready":{"time":"2026-11-24T12:00:00.5+02:00","checks":0}}` + "\n" + `{"version":1,"type":"done","done":{"total":0,"compliant":0,"nonCompliant":0,"error":0,"durationMs":0}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		d := NewDecoder(bytes.NewReader(data))
		for i := 0; ; i++ {
			_, err := d.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if i > len(data)+1 {
				t.Fatalf("Next returned %d times for %d bytes", i, len(data))
			}
		}
		run, err := ReadRun(bytes.NewReader(data))
		if err != nil {
			return
		}
		var buf bytes.Buffer
		e := NewEncoder(&buf)
		if err := e.Ready(run.Ready); err != nil {
			t.Fatalf("re-encode ready: %v", err)
		}
		for _, r := range run.Results {
			if err := e.Result(r); err != nil {
				t.Fatalf("re-encode result: %v", err)
			}
		}
		if err := e.Done(run.Done); err != nil {
			t.Fatalf("re-encode done: %v", err)
		}
		again, err := ReadRun(&buf)
		if err != nil {
			t.Fatalf("a run read once does not read again: %v\n%s", err, buf.String())
		}
		run.Skipped = 0
		for i := range run.Results {
			if run.Results[i].Reasons == nil {
				run.Results[i].Reasons = []Reason{} // the Encoder writes a missing list as []
			}
		}
		if !reflect.DeepEqual(run, again) {
			t.Fatalf("round trip changed the run:\n%+v\n%+v", run, again)
		}
	})
}
