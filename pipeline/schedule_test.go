package pipeline

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestCronNext(t *testing.T) {
	tests := []struct {
		name, expr, zone, after string
		want                    []string // the next fire times, in UTC
	}{
		{"the default: monthly on the 1st at 03:00", DefaultCron, "", "2026-01-15T10:00:00Z",
			[]string{"2026-02-01T03:00:00Z", "2026-03-01T03:00:00Z", "2026-04-01T03:00:00Z"}},
		{"strictly after: a fire time itself is not next", DefaultCron, "UTC", "2026-02-01T03:00:00Z",
			[]string{"2026-03-01T03:00:00Z"}},
		{"every minute", "* * * * *", "", "2026-05-17T10:00:30Z",
			[]string{"2026-05-17T10:01:00Z", "2026-05-17T10:02:00Z", "2026-05-17T10:03:00Z"}},
		{"in a zone: 03:00 in Berlin is 02:00 UTC in winter and 01:00 in summer", "0 3 * * *", "Europe/Berlin", "2026-03-27T12:00:00Z",
			[]string{"2026-03-28T02:00:00Z", "2026-03-29T01:00:00Z", "2026-03-30T01:00:00Z"}},
		{"Berlin springs forward: 02:30 does not exist on 29 March, and that day does not fire", "30 2 * * *", "Europe/Berlin", "2026-03-28T12:00:00Z",
			[]string{"2026-03-30T00:30:00Z"}},
		{"Berlin falls back: 02:30 comes twice on 25 October, and fires once", "30 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00Z",
			[]string{"2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"}},
		{"the repeated hour of an every-30-minutes cron fires once", "*/30 2 * * *", "Europe/Berlin", "2026-10-24T23:50:00Z",
			[]string{"2026-10-25T00:00:00Z", "2026-10-25T00:30:00Z", "2026-10-26T01:00:00Z"}},
		{"a descriptor", "@daily", "UTC", "2026-05-17T10:00:00Z", []string{"2026-05-18T00:00:00Z", "2026-05-19T00:00:00Z"}},
		{"@every keeps step with UTC midnight, not with when it was asked", "@every 6h", "", "2026-05-17T10:17:00Z",
			[]string{"2026-05-17T12:00:00Z", "2026-05-17T18:00:00Z", "2026-05-18T00:00:00Z"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseCron(tt.expr, tt.zone)
			if err != nil {
				t.Fatal(err)
			}
			at := utc(tt.after)
			for _, w := range tt.want {
				at = c.Next(at)
				if !at.Equal(utc(w)) {
					t.Fatalf("next %s, want %s", at.UTC().Format(time.RFC3339), w)
				}
			}
		})
	}
}

func TestCronLatest(t *testing.T) {
	now := utc("2026-05-17T10:00:30Z")
	tests := []struct {
		name, expr, zone, after string
		want                    string // "" for none
	}{
		{"monthly: the 1st of this month", DefaultCron, "", "2026-04-20T00:00:00Z", "2026-05-01T03:00:00Z"},
		{"monthly: nothing since the last fire", DefaultCron, "", "2026-05-01T03:00:00Z", ""},
		{"monthly, after long ago: the latest, not the first missed", DefaultCron, "", "1990-01-01T00:00:00Z", "2026-05-01T03:00:00Z"},
		{"every minute, after long ago", "* * * * *", "", "1990-01-01T00:00:00Z", "2026-05-17T10:00:00Z"},
		{"every minute: now itself counts when it is a fire time", "* * * * *", "", "2026-05-17T09:59:10Z", "2026-05-17T10:00:00Z"},
		{"yearly, the last fire within 400 days", "@yearly", "", "2020-01-01T00:00:00Z", "2026-01-01T00:00:00Z"},
		{"in Berlin: 03:00 CEST is 01:00 UTC", "0 3 * * *", "Europe/Berlin", "2026-05-10T00:00:00Z", "2026-05-17T01:00:00Z"},
		{"@every", "@every 6h", "", "2026-05-17T05:00:00Z", "2026-05-17T06:00:00Z"},
		{"@every, nothing since", "@every 6h", "", "2026-05-17T06:00:00Z", ""},
		{"after is not before now", "* * * * *", "", "2026-05-17T10:00:30Z", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseCron(tt.expr, tt.zone)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			got, ok := c.Latest(utc(tt.after), now)
			if took := time.Since(start); took > 100*time.Millisecond {
				t.Errorf("took %s", took)
			}
			switch {
			case tt.want == "" && ok:
				t.Fatalf("got %s, want none", got)
			case tt.want != "" && (!ok || !got.Equal(utc(tt.want))):
				t.Fatalf("got %s %v, want %s", got.UTC().Format(time.RFC3339), ok, tt.want)
			}
		})
	}
}

