package check

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// shellPath runs command checks, as /bin/sh -c does for system(3).
const shellPath = "/bin/sh"

func (c *Check) evalCommand(ctx context.Context, env Env, o *outcome) {
	cc := c.compiled
	wantStatus := 0
	if c.ExitStatus != nil {
		wantStatus = *c.ExitStatus
	}
	var expected []string
	expected = append(expected, fmt.Sprintf("exit status %d", wantStatus))
	if c.StdoutContains != "" {
		expected = append(expected, "stdout contains "+quote(c.StdoutContains))
	}
	if cc.stdoutRE != nil {
		expected = append(expected, "stdout matches "+describeRegexp(cc.stdoutRE))
	}
	want := strings.Join(expected, ", ")
	if !env.Live {
		o.property(want, "not run")
		o.notLive(env, "Running a command")
		return
	}
	runCtx, cancel := context.WithTimeout(ctx, cc.timeout)
	defer cancel()
	out, err := env.runner().Run(runCtx, shellPath, cc.shellArgs...)
	switch {
	case err != nil && errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
		o.property(want, "timed out")
		o.error(CodeCommandTimeout, "Command %s did not finish within %s.%s", quote(cc.commandText), cc.timeout, outputTail(out))
		return
	case err != nil && ctx.Err() != nil:
		o.property(want, "canceled")
		o.error(CodeCanceled, "Command %s was canceled: %v.", quote(cc.commandText), ctx.Err())
		return
	case err != nil:
		o.property(want, "not run")
		o.error(CodeCommandFailedToStart, "Command %s could not run: %v.", quote(cc.commandText), err)
		return
	}
	stdout := string(out.Stdout)
	actual := []string{describeExit(out.ExitStatus)}
	if c.StdoutContains != "" || cc.stdoutRE != nil {
		actual = append(actual, "stdout "+quote(strings.TrimSpace(stdout)))
	}
	o.property(want, strings.Join(actual, ", "))
	if out.ExitStatus != wantStatus {
		o.mismatch(CodeCommandExitStatus, "Command %s %s; expected exit status %d.%s", quote(cc.commandText), exitedPhrase(out.ExitStatus), wantStatus, outputTail(out))
	}
	if c.StdoutContains != "" && !strings.Contains(stdout, c.StdoutContains) {
		o.mismatch(CodeCommandStdoutMissingText, "The output of command %s does not contain %s.", quote(cc.commandText), quote(c.StdoutContains))
	}
	// Without its final line break, so that "^active$" matches what "echo active" prints.
	if cc.stdoutRE != nil && !cc.stdoutRE.MatchString(strings.TrimSuffix(stdout, "\n")) {
		o.mismatch(CodeCommandStdoutNoMatch, "The output of command %s has nothing that matches %s.", quote(cc.commandText), describeRegexp(cc.stdoutRE))
	}
}

func describeExit(status int) string {
	if status < 0 {
		return "killed by a signal"
	}
	return fmt.Sprintf("exit status %d", status)
}

func exitedPhrase(status int) string {
	if status < 0 {
		return "was killed by a signal"
	}
	return fmt.Sprintf("exited with status %d", status)
}

// outputTail quotes the end of what a failed command wrote to stderr (or stdout when
// stderr is empty), which is where a shell script says what went wrong.
func outputTail(out Output) string {
	text := strings.TrimSpace(string(out.Stderr))
	stream := "stderr"
	if text == "" {
		text = strings.TrimSpace(string(out.Stdout))
		stream = "stdout"
	}
	if text == "" {
		return ""
	}
	if len(text) > 300 {
		cut := len(text) - 300
		for cut < len(text) && !utf8RuneStart(text[cut]) {
			cut++
		}
		text = "…" + text[cut:]
	}
	return fmt.Sprintf(" Its %s ends: %s", stream, strconv.Quote(text))
}
