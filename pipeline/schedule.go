package pipeline

import (
	"errors"
	"fmt"
	"strings"
	"time"
	// A zone name is checked when a template is written; with the zone database built in,
	// whether Europe/Berlin is a zone does not depend on the server having tzdata.
	_ "time/tzdata"

	"github.com/robfig/cron/v3"
)

// Schedule defaults and limits.
const (
	// DefaultCron builds monthly, on the 1st at 03:00.
	DefaultCron                   = "0 3 1 * *"
	DefaultTimeZone               = "UTC"
	DefaultBasePollMinutes        = 60
	MaxBasePollMinutes            = 1440
	DefaultMaxConsecutiveFailures = 3
	MaxConsecutiveFailuresLimit   = 100
)

// When a schedule runs.
const (
	WhenAlways  = "always"  // every time the cron fires
	WhenChanged = "changed" // only when an input changed since the last successful run
)

// Schedule says when gild builds a template by itself. It is not part of what is built:
// changing it is not a template change (Digest leaves it out), and it may change while a
// run is going.
//
// There is always a cron: an empty Cron means DefaultCron, also when BaseImageTrigger is
// set, so a template with a base-image trigger is still rebuilt monthly even if its base
// never changes.
type Schedule struct {
	// Cron is a 5-field cron expression (minute hour day-of-month month day-of-week) or a
	// descriptor (@hourly, @daily, @weekly, @monthly, @yearly, @every DURATION).
	Cron string `json:"cron,omitempty" yaml:"cron"`
	// TimeZone is the IANA zone the cron's times are in.
	TimeZone string `json:"timeZone,omitempty" yaml:"timeZone"`
	// When is WhenAlways or WhenChanged.
	When     string `json:"when,omitempty" yaml:"when"`
	Disabled bool   `json:"disabled,omitempty" yaml:"disabled"`
	// BaseImageTrigger starts a run as soon as the source shows a newer base version,
	// polled every BasePollMinutes (1 to 1440).
	BaseImageTrigger bool `json:"baseImageTrigger,omitempty" yaml:"baseImageTrigger"`
	BasePollMinutes  int  `json:"basePollMinutes,omitempty" yaml:"basePollMinutes"`
	// MaxConsecutiveFailures disables the schedule after that many scheduled or triggered
	// runs fail in a row (1 to 100); a cancelled run does not count either way.
	MaxConsecutiveFailures int `json:"maxConsecutiveFailures,omitempty" yaml:"maxConsecutiveFailures"`
}

// ScheduleStatus is what gild keeps about a template's schedule; users cannot set it.
//
// LastScheduledTime and NextScheduledTime are cleared when a schedule is set, turned back
// on, or given another cron or zone, so that it counts from the moment it is next looked
// at, as a new schedule does, rather than fire for times before the change.
type ScheduleStatus struct {
	ConsecutiveFailures int `json:"consecutiveFailures"`
	// LastScheduledTime is the last cron time that fired.
	LastScheduledTime *time.Time `json:"lastScheduledTime,omitempty"`
	NextScheduledTime *time.Time `json:"nextScheduledTime,omitempty"`
	// LastBaseVersion is the base version the last poll saw (see Builder.BaseVersion).
	LastBaseVersion    string     `json:"lastBaseVersion,omitempty"`
	LastBaseCheckTime  *time.Time `json:"lastBaseCheckTime,omitempty"`
	LastBaseCheckError string     `json:"lastBaseCheckError,omitempty"`
	// LastInputs is the Inputs.Fingerprint of the last Succeeded run, whatever started it.
	LastInputs string `json:"lastInputs,omitempty"`
	// LastSkipTime and LastSkipReason: a "changed" schedule found nothing changed, or a
	// fire found the template still being built.
	LastSkipTime   *time.Time `json:"lastSkipTime,omitempty"`
	LastSkipReason string     `json:"lastSkipReason,omitempty"`
	// DisabledReason and DisabledTime say why and when gild disabled the schedule.
	DisabledReason string     `json:"disabledReason,omitempty"`
	DisabledTime   *time.Time `json:"disabledTime,omitempty"`
}

// Parsed is the schedule's cron in its zone, defaults applied.
func (s *Schedule) Parsed() (*Cron, error) {
	return ParseCron(orDefault(strings.TrimSpace(s.Cron), DefaultCron), s.TimeZone)
}

func (s *Schedule) check(f *fieldErrors) {
	const at = "properties.schedule"
	s.Cron = strings.TrimSpace(s.Cron)
	if s.Cron == "" {
		s.Cron = DefaultCron
	}
	if s.TimeZone == "" {
		s.TimeZone = DefaultTimeZone
	}
	loc, err := loadZone(s.TimeZone)
	if err != nil {
		f.add(at+".timeZone", "%v", err)
		loc = time.UTC // the cron is still checked, so both problems show at once
	}
	if _, err := parseCronIn(s.Cron, loc); err != nil {
		f.add(at+".cron", "%v", err)
	}
	switch w := strings.ToLower(s.When); w {
	case "":
		s.When = WhenAlways
	case WhenAlways, WhenChanged:
		s.When = w
	default:
		f.add(at+".when", "%q is not allowed; use always or changed", s.When)
	}
	switch {
	case s.BasePollMinutes == 0:
		s.BasePollMinutes = DefaultBasePollMinutes
	case s.BasePollMinutes < 1 || s.BasePollMinutes > MaxBasePollMinutes:
		f.add(at+".basePollMinutes", "must be between 1 and %d minutes, got %d", MaxBasePollMinutes, s.BasePollMinutes)
	}
	switch {
	case s.MaxConsecutiveFailures == 0:
		s.MaxConsecutiveFailures = DefaultMaxConsecutiveFailures
	case s.MaxConsecutiveFailures < 1 || s.MaxConsecutiveFailures > MaxConsecutiveFailuresLimit:
		f.add(at+".maxConsecutiveFailures", "must be between 1 and %d, got %d", MaxConsecutiveFailuresLimit, s.MaxConsecutiveFailures)
	}
}

