package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gildhq/gild/api"
	"github.com/gildhq/gild/resource"
)

// The gallery resource types the image commands work with.
const (
	typeImageDefinition = "Microsoft.Compute/galleries/images"
	typeImageVersion    = "Microsoft.Compute/galleries/images/versions"
)

// Replication states, as the server reports them.
const (
	replCompleted   = "Completed"
	replFailed      = "Failed"
	replReplicating = "Replicating"
)

// Disk formats a version's artifact may have.
const (
	formatQCOW2 = "qcow2"
	formatRaw   = "raw"
)

// qcow2Magic opens every qcow2 file.
var qcow2Magic = []byte("QFI\xfb")

// maxReplicas is the most replicas of a version one region may hold, as in Azure.
const maxReplicas = 100

// pollInterval is how often --wait looks at a version's replication.
var pollInterval = time.Second

// ---- parsing ----

// semver is a Major.Minor.Patch version number.
type semver [3]int64

var semverPattern = regexp.MustCompile(`^(\d{1,9})\.(\d{1,9})\.(\d{1,9})$`)

// parseSemver parses "1.4.0"; each part has at most 9 digits, as the server allows.
func parseSemver(s string) (semver, bool) {
	m := semverPattern.FindStringSubmatch(s)
	if m == nil {
		return semver{}, false
	}
	var v semver
	for i := range v {
		v[i], _ = strconv.ParseInt(m[i+1], 10, 64)
	}
	return v, true
}

func (v semver) compare(w semver) int {
	for i := range v {
		switch {
		case v[i] < w[i]:
			return -1
		case v[i] > w[i]:
			return 1
		}
	}
	return 0
}

const definitionExample = "/subscriptions/S/resourceGroups/RG/providers/Microsoft.Compute/galleries/G/images/I"

// parseDefinitionID checks that s is an image definition ID; what names it in errors.
func parseDefinitionID(what, s string) (resource.ID, error) {
	id, err := resource.Parse(s)
	if err != nil {
		return resource.ID{}, usageErrorf("%s: %s", what, messageOf(err))
	}
	if !strings.EqualFold(id.Type(), typeImageDefinition) {
		return resource.ID{}, usageErrorf("%s %q is a %s, not an image definition (%s) such as %s", what, s, id.Type(), typeImageDefinition, definitionExample)
	}
	return id, nil
}

// parseVersionID checks that s is an image version ID whose name is Major.Minor.Patch.
func parseVersionID(what, s string) (resource.ID, error) {
	id, err := resource.Parse(s)
	if err != nil {
		return resource.ID{}, usageErrorf("%s: %s", what, messageOf(err))
	}
	if !strings.EqualFold(id.Type(), typeImageVersion) {
		return resource.ID{}, usageErrorf("%s %q is a %s, not an image version (%s) such as %s/versions/1.0.0", what, s, id.Type(), typeImageVersion, definitionExample)
	}
	if _, ok := parseSemver(id.Name()); !ok {
		return resource.ID{}, usageErrorf("%s %q: the version %q is not Major.Minor.Patch (such as 1.4.0)", what, s, id.Name())
	}
	return id, nil
}

// imageRef is what the resolve and pull commands are given: a definition and which of its
// versions (latest or a number), or one version's ID.
type imageRef struct {
	Definition string // the definition's ID
	Version    string // "latest" or Major.Minor.Patch
	// VersionID is set when the argument was a version's ID rather than DEF@VERSION.
	VersionID string
}

// parseImageRef parses DEF-ID, DEF-ID@latest, DEF-ID@X.Y.Z or, with allowVersionID, a
// version's ID. A definition without @ means its latest version.
func parseImageRef(arg string, allowVersionID bool) (imageRef, error) {
	forms := "DEFINITION-ID[@latest|@X.Y.Z]"
	if allowVersionID {
		forms += " or a version ID"
	}
	if arg == "" {
		return imageRef{}, usageErrorf("the image is empty; give %s", forms)
	}
	if i := strings.LastIndex(arg, "@"); i >= 0 {
		def, ref := arg[:i], arg[i+1:]
		if _, err := parseDefinitionID("image "+arg, def); err != nil {
			return imageRef{}, err
		}
		switch _, ok := parseSemver(ref); {
		case strings.EqualFold(ref, "latest"):
			ref = "latest"
		case !ok:
			return imageRef{}, usageErrorf("image %q: the version after @ must be latest or Major.Minor.Patch (such as 1.4.0), not %q", arg, ref)
		}
		return imageRef{Definition: def, Version: ref}, nil
	}
	id, err := resource.Parse(arg)
	if err != nil {
		return imageRef{}, usageErrorf("image %q: %s", arg, messageOf(err))
	}
	switch {
	case strings.EqualFold(id.Type(), typeImageDefinition):
		return imageRef{Definition: arg, Version: "latest"}, nil
	case strings.EqualFold(id.Type(), typeImageVersion):
		if _, err := parseVersionID("image", arg); err != nil {
			return imageRef{}, err
		}
		if !allowVersionID {
			return imageRef{Definition: id.Parent().String(), Version: id.Name()}, nil
		}
		return imageRef{Definition: id.Parent().String(), Version: id.Name(), VersionID: arg}, nil
	}
	return imageRef{}, usageErrorf("image %q is a %s; give %s", arg, id.Type(), forms)
}

// targetRegion is one --target-region.
type targetRegion struct {
	Name string `json:"name"`
	// Replicas is 0 when not given: the version's replicaCount applies.
	Replicas int `json:"regionalReplicaCount,omitempty"`
}

var regionNamePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// parseTargetRegion parses NAME=REPLICAS, or NAME alone.
func parseTargetRegion(s string) (targetRegion, error) {
	name, count, hasCount := strings.Cut(strings.TrimSpace(s), "=")
	name = strings.ToLower(strings.TrimSpace(name))
	if !regionNamePattern.MatchString(name) {
		return targetRegion{}, fmt.Errorf("--target-region %q: the region name must be letters, digits and '-' (NAME=REPLICAS, such as west=2)", s)
	}
	t := targetRegion{Name: name}
	if hasCount {
		n, err := strconv.Atoi(strings.TrimSpace(count))
		if err != nil || n < 1 || n > maxReplicas {
			return targetRegion{}, fmt.Errorf("--target-region %q: the replica count must be a whole number from 1 to %d", s, maxReplicas)
		}
		t.Replicas = n
	}
	return t, nil
}

// parseDate parses YYYY-MM-DD (midnight UTC) or an RFC 3339 time.
func parseDate(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t.UTC(), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither a date (YYYY-MM-DD) nor an RFC 3339 time (2027-01-01T00:00:00Z)", s)
	}
	return t.UTC(), nil
}

// guessFormat says qcow2 when the file starts with the qcow2 magic, raw otherwise.
func guessFormat(r io.Reader) (string, error) {
	head := make([]byte, len(qcow2Magic))
	n, err := io.ReadFull(r, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return "", err
	}
	if bytes.Equal(head[:n], qcow2Magic) {
		return formatQCOW2, nil
	}
	return formatRaw, nil
}

