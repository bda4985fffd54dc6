package agent

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"
)

// runDaemon is "gild-agent run".
func runDaemon(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	stateDir := fs.String("state-dir", DefaultStateDir, "where the state and the spool are kept")
	firstBoot := fs.String("firstboot", "", "read first-boot data from this file instead of QEMU fw_cfg")
	if status, done := parseFlags(fs, args, stdout, stderr); done {
		return status
	}
	d := &Daemon{StateDir: *stateDir, FirstBootFile: *firstBoot, System: LiveSystem(), Log: log.New(stderr, "", 0)}
	if err := d.Run(ctx); err != nil {
		fmt.Fprintf(stderr, "gild-agent run: %v\n", err)
		return ExitError
	}
	return ExitOK
}

// runEnroll is "gild-agent enroll". sys is the machine whose facts and tattoo enrollment
// sends, LiveSystem() but for tests.
func runEnroll(ctx context.Context, args []string, stdout, stderr io.Writer, sys System) int {
	fs := flag.NewFlagSet("enroll", flag.ContinueOnError)
	server := fs.String("server", "", "the gild server's URL, as this machine reaches it")
	token := fs.String("token", "", "the one-time enrollment token")
	name := fs.String("name", "", "the machine's name when the token does not fix one (default: the hostname)")
	stateDir := fs.String("state-dir", DefaultStateDir, "where the state and the spool are kept")
	if status, done := parseFlags(fs, args, stdout, stderr); done {
		return status
	}
	var problems []string
	switch {
	case *server == "":
		problems = append(problems, "--server URL is required")
	default:
		if err := checkServerURL(*server); err != nil {
			problems = append(problems, "--server: "+err.Error())
		}
	}
	if strings.TrimSpace(*token) == "" {
		problems = append(problems, "--token T is required")
	}
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintf(stderr, "gild-agent enroll: %s\n", p)
		}
		return ExitError
	}
	d := &Daemon{StateDir: *stateDir, System: sys, Log: log.New(stderr, "gild-agent enroll: ", 0)}
	d.init()
	prev, err := d.store.load()
	if err != nil {
		fmt.Fprintf(stderr, "gild-agent enroll: %v\n", err)
		return ExitError
	}
	req := d.enrollRequest(*token, *name)
	if req.Name == "" {
		req.Name = req.Facts.Hostname
	}
	c := &client{http: &http.Client{}, server: *server}
	resp, err := c.enroll(ctx, req)
	if err != nil {
		var se *ServerError
		switch {
		case errors.As(err, &se) && isRefusal(err):
			msg := se.Message
			if msg == "" {
				msg = http.StatusText(se.StatusCode)
			}
			fmt.Fprintf(stderr, "gild-agent enroll: the server at %s refused the token (%d %s): %s\n", *server, se.StatusCode, orNone(se.Code), msg)
		case errors.As(err, &se):
			fmt.Fprintf(stderr, "gild-agent enroll: the server at %s failed; try again later: %v\n", *server, err)
		default:
			fmt.Fprintf(stderr, "gild-agent enroll: cannot reach the server at %s: %v\n", *server, err)
		}
		return ExitError
	}
	if err := d.saveEnrollment(*server, "", resp); err != nil {
		fmt.Fprintf(stderr, "gild-agent enroll: enrolled as %s, but could not save the credential, so the enrollment is lost: %v\n", resp.MachineID, err)
		return ExitError
	}
	if prev.Enrolled() && prev.MachineID != resp.MachineID {
		fmt.Fprintf(stderr, "gild-agent enroll: replaced the enrollment as %s\n", prev.MachineID)
	}
	fmt.Fprintln(stdout, resp.MachineID)
	return ExitOK
}

// runStatus is "gild-agent status".
func runStatus(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	stateDir := fs.String("state-dir", DefaultStateDir, "where the state and the spool are kept")
	if status, done := parseFlags(fs, args, stdout, stderr); done {
		return status
	}
	d := &Daemon{StateDir: *stateDir}
	d.init()
	st, err := d.store.load()
	if err != nil {
		fmt.Fprintf(stderr, "gild-agent status: %v\n", err)
		return ExitError
	}
	names, err := d.spool.list()
	if err != nil {
		fmt.Fprintf(stderr, "gild-agent status: %v\n", err)
		return ExitError
	}
	if err := writeStatus(stdout, st, len(names), d.interval(st), time.Now()); err != nil {
		fmt.Fprintf(stderr, "gild-agent status: %v\n", err)
		return ExitError
	}
	if !st.Enrolled() {
		return ExitNonCompliant
	}
	return ExitOK
}

// writeStatus prints the state for people.
func writeStatus(w io.Writer, st State, spooled int, interval time.Duration, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	when := func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return fmt.Sprintf("%s (%s ago)", t.UTC().Format(time.RFC3339), now.Sub(t).Round(time.Second))
	}
	if st.Enrolled() {
		fmt.Fprintf(tw, "machine:\t%s\n", st.MachineID)
		fmt.Fprintf(tw, "server:\t%s\n", st.Server)
		fmt.Fprintf(tw, "enrolled:\t%s\n", when(st.EnrolledAt))
	} else {
		fmt.Fprintf(tw, "machine:\tnot enrolled: run gild-agent enroll --server URL --token T\n")
	}
	fmt.Fprintf(tw, "instance:\t%s\n", orNone(st.InstanceID))
	fmt.Fprintf(tw, "report every:\t%s\n", interval)
	fmt.Fprintf(tw, "last report:\t%s\n", when(st.LastReport))
	fmt.Fprintf(tw, "spooled reports:\t%d\n", spooled)
	fmt.Fprintf(tw, "pending events:\t%d\n", len(st.PendingEvents))
	if st.Assignments == nil {
		fmt.Fprintf(tw, "assignments:\tnone received yet\n")
	} else {
		fmt.Fprintf(tw, "assignments:\t%d (ETag %s)\n", len(st.Assignments.Assignments), orNone(st.Assignments.ETag))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write status: %w", err)
	}
	if st.Assignments == nil || len(st.Assignments.Assignments) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ASSIGNMENT\tTYPE\tSTATUS\tNON-COMPLIANT\tLAST RUN")
	for _, a := range st.Assignments.Assignments {
		status, nonCompliant, last := "Pending", "-", "never"
		for _, r := range st.LastRuns {
			if r.Name == a.Name && r.Hash == a.Hash {
				status, nonCompliant, last = r.ComplianceStatus, fmt.Sprint(r.NonCompliant), r.Time.UTC().Format(time.RFC3339)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", a.Name, orNone(a.AssignmentType), status, nonCompliant, last)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write status: %w", err)
	}
	return nil
}
