package pipeline

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// Run states and sub-states, as Azure Image Builder reports them.
const (
	StateRunning            = "Running"
	StateCanceling          = "Canceling"
	StateSucceeded          = "Succeeded"
	StatePartiallySucceeded = "PartiallySucceeded"
	StateFailed             = "Failed"
	StateCanceled           = "Canceled"

	SubQueued       = "Queued"
	SubBuilding     = "Building"
	SubCustomizing  = "Customizing"
	SubValidating   = "Validating"
	SubDistributing = "Distributing"
)

// TypeRun is a template's run; TypeRunOutput what a run published.
const (
	TypeRun       = "Microsoft.VirtualMachineImages/imageTemplates/runs"
	TypeRunOutput = "Microsoft.VirtualMachineImages/imageTemplates/runOutputs"
)

// StepStatus is how one step of a run went.
type StepStatus struct {
	Name        string     `json:"name"`
	SubState    string     `json:"subState"`
	State       string     `json:"state"` // Running, Succeeded, Failed, Canceled, Skipped
	StartTime   *time.Time `json:"startTime,omitempty"`
	EndTime     *time.Time `json:"endTime,omitempty"`
	DurationSec float64    `json:"durationSeconds"`
	Message     string     `json:"message,omitempty"`
}

// CheckOutcome is one validation check's result, kept with the run.
type CheckOutcome struct {
	Name    string   `json:"name"`
	Status  string   `json:"status"` // Compliant, NonCompliant, Error
	Reasons []string `json:"reasons,omitempty"`
}

// ValidationReport is what validation found.
type ValidationReport struct {
	Accelerator string         `json:"accelerator"` // kvm or tcg, and why
	BootSeconds float64        `json:"bootSeconds"`
	MaxBoot     int            `json:"maxBootSeconds"`
	Passed      int            `json:"passed"`
	Failed      int            `json:"failed"`
	Checks      []CheckOutcome `json:"checks,omitempty"`
}

// Output is an image version a run published.
type Output struct {
	RunOutputName string `json:"runOutputName"`
	ArtifactID    string `json:"artifactId"`
	SHA256        string `json:"sha256,omitempty"`
	Error         string `json:"error,omitempty"`
}

// RunProperties are a run's properties.
type RunProperties struct {
	RunState    string     `json:"runState"`
	RunSubState string     `json:"runSubState,omitempty"`
	Message     string     `json:"message,omitempty"`
	StartTime   *time.Time `json:"startTime,omitempty"`
	EndTime     *time.Time `json:"endTime,omitempty"`
	// FailedStep and FailedChecks say where and why a failed run stopped.
	FailedStep     string            `json:"failedStep,omitempty"`
	FailedChecks   []string          `json:"failedChecks,omitempty"`
	Steps          []StepStatus      `json:"steps"`
	Source         *ResolvedSource   `json:"source,omitempty"`
	TemplateDigest string            `json:"templateDigest"`
	Validation     *ValidationReport `json:"validation,omitempty"`
	Outputs        []Output          `json:"outputs,omitempty"`
	// Kept lists the files kept for debugging (the run log, the console log, the failed
	// disk with errorHandling abort), relative to the run's directory.
	Kept []string `json:"kept,omitempty"`
	// Trigger is what started the run (TriggerManual, TriggerSchedule, TriggerBaseImage),
	// Reason why, and ScheduledTime the cron time a scheduled run is for.
	Trigger       string     `json:"trigger,omitempty"`
	Reason        string     `json:"reason,omitempty"`
	ScheduledTime *time.Time `json:"scheduledTime,omitempty"`
	// Inputs are what the run was built from, so that a "changed" schedule can tell
	// whether anything changed since.
	Inputs *Inputs `json:"inputs,omitempty"`
	// Attempt counts the servers that took the run up: 0 while it waits for one, more
	// than 1 when a server stopped during it and another started it again.
	Attempt int `json:"attempt,omitempty"`
}

