package gallery

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gildhq/gild/resource"
)

var t0 = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

// ver builds a published version fully replicated in the given regions.
func ver(v string, published time.Time, opts ...func(*VersionProperties)) Entry {
	pv, err := ParseVersion(v)
	if err != nil {
		panic(err)
	}
	p := &VersionProperties{ProvisioningState: ProvisioningSucceeded}
	p.PublishingProfile.PublishedDate = &published
	p.PublishingProfile.TargetRegions = []TargetRegion{{Name: "local", RegionalReplicaCount: 1}}
	p.ReplicationStatus = &ReplicationStatus{AggregatedState: ReplicationCompleted, Summary: []RegionStatus{{Region: "local", State: ReplicationCompleted}}}
	p.StorageProfile.OSDiskImage = &DiskImage{SHA256: strings.Repeat("a", 64), SizeInBytes: 1}
	for _, o := range opts {
		o(p)
	}
	return Entry{ID: "/v/" + v, Version: pv, Props: p}
}

func excluded(p *VersionProperties) { p.PublishingProfile.ExcludeFromLatest = true }

func eol(at time.Time) func(*VersionProperties) {
	return func(p *VersionProperties) { p.PublishingProfile.EndOfLifeDate = &at }
}

func inRegion(name, state string, exclude *bool) func(*VersionProperties) {
	return func(p *VersionProperties) {
		p.PublishingProfile.TargetRegions = append(p.PublishingProfile.TargetRegions, TargetRegion{Name: name, RegionalReplicaCount: 1, ExcludeFromLatest: exclude})
		p.ReplicationStatus.Summary = append(p.ReplicationStatus.Summary, RegionStatus{Region: name, State: state})
	}
}

func TestParseVersion(t *testing.T) {
	for _, bad := range []string{"", "1", "1.0", "1.0.0.0", "v1.0.0", "1.-1.0", "1.0.x", "1234567890.0.0"} {
		if _, err := ParseVersion(bad); err == nil {
			t.Errorf("ParseVersion(%q) succeeded", bad)
		}
	}
	order := []string{"0.0.1", "0.1.0", "0.10.0", "1.0.0", "1.0.10", "1.2.0", "10.0.0"}
	for i := 1; i < len(order); i++ {
		a, _ := ParseVersion(order[i-1])
		b, _ := ParseVersion(order[i])
		if a.Compare(b) >= 0 || b.Compare(a) <= 0 {
			t.Errorf("%s should sort before %s", a, b)
		}
	}
}