// parseExpiry accepts a Go duration (72h, 90m) or whole days (3d) and gives the duration
// the server reads.
func parseExpiry(s string) (string, error) {
	s = strings.TrimSpace(s)
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n <= 0 || n > 3650 {
			return "", usageErrorf("--expires %q: give a duration such as 72h, 90m or 3d", s)
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return "", usageErrorf("--expires %q: give a duration such as 72h, 90m or 3d", s)
		}
	}
	if d <= 0 {
		return "", usageErrorf("--expires %q: the link must expire in the future", s)
	}
	return d.String(), nil
}

// ---- the server's objects ----

type regionStatus struct {
	Region   string `json:"region"`
	State    string `json:"state"`
	Details  string `json:"details,omitempty"`
	Progress int    `json:"progress"`
	Replicas int    `json:"replicas"`
}

type replicationStatus struct {
	AggregatedState string         `json:"aggregatedState"`
	Summary         []regionStatus `json:"summary"`
}

// imageVersion is the part of a version resource the commands read.
type imageVersion struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Location   string `json:"location"`
	Properties struct {
		ProvisioningState string `json:"provisioningState"`
		PublishingProfile struct {
			ExcludeFromLatest bool       `json:"excludeFromLatest"`
			EndOfLifeDate     *time.Time `json:"endOfLifeDate"`
			PublishedDate     *time.Time `json:"publishedDate"`
		} `json:"publishingProfile"`
		StorageProfile struct {
			OSDiskImage *struct {
				SHA256      string `json:"sha256"`
				SizeInBytes int64  `json:"sizeInBytes"`
				Format      string `json:"format"`
			} `json:"osDiskImage"`
		} `json:"storageProfile"`
		ReplicationStatus *replicationStatus `json:"replicationStatus"`
		Lifecycle         *struct {
			State  string    `json:"state"`
			Since  time.Time `json:"since"`
			Reason string    `json:"reason"`
		} `json:"lifecycle"`
	} `json:"properties"`
}

func decodeVersion(raw []byte) (*imageVersion, error) {
	var v imageVersion
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, fmt.Errorf("the server's answer is not an image version: %w", err)
	}
	return &v, nil
}

func (v *imageVersion) lifecycleState() string {
	if v.Properties.Lifecycle == nil {
		return ""
	}
	return v.Properties.Lifecycle.State
}

// resolved is the answer of {definition}/resolve.
type resolved struct {
	ID             string `json:"id"`
	Version        string `json:"version"`
	SHA256         string `json:"sha256"`
	SizeInBytes    int64  `json:"sizeInBytes"`
	Format         string `json:"format"`
	Region         string `json:"region"`
	LifecycleState string `json:"lifecycleState"`
}

// formatReplication is "local:Completed west:Replicating 42%": each region's state, with
// its progress while it replicates.
func formatReplication(r *replicationStatus) string {
	if r == nil || len(r.Summary) == 0 {
		if r != nil && r.AggregatedState != "" {
			return r.AggregatedState
		}
		return "-"
	}
	parts := make([]string, len(r.Summary))
	for i, s := range r.Summary {
		parts[i] = s.Region + ":" + orDash(s.State)
		if s.State == replReplicating {
			parts[i] += fmt.Sprintf(" %d%%", s.Progress)
		}
	}
	return strings.Join(parts, " ")
}

// replicationFailure names the regions that failed, with the server's details.
func replicationFailure(id string, r *replicationStatus) error {
	var failed []string
	if r != nil {
		for _, s := range r.Summary {
			if s.State == replFailed {
				f := s.Region
				if s.Details != "" {
					f += " (" + s.Details + ")"
				}
				failed = append(failed, f)
			}
		}
	}
	if len(failed) == 0 {
		return fmt.Errorf("replication of %s failed", id)
	}
	return fmt.Errorf("replication of %s failed in %s", id, strings.Join(failed, ", "))
}

// formatDate shows a date without its time when it is midnight UTC.
func formatDate(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	u := t.UTC()
	if u.Hour() == 0 && u.Minute() == 0 && u.Second() == 0 && u.Nanosecond() == 0 {
		return u.Format("2006-01-02")
	}
	return u.Format(time.RFC3339)
}

func formatTimePtr(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return formatTime(*t)
}

// writeVersionTable shows a version as key/value rows, with one row per region.
func writeVersionTable(w io.Writer, v *imageVersion) error {
	t := newTable(w)
	t.row("id", v.ID)
	t.row("version", v.Name)
	t.row("provisioning", orDash(v.Properties.ProvisioningState))
	lc := "-"
	if l := v.Properties.Lifecycle; l != nil {
		lc = l.State
		if !l.Since.IsZero() {
			lc += " since " + formatTime(l.Since)
		}
		if l.Reason != "" {
			lc += " (" + l.Reason + ")"
		}
	}
	t.row("lifecycle", lc)
	if d := v.Properties.StorageProfile.OSDiskImage; d != nil {
		t.row("sha256", d.SHA256)
		t.row("size", fmt.Sprintf("%s (%d bytes)", formatBytes(d.SizeInBytes), d.SizeInBytes))
		t.row("format", orDash(d.Format))
	}
	pp := v.Properties.PublishingProfile
	t.row("published", formatTimePtr(pp.PublishedDate))
	t.row("endOfLife", formatDate(pp.EndOfLifeDate))
	t.row("excludeFromLatest", strconv.FormatBool(pp.ExcludeFromLatest))
	r := v.Properties.ReplicationStatus
	if r == nil {
		t.row("replication", "-")
	} else {
		t.row("replication", orDash(r.AggregatedState))
		for _, s := range r.Summary {
			line := fmt.Sprintf("%s %d%%, %d replica(s)", orDash(s.State), s.Progress, s.Replicas)
			if s.Details != "" {
				line += ": " + s.Details
			}
			t.row("  "+s.Region, line)
		}
	}
	return t.flush()
}

// ---- streaming requests ----

// stream sends one request whose body or answer may be a whole disk image, so it has no
// overall timeout (ctx bounds it) and neither body is held in memory. The caller closes the
// answer's body. An answer of 400 or more becomes an *APIError.
func (c *Client) stream(ctx context.Context, method, path string, query url.Values, header http.Header, body io.Reader, size int64) (*http.Response, error) {
	u := *c.base
	u.Path = c.base.Path + path
	q := url.Values{}
	for k, v := range query {
		q[k] = v
	}
	q.Set("api-version", api.Version)
	u.RawQuery = q.Encode()
	hr, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	for k, v := range header {
		hr.Header[k] = v
	}
	if body != nil {
		hr.ContentLength = size
		hr.Header.Set("Content-Type", "application/octet-stream")
	}
	hr.Header.Set("Authorization", "Bearer "+c.token)
	hr.Header.Set("User-Agent", "gild-cli/"+api.Version)
	hc := &http.Client{Transport: c.http.Transport}
	resp, err := hc.Do(hr)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("%s %s: cannot reach gild at %s: %w", method, path, c.base, err)
	}
	if resp.StatusCode >= 400 {
		defer resp.Body.Close()
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return nil, decodeError(resp.StatusCode, data)
	}
	return resp, nil
}

