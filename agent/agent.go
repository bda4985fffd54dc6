// Package agent is gild's in-guest agent. It runs a check set inside a VM and reports the
// results, as agentproto messages over the validation channel (Validate) or for a person
// at a terminal (Main, the gild-agent command line). As a daemon (Daemon, "gild-agent
// run") it provisions a VM from its first-boot data, enrolls with the gild server, runs
// the machine's assignments (audit, apply once, or auto-correct) and reports them,
// spooling reports on disk while the server is out of reach. It imports only the standard
// library, check and agentproto, so that the agent binary stays small and static.
package agent

import (
	"context"
	"fmt"
	"io"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/gildhq/gild/agentproto"
	"github.com/gildhq/gild/check"
)

// Summary is what a validation run found.
type Summary struct {
	Counts   check.Counts
	Results  []check.Result
	Duration time.Duration
}

// Validate runs checks in env and writes the run to out as agentproto JSON lines: ready,
// one result per check as it finishes, and done with the counts. When ctx ends it stops
// before the next check, still writes done (saying why it stopped) and returns ctx's
// error. A failing check is not an error: the Summary says how the checks went.
func Validate(ctx context.Context, checks check.Set, env check.Env, out io.Writer) (Summary, error) {
	start := time.Now()
	enc := agentproto.NewEncoder(out)
	if err := enc.Ready(readyInfo(env, checks.Len())); err != nil {
		return Summary{}, fmt.Errorf("validate: %w", err)
	}
	var s Summary
	aborted := ""
	for _, c := range checks.Checks() {
		if err := ctx.Err(); err != nil {
			aborted = fmt.Sprintf("stopped after %d of %d checks: %v", len(s.Results), checks.Len(), err)
			break
		}
		r := c.Evaluate(ctx, env)
		s.Results = append(s.Results, r)
		s.Counts.Add(r)
		if err := enc.Result(ResultToWire(r)); err != nil {
			return s, fmt.Errorf("validate: %w", err)
		}
	}
	s.Duration = time.Since(start)
	done := agentproto.Done{
		Total: s.Counts.Total, Compliant: s.Counts.Compliant, NonCompliant: s.Counts.NonCompliant, Error: s.Counts.Error,
		DurationMs: s.Duration.Milliseconds(), Aborted: aborted,
	}
	if err := enc.Done(done); err != nil {
		return s, fmt.Errorf("validate: %w", err)
	}
	if aborted != "" {
		return s, fmt.Errorf("validate: %w", ctx.Err())
	}
	return s, nil
}

// ResultToWire converts a check result to its wire form.
func ResultToWire(r check.Result) agentproto.Result {
	reasons := make([]agentproto.Reason, len(r.Reasons))
	for i, x := range r.Reasons {
		reasons[i] = agentproto.Reason{Code: x.Code, Phrase: x.Phrase}
	}
	return agentproto.Result{
		Name: r.Name, Kind: string(r.Kind), Status: string(r.Status), Reasons: reasons,
		Expected: r.Expected, Actual: r.Actual, DurationMs: r.DurationMs,
	}
}

// ResultFromWire converts a result received from a guest back to a check result.
func ResultFromWire(r agentproto.Result) check.Result {
	reasons := make([]check.Reason, len(r.Reasons))
	for i, x := range r.Reasons {
		reasons[i] = check.Reason{Code: x.Code, Phrase: x.Phrase}
	}
	return check.Result{
		Name: r.Name, Kind: check.Kind(r.Kind), Status: check.Status(r.Status), Reasons: reasons,
		Expected: r.Expected, Actual: r.Actual, DurationMs: r.DurationMs,
	}
}

// readyInfo describes the system for the ready message. What cannot be read is left
// out: the message says the guest booted, and its details are a courtesy.
func readyInfo(env check.Env, checks int) agentproto.Ready {
	r := agentproto.Ready{Time: time.Now().UTC(), Agent: agentVersion(), Checks: checks}
	if env.Live {
		if data, err := env.ReadFile("/proc/uptime"); err == nil {
			if f := strings.Fields(string(data)); len(f) > 0 {
				r.UptimeSeconds, _ = strconv.ParseFloat(f[0], 64)
			}
		}
		r.Hostname = readTrimmed(env, "/proc/sys/kernel/hostname")
		r.Kernel = readTrimmed(env, "/proc/sys/kernel/osrelease")
	}
	if r.Hostname == "" {
		r.Hostname = readTrimmed(env, "/etc/hostname")
	}
	// os-release(5): /etc/os-release, or /usr/lib/os-release when /etc has none.
	for _, p := range []string{"/etc/os-release", "/usr/lib/os-release"} {
		if data, err := env.ReadFile(p); err == nil {
			r.OSRelease = parseOSRelease(data)
			break
		}
	}
	return r
}

func readTrimmed(env check.Env, p string) string {
	data, err := env.ReadFile(p)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(data))
}

// parseOSRelease reads os-release(5): KEY=value lines, values optionally in single or
// double quotes, with backslash escapes inside double quotes.
func parseOSRelease(data []byte) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok || key == "" || strings.ContainsAny(key, " \t") {
			continue
		}
		out[key] = unquoteShell(value)
	}
	return out
}

func unquoteShell(v string) string {
	if len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'' {
		return v[1 : len(v)-1]
	}
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
		var b strings.Builder
		for i := 0; i < len(v); i++ {
			if v[i] == '\\' && i+1 < len(v) && strings.IndexByte("\\\"$`", v[i+1]) >= 0 {
				i++
			}
			b.WriteByte(v[i])
		}
		return b.String()
	}
	return v
}

// agentVersion names this build: its module version and, for builds from a repository,
// the commit.
func agentVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "gild-agent"
	}
	v := "gild-agent " + info.Main.Version
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += " " + s.Value[:12]
		}
	}
	return v
}