func TestStates(t *testing.T) {
	retain := func(n int) *int { return &n }
	now := t0.Add(100 * day)
	tests := []struct {
		name string
		def  *DefinitionProperties
		vers []Entry
		want map[string]string
	}{
		{
			name: "a newer version offered as latest ages the older ones; a preview does not",
			vers: []Entry{ver("1.0.0", t0), ver("1.1.0", t0.Add(day), excluded), ver("1.0.1", t0.Add(2*day))},
			want: map[string]string{"1.0.0": StateAged, "1.1.0": StateActive, "1.0.1": StateActive},
		},
		{
			name: "end-of-life date reached",
			vers: []Entry{ver("1.0.0", t0, eol(now)), ver("1.0.1", t0, eol(now.Add(time.Second)))},
			want: map[string]string{"1.0.0": StateEndOfLife, "1.0.1": StateActive},
		},
		{
			name: "an end-of-life version does not age older ones",
			vers: []Entry{ver("1.0.0", t0), ver("2.0.0", t0, eol(t0))},
			want: map[string]string{"1.0.0": StateActive, "2.0.0": StateEndOfLife},
		},
		{
			name: "the definition's end of life ends every version without its own date",
			def:  &DefinitionProperties{EndOfLifeDate: &t0},
			vers: []Entry{ver("1.0.0", t0), ver("1.0.1", t0, eol(now.Add(day)))},
			want: map[string]string{"1.0.0": StateEndOfLife, "1.0.1": StateActive},
		},
		{
			name: "deprecated by age, keeping the newest one",
			def:  &DefinitionProperties{LifecyclePolicy: &LifecyclePolicy{DeprecateAfterDays: 30}},
			vers: []Entry{ver("1.0.0", t0), ver("1.0.1", t0.Add(80*day)), ver("1.0.2", t0.Add(10*day)), ver("1.0.3", t0.Add(90*day))},
			want: map[string]string{"1.0.3": StateActive, "1.0.2": StateDeprecated, "1.0.1": StateAged, "1.0.0": StateDeprecated},
		},
		{
			name: "retainAtLeast keeps old versions undeprecated",
			def:  &DefinitionProperties{LifecyclePolicy: &LifecyclePolicy{DeprecateAfterDays: 30, RetainAtLeast: retain(3)}},
			vers: []Entry{ver("1.0.0", t0), ver("1.0.1", t0), ver("1.0.2", t0), ver("1.0.3", t0)},
			want: map[string]string{"1.0.3": StateActive, "1.0.2": StateAged, "1.0.1": StateAged, "1.0.0": StateDeprecated},
		},
		{
			name: "retainAtLeast 0 lets even the newest be deprecated",
			def:  &DefinitionProperties{LifecyclePolicy: &LifecyclePolicy{DeprecateAfterDays: 30, RetainAtLeast: retain(0)}},
			vers: []Entry{ver("1.0.0", t0)},
			want: map[string]string{"1.0.0": StateDeprecated},
		},
		{
			name: "beyond the newest K",
			def:  &DefinitionProperties{LifecyclePolicy: &LifecyclePolicy{KeepNewest: 2}},
			vers: []Entry{ver("1.0.0", now), ver("1.0.1", now), ver("1.0.2", now), ver("1.0.3", now, eol(t0))},
			want: map[string]string{"1.0.3": StateEndOfLife, "1.0.2": StateActive, "1.0.1": StateAged, "1.0.0": StateDeprecated},
		},
		{
			name: "end of life some days after publishing",
			def:  &DefinitionProperties{LifecyclePolicy: &LifecyclePolicy{EndOfLifeAfterDays: 60}},
			vers: []Entry{ver("1.0.0", t0), ver("1.0.1", now.Add(-59*day)), ver("1.0.2", t0, eol(now.Add(day)))},
			want: map[string]string{"1.0.0": StateEndOfLife, "1.0.1": StateAged, "1.0.2": StateActive},
		},
		{
			name: "a version still being created has no state",
			vers: []Entry{ver("1.0.0", t0, func(p *VersionProperties) { p.ProvisioningState = "Creating" })},
			want: map[string]string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := States(tt.def, tt.vers, now)
			if len(got) != len(tt.want) {
				t.Errorf("got %d states %v, want %d", len(got), got, len(tt.want))
			}
			for v, w := range tt.want {
				if got[v].State != w {
					t.Errorf("%s: got %q (%s), want %q", v, got[v].State, got[v].Reason, w)
				}
				if w != StateActive && got[v].Reason == "" {
					t.Errorf("%s: state %s has no reason", v, w)
				}
			}
		})
	}
}