func isStatus(err error, status int) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status == status
}

// ---- the commands ----

func (a *app) imageCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "image",
		Short: "Publish, find and pull gallery image versions",
		Long: `image works with the versions of a gallery image definition: publish uploads a disk
file and creates a version of it, versions lists them, resolve finds which version
"latest" is, pull downloads one (resuming an interrupted download), share makes a
download link, verify checks every stored replica, delete removes a version.

An image definition is a resource of type Microsoft.Compute/galleries/images, such as
` + definitionExample + `; its versions are
{definition}/versions/Major.Minor.Patch.`,
	}
	cmd.AddCommand(
		a.imagePublishCommand(),
		a.imageVersionsCommand(),
		a.imageResolveCommand(),
		a.imagePullCommand(),
		a.imageShareCommand(),
		a.imageVerifyCommand(),
		a.imageDeleteCommand(),
		a.imageBuildCommand(),
		a.imageRunsCommand(),
		a.imageLogsCommand(),
		a.imageCancelCommand(),
		a.imageScheduleCommand(),
	)
	return cmd
}

// publishFlags are image publish's flags.
type publishFlags struct {
	definition, version, file   string
	targetRegions               []string
	replicaCount                int
	excludeFromLatest           bool
	endOfLife, format, sourceID string
	wait                        bool
	waitTimeout                 time.Duration
}

// publishPlan is what the flags ask for, checked.
type publishPlan struct {
	definition string
	versionID  string
	file       string
	size       int64
	format     string
	targets    []targetRegion // empty: the definition's location, with replicaCount
	endOfLife  *time.Time
	warnings   []string
}

// check validates every flag without the network and reports every problem at once.
func (f *publishFlags) check() (*publishPlan, error) {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	p := &publishPlan{}

	if f.definition == "" {
		add("--definition is required: the image definition's ID, such as %s", definitionExample)
	} else if _, err := parseDefinitionID("--definition", f.definition); err != nil {
		add("%s", err)
	} else {
		p.definition = strings.TrimSuffix(f.definition, "/")
	}
	if f.version == "" {
		add("--version is required: the new version's number, Major.Minor.Patch such as 1.4.0")
	} else if _, ok := parseSemver(f.version); !ok {
		add("--version %q is not Major.Minor.Patch (three whole numbers, such as 1.4.0)", f.version)
	}
	if p.definition != "" && len(problems) == 0 {
		p.versionID = p.definition + "/versions/" + f.version
	}
	seen := map[string]bool{}
	for _, s := range f.targetRegions {
		t, err := parseTargetRegion(s)
		if err != nil {
			add("%s", err)
			continue
		}
		if seen[t.Name] {
			add("--target-region %s is given twice", t.Name)
			continue
		}
		seen[t.Name] = true
		p.targets = append(p.targets, t)
	}
	if f.replicaCount < 1 || f.replicaCount > maxReplicas {
		add("--replica-count %d: it must be from 1 to %d", f.replicaCount, maxReplicas)
	}
	if f.endOfLife != "" {
		t, err := parseDate(f.endOfLife)
		if err != nil {
			add("--end-of-life %s", err)
		} else {
			p.endOfLife = &t
		}
	}
	if f.sourceID != "" {
		if _, err := parseVersionID("--source", f.sourceID); err != nil {
			add("%s", err)
		}
	}
	if f.wait && f.waitTimeout <= 0 {
		add("--wait-timeout must be positive, not %s", f.waitTimeout)
	}
	format := strings.ToLower(f.format)
	if format != "" && format != formatQCOW2 && format != formatRaw {
		add("--format %q: use qcow2 or raw (or leave it out to guess from the file)", f.format)
	}
	if f.file == "" {
		add("--file is required: the disk image to publish (qcow2 or raw)")
	} else if fi, err := os.Stat(f.file); err != nil {
		add("--file: %s", describeFileError(err))
	} else if !fi.Mode().IsRegular() {
		add("--file %s is not a regular file", f.file)
	} else if fi.Size() == 0 {
		add("--file %s is empty", f.file)
	} else {
		p.file, p.size = f.file, fi.Size()
		guessed, err := guessFileFormat(f.file)
		switch {
		case err != nil:
			add("--file: %s", describeFileError(err))
		case format == "":
			p.format = guessed
		case format == formatQCOW2 && guessed != formatQCOW2:
			add("--format qcow2, but %s does not start with the qcow2 magic (QFI\\xfb): it is not a qcow2 image", f.file)
		case format == formatRaw && guessed == formatQCOW2:
			p.format = format
			p.warnings = append(p.warnings, fmt.Sprintf("--format raw, but %s starts with the qcow2 magic; publishing it as raw as asked", f.file))
		default:
			p.format = format
		}
	}
	switch len(problems) {
	case 0:
		return p, nil
	case 1:
		return nil, usageErrorf("%s", problems[0])
	}
	return nil, usageErrorf("%d problems with the flags:\n  - %s", len(problems), strings.Join(problems, "\n  - "))
}

func describeFileError(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) && errors.Is(err, fs.ErrNotExist) {
		return pe.Path + " does not exist"
	}
	return err.Error()
}

func guessFileFormat(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	return guessFormat(f)
}

// hashFile is the SHA-256 and size of a file, with a progress display on w.
func hashFile(path string, w io.Writer) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", 0, err
	}
	h := sha256.New()
	p := newProgress(w, "Hashing "+filepath.Base(path), fi.Size(), 0)
	n, err := io.Copy(io.MultiWriter(h, p), f)
	if err != nil {
		p.Abort()
		return "", 0, fmt.Errorf("hash %s: %w", path, err)
	}
	p.Done()
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// versionBody is the JSON of a version as publish PUTs it.
type versionBody struct {
	Location   string `json:"location"`
	Properties struct {
		PublishingProfile struct {
			TargetRegions     []targetRegion `json:"targetRegions"`
			ReplicaCount      int            `json:"replicaCount"`
			ExcludeFromLatest bool           `json:"excludeFromLatest"`
			EndOfLifeDate     *time.Time     `json:"endOfLifeDate,omitempty"`
		} `json:"publishingProfile"`
		StorageProfile struct {
			OSDiskImage struct {
				SHA256      string `json:"sha256"`
				SizeInBytes int64  `json:"sizeInBytes"`
				Format      string `json:"format"`
			} `json:"osDiskImage"`
			Source *struct {
				ID string `json:"id"`
			} `json:"source,omitempty"`
		} `json:"storageProfile"`
	} `json:"properties"`
}

