package jobs

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/riverqueue/river"

	"github.com/gildhq/gild/gallery"
	"github.com/gildhq/gild/pipeline"
	"github.com/gildhq/gild/resource"
	"github.com/gildhq/gild/store"
)

// DueVM is a cattle VM a refresh would replace now.
type DueVM struct {
	ID          string   `json:"id"`
	Reasons     []string `json:"reasons"`
	FromVersion string   `json:"fromVersion,omitempty"`
	ToVersion   string   `json:"toVersion,omitempty"`
}

// RunEnded announces how a run ended, and a schedule it disabled; it is the pipeline's
// Options.OnRunEnd.
func (s *Service) RunEnded(ctx context.Context, e pipeline.RunEnd) {
	typ := EventRunFailed
	switch e.State {
	case pipeline.StateSucceeded:
		typ = EventRunSucceeded
	case pipeline.StateCanceled:
		return // someone asked for it; nobody needs telling
	}
	data := map[string]any{"template": e.Template.String(), "run": e.Run.String(), "state": e.State, "trigger": e.Trigger,
		"failedStep": e.FailedStep, "message": e.Message, "failedChecks": e.FailedChecks, "outputs": e.Outputs,
		"startTime": e.StartTime, "endTime": e.EndTime}
	s.publish(ctx, Event{ID: typ + ":" + e.Run.Key(), Type: typ, Subject: e.Template.String(), Data: mustJSON(data)})
	if e.ScheduleDisabled {
		at := s.now().UTC()
		if e.EndTime != nil {
			at = *e.EndTime
		}
		s.publish(ctx, Event{ID: EventScheduleDisabled + ":" + e.Template.Key() + ":" + at.Format(time.RFC3339Nano), Type: EventScheduleDisabled,
			Subject: e.Template.String(), Data: mustJSON(map[string]any{"template": e.Template.String(), "reason": e.DisabledReason,
				"lastRun": e.Run.String(), "failedStep": e.FailedStep, "message": e.Message})})
	}
}

// publish is Publish for callers that can only log a failure.
func (s *Service) publish(ctx context.Context, ev Event) {
	if err := s.Publish(ctx, ev); err != nil {
		s.log.Error("jobs: queue an event's deliveries", "event", ev.ID, "err", err)
	}
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("jobs: encode: %v", err))
	}
	return b
}

type eventsArgs struct{}

func (eventsArgs) Kind() string { return "gild.events" }

type eventsWorker struct {
	river.WorkerDefaults[eventsArgs]
	s *Service
}

// Work turns what changed since the last look into events: image versions published or
// retired, resources whose compliance turned, cattle that fell due.
func (w *eventsWorker) Work(ctx context.Context, _ *river.Job[eventsArgs]) error {
	s := w.s
	return errors.Join(s.versionEvents(ctx), s.complianceEvents(ctx), s.cattleEvents(ctx))
}

func (s *Service) cursor(ctx context.Context, name string) (int64, bool, error) {
	var seq int64
	err := s.db.QueryRowContext(ctx, s.q(`SELECT seq FROM gild_cursors WHERE name = ?`), name).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	return seq, err == nil, err
}