func TestResolve(t *testing.T) {
	now := t0.Add(10 * day)
	yes, no := true, false
	tests := []struct {
		name, ref, region string
		def               *DefinitionProperties
		vers              []Entry
		want              string // version, or "error: <substring>"
	}{
		{name: "the issue's example", vers: []Entry{ver("1.0.0", t0), ver("1.1.0", t0, excluded), ver("1.0.1", t0)}, want: "1.0.1"},
		{name: "highest by number, not by date", vers: []Entry{ver("1.10.0", t0), ver("1.9.0", now)}, want: "1.10.0"},
		{name: "past end of life is never latest", vers: []Entry{ver("1.0.0", t0), ver("1.0.1", t0, eol(now))}, want: "1.0.0"},
		{name: "nothing qualifies", vers: []Entry{ver("1.0.0", t0, eol(t0)), ver("1.1.0", t0, excluded)},
			want: "error: 1.1.0 is excluded from latest; 1.0.0 is past its end of life"},
		{name: "no version", want: "error: no version is published"},
		{name: "not fully replicated in the region", region: "west",
			vers: []Entry{ver("1.0.0", t0, inRegion("west", ReplicationCompleted, nil)), ver("1.0.1", t0, inRegion("west", ReplicationReplicating, nil))}, want: "1.0.0"},
		{name: "the region's own exclusion wins", region: "west",
			vers: []Entry{ver("1.0.0", t0, inRegion("west", ReplicationCompleted, nil)), ver("1.0.1", t0, inRegion("west", ReplicationCompleted, &yes))}, want: "1.0.0"},
		{name: "the region's inclusion wins over the version's exclusion", region: "west",
			vers: []Entry{ver("1.0.0", t0, inRegion("west", ReplicationCompleted, nil)), ver("1.0.1", t0, excluded, inRegion("west", ReplicationCompleted, &no))}, want: "1.0.1"},
		{name: "elsewhere the version's exclusion holds", region: "local",
			vers: []Entry{ver("1.0.0", t0, inRegion("west", ReplicationCompleted, nil)), ver("1.0.1", t0, excluded, inRegion("west", ReplicationCompleted, &no))}, want: "1.0.0"},
		{name: "not in that region at all", region: "east", vers: []Entry{ver("1.0.0", t0)}, want: "error: not fully replicated in region east"},
		{name: "exact version", ref: "1.0.0", vers: []Entry{ver("1.0.0", t0), ver("1.0.1", t0)}, want: "1.0.0"},
		{name: "exact version past end of life still resolves", ref: "1.0.0", vers: []Entry{ver("1.0.0", t0, eol(t0))}, want: "1.0.0"},
		{name: "exact version missing", ref: "2.0.0", vers: []Entry{ver("1.0.0", t0)}, want: "error: does not exist"},
		{name: "exact version not in the region", ref: "1.0.0", region: "west", vers: []Entry{ver("1.0.0", t0)}, want: "error: not fully replicated in region west"},
		{name: "malformed", ref: "1.0", vers: []Entry{ver("1.0.0", t0)}, want: "error: not Major.Minor.Patch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := Resolve(tt.def, tt.vers, tt.ref, tt.region, now)
			if want, ok := strings.CutPrefix(tt.want, "error: "); ok {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("got %v, %v; want an error containing %q", e.Version, err, want)
				}
				return
			}
			if err != nil || e.Version.String() != tt.want {
				t.Fatalf("got %v, %v; want %s", e.Version, err, tt.want)
			}
		})
	}
}

func TestParseDefinitionReportsEveryProblem(t *testing.T) {
	_, err := ParseDefinition([]byte(`{"identifier":{"publisher":"","offer":"o k","sku":"s"},"osType":"Plan9","osState":"Generalized","releaseNoteUri":"ftp://x","recommended":{"vCPUs":{"min":4,"max":2}},"lifecyclePolicy":{"keepNewest":-1}}`))
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{"properties.identifier.publisher", "properties.identifier.offer", "properties.osType", "properties.releaseNoteUri", "properties.recommended.vCPUs", "properties.lifecyclePolicy.keepNewest"} {
		if !strings.Contains(errorText(err), want) {
			t.Errorf("the error does not name %s: %s", want, errorText(err))
		}
	}
	if _, err := ParseDefinition([]byte(`{"identifier":{"publisher":"p","offer":"o","sku":"s"},"osType":"linux","osState":"generalized","colour":"red"}`)); err == nil || !strings.Contains(err.Error(), "colour") {
		t.Errorf("an unknown field: got %v", err)
	}
	p, err := ParseDefinition([]byte(`{"identifier":{"publisher":"p","offer":"o","sku":"s"},"osType":"linux","osState":"generalized"}`))
	if err != nil || p.OSType != "Linux" || p.HyperVGeneration != "V2" || p.Architecture != "x64" {
		t.Errorf("defaults: got %+v, %v", p, err)
	}
}

func TestParseVersionPropertiesReportsEveryProblem(t *testing.T) {
	regions := func(n string) bool { return n == "local" || n == "west" }
	_, err := ParseVersionProperties([]byte(`{"publishingProfile":{"replicaCount":101,"targetRegions":[{"name":"mars"},{"name":"west","regionalReplicaCount":-1},{"name":"WEST"}]},"storageProfile":{"osDiskImage":{"sha256":"abc","sizeInBytes":0,"format":"vhd"}}}`), regions)
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{"replicaCount", "targetRegions[0].name", "targetRegions[1].regionalReplicaCount", "targetRegions[2].name", "osDiskImage.sha256", "osDiskImage.sizeInBytes", "osDiskImage.format"} {
		if !strings.Contains(errorText(err), want) {
			t.Errorf("the error does not name %s: %s", want, errorText(err))
		}
	}
}

// errorText is the error with every detail's target, as a client would see them.
func errorText(err error) string {
	var re *resource.Error
	if !errors.As(err, &re) {
		return err.Error()
	}
	out := re.Target + ": " + re.Message + "\n"
	for _, d := range re.Details {
		out += d.Target + ": " + d.Message + "\n"
	}
	return out
}