func (a *app) imagePublishCommand() *cobra.Command {
	var f publishFlags
	cmd := &cobra.Command{
		Use:   "publish --definition DEF-ID --version X.Y.Z --file DISK",
		Short: "Upload a disk image and publish it as a new version",
		Long: `publish hashes DISK, uploads it to the first target region unless that region already
holds the same bytes (then nothing is copied), and creates the version
{definition}/versions/X.Y.Z, which the server then replicates to every target region.

--target-region NAME=REPLICAS may be given several times; the first is where the bytes
go first. Without it the version goes to the definition's location with --replica-count
replicas. --format is guessed from the file (qcow2 when it starts with the qcow2 magic,
raw otherwise). With --wait, publish follows replication until every region is done,
and fails if a region fails.`,
		Example: `  gild image publish --definition /subscriptions/payments/resourceGroups/images/providers/Microsoft.Compute/galleries/golden/images/debian-12 \
      --version 1.4.0 --file debian-12.qcow2 --wait
  gild image publish --definition $DEF --version 1.5.0 --file disk.raw --format raw \
      --target-region local=2 --target-region west=1 --exclude-from-latest --end-of-life 2027-01-01`,
		Args: a.exactArgs(0, "no arguments (use --definition, --version and --file)"),
	}
	fl := cmd.Flags()
	fl.StringVar(&f.definition, "definition", "", "the image definition's ID (required)")
	fl.StringVar(&f.version, "version", "", "the new version, Major.Minor.Patch (required)")
	fl.StringVarP(&f.file, "file", "f", "", "the disk image file to publish (required)")
	fl.StringArrayVar(&f.targetRegions, "target-region", nil, "NAME=REPLICAS: a region to replicate to, the first first (repeatable; default: the definition's location)")
	fl.IntVar(&f.replicaCount, "replica-count", 1, "replicas per region when --target-region gives none")
	fl.BoolVar(&f.excludeFromLatest, "exclude-from-latest", false, "keep this version out of 'latest'")
	fl.StringVar(&f.endOfLife, "end-of-life", "", "end-of-life date: YYYY-MM-DD or an RFC 3339 time")
	fl.StringVar(&f.format, "format", "", "qcow2 or raw (default: guess from the file)")
	fl.StringVar(&f.sourceID, "source", "", "the image version this one was built from")
	fl.BoolVar(&f.wait, "wait", false, "wait until every target region has the version")
	fl.DurationVar(&f.waitTimeout, "wait-timeout", time.Hour, "give up waiting after this long (with --wait)")
	cmd.RunE = a.run(func(cmd *cobra.Command, _ []string) error {
		plan, err := f.check()
		if err != nil {
			return err
		}
		for _, w := range plan.warnings {
			fmt.Fprintf(a.env.Stderr, "warning: %s\n", w)
		}
		ctx := cmd.Context()
		c, err := a.client()
		if err != nil {
			return err
		}
		// The definition first: a wrong ID should fail before a long hash.
		var def resourceView
		if _, err := c.getJSON(ctx, plan.definition, nil, &def); err != nil {
			return fmt.Errorf("image definition: %w", err)
		}
		targets := plan.targets
		if len(targets) == 0 {
			loc := strings.ToLower(def.Location)
			if loc == "" {
				return fmt.Errorf("the definition %s has no location; name the regions with --target-region NAME=REPLICAS", plan.definition)
			}
			targets = []targetRegion{{Name: loc, Replicas: f.replicaCount}}
		}
		first := targets[0].Name
		// Before a long hash: is every region there, and may this token upload?
		for _, t := range targets {
			if err := headArtifact(ctx, c, plan.definition, strings.Repeat("0", 64), t.Name); err != nil && !isStatus(err, http.StatusNotFound) {
				return err
			}
		}

		sum, size, err := hashFile(plan.file, a.env.Stderr)
		if err != nil {
			return err
		}
		fmt.Fprintf(a.env.Stderr, "%s: sha256:%s, %s, %s\n", plan.file, sum, formatBytes(size), plan.format)

		artifact := plan.definition + "/artifacts/" + sum
		switch err := headArtifact(ctx, c, plan.definition, sum, first); {
		case err == nil:
			fmt.Fprintf(a.env.Stderr, "Region %s already holds these bytes; no bytes were copied.\n", first)
		case isStatus(err, http.StatusNotFound):
			// Every target region is written in the same pass over the bytes; replication
			// then has only the extra replicas (and any region that failed) left to do.
			regions := make([]string, len(targets))
			for i, t := range targets {
				regions[i] = t.Name
			}
			if err := a.uploadArtifact(ctx, c, artifact, url.Values{"region": regions}, plan.file, sum, size, first); err != nil {
				return err
			}
		default:
			return err
		}

		var body versionBody
		body.Location = def.Location
		pp := &body.Properties.PublishingProfile
		pp.TargetRegions = targets
		pp.ReplicaCount = f.replicaCount
		pp.ExcludeFromLatest = f.excludeFromLatest
		pp.EndOfLifeDate = plan.endOfLife
		sp := &body.Properties.StorageProfile
		sp.OSDiskImage.SHA256 = sum
		sp.OSDiskImage.SizeInBytes = size
		sp.OSDiskImage.Format = plan.format
		if f.sourceID != "" {
			sp.Source = &struct {
				ID string `json:"id"`
			}{f.sourceID}
		}
		data, err := json.Marshal(body)
		if err != nil {
			return err
		}
		resp, err := c.do(ctx, request{Method: http.MethodPut, Path: plan.versionID, Body: data})
		if err != nil {
			return fmt.Errorf("create version %s: %w", f.version, err)
		}
		raw := resp.Body
		if f.wait {
			raw, err = a.followReplication(ctx, c, plan.versionID, f.waitTimeout)
			if raw == nil {
				return err
			}
			if err != nil {
				// Show where the version stands, then fail.
				_ = a.showVersion(raw, "")
				return err
			}
		}
		verb := "Updated"
		if resp.Status == http.StatusCreated {
			verb = "Published"
		}
		return a.showVersion(raw, verb)
	})
	return cmd
}

// headArtifact asks whether region holds the artifact sum of definition def: nil when it
// does, an *APIError with status 404 when it does not. A HEAD answer has no body to say why
// it was refused, so the likely causes are named here.
func headArtifact(ctx context.Context, c *Client, def, sum, region string) error {
	_, err := c.do(ctx, request{Method: http.MethodHead, Path: def + "/artifacts/" + sum, Query: url.Values{"region": {region}}})
	var ae *APIError
	if err == nil || !errors.As(err, &ae) || ae.Status == http.StatusNotFound {
		return err
	}
	switch ae.Status {
	case http.StatusBadRequest:
		return fmt.Errorf("--target-region %s: the server refused to look for artifacts there (400 Bad Request); is region %q configured on the server (gild serve --region)?", region, region)
	case http.StatusUnauthorized, http.StatusForbidden:
		return fmt.Errorf("the server refused to let this token upload to %s (%d %s): publishing needs a role such as Image Publisher or Contributor there", def, ae.Status, http.StatusText(ae.Status))
	}
	return fmt.Errorf("is the artifact in region %s: %w", region, err)
}

