package agent

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/gildhq/gild/agentproto"
	"github.com/gildhq/gild/check"
)

// Exit statuses of the gild-agent command.
const (
	ExitOK           = 0 // every check is compliant
	ExitNonCompliant = 1 // a check is not compliant
	ExitError        = 2 // a usage error, an unusable check file, or a check that could not be evaluated
)

const usage = `gild-agent runs gild's checks inside a machine.

Usage:
  gild-agent validate --checks FILE [--out PATH]
      Run the checks on this system and write the results as agentproto JSON lines
      (ready, one result per check, done) to PATH; by default to the virtio-serial port
      org.gild.results when there is one, else to standard output. A readable table goes
      to standard output when the results go elsewhere.
  gild-agent check --checks FILE [--root DIR] [--json | --junit]
      Run the checks and print a table (or JSON results, or a JUnit XML report). With
      --root, check the system whose files are under DIR (a mounted image): checks that
      need the running system report an Error there.
  gild-agent run [--state-dir DIR] [--firstboot FILE]
      The daemon (systemd's gild-agent.service): provision the machine from its
      first-boot data (FILE, else QEMU fw_cfg opt/org.gild/firstboot) and enroll, then
      run its assignments and report to the gild server every interval and whenever
      they change. Reports wait in DIR/spool while the server is unreachable. Without
      first-boot data or an enrollment it waits for "gild-agent enroll". DIR defaults
      to /var/lib/gild-agent.
  gild-agent enroll --server URL --token T [--name NAME] [--state-dir DIR]
      Enroll a machine gild did not create with a one-time enrollment token, and print
      its machine ID. NAME is the machine's name when the token does not fix one (the
      hostname by default). The daemon picks the enrollment up.
  gild-agent status [--state-dir DIR]
      Print the machine's enrollment, its last report, its spooled reports, and its
      assignments with their last results.
  gild-agent version
      Print the agent's version and its protocol version.

FILE of --checks is a JSON check set: an array of checks or {"checks": [...]}.

Exit status: 0 when every check is compliant, 1 when one is not, 2 on a usage error, an
invalid check file, or a check that could not be evaluated. run exits 0 when stopped;
enroll exits 2 when enrollment fails; status exits 1 when the machine is not enrolled.
`

// Main runs the gild-agent command line with args (without the program's name) and
// returns its exit status.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return ExitError
	}
	switch args[0] {
	case "validate":
		return runValidate(ctx, args[1:], stdout, stderr, "/")
	case "check":
		return runCheck(ctx, args[1:], stdout, stderr)
	case "run":
		return runDaemon(ctx, args[1:], stdout, stderr)
	case "enroll":
		return runEnroll(ctx, args[1:], stdout, stderr, LiveSystem())
	case "status":
		return runStatus(args[1:], stdout, stderr)
	case "version":
		fmt.Fprintf(stdout, "%s (agentproto version %d)\n", agentVersion(), agentproto.Version)
		return ExitOK
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return ExitOK
	default:
		fmt.Fprintf(stderr, "gild-agent: unknown command %q\n\n%s", args[0], usage)
		return ExitError
	}
}

// parseFlags parses a subcommand's flags; done is true when Main should return status.
func parseFlags(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) (status int, done bool) {
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usage)
			return ExitOK, true
		}
		return ExitError, true
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "gild-agent %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return ExitError, true
	}
	return 0, false
}

// loadChecks reads and parses a check file, printing every problem when it is invalid.
func loadChecks(cmd, path string, stderr io.Writer) (check.Set, bool) {
	if path == "" {
		fmt.Fprintf(stderr, "gild-agent %s: --checks FILE is required\n", cmd)
		return check.Set{}, false
	}
	data, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintf(stderr, "gild-agent %s: read checks: %v\n", cmd, err)
		return check.Set{}, false
	}
	set, err := check.Parse(data)
	if err != nil {
		fmt.Fprintf(stderr, "gild-agent %s: %s is not a valid check set:\n", cmd, path)
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintf(stderr, "  %s\n", line)
		}
		return check.Set{}, false
	}
	return set, true
}

// exitStatus is the status for counts: an Error outranks a non-compliance, because an
// unevaluated check may hide anything.
func exitStatus(c check.Counts) int {
	switch {
	case c.Error > 0:
		return ExitError
	case c.NonCompliant > 0:
		return ExitNonCompliant
	}
	return ExitOK
}

