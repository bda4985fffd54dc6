package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gildhq/gild/jobs"
	"github.com/gildhq/gild/pipeline"
	"github.com/gildhq/gild/resource"
)

// imageScheduleCommand sets, changes or disables a template's schedule.
func (a *app) imageScheduleCommand() *cobra.Command {
	var (
		cron, tz, when     string
		disable, baseImage bool
		basePoll           time.Duration
		maxFailures        int
	)
	cmd := &cobra.Command{
		Use:   "schedule TEMPLATE-ID [--cron EXPR] [--timezone TZ] [--when always|changed] | --disable",
		Short: "Build a template on a schedule, or when its base image changes",
		Long: `schedule makes gild build the template on a cron schedule: five fields (minute hour
day-of-month month day-of-week) read in --timezone. The default is monthly, on the 1st at
03:00. With --when changed a scheduled time starts a run only if an input changed since
the last successful run: a newer base image, a changed template, a changed file it uses.
--base-image-trigger also starts a run as soon as the source shows a newer base version,
looked for every --base-poll. After --max-failures scheduled runs fail in a row the
schedule disables itself and says why; running this command again turns it back on.

With no flags but the template it shows the schedule and its status.`,
		Example: `  gild image schedule $TEMPLATE --cron "0 3 1 * *" --timezone Europe/Berlin --when changed
  gild image schedule $TEMPLATE --base-image-trigger --base-poll 1h
  gild image schedule $TEMPLATE --disable`,
		Args: a.exactArgs(1, "one image template ID"),
	}
	f := cmd.Flags()
	f.StringVar(&cron, "cron", "", `cron expression, such as "0 3 1 * *" (default: monthly, on the 1st at 03:00)`)
	f.StringVar(&tz, "timezone", "", "IANA time zone the cron expression is read in (default UTC)")
	f.StringVar(&when, "when", "", "always, or changed: run only when an input changed")
	f.BoolVar(&disable, "disable", false, "disable the schedule (and the base-image trigger)")
	f.BoolVar(&baseImage, "base-image-trigger", false, "also start a run as soon as the source shows a newer base version")
	f.DurationVar(&basePoll, "base-poll", 0, "how often the source is asked for a newer base version (default 1h)")
	f.IntVar(&maxFailures, "max-failures", 0, "scheduled runs that may fail in a row before the schedule is disabled (default 3)")
	cmd.RunE = a.run(func(cmd *cobra.Command, args []string) error {
		id, err := resource.Parse(args[0])
		if err != nil || !strings.EqualFold(id.Type(), pipeline.TypeTemplate) {
			return usageErrorf("%q is not an image template ID (%s)", args[0], pipeline.TypeTemplate)
		}
		if basePoll != 0 && (basePoll < time.Minute || basePoll%time.Minute != 0) {
			return usageErrorf("--base-poll %s: give whole minutes, at least 1m", basePoll)
		}
		changing := cmd.Flags().NFlag() > 0 && (cron != "" || tz != "" || when != "" || disable || baseImage || basePoll != 0 || maxFailures != 0)
		c, err := a.client()
		if err != nil {
			return err
		}
		resp, err := c.do(cmd.Context(), request{Method: http.MethodGet, Path: id.String()})
		if err != nil {
			return err
		}
		var doc map[string]json.RawMessage
		var props map[string]json.RawMessage
		if json.Unmarshal(resp.Body, &doc) != nil || json.Unmarshal(doc["properties"], &props) != nil {
			return errors.New("schedule: the server's answer is not an image template")
		}
		if changing {
			var sch pipeline.Schedule
			if raw, ok := props["schedule"]; ok && !disable {
				_ = json.Unmarshal(raw, &sch)
			}
			if disable {
				if raw, ok := props["schedule"]; ok {
					_ = json.Unmarshal(raw, &sch)
				}
				sch.Disabled = true
			} else {
				sch.Disabled = false
				if cron != "" {
					sch.Cron = cron
				}
				if tz != "" {
					sch.TimeZone = tz
				}
				if when != "" {
					sch.When = when
				}
				if baseImage {
					sch.BaseImageTrigger = true
				}
				if basePoll != 0 {
					sch.BasePollMinutes = int(basePoll / time.Minute)
				}
				if maxFailures != 0 {
					sch.MaxConsecutiveFailures = maxFailures
				}
			}
			props["schedule"], _ = json.Marshal(sch)
			delete(props, "scheduleStatus")
			delete(props, "lastRunStatus")
			delete(props, "provisioningState")
			doc["properties"], _ = json.Marshal(props)
			body, _ := json.Marshal(map[string]json.RawMessage{"location": doc["location"], "tags": doc["tags"], "properties": doc["properties"]})
			h := http.Header{}
			if etag := resp.Header.Get("ETag"); etag != "" {
				h.Set("If-Match", etag)
			}
			if resp, err = c.do(cmd.Context(), request{Method: http.MethodPut, Path: id.String(), Body: body, Header: h}); err != nil {
				return err
			}
		}
		if a.output == outputJSON {
			return writeRawJSON(a.env.Stdout, resp.Body)
		}
		var shown struct {
			Properties struct {
				Schedule       *pipeline.Schedule       `json:"schedule"`
				ScheduleStatus *pipeline.ScheduleStatus `json:"scheduleStatus"`
			} `json:"properties"`
		}
		if err := json.Unmarshal(resp.Body, &shown); err != nil {
			return fmt.Errorf("schedule: the server's answer is not an image template: %w", err)
		}
		return showSchedule(a, id, shown.Properties.Schedule, shown.Properties.ScheduleStatus)
	})
	return cmd
}