// uploadArtifact PUTs the file's bytes to the artifact in the query's region.
func (a *app) uploadArtifact(ctx context.Context, c *Client, artifact string, q url.Values, file, sum string, size int64, region string) error {
	fh, err := os.Open(file)
	if err != nil {
		return err
	}
	defer fh.Close()
	p := newProgress(a.env.Stderr, "Uploading to "+region, size, 0)
	resp, err := c.stream(ctx, http.MethodPut, artifact, q, nil, io.TeeReader(fh, p), size)
	if err != nil {
		p.Abort()
		if isStatus(err, http.StatusBadRequest) {
			return fmt.Errorf("upload %s: %w (did %s change since it was hashed?)", file, err, file)
		}
		return fmt.Errorf("upload %s: %w", file, err)
	}
	defer resp.Body.Close()
	p.Done()
	// 201 says bytes were written, 200 that every region already held them.
	var res struct {
		SHA256 string   `json:"sha256"`
		Stored []string `json:"stored"`
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return fmt.Errorf("upload %s: read response: %w", file, err)
	}
	if err := json.Unmarshal(data, &res); err != nil {
		return fmt.Errorf("upload %s: the server's answer is not an upload result: %w", file, err)
	}
	if !strings.EqualFold(strings.TrimPrefix(res.SHA256, "sha256:"), sum) {
		return fmt.Errorf("upload %s: the server stored sha256:%s, not sha256:%s", file, res.SHA256, sum)
	}
	if resp.StatusCode == http.StatusCreated && len(res.Stored) > 0 {
		fmt.Fprintf(a.env.Stderr, "Uploaded %s to %s %s.\n", formatBytes(size), plural(len(res.Stored), "region", "regions"), strings.Join(res.Stored, ", "))
	} else {
		fmt.Fprintf(a.env.Stderr, "Region %s already held these bytes; no bytes were copied.\n", region)
	}
	return nil
}

// showVersion prints a version resource: the server's JSON, or a table after a heading.
func (a *app) showVersion(raw []byte, verb string) error {
	if a.output == outputJSON {
		return writeRawJSON(a.env.Stdout, raw)
	}
	v, err := decodeVersion(raw)
	if err != nil {
		return err
	}
	if verb != "" {
		fmt.Fprintf(a.env.Stdout, "%s %s\n\n", verb, v.ID)
	}
	return writeVersionTable(a.env.Stdout, v)
}

// followReplication polls a version every pollInterval, showing each region's progress on
// stderr, until its replication is Completed. It returns the last version it read, and an
// error when replication failed, the time ran out or the version could not be read.
func (a *app) followReplication(ctx context.Context, c *Client, versionID string, timeout time.Duration) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tty := isTerminal(a.env.Stderr)
	last := ""
	endLine := func() {
		if tty && last != "" {
			fmt.Fprintln(a.env.Stderr)
		}
	}
	var raw []byte
	for {
		resp, err := c.do(ctx, request{Method: http.MethodGet, Path: versionID})
		if err != nil {
			endLine()
			if ctx.Err() != nil && raw != nil {
				return raw, fmt.Errorf("replication of %s is not done after %s (see above); gild image versions shows how it goes on", versionID, timeout)
			}
			return raw, fmt.Errorf("follow replication: %w", err)
		}
		raw = resp.Body
		v, err := decodeVersion(raw)
		if err != nil {
			endLine()
			return nil, err
		}
		r := v.Properties.ReplicationStatus
		state := ""
		if r != nil {
			state = r.AggregatedState
		}
		line := "Replication " + orDash(state) + ": " + formatReplication(r)
		if line != last {
			if tty {
				fmt.Fprintf(a.env.Stderr, "\r%s\x1b[K", line)
			} else {
				fmt.Fprintln(a.env.Stderr, line)
			}
			last = line
		}
		switch state {
		case replCompleted:
			endLine()
			return raw, nil
		case replFailed:
			endLine()
			return raw, replicationFailure(versionID, r)
		}
		select {
		case <-ctx.Done():
			endLine()
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return raw, fmt.Errorf("replication of %s is not done after %s (%s); gild image versions shows how it goes on", versionID, timeout, formatReplication(r))
			}
			return raw, ctx.Err()
		case <-time.After(pollInterval):
		}
	}
}

func (a *app) imageVersionsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "versions DEF-ID",
		Short: "List an image definition's versions, newest first",
		Long: `versions lists every version of an image definition, newest version number first,
with its lifecycle state and replication per region. LATEST marks with * the version
that 'latest' resolves to in the server's home region.`,
		Example: "  gild image versions /subscriptions/payments/resourceGroups/images/providers/Microsoft.Compute/galleries/golden/images/debian-12",
		Args:    a.exactArgs(1, "one image definition ID"),
	}
	cmd.RunE = a.run(func(cmd *cobra.Command, args []string) error {
		if _, err := parseDefinitionID("image definition", args[0]); err != nil {
			return err
		}
		def := strings.TrimSuffix(args[0], "/")
		c, err := a.client()
		if err != nil {
			return err
		}
		page, err := c.list(cmd.Context(), def+"/versions", nil, true)
		if err != nil {
			return err
		}
		versions := make([]*imageVersion, len(page.Value))
		for i, raw := range page.Value {
			if versions[i], err = decodeVersion(raw); err != nil {
				return err
			}
		}
		order := sortVersions(versions)
		sorted := make([]json.RawMessage, len(order))
		for i, j := range order {
			sorted[i] = page.Value[j]
		}
		latest := ""
		resp, err := c.do(cmd.Context(), request{Method: http.MethodPost, Path: def + "/resolve", Query: url.Values{"version": {"latest"}}})
		var ae *APIError
		switch {
		case err == nil:
			var r resolved
			if json.Unmarshal(resp.Body, &r) == nil {
				latest = r.ID
			}
		case errors.As(err, &ae) && ae.Status != http.StatusUnauthorized && ae.Status != http.StatusForbidden:
			// No version qualifies as latest: nothing is marked.
		default:
			return fmt.Errorf("resolve latest: %w", err)
		}
		if a.output == outputJSON {
			return writeJSON(a.env.Stdout, struct {
				Value  []json.RawMessage `json:"value"`
				Latest string            `json:"latest,omitempty"`
			}{sorted, latest})
		}
		t := newTable(a.env.Stdout, "VERSION", "PROVISIONING", "LIFECYCLE", "LATEST", "PUBLISHED", "END OF LIFE", "REPLICATION")
		for _, j := range order {
			v := versions[j]
			mark := ""
			if latest != "" && strings.EqualFold(v.ID, latest) {
				mark = "*"
			}
			pp := v.Properties.PublishingProfile
			t.row(v.Name, orDash(v.Properties.ProvisioningState), orDash(v.lifecycleState()), mark,
				formatTimePtr(pp.PublishedDate), formatDate(pp.EndOfLifeDate), formatReplication(v.Properties.ReplicationStatus))
		}
		return t.flush()
	})
	return cmd
}

// sortVersions gives the order of vs by version number, newest first; names that are not
// version numbers come last, by name.
func sortVersions(vs []*imageVersion) []int {
	order := make([]int, len(vs))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(i, j int) bool {
		a, b := vs[order[i]].Name, vs[order[j]].Name
		va, oka := parseSemver(a)
		vb, okb := parseSemver(b)
		switch {
		case oka && okb:
			return va.compare(vb) > 0
		case oka != okb:
			return oka
		}
		return a < b
	})
	return order
}