// ResolvedSource is the source a run actually used.
type ResolvedSource struct {
	Publisher string `json:"publisher,omitempty"`
	Offer     string `json:"offer,omitempty"`
	SKU       string `json:"sku,omitempty"`
	Version   string `json:"version,omitempty"`
	// ID is the parent gallery image version, for a layered image.
	ID     string `json:"id,omitempty"`
	URL    string `json:"url,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
}

// Step is one stage of a build. Steps run in order; the first error stops the run; then
// the Cleanup of every step that started runs, in reverse. A step keeps what it should
// leave behind (for errorHandling abort) by looking at Build.Keep.
type Step interface {
	Name() string
	SubState() string
	Run(ctx context.Context, b *Build) error
	Cleanup(b *Build)
}

// StepError is a step's failure, with the checks that failed when it is validation.
type StepError struct {
	Step   string
	Checks []string
	Err    error
}

func (e *StepError) Error() string { return e.Step + ": " + e.Err.Error() }
func (e *StepError) Unwrap() error { return e.Err }

// Log is a run's log: every line timestamped and tagged with its step, kept in a file and
// offered to followers as it grows.
type Log struct {
	mu   sync.Mutex
	f    *os.File
	step string
	now  func() time.Time
}

// OpenLog creates the log file at path.
func OpenLog(path string, now func() time.Time) (*Log, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open run log: %w", err)
	}
	if now == nil {
		now = time.Now
	}
	return &Log{f: f, now: now, step: "run"}, nil
}

// Close closes the file.
func (l *Log) Close() error { return l.f.Close() }

func (l *Log) setStep(name string) {
	l.mu.Lock()
	l.step = name
	l.mu.Unlock()
}

// Printf writes one line (or several) to the log.
func (l *Log) Printf(format string, args ...any) {
	l.write(fmt.Sprintf(format, args...))
}

func (l *Log) write(text string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ts := l.now().UTC().Format("2006-01-02T15:04:05.000Z")
	for _, line := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		fmt.Fprintf(l.f, "%s [%s] %s\n", ts, l.step, line)
	}
}

// Writer is an io.Writer whose lines go into the log, for the output of tools.
func (l *Log) Writer() io.WriteCloser {
	pr, pw := io.Pipe()
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			l.write(sc.Text())
		}
		pr.CloseWithError(sc.Err())
	}()
	return pw
}

// Build is what the steps of one run share. Each field is set by the step named in its
// comment and read by the ones after it.
type Build struct {
	RunID      string
	TemplateID string
	Template   *TemplateProperties
	// Dir is the run's own directory: its log, console log, results, work files.
	Dir string
	Log *Log
	// Keep is set when a failure should leave the build's files for debugging
	// (errorHandling abort).
	Keep bool

	Source     ResolvedSource    // resolve source
	Rootfs     string            // base rootfs
	Disk       string            // assemble disk: the raw disk
	Image      string            // convert: the compressed qcow2
	ImageSHA   string            // convert
	ImageSize  int64             // convert
	Validation *ValidationReport // validate
	Outputs    []Output          // distribute
	// validationFailed is validation's failure when continueDistributeOnFailure let the
	// run go on: the run still fails, after distributing.
	validationFailed error
}

// Progress is told about a run as it moves.
type Progress interface {
	// StepStarted and StepEnded report each step.
	StepStarted(s StepStatus)
	StepEnded(s StepStatus)
}

// Execute runs steps over b, then the cleanups in reverse. It returns the first failure as
// a *StepError (or ctx's error when the run was cancelled between steps).
func Execute(ctx context.Context, b *Build, steps []Step, p Progress, now func() time.Time) error {
	if now == nil {
		now = time.Now
	}
	var ran []Step
	defer func() {
		for i := len(ran) - 1; i >= 0; i-- {
			b.Log.setStep(ran[i].Name() + ": cleanup")
			ran[i].Cleanup(b)
		}
		b.Log.setStep("run")
	}()
	for _, st := range steps {
		if err := ctx.Err(); err != nil {
			return err
		}
		start := now()
		status := StepStatus{Name: st.Name(), SubState: st.SubState(), State: StateRunning, StartTime: &start}
		p.StepStarted(status)
		b.Log.setStep(st.Name())
		b.Log.Printf("started")
		ran = append(ran, st)
		err := st.Run(ctx, b)
		end := now()
		status.EndTime, status.DurationSec = &end, end.Sub(start).Seconds()
		switch {
		case err == nil:
			status.State = StateSucceeded
		case ctx.Err() != nil:
			status.State, status.Message = StateCanceled, "the run was cancelled"
		default:
			status.State, status.Message = StateFailed, err.Error()
		}
		b.Log.Printf("%s in %.1fs%s", strings.ToLower(status.State), status.DurationSec, prefixed(": ", status.Message))
		p.StepEnded(status)
		if err != nil {
			var se *StepError
			if errors.As(err, &se) {
				return se
			}
			return &StepError{Step: st.Name(), Err: err}
		}
	}
	return nil
}

func prefixed(p, s string) string {
	if s == "" {
		return ""
	}
	return p + s
}