func TestParseCronErrors(t *testing.T) {
	tests := []struct{ expr, zone, want string }{
		{"", "", "a cron expression is required"},
		{"0 3 1 *", "", "expected exactly 5 fields"},
		{"61 3 1 * *", "", "above maximum"},
		{"0 0 30 2 *", "", "never fires"},
		{"@every 10s", "", "more often than once a minute"},
		{"@fortnightly", "", "not a cron expression"},
		{"CRON_TZ=Europe/Berlin 0 3 * * *", "", "give it in timeZone"},
		{"0 3 * * *", "Mars/Olympus", "not a known IANA time zone"},
		{"0 3 * * *", "Local", "depends on the server"},
	}
	for _, tt := range tests {
		if _, err := ParseCron(tt.expr, tt.zone); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseCron(%q, %q): %v, want %q", tt.expr, tt.zone, err, tt.want)
		}
	}
}

const urlSource = `"source": {"type": "Url", "url": "https://images.invalid/disk.qcow2", "checksum": "sha256:` +
	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" + `"}, "validate": {"sourceValidationOnly": true}`

func TestScheduleDefaultsAndErrors(t *testing.T) {
	p, err := ParseTemplate(json.RawMessage(`{` + urlSource + `, "schedule": {"baseImageTrigger": true}}`))
	if err != nil {
		t.Fatal(errorText(err))
	}
	want := Schedule{Cron: DefaultCron, TimeZone: "UTC", When: WhenAlways, BaseImageTrigger: true, BasePollMinutes: 60, MaxConsecutiveFailures: 3}
	if *p.Schedule != want {
		t.Fatalf("defaults: %+v", *p.Schedule)
	}
	if _, err := p.Schedule.Parsed(); err != nil {
		t.Fatal(err)
	}
	p, err = ParseTemplate(json.RawMessage(`{` + urlSource + `, "schedule": {"cron": "@weekly", "timeZone": "Europe/Berlin", "when": "Changed"}}`))
	if err != nil || p.Schedule.When != WhenChanged || p.Schedule.TimeZone != "Europe/Berlin" {
		t.Fatalf("%+v %v", p, err)
	}

	_, err = ParseTemplate(json.RawMessage(`{` + urlSource + `, "schedule": {"cron": "0 25 * * *", "timeZone": "Europe/Bonn",
		"when": "sometimes", "basePollMinutes": 2000, "maxConsecutiveFailures": -1}}`))
	if err == nil {
		t.Fatal("accepted")
	}
	text := errorText(err)
	for _, want := range []string{
		`properties.schedule.cron: "0 25 * * *" is not a cron expression`,
		`properties.schedule.timeZone: "Europe/Bonn" is not a known IANA time zone`,
		`properties.schedule.when: "sometimes" is not allowed; use always or changed`,
		"properties.schedule.basePollMinutes: must be between 1 and 1440 minutes, got 2000",
		"properties.schedule.maxConsecutiveFailures: must be between 1 and 100, got -1",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the error does not say %q:\n%s", want, text)
		}
	}
}

func TestDigestLeavesOutTheSchedule(t *testing.T) {
	a, err := ParseTemplate(json.RawMessage(`{` + urlSource + `}`))
	if err != nil {
		t.Fatal(errorText(err))
	}
	b, err := ParseTemplate(json.RawMessage(`{` + urlSource + `, "schedule": {"cron": "@daily", "when": "changed"}}`))
	if err != nil {
		t.Fatal(errorText(err))
	}
	b.ScheduleStatus = &ScheduleStatus{ConsecutiveFailures: 2}
	if Digest(a) != Digest(b) {
		t.Fatal("a schedule changed the digest")
	}
	b.BuildTimeoutInMinutes++
	if Digest(a) == Digest(b) {
		t.Fatal("the digest did not see a change to the build")
	}
}

func TestYAMLSchedule(t *testing.T) {
	y := `
source: {url: https://images.invalid/disk.qcow2, checksum: "sha256:` + strings.Repeat("b", 64) + `"}
validate: {sourceValidationOnly: true}
schedule:
  cron: "0 4 * * 1"
  timeZone: Europe/Berlin
  when: changed
  baseImageTrigger: true
  basePollMinutes: 30
  maxConsecutiveFailures: 5
  disabled: true
`
	doc, err := ParseYAML([]byte(y), nil)
	if err != nil {
		t.Fatal(errorText(err))
	}
	want := Schedule{Cron: "0 4 * * 1", TimeZone: "Europe/Berlin", When: WhenChanged, Disabled: true, BaseImageTrigger: true, BasePollMinutes: 30, MaxConsecutiveFailures: 5}
	if doc.Properties.Schedule == nil || *doc.Properties.Schedule != want {
		t.Fatalf("schedule: %+v", doc.Properties.Schedule)
	}
	_, err = ParseYAML([]byte(strings.Replace(y, `"0 4 * * 1"`, `"0 4 * *"`, 1)), nil)
	if err == nil || !strings.Contains(errorText(err), "schedule.cron:") || strings.Contains(errorText(err), "properties.") {
		t.Fatalf("a bad cron in YAML: %v", err)
	}
	if _, err := ParseYAML([]byte(y+"  every: 1\n"), nil); err == nil || !strings.Contains(err.Error(), "every") {
		t.Fatalf("an unknown schedule key: %v", err)
	}
}