// resolve asks the server which version ref names, and where it is.
func resolve(ctx context.Context, c *Client, ref imageRef, region string) (*resolved, []byte, error) {
	q := url.Values{"version": {ref.Version}}
	if region != "" {
		q.Set("region", region)
	}
	resp, err := c.do(ctx, request{Method: http.MethodPost, Path: strings.TrimSuffix(ref.Definition, "/") + "/resolve", Query: q})
	if err != nil {
		return nil, nil, fmt.Errorf("resolve %s@%s: %w", ref.Definition, ref.Version, err)
	}
	var r resolved
	if err := json.Unmarshal(resp.Body, &r); err != nil || r.ID == "" {
		return nil, nil, fmt.Errorf("resolve %s@%s: the server's answer is not a resolved version", ref.Definition, ref.Version)
	}
	return &r, resp.Body, nil
}

func (a *app) imageResolveCommand() *cobra.Command {
	var region string
	cmd := &cobra.Command{
		Use:   "resolve DEF-ID[@latest|@X.Y.Z]",
		Short: "Find which version 'latest' (or a number) is, and its SHA-256",
		Long: `resolve asks the server which version of an image definition is meant: @latest (the
default) is the newest version not excluded from latest and not past its end of life that
the region holds; @X.Y.Z is that version. It prints the version's ID and SHA-256.`,
		Example: `  gild image resolve $DEF@latest
  gild image resolve $DEF@1.4.0 --region west -o json`,
		Args: a.exactArgs(1, "one image, DEF-ID[@latest|@X.Y.Z]"),
	}
	cmd.Flags().StringVar(&region, "region", "", "the region to resolve in (default: the server's home region)")
	cmd.RunE = a.run(func(cmd *cobra.Command, args []string) error {
		ref, err := parseImageRef(args[0], false)
		if err != nil {
			return err
		}
		c, err := a.client()
		if err != nil {
			return err
		}
		r, raw, err := resolve(cmd.Context(), c, ref, region)
		if err != nil {
			return err
		}
		if a.output == outputJSON {
			return writeRawJSON(a.env.Stdout, raw)
		}
		t := newTable(a.env.Stdout, "ID", "SHA256")
		t.row(r.ID, r.SHA256)
		return t.flush()
	})
	return cmd
}

func (a *app) imagePullCommand() *cobra.Command {
	var region, file string
	cmd := &cobra.Command{
		Use:   "pull DEF-ID[@latest|@X.Y.Z] | VERSION-ID -o FILE",
		Short: "Download a version's disk image, resuming an interrupted download",
		Long: `pull downloads a version's disk image to FILE. A definition with @latest (the default)
or @X.Y.Z is resolved first. The bytes go to FILE.part; if that exists from an
interrupted pull of the same artifact, the download resumes where it stopped. Every byte
is checked against the version's SHA-256, and FILE appears (replacing any FILE there)
only when they match; a mismatch deletes FILE.part and fails.

The file to write is --file FILE, or -o FILE: here -o (--output) names the file unless it
is table or json, the output formats every command takes.`,
		Example: `  gild image pull $DEF@latest -o debian-12.qcow2
  gild image pull $DEF/versions/1.4.0 --region west --file debian-12-1.4.0.qcow2 -o json`,
		Args: a.exactArgs(1, "one image, DEF-ID[@latest|@X.Y.Z] or a version ID"),
		// This replaces the root's check of --output for pull alone.
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			a.cmd = cmd
			switch {
			case a.output == outputTable || a.output == outputJSON:
			case a.output == "":
				return usageErrorf("-o needs a file name (or table or json)")
			case file != "":
				return usageErrorf("invalid --output %q: use table or json (the file to write is already --file %s)", a.output, file)
			default:
				file, a.output = a.output, outputTable
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&region, "region", "", "the region to download from (default: where the server resolves it)")
	cmd.Flags().StringVarP(&file, "file", "f", "", "the file to write (required, unless -o FILE gives it)")
	cmd.RunE = a.run(func(cmd *cobra.Command, args []string) error {
		ref, err := parseImageRef(args[0], true)
		var problems []string
		if err != nil {
			problems = append(problems, err.Error())
		}
		if file == "" {
			problems = append(problems, "the file to write is required: -o FILE or --file FILE")
		} else if fi, err := os.Stat(file); err == nil && fi.IsDir() {
			problems = append(problems, fmt.Sprintf("--file %s is a directory; name the file to write", file))
		}
		if len(problems) > 0 {
			return usageErrorf("%s", strings.Join(problems, "; "))
		}
		ctx := cmd.Context()
		c, err := a.client()
		if err != nil {
			return err
		}
		versionID, fromRegion := ref.VersionID, region
		var sum string
		var size int64
		if versionID == "" {
			r, _, err := resolve(ctx, c, ref, region)
			if err != nil {
				return err
			}
			versionID, sum, size = r.ID, r.SHA256, r.SizeInBytes
			if fromRegion == "" {
				fromRegion = r.Region
			}
			fmt.Fprintf(a.env.Stderr, "%s@%s is %s\n", ref.Definition, ref.Version, r.Version)
		} else {
			raw, err := c.getJSON(ctx, versionID, nil, nil)
			if err != nil {
				return err
			}
			v, err := decodeVersion(raw)
			if err != nil {
				return err
			}
			d := v.Properties.StorageProfile.OSDiskImage
			if d == nil || d.SHA256 == "" {
				return fmt.Errorf("version %s has no disk image", versionID)
			}
			sum, size = d.SHA256, d.SizeInBytes
		}
		q := url.Values{}
		if fromRegion != "" {
			q.Set("region", fromRegion)
		}
		res, err := download(ctx, c, versionID+"/content", q, file, sum, size, a.env.Stderr)
		if err != nil {
			return err
		}
		res.ID = versionID
		if a.output == outputJSON {
			return writeJSON(a.env.Stdout, res)
		}
		how := ""
		if res.ResumedFrom > 0 {
			how = fmt.Sprintf(", resumed at %s", formatBytes(res.ResumedFrom))
		}
		fmt.Fprintf(a.env.Stdout, "Pulled %s to %s (%s, sha256:%s%s)\n", versionID, file, formatBytes(res.SizeInBytes), res.SHA256, how)
		return nil
	})
	return cmd
}

// downloadResult is what pull did; its JSON is pull's -o json output.
type downloadResult struct {
	ID          string `json:"id"`
	File        string `json:"file"`
	SHA256      string `json:"sha256"`
	SizeInBytes int64  `json:"sizeInBytes"`
	// ResumedFrom is how many bytes an earlier, interrupted pull had already written.
	ResumedFrom int64  `json:"resumedFrom"`
	Region      string `json:"region,omitempty"`
	Replica     string `json:"replica,omitempty"`
}

// etagNames reports whether an ETag ("sha256:<hex>", quoted or not) names digest sum.
func etagNames(etag, sum string) bool {
	e := strings.TrimPrefix(strings.TrimSpace(etag), "W/")
	e = strings.Trim(e, `"`)
	e = strings.TrimPrefix(e, "sha256:")
	return strings.EqualFold(e, sum)
}

// contentRangeStart is the first byte of a "bytes START-END/TOTAL" Content-Range.
func contentRangeStart(s string) (int64, bool) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(s), "bytes ")
	if !ok {
		return 0, false
	}
	start, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(start, 10, 64)
	return n, err == nil
}