func showSchedule(a *app, id resource.ID, sch *pipeline.Schedule, st *pipeline.ScheduleStatus) error {
	if sch == nil {
		fmt.Fprintf(a.env.Stdout, "%s has no schedule; give --cron (or just --when) to set one.\n", id.Name())
		return nil
	}
	t := newTable(a.env.Stdout)
	state := "enabled"
	if sch.Disabled {
		state = "disabled"
	}
	t.row("template", id.String())
	t.row("schedule", state)
	t.row("cron", fmt.Sprintf("%s (%s)", sch.Cron, orDash(sch.TimeZone)))
	t.row("when", sch.When)
	trigger := "off"
	if sch.BaseImageTrigger {
		trigger = fmt.Sprintf("on, every %d min", sch.BasePollMinutes)
	}
	t.row("base-image trigger", trigger)
	t.row("disabled after", fmt.Sprintf("%d failures in a row", sch.MaxConsecutiveFailures))
	if st != nil {
		t.row("failures in a row", fmt.Sprint(st.ConsecutiveFailures))
		t.row("last fired", timeOrDash(st.LastScheduledTime))
		if !sch.Disabled {
			t.row("next", timeOrDash(st.NextScheduledTime))
		}
		if st.LastBaseVersion != "" || st.LastBaseCheckError != "" {
			t.row("base version seen", orDash(st.LastBaseVersion)+" at "+timeOrDash(st.LastBaseCheckTime))
		}
		if st.LastBaseCheckError != "" {
			t.row("base check error", st.LastBaseCheckError)
		}
		if st.LastSkipReason != "" {
			t.row("last skipped", st.LastSkipReason)
		}
		if st.DisabledReason != "" {
			t.row("disabled because", st.DisabledReason)
		}
	}
	return t.flush()
}

