package check

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"
)

// Evaluate looks at env and says whether c holds. It never returns an error: what keeps a
// check from being evaluated is a result with status Error and a reason saying why.
func (c *Check) Evaluate(ctx context.Context, env Env) Result {
	start := time.Now()
	res := Result{Name: c.Name, Kind: c.Kind, Reasons: []Reason{}}
	o := c.outcome(ctx, env)
	res.Status = o.status()
	res.Reasons = append(res.Reasons, o.reasons...)
	res.Expected = strings.Join(o.expected, "; ")
	res.Actual = strings.Join(o.actual, "; ")
	res.DurationMs = time.Since(start).Milliseconds()
	return res
}

// outcome evaluates c into what its result is made of.
func (c *Check) outcome(ctx context.Context, env Env) *outcome {
	o := &outcome{}
	if err := ctx.Err(); err != nil {
		o.error(CodeCanceled, "The check was not evaluated: %v.", err)
		return o
	}
	if c.compiled == nil {
		if ps := c.compile("check"); len(ps) > 0 {
			o.error(CodeInvalidCheck, "The check is not valid: %s.", strings.ReplaceAll(ps.Error(), "\n", "; "))
			return o
		}
	}
	switch c.Kind {
	case KindFile:
		c.evalFile(env, o)
	case KindLineInFile:
		c.evalLineInFile(env, o)
	case KindSetting:
		c.evalSetting(env, o)
	case KindPackage:
		c.evalPackage(env, o)
	case KindService:
		c.evalService(ctx, env, o)
	case KindSysctl:
		c.evalSysctl(env, o)
	case KindUser:
		c.evalUser(env, o)
	case KindGroup:
		c.evalGroup(env, o)
	case KindPort:
		c.evalPort(env, o)
	case KindKernelModule:
		c.evalKernelModule(env, o)
	case KindCommand:
		c.evalCommand(ctx, env, o)
	}
	return o
}

// outcome gathers what evaluating a check found: the properties it asserts, expected
// against actual, and a reason for each one that does not hold or could not be judged.
type outcome struct {
	expected     []string
	actual       []string
	reasons      []Reason
	errored      bool
	noncompliant bool
}

// property records one asserted property, expected against actual.
func (o *outcome) property(expected, actual string) {
	o.expected = append(o.expected, expected)
	o.actual = append(o.actual, actual)
}

// mismatch records a property that does not hold.
func (o *outcome) mismatch(code, format string, args ...any) {
	o.noncompliant = true
	o.reasons = append(o.reasons, Reason{Code: code, Phrase: fmt.Sprintf(format, args...)})
}

// error records something that could not be judged.
func (o *outcome) error(code, format string, args ...any) {
	o.errored = true
	o.reasons = append(o.reasons, Reason{Code: code, Phrase: fmt.Sprintf(format, args...)})
}

// readError records a failed read of the root's path p.
func (o *outcome) readError(p string, err error) {
	if err == errTooLarge {
		o.error(CodeFileTooLarge, "File %s is larger than %d MiB; gild does not read its contents.", p, maxContents>>20)
		return
	}
	o.error(CodeReadError, "Cannot read %s: %v.", p, withoutHostPath(err))
}

// withoutHostPath drops the host path from a file error: the phrase names the root's
// path already, and the host's (a temporary mount point) means nothing to its reader.
func withoutHostPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// notLive records that a property needs the running system.
func (o *outcome) notLive(env Env, what string) {
	o.error(CodeNotLive, "%s needs the running system; %s is offline.", what, env.describe())
}

// status is Error when anything could not be judged, because then compliance is unknown;
// otherwise NonCompliant when anything does not hold.
func (o *outcome) status() Status {
	switch {
	case o.errored:
		return StatusError
	case o.noncompliant:
		return StatusNonCompliant
	default:
		return StatusCompliant
	}
}

func yesNo(b bool, yes, no string) string {
	if b {
		return yes
	}
	return no
}