// download GETs the artifact at path into dest, by way of dest.part, whose ETag it keeps in
// dest.part.etag. A dest.part left by an interrupted download of the same artifact is
// resumed with a Range request; everything, the resumed part included, is hashed and
// compared with sum (size, when above zero, is checked too). dest appears only when the
// digest matches; a mismatch removes dest.part. An interrupted download keeps dest.part
// for the next try.
func download(ctx context.Context, c *Client, path string, query url.Values, dest, sum string, size int64, progressTo io.Writer) (*downloadResult, error) {
	sum = strings.ToLower(strings.TrimPrefix(sum, "sha256:"))
	part := dest + ".part"
	etagFile := part + ".etag"
	res := &downloadResult{File: dest, SHA256: sum, SizeInBytes: size}

	f, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("pull: %w", err)
	}
	keep := true // whether dest.part stays after a failure, for the next try
	defer func() {
		f.Close()
		if !keep {
			os.Remove(part)
			os.Remove(etagFile)
		}
	}()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("pull: %w", err)
	}
	offset := fi.Size()
	savedETag := ""
	if b, err := os.ReadFile(etagFile); err == nil {
		savedETag = strings.TrimSpace(string(b))
	}
	restart := func(why string) error {
		if why != "" {
			fmt.Fprintf(progressTo, "%s; starting over.\n", why)
		}
		offset = 0
		os.Remove(etagFile)
		savedETag = ""
		if err := f.Truncate(0); err != nil {
			return fmt.Errorf("pull: %w", err)
		}
		return nil
	}
	switch {
	case offset == 0:
	case size > 0 && offset > size:
		err = restart(fmt.Sprintf("%s is larger than the artifact", part))
	case savedETag != "" && !etagNames(savedETag, sum):
		err = restart(fmt.Sprintf("%s is part of another artifact (%s)", part, savedETag))
	}
	if err != nil {
		return nil, err
	}

	h := sha256.New()
	if offset > 0 {
		p := newProgress(progressTo, "Checking "+filepath.Base(part), offset, 0)
		if _, err := io.CopyN(io.MultiWriter(h, p), f, offset); err != nil {
			p.Abort()
			return nil, fmt.Errorf("pull: read %s: %w", part, err)
		}
		p.Done()
	}

	if size <= 0 || offset < size {
		for attempt := 0; ; attempt++ {
			header := http.Header{}
			if offset > 0 {
				header.Set("Range", fmt.Sprintf("bytes=%d-", offset))
				if savedETag != "" {
					header.Set("If-Range", savedETag)
				}
			}
			resp, err := c.stream(ctx, http.MethodGet, path, query, header, nil, 0)
			if offset > 0 && attempt == 0 && isStatus(err, http.StatusRequestedRangeNotSatisfiable) {
				h.Reset()
				if err := restart("the server cannot resume at byte " + strconv.FormatInt(offset, 10)); err != nil {
					return nil, err
				}
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("pull: %w", err)
			}
			err = func() error {
				defer resp.Body.Close()
				if got := resp.Header.Get("X-Gild-Sha256"); got != "" && !strings.EqualFold(strings.TrimPrefix(got, "sha256:"), sum) {
					keep = false
					return fmt.Errorf("pull: the server sent artifact sha256:%s, but the version's is sha256:%s", got, sum)
				}
				switch resp.StatusCode {
				case http.StatusPartialContent:
					start, ok := contentRangeStart(resp.Header.Get("Content-Range"))
					if !ok || start != offset {
						keep = false
						return fmt.Errorf("pull: asked to resume at byte %d, the server sent Content-Range %q", offset, resp.Header.Get("Content-Range"))
					}
					res.ResumedFrom = offset
				case http.StatusOK:
					if offset > 0 {
						h.Reset()
						if err := restart("the server sent the whole artifact instead of the rest"); err != nil {
							return err
						}
					}
				default:
					keep = false
					return fmt.Errorf("pull: the server answered %s", resp.Status)
				}
				res.Region = resp.Header.Get("X-Gild-Region")
				res.Replica = resp.Header.Get("X-Gild-Replica")
				if et := resp.Header.Get("ETag"); et != "" {
					if err := os.WriteFile(etagFile, []byte(et+"\n"), 0o644); err != nil {
						return fmt.Errorf("pull: %w", err)
					}
				}
				if _, err := f.Seek(offset, io.SeekStart); err != nil {
					return fmt.Errorf("pull: %w", err)
				}
				total := size
				if total <= 0 && resp.ContentLength >= 0 {
					total = offset + resp.ContentLength
				}
				label := "Downloading"
				if res.Region != "" {
					label += " from " + res.Region
				}
				p := newProgress(progressTo, label, total, offset)
				n, err := io.Copy(io.MultiWriter(f, h, p), resp.Body)
				offset += n
				if err != nil {
					p.Abort()
					if ctx.Err() != nil {
						err = ctx.Err()
					}
					return fmt.Errorf("pull: the download stopped after %s: %w; run the same command again to resume from %s", formatBytes(offset), err, part)
				}
				p.Done()
				return nil
			}()
			if err != nil {
				return nil, err
			}
			break
		}
	}

	got := hex.EncodeToString(h.Sum(nil))
	if got != sum || (size > 0 && offset != size) {
		keep = false
		return nil, fmt.Errorf("pull: the downloaded bytes (%d, sha256:%s) do not match the version's artifact (%d, sha256:%s); deleted %s, nothing was written to %s", offset, got, size, sum, part, dest)
	}
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("pull: %w", err)
	}
	if err := os.Rename(part, dest); err != nil {
		return nil, fmt.Errorf("pull: %w", err)
	}
	os.Remove(etagFile)
	res.SizeInBytes = offset
	return res, nil
}

func (a *app) imageShareCommand() *cobra.Command {
	var expires, region string
	cmd := &cobra.Command{
		Use:   "share VERSION-ID [--expires 72h]",
		Short: "Make a download link for a version that needs no token",
		Long: `share makes a URL anyone can download the version's disk image from, without a
token, until it expires.`,
		Example: "  gild image share $DEF/versions/1.4.0 --expires 24h",
		Args:    a.exactArgs(1, "one image version ID"),
	}
	cmd.Flags().StringVar(&expires, "expires", "72h", "how long the link works: a duration such as 72h, 90m or 3d")
	cmd.Flags().StringVar(&region, "region", "", "the region the link downloads from (default: the server's home region)")
	cmd.RunE = a.run(func(cmd *cobra.Command, args []string) error {
		if _, err := parseVersionID("image version", args[0]); err != nil {
			return err
		}
		exp, err := parseExpiry(expires)
		if err != nil {
			return err
		}
		c, err := a.client()
		if err != nil {
			return err
		}
		q := url.Values{"expires": {exp}}
		if region != "" {
			q.Set("region", region)
		}
		resp, err := c.do(cmd.Context(), request{Method: http.MethodPost, Path: args[0] + "/share", Query: q})
		if err != nil {
			return err
		}
		if a.output == outputJSON {
			return writeRawJSON(a.env.Stdout, resp.Body)
		}
		var s struct {
			URL       string `json:"url"`
			Region    string `json:"region"`
			ExpiresOn string `json:"expiresOn"`
		}
		if err := json.Unmarshal(resp.Body, &s); err != nil || s.URL == "" {
			return errors.New("share: the server's answer is not a share link")
		}
		t := newTable(a.env.Stdout)
		t.row("url", s.URL)
		t.row("expires", orDash(s.ExpiresOn))
		if s.Region != "" {
			t.row("region", s.Region)
		}
		return t.flush()
	})
	return cmd
}