func timeOrDash(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// jobsCommand lists the background jobs all servers share.
func (a *app) jobsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "jobs",
		Short: "See the background jobs the servers share",
		Long: `jobs lists the durable background jobs (builds, schedules, base-image checks, scans,
verifications, refreshes, event detection and webhook deliveries) that every gild server
on the database takes from one queue. It needs Reader at /.`,
	}
	var state string
	var top int
	list := &cobra.Command{
		Use:     "list [--state running|failed|...]",
		Short:   "List jobs, newest first",
		Example: "  gild jobs list --state failed",
		Args:    a.exactArgs(0, "no arguments"),
	}
	list.Flags().StringVar(&state, "state", "", "only jobs in this state: running, failed (retryable or discarded), available, scheduled, retryable, completed, cancelled, discarded")
	list.Flags().IntVar(&top, "top", 50, "at most this many jobs")
	list.RunE = a.run(func(cmd *cobra.Command, _ []string) error {
		c, err := a.client()
		if err != nil {
			return err
		}
		q := url.Values{"$top": {fmt.Sprint(top)}}
		if state != "" {
			q.Set("state", state)
		}
		raw, err := c.getJSON(cmd.Context(), "/providers/Gild.Jobs/jobs", q, nil)
		if err != nil {
			return err
		}
		if a.output == outputJSON {
			return writeRawJSON(a.env.Stdout, raw)
		}
		var page struct {
			Value []jobs.Job `json:"value"`
		}
		if err := json.Unmarshal(raw, &page); err != nil {
			return fmt.Errorf("jobs: the server's answer is not a job list: %w", err)
		}
		t := newTable(a.env.Stdout, "ID", "KIND", "STATE", "ATTEMPT", "SERVER", "CREATED", "ARGS", "LAST ERROR")
		for _, j := range page.Value {
			server := "-"
			if n := len(j.AttemptedBy); n > 0 {
				server = j.AttemptedBy[n-1]
			}
			lastErr := "-"
			if n := len(j.Errors); n > 0 {
				lastErr = j.Errors[n-1]
			}
			t.row(fmt.Sprint(j.ID), strings.TrimPrefix(j.Kind, "gild."), j.State, fmt.Sprintf("%d/%d", j.Attempt, j.MaxAttempts), server,
				j.CreatedAt.UTC().Format(time.RFC3339), j.Args, lastErr)
		}
		return t.flush()
	})
	cmd.AddCommand(list)
	return cmd
}

