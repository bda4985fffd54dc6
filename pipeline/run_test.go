package pipeline

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

type fakeStep struct {
	name, sub string
	err       error
	trace     *[]string
	block     bool
}

func (s fakeStep) Name() string     { return s.name }
func (s fakeStep) SubState() string { return s.sub }
func (s fakeStep) Run(ctx context.Context, b *Build) error {
	*s.trace = append(*s.trace, "run "+s.name)
	b.Log.Printf("doing %s", s.name)
	if s.block {
		<-ctx.Done()
		return ctx.Err()
	}
	return s.err
}
func (s fakeStep) Cleanup(b *Build) {
	*s.trace = append(*s.trace, "cleanup "+s.name)
}

type recorder struct{ started, ended []StepStatus }

func (r *recorder) StepStarted(s StepStatus) { r.started = append(r.started, s) }
func (r *recorder) StepEnded(s StepStatus)   { r.ended = append(r.ended, s) }

func newBuild(t *testing.T) (*Build, string) {
	dir := t.TempDir()
	log, err := OpenLog(filepath.Join(dir, "run.log"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	return &Build{Dir: dir, Log: log}, filepath.Join(dir, "run.log")
}

func TestExecute(t *testing.T) {
	boom := errors.New("apt-get exited with status 100")
	tests := []struct {
		name      string
		failAt    int // -1: none
		wantTrace []string
		wantEnded []string
	}{
		{"all succeed", -1,
			[]string{"run source", "run customize", "run validate", "cleanup validate", "cleanup customize", "cleanup source"},
			[]string{"Succeeded", "Succeeded", "Succeeded"}},
		{"the second fails: the third never runs, the two that ran clean up in reverse", 1,
			[]string{"run source", "run customize", "cleanup customize", "cleanup source"},
			[]string{"Succeeded", "Failed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var trace []string
			steps := []Step{
				fakeStep{name: "source", sub: SubBuilding, trace: &trace},
				fakeStep{name: "customize", sub: SubCustomizing, trace: &trace},
				fakeStep{name: "validate", sub: SubValidating, trace: &trace},
			}
			if tt.failAt >= 0 {
				s := steps[tt.failAt].(fakeStep)
				s.err = boom
				steps[tt.failAt] = s
			}
			b, logPath := newBuild(t)
			rec := &recorder{}
			err := Execute(context.Background(), b, steps, rec, nil)
			if !reflect.DeepEqual(trace, tt.wantTrace) {
				t.Errorf("trace %v, want %v", trace, tt.wantTrace)
			}
			var got []string
			for _, s := range rec.ended {
				got = append(got, s.State)
				if s.EndTime == nil || s.StartTime == nil || s.EndTime.Before(*s.StartTime) {
					t.Errorf("step %s times: %+v", s.Name, s)
				}
			}
			if !reflect.DeepEqual(got, tt.wantEnded) {
				t.Errorf("ended %v, want %v", got, tt.wantEnded)
			}
			var se *StepError
			if tt.failAt >= 0 && (!errors.As(err, &se) || se.Step != "customize" || !errors.Is(err, boom)) {
				t.Errorf("error: %v", err)
			}
			if tt.failAt < 0 && err != nil {
				t.Errorf("error: %v", err)
			}
			log, _ := os.ReadFile(logPath)
			if !strings.Contains(string(log), "[customize] doing customize") || !strings.Contains(string(log), "Z [source] started") {
				t.Errorf("log:\n%s", log)
			}
		})
	}
}

func TestExecuteCancelled(t *testing.T) {
	var trace []string
	b, _ := newBuild(t)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	rec := &recorder{}
	err := Execute(ctx, b, []Step{fakeStep{name: "source", trace: &trace, block: true}, fakeStep{name: "never", trace: &trace}}, rec, nil)
	if !errors.Is(err, context.Canceled) || len(rec.ended) != 1 || rec.ended[0].State != StateCanceled {
		t.Fatalf("got %v, %+v", err, rec.ended)
	}
	if !reflect.DeepEqual(trace, []string{"run source", "cleanup source"}) {
		t.Fatalf("trace %v", trace)
	}
}

func TestLogWriterTimestampsEveryLine(t *testing.T) {
	b, logPath := newBuild(t)
	b.Log.setStep("customize: apt")
	w := b.Log.Writer()
	w.Write([]byte("Reading package lists...\nBuilding dependency tree"))
	w.Write([]byte("...\n"))
	w.Close()
	deadline := time.Now().Add(2 * time.Second)
	for {
		log, _ := os.ReadFile(logPath)
		lines := strings.Split(strings.TrimSpace(string(log)), "\n")
		if len(lines) == 2 && strings.HasSuffix(lines[1], "[customize: apt] Building dependency tree...") {
			if _, err := time.Parse("2006-01-02T15:04:05.000Z", strings.Fields(lines[0])[0]); err != nil {
				t.Fatalf("no timestamp: %q", lines[0])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("log:\n%s", log)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