// verifyReport is the answer of {version}/verify.
type verifyReport struct {
	VersionID string `json:"versionId"`
	SHA256    string `json:"sha256"`
	Replicas  []struct {
		Region  string          `json:"region"`
		Replica json.RawMessage `json:"replica"`
		Status  string          `json:"status"`
		Detail  string          `json:"detail"`
	} `json:"replicas"`
	Repairing bool `json:"repairing"`
}

// bad is how many replicas are not ok.
func (r *verifyReport) bad() int {
	n := 0
	for _, x := range r.Replicas {
		if x.Status != "ok" {
			n++
		}
	}
	return n
}

func scalar(raw json.RawMessage) string {
	s := strings.TrimSpace(string(raw))
	if u, err := strconv.Unquote(s); err == nil {
		return u
	}
	if s == "" || s == "null" {
		return "-"
	}
	return s
}

func (a *app) verify(ctx context.Context, c *Client, id string) (*verifyReport, []byte, error) {
	resp, err := c.do(ctx, request{Method: http.MethodPost, Path: id + "/verify"})
	if err != nil {
		return nil, nil, err
	}
	var r verifyReport
	if err := json.Unmarshal(resp.Body, &r); err != nil {
		return nil, nil, fmt.Errorf("verify: the server's answer is not a verification report: %w", err)
	}
	return &r, resp.Body, nil
}

func (a *app) showVerifyReport(r *verifyReport, raw []byte) error {
	if a.output == outputJSON {
		return writeRawJSON(a.env.Stdout, raw)
	}
	fmt.Fprintf(a.env.Stdout, "Verified %s (sha256:%s): %d of %d replicas ok", r.VersionID, r.SHA256, len(r.Replicas)-r.bad(), len(r.Replicas))
	if r.Repairing {
		fmt.Fprint(a.env.Stdout, ", repairing")
	}
	fmt.Fprint(a.env.Stdout, "\n\n")
	t := newTable(a.env.Stdout, "REGION", "REPLICA", "STATUS", "DETAIL")
	for _, x := range r.Replicas {
		t.row(x.Region, scalar(x.Replica), x.Status, orDash(x.Detail))
	}
	return t.flush()
}

func (a *app) imageVerifyCommand() *cobra.Command {
	var wait bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "verify VERSION-ID [--wait]",
		Short: "Read back every replica of a version and check its SHA-256",
		Long: `verify has the server read every stored replica of the version and compare it with the
version's SHA-256; a missing or corrupt replica is repaired from a good one. It fails
(exit 1) when a replica is not ok, unless --wait waits for the repair to complete and a
second verification finds every replica ok.`,
		Example: "  gild image verify $DEF/versions/1.4.0 --wait",
		Args:    a.exactArgs(1, "one image version ID"),
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "after a repair starts, wait until replication is Completed again")
	cmd.Flags().DurationVar(&timeout, "wait-timeout", time.Hour, "give up waiting after this long (with --wait)")
	cmd.RunE = a.run(func(cmd *cobra.Command, args []string) error {
		if _, err := parseVersionID("image version", args[0]); err != nil {
			return err
		}
		if wait && timeout <= 0 {
			return usageErrorf("--wait-timeout must be positive, not %s", timeout)
		}
		ctx := cmd.Context()
		c, err := a.client()
		if err != nil {
			return err
		}
		r, raw, err := a.verify(ctx, c, args[0])
		if err != nil {
			return err
		}
		if err := a.showVerifyReport(r, raw); err != nil {
			return err
		}
		bad := r.bad()
		switch {
		case bad == 0 && !r.Repairing:
			return nil
		case !wait && r.Repairing:
			return fmt.Errorf("%d of %d replicas of %s are not ok; a repair has started (run with --wait to wait for it)", bad, len(r.Replicas), args[0])
		case !wait || !r.Repairing:
			return fmt.Errorf("%d of %d replicas of %s are not ok", bad, len(r.Replicas), args[0])
		}
		// Wait for the repair, then check again. A server that reports the repair a moment
		// late can show Completed before it starts, so a second verification that finds
		// a repair still under way waits once more, a few times at most.
		for round := 0; ; round++ {
			if _, err := a.followReplication(ctx, c, args[0], timeout); err != nil {
				return err
			}
			if r, raw, err = a.verify(ctx, c, args[0]); err != nil {
				return err
			}
			if r.bad() > 0 && r.Repairing && round < 3 {
				continue
			}
			break
		}
		if a.output == outputTable {
			fmt.Fprintln(a.env.Stdout)
		}
		if err := a.showVerifyReport(r, raw); err != nil {
			return err
		}
		if n := r.bad(); n > 0 {
			return fmt.Errorf("after the repair, %d of %d replicas of %s are still not ok", n, len(r.Replicas), args[0])
		}
		return nil
	})
	return cmd
}

func (a *app) imageDeleteCommand() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "delete VERSION-ID [--force]",
		Short: "Delete an image version",
		Long: `delete removes an image version and, once nothing else refers to them, its stored
bytes. A version that VMs still use is refused unless --force is given.`,
		Example: "  gild image delete $DEF/versions/1.0.0",
		Args:    a.exactArgs(1, "one image version ID"),
	}
	cmd.Flags().BoolVar(&force, "force", false, "delete even if VMs still use the version")
	cmd.RunE = a.run(func(cmd *cobra.Command, args []string) error {
		if _, err := parseVersionID("image version", args[0]); err != nil {
			return err
		}
		c, err := a.client()
		if err != nil {
			return err
		}
		var q url.Values
		if force {
			q = url.Values{"forceDeletion": {"true"}}
		}
		resp, err := c.do(cmd.Context(), request{Method: http.MethodDelete, Path: args[0], Query: q})
		if err != nil {
			return err
		}
		deleted := resp.Status != http.StatusNoContent
		if a.output == outputJSON {
			return writeJSON(a.env.Stdout, deleteResult{ID: args[0], Deleted: deleted})
		}
		if deleted {
			fmt.Fprintf(a.env.Stdout, "Deleted %s\n", args[0])
		} else {
			fmt.Fprintf(a.env.Stdout, "%s does not exist; nothing was deleted\n", args[0])
		}
		return nil
	})
	return cmd
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