// webhookCommand creates, lists and deletes webhooks and shows their deliveries.
func (a *app) webhookCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "webhook",
		Short: "Send signed events to a URL",
		Long: `webhook sends events as signed JSON POSTs: run.succeeded, run.failed (with the failing
step and reason), schedule.disabled, version.published, version.aged, version.deprecated,
version.endOfLife, resource.nonCompliant, resource.compliant (again) and cattle.refreshDue.

Each POST carries X-Gild-Event, X-Gild-Delivery, X-Gild-Timestamp and X-Gild-Signature:
"sha256=" and the hex HMAC-SHA256, under the webhook's secret, of the timestamp, a dot and
the body. A delivery that fails (not 2xx, or no answer within 10 s) is tried again with
growing waits; every attempt is kept in the delivery log.`,
	}
	var hookURL, scope, name string
	var events []string
	create := &cobra.Command{
		Use:     "create --url URL --events E,... [--scope SCOPE] [--name NAME]",
		Short:   "Create a webhook and print its secret (shown once)",
		Example: "  gild webhook create --url https://chat.example.com/hooks/gild --events run.failed,schedule.disabled,resource.nonCompliant",
		Args:    a.exactArgs(0, "no arguments"),
	}
	create.Flags().StringVar(&hookURL, "url", "", "the URL events are POSTed to")
	create.Flags().StringSliceVar(&events, "events", nil, "events to send, comma-separated (* for all)")
	create.Flags().StringVar(&scope, "scope", "/", "only events about resources in this scope")
	create.Flags().StringVar(&name, "name", "", "the webhook's name (default: made up)")
	create.RunE = a.run(func(cmd *cobra.Command, _ []string) error {
		if name == "" {
			name = "wh-" + time.Now().UTC().Format("20060102-150405")
		}
		c, err := a.client()
		if err != nil {
			return err
		}
		body, _ := json.Marshal(map[string]any{"url": hookURL, "events": events, "scope": scope})
		resp, err := c.do(cmd.Context(), request{Method: http.MethodPut, Path: "/providers/Gild.Notifications/webhooks/" + url.PathEscape(name), Body: body})
		if err != nil {
			return err
		}
		if a.output == outputJSON {
			return writeRawJSON(a.env.Stdout, resp.Body)
		}
		var h jobs.Webhook
		if err := json.Unmarshal(resp.Body, &h); err != nil {
			return fmt.Errorf("webhook create: the server's answer is not a webhook: %w", err)
		}
		t := newTable(a.env.Stdout)
		t.row("name", h.Name)
		t.row("url", h.URL)
		t.row("events", strings.Join(h.Events, ","))
		t.row("scope", h.Scope)
		t.row("secret", h.Secret)
		if err := t.flush(); err != nil {
			return err
		}
		fmt.Fprintln(a.env.Stderr, "Keep the secret: it is not shown again. Check each delivery's X-Gild-Signature with it.")
		return nil
	})
	list := &cobra.Command{Use: "list", Short: "List webhooks", Args: a.exactArgs(0, "no arguments")}
	list.RunE = a.run(func(cmd *cobra.Command, _ []string) error {
		c, err := a.client()
		if err != nil {
			return err
		}
		raw, err := c.getJSON(cmd.Context(), "/providers/Gild.Notifications/webhooks", nil, nil)
		if err != nil {
			return err
		}
		if a.output == outputJSON {
			return writeRawJSON(a.env.Stdout, raw)
		}
		var page struct {
			Value []jobs.Webhook `json:"value"`
		}
		if err := json.Unmarshal(raw, &page); err != nil {
			return fmt.Errorf("webhook list: %w", err)
		}
		t := newTable(a.env.Stdout, "NAME", "SCOPE", "URL", "EVENTS", "CREATED BY")
		for _, h := range page.Value {
			t.row(h.Name, h.Scope, h.URL, strings.Join(h.Events, ","), orDash(h.CreatedBy))
		}
		return t.flush()
	})
	del := &cobra.Command{Use: "delete NAME", Short: "Delete a webhook; its pending deliveries are dropped", Args: a.exactArgs(1, "a webhook name")}
	del.RunE = a.run(func(cmd *cobra.Command, args []string) error {
		c, err := a.client()
		if err != nil {
			return err
		}
		_, err = c.do(cmd.Context(), request{Method: http.MethodDelete, Path: "/providers/Gild.Notifications/webhooks/" + url.PathEscape(webhookName(args[0]))})
		return err
	})
	var top int
	deliveries := &cobra.Command{
		Use:   "deliveries NAME",
		Short: "Show a webhook's delivery log: each event, its state and every attempt",
		Args:  a.exactArgs(1, "a webhook name"),
	}
	deliveries.Flags().IntVar(&top, "top", 20, "at most this many deliveries, newest first")
	deliveries.RunE = a.run(func(cmd *cobra.Command, args []string) error {
		c, err := a.client()
		if err != nil {
			return err
		}
		raw, err := c.getJSON(cmd.Context(), "/providers/Gild.Notifications/webhooks/"+url.PathEscape(webhookName(args[0]))+"/deliveries", url.Values{"$top": {fmt.Sprint(top)}}, nil)
		if err != nil {
			return err
		}
		if a.output == outputJSON {
			return writeRawJSON(a.env.Stdout, raw)
		}
		var page struct {
			Value []jobs.Delivery `json:"value"`
		}
		if err := json.Unmarshal(raw, &page); err != nil {
			return fmt.Errorf("webhook deliveries: %w", err)
		}
		t := newTable(a.env.Stdout, "DELIVERY", "EVENT", "SUBJECT", "STATE", "ATTEMPTS", "LAST")
		for _, d := range page.Value {
			last := "-"
			if n := len(d.Tries); n > 0 {
				x := d.Tries[n-1]
				last = fmt.Sprintf("%s %s", x.At.UTC().Format(time.RFC3339), orDash(fmt.Sprint(x.Status)))
				if x.Error != "" {
					last += ": " + x.Error
				}
			}
			t.row(d.ID, d.EventType, d.Subject, d.State, fmt.Sprint(len(d.Tries)), last)
		}
		return t.flush()
	})
	cmd.AddCommand(create, list, del, deliveries)
	return cmd
}

// webhookName accepts a webhook's name or its path.
func webhookName(s string) string {
	return s[strings.LastIndex(s, "/")+1:]
}