// runValidate is "gild-agent validate". sysRoot is where /dev and /sys are, "/" but for
// tests.
func runValidate(ctx context.Context, args []string, stdout, stderr io.Writer, sysRoot string) int {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	checksPath := fs.String("checks", "", "the check set (JSON)")
	outPath := fs.String("out", "", "where to write the results, - for standard output (default: the org.gild.results virtio port, else standard output)")
	if status, done := parseFlags(fs, args, stdout, stderr); done {
		return status
	}
	set, ok := loadChecks("validate", *checksPath, stderr)
	if !ok {
		return ExitError
	}
	dest := *outPath
	if dest == "" {
		if port, found := findResultsPort(sysRoot); found {
			dest = port
		}
	}
	var out io.Writer = stdout
	var file *os.File
	if dest == "-" { // standard output, as a caller that opened the port itself asks
		dest = ""
	}
	if dest != "" {
		var err error
		if file, err = os.OpenFile(dest, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644); err != nil {
			fmt.Fprintf(stderr, "gild-agent validate: open results output: %v\n", err)
			return ExitError
		}
		out = file
	}
	summary, err := Validate(ctx, set, check.LiveEnv(), out)
	if file != nil {
		if cerr := file.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close %s: %w", dest, cerr)
		}
	}
	if dest != "" {
		// The results went to the host; the console (and its log) gets them for people.
		writeTable(stdout, summary.Results)
		fmt.Fprintf(stderr, "gild-agent validate: results written to %s\n", dest)
	}
	if err != nil {
		fmt.Fprintf(stderr, "gild-agent validate: %v\n", err)
		return ExitError
	}
	return exitStatus(summary.Counts)
}

// findResultsPort finds the validation channel's virtio-serial port: the udev link
// /dev/virtio-ports/<name>, or without udev, the port whose /sys/class/virtio-ports/*/name
// says so, at /dev/<its directory's name>.
func findResultsPort(sysRoot string) (string, bool) {
	link := filepath.Join(sysRoot, "dev", "virtio-ports", agentproto.ResultsPortName)
	if _, err := os.Stat(link); err == nil {
		return link, true
	}
	names, _ := filepath.Glob(filepath.Join(sysRoot, "sys", "class", "virtio-ports", "*", "name"))
	for _, n := range names {
		data, err := os.ReadFile(n)
		if err != nil || strings.TrimSpace(string(data)) != agentproto.ResultsPortName {
			continue
		}
		dev := filepath.Join(sysRoot, "dev", filepath.Base(filepath.Dir(n)))
		if _, err := os.Stat(dev); err == nil {
			return dev, true
		}
	}
	return "", false
}

// runCheck is "gild-agent check".
func runCheck(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	checksPath := fs.String("checks", "", "the check set (JSON)")
	root := fs.String("root", "/", "the directory that holds the system's files")
	asJSON := fs.Bool("json", false, "print the results as JSON")
	asJUnit := fs.Bool("junit", false, "print a JUnit XML report")
	if status, done := parseFlags(fs, args, stdout, stderr); done {
		return status
	}
	if *asJSON && *asJUnit {
		fmt.Fprintln(stderr, "gild-agent check: give --json or --junit, not both")
		return ExitError
	}
	if fi, err := os.Stat(*root); err != nil || !fi.IsDir() {
		fmt.Fprintf(stderr, "gild-agent check: --root %s is not a directory\n", *root)
		return ExitError
	}
	set, ok := loadChecks("check", *checksPath, stderr)
	if !ok {
		return ExitError
	}
	env := check.LiveEnv()
	if filepath.Clean(*root) != "/" {
		env = check.OfflineEnv(*root)
	}
	results := set.Evaluate(ctx, env)
	var err error
	switch {
	case *asJSON:
		err = check.WriteJSON(stdout, results)
	case *asJUnit:
		err = check.WriteJUnit(stdout, filepath.Base(*checksPath), results)
	default:
		err = writeTable(stdout, results)
	}
	if err != nil {
		fmt.Fprintf(stderr, "gild-agent check: %v\n", err)
		return ExitError
	}
	return exitStatus(check.CountResults(results))
}

// writeTable prints results for people: a line per check, a line per further reason, and
// the counts.
func writeTable(w io.Writer, results []check.Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STATUS\tCHECK\tKIND\tREASON")
	for _, r := range results {
		if len(r.Reasons) == 0 {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Status, r.Name, r.Kind) // no padding to trail
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s: %s\n", r.Status, r.Name, r.Kind, r.Reasons[0].Code, r.Reasons[0].Phrase)
		for _, reason := range r.Reasons[min(1, len(r.Reasons)):] {
			fmt.Fprintf(tw, "\t\t\t%s: %s\n", reason.Code, reason.Phrase)
		}
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	c := check.CountResults(results)
	_, err := fmt.Fprintf(w, "\n%d checks: %d compliant, %d non-compliant, %d error\n", c.Total, c.Compliant, c.NonCompliant, c.Error)
	if err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	return nil
}