// Cron is a parsed cron expression in a time zone.
type Cron struct {
	expr  string
	loc   *time.Location
	spec  *cron.SpecSchedule
	every time.Duration // @every: fires at the whole multiples of it (time.Truncate)
}

// ParseCron parses a standard 5-field cron expression or a descriptor (@hourly, @daily,
// @weekly, @monthly, @yearly, @every DURATION) in the IANA zone timeZone (empty: UTC).
//
// @every D fires at the whole multiples of D as time.Truncate counts them (for a D that
// divides a day: in step with UTC midnight), not D after some server started, so that
// every server computes the same times.
func ParseCron(expr, timeZone string) (*Cron, error) {
	loc, err := loadZone(timeZone)
	if err != nil {
		return nil, err
	}
	return parseCronIn(expr, loc)
}

func loadZone(name string) (*time.Location, error) {
	switch {
	case name == "" || name == "UTC":
		return time.UTC, nil
	case strings.EqualFold(name, "Local"):
		return nil, errors.New(`"Local" depends on the server's settings; name an IANA zone such as Europe/Berlin, or UTC`)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("%q is not a known IANA time zone (such as Europe/Berlin or America/New_York)", name)
	}
	return loc, nil
}

// cronParser is the standard 5-field parser with descriptors.
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

func parseCronIn(expr string, loc *time.Location) (*Cron, error) {
	expr = strings.TrimSpace(expr)
	switch {
	case expr == "":
		return nil, errors.New("a cron expression is required, such as 0 3 1 * * (monthly, on the 1st at 03:00)")
	case strings.HasPrefix(expr, "TZ=") || strings.HasPrefix(expr, "CRON_TZ="):
		return nil, fmt.Errorf("%q names its time zone inside the expression; give it in timeZone instead", expr)
	}
	sched, err := cronParser.Parse(expr)
	if err != nil {
		return nil, fmt.Errorf("%q is not a cron expression (minute hour day-of-month month day-of-week, or @hourly, @daily, @weekly, @monthly, @yearly, @every DURATION): %v", expr, err)
	}
	c := &Cron{expr: expr, loc: loc}
	switch s := sched.(type) {
	case *cron.SpecSchedule:
		s.Location = loc
		c.spec = s
		// robfig gives up after five years; a date that never comes (30 February) is an
		// error now rather than a schedule that silently never fires.
		if c.Next(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)).IsZero() {
			return nil, fmt.Errorf("%q never fires: no such date exists", expr)
		}
	case cron.ConstantDelaySchedule:
		if s.Delay < time.Minute {
			return nil, fmt.Errorf("%q is more often than once a minute; a build takes longer than that", expr)
		}
		c.every = s.Delay
	default:
		return nil, fmt.Errorf("%q is a kind of schedule gild does not know", expr)
	}
	return c, nil
}

// String is the expression and its zone.
func (c *Cron) String() string { return c.expr + " (" + c.loc.String() + ")" }

// Next is the first fire time strictly after after, or the zero time if there is none
// within five years.
//
// Clock changes: a wall-clock time that a change to summer time skips does not fire that
// day; one that the change back repeats fires once, the first time.
func (c *Cron) Next(after time.Time) time.Time {
	if c.every > 0 {
		return after.Truncate(c.every).Add(c.every)
	}
	n := c.spec.Next(after)
	if n.IsZero() {
		return n
	}
	// After the clocks went back, the same wall-clock time came an offset's difference
	// earlier: that was the fire, and this is its repeat.
	_, now := n.In(c.loc).Zone()
	if _, before := n.Add(-3 * time.Hour).In(c.loc).Zone(); before > now {
		twin := n.Add(-time.Duration(before-now) * time.Second)
		if twin.In(c.loc).Format(time.DateTime) == n.In(c.loc).Format(time.DateTime) {
			return c.Next(n)
		}
	}
	return n
}

// latestWindows are how far back Latest looks, growing until a window holds a fire time,
// so that an every-minute cron costs an hour of steps and a monthly one a few.
var latestWindows = []time.Duration{time.Hour, 48 * time.Hour, 32 * 24 * time.Hour, 400 * 24 * time.Hour}

// Latest is the latest fire time t with after < t <= now, and false when there is none.
// Times more than 400 days before now are not looked at: a schedule that missed more than
// a year fires for its latest time within the last 400 days, if any.
func (c *Cron) Latest(after, now time.Time) (time.Time, bool) {
	if !now.After(after) {
		return time.Time{}, false
	}
	if c.every > 0 {
		t := now.Truncate(c.every)
		return t, t.After(after)
	}
	for _, w := range latestWindows {
		start := now.Add(-w)
		whole := !start.After(after)
		if whole {
			start = after
		}
		t := c.Next(start)
		if t.IsZero() || t.After(now) {
			if whole {
				return time.Time{}, false
			}
			continue
		}
		for {
			n := c.Next(t)
			if n.IsZero() || n.After(now) {
				return t, true
			}
			t = n
		}
	}
	return time.Time{}, false
}