func (s *Service) setCursor(ctx context.Context, name string, seq int64) error {
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO gild_cursors (name, seq) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET seq = excluded.seq`), name, seq)
	if err != nil {
		return fmt.Errorf("jobs: save the %s cursor: %w", name, err)
	}
	return nil
}

// versionEvents follows the store's change sequence for image versions. The first look
// starts at the end: history from before notifications existed is not announced.
func (s *Service) versionEvents(ctx context.Context) error {
	const name = "events.changes"
	cur, ok, err := s.cursor(ctx, name)
	if err != nil {
		return err
	}
	if !ok {
		last, err := s.opts.Store.LastSeq(ctx)
		if err != nil {
			return err
		}
		return s.setCursor(ctx, name, last)
	}
	for {
		changes, err := s.opts.Store.Changes(ctx, cur, 1000)
		if err != nil || len(changes) == 0 {
			return err
		}
		for _, c := range changes {
			if c.Op == store.OpPut && strings.EqualFold(c.Type, gallery.TypeVersion) {
				s.versionEvent(ctx, c)
			}
			cur = c.Seq
		}
		if err := s.setCursor(ctx, name, cur); err != nil {
			return err
		}
	}
}

func (s *Service) versionEvent(ctx context.Context, c store.Change) {
	id, err := resource.Parse(c.ID)
	if err != nil {
		return
	}
	r, err := s.opts.Store.Get(ctx, id)
	if err != nil {
		return // deleted since
	}
	var p gallery.VersionProperties
	if json.Unmarshal(r.Properties, &p) != nil {
		return
	}
	data := map[string]any{"version": r.ID, "definition": id.Parent().String(), "provisioningState": p.ProvisioningState, "lifecycle": p.Lifecycle}
	if p.ProvisioningState == gallery.ProvisioningSucceeded {
		s.publish(ctx, Event{ID: EventVersionPublished + ":" + id.Key(), Type: EventVersionPublished, Subject: r.ID, Data: mustJSON(data)})
	}
	if p.Lifecycle == nil {
		return
	}
	typ := map[string]string{gallery.StateAged: EventVersionAged, gallery.StateDeprecated: EventVersionDeprecated, gallery.StateEndOfLife: EventVersionEndOfLife}[p.Lifecycle.State]
	if typ != "" {
		s.publish(ctx, Event{ID: typ + ":" + id.Key(), Type: typ, Subject: r.ID, Data: mustJSON(data)})
	}
}

// complianceEvents follows the compliance history and announces each resource whose
// roll-up turned NonCompliant, or Compliant again. A hole in the sequence younger than
// ten seconds is waited for: a PostgreSQL transaction may commit after a later one.
func (s *Service) complianceEvents(ctx context.Context) error {
	const name = "events.compliance"
	cur, ok, err := s.cursor(ctx, name)
	if err != nil {
		return err
	}
	quiet := !ok // the first look reads to the end without announcing the past
	for {
		trs, _, err := s.opts.Store.PolicyStateHistory(ctx, store.PolicyStateQuery{After: fmt.Sprint(cur), Limit: store.MaxPageSize})
		if err != nil {
			return err
		}
		if len(trs) == 0 {
			if quiet {
				return s.setCursor(ctx, name, cur)
			}
			return nil
		}
		touched := map[string]int64{}
		var order []string
		for _, t := range trs {
			if t.Seq != cur+1 && !quiet && s.now().Sub(t.At) < 10*time.Second {
				break
			}
			if _, seen := touched[t.ResourceID]; !seen {
				order = append(order, t.ResourceID)
			}
			touched[t.ResourceID] = t.Seq
			cur = t.Seq
		}
		if !quiet {
			for _, rid := range order {
				if err := s.announceCompliance(ctx, rid, touched[rid]); err != nil {
					return err
				}
			}
		}
		if err := s.setCursor(ctx, name, cur); err != nil {
			return err
		}
		if len(touched) == 0 {
			return nil // waiting on a hole
		}
	}
}

func (s *Service) announceCompliance(ctx context.Context, rid string, seq int64) error {
	var states []store.PolicyState
	after := ""
	for {
		page, next, err := s.opts.Store.PolicyStates(ctx, store.PolicyStateQuery{ResourceID: rid, Limit: store.MaxPageSize, After: after})
		if err != nil {
			return err
		}
		states = append(states, page...)
		if next == "" {
			break
		}
		after = next
	}
	now := ""
	var failing []map[string]string
	for _, st := range states {
		switch st.State {
		case store.StateNonCompliant:
			now = store.StateNonCompliant
			failing = append(failing, map[string]string{"assignment": st.AssignmentID, "definition": st.DefinitionID, "reference": st.ReferenceID})
		case store.StateCompliant:
			if now == "" {
				now = store.StateCompliant
			}
		}
	}
	var was string
	err := s.db.QueryRowContext(ctx, s.q(`SELECT state FROM gild_announced_compliance WHERE resource_id = ?`), strings.ToLower(rid)).Scan(&was)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	if now == was {
		return nil
	}
	typ := ""
	switch {
	case now == store.StateNonCompliant:
		typ = EventNonCompliant
	case now == store.StateCompliant && was == store.StateNonCompliant:
		typ = EventCompliantAgain
	}
	if typ != "" {
		data := map[string]any{"resource": rid, "state": now, "previous": was, "nonCompliant": failing}
		if err := s.Publish(ctx, Event{ID: fmt.Sprintf("%s:%s:%d", typ, strings.ToLower(rid), seq), Type: typ, Subject: rid, Data: mustJSON(data)}); err != nil {
			return err
		}
	}
	if now == "" {
		_, err = s.db.ExecContext(ctx, s.q(`DELETE FROM gild_announced_compliance WHERE resource_id = ?`), strings.ToLower(rid))
	} else {
		_, err = s.db.ExecContext(ctx, s.q(`INSERT INTO gild_announced_compliance (resource_id, state) VALUES (?, ?)
			ON CONFLICT (resource_id) DO UPDATE SET state = excluded.state`), strings.ToLower(rid), now)
	}
	return err
}

// cattleEvents announces each cattle VM that fell due for refresh, once per reason.
func (s *Service) cattleEvents(ctx context.Context) error {
	if s.opts.CattleDue == nil {
		return nil
	}
	// Working out the refresh plan reads every VM: once a minute is soon enough.
	s.mu.Lock()
	now := s.now()
	look := now.Sub(s.lastCattle) >= time.Minute
	if look {
		s.lastCattle = now
	}
	s.mu.Unlock()
	if !look {
		return nil
	}
	due, err := s.opts.CattleDue(ctx)
	if err != nil {
		return err
	}
	for _, d := range due {
		h := sha256.Sum256([]byte(strings.Join(d.Reasons, "\n")))
		id := fmt.Sprintf("%s:%s:%s:%s:%s", EventCattleRefreshDue, strings.ToLower(d.ID), d.FromVersion, d.ToVersion, hex.EncodeToString(h[:6]))
		if err := s.Publish(ctx, Event{ID: id, Type: EventCattleRefreshDue, Subject: d.ID, Data: mustJSON(d)}); err != nil {
			return err
		}
	}
	return nil
}
