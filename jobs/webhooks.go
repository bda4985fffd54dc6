package jobs

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/riverqueue/river"

	"github.com/gildhq/gild/resource"
)

// Event types a webhook may ask for.
const (
	EventRunSucceeded      = "run.succeeded"
	EventRunFailed         = "run.failed"
	EventScheduleDisabled  = "schedule.disabled"
	EventVersionPublished  = "version.published"
	EventVersionAged       = "version.aged"
	EventVersionDeprecated = "version.deprecated"
	EventVersionEndOfLife  = "version.endOfLife"
	EventNonCompliant      = "resource.nonCompliant"
	EventCompliantAgain    = "resource.compliant"
	EventCattleRefreshDue  = "cattle.refreshDue"
	EventAll               = "*"
	webhookSignatureHeader = "X-Gild-Signature"
)

// EventTypes are the events there are, in the order the CLI lists them.
var EventTypes = []string{EventRunSucceeded, EventRunFailed, EventScheduleDisabled, EventVersionPublished, EventVersionAged,
	EventVersionDeprecated, EventVersionEndOfLife, EventNonCompliant, EventCompliantAgain, EventCattleRefreshDue}

// Error codes of webhooks, mapped to HTTP statuses by the API.
const (
	CodeWebhookNotFound = "WebhookNotFound"
	CodeWebhookExists   = "WebhookAlreadyExists"
	CodeInvalidWebhook  = "InvalidWebhook"
)

// Webhook sends the events it asks for, about resources within its scope, to its URL.
type Webhook struct {
	Name      string    `json:"name"`
	Scope     string    `json:"scope"`
	URL       string    `json:"url"`
	Events    []string  `json:"events"`
	CreatedAt time.Time `json:"createdAt"`
	CreatedBy string    `json:"createdBy"`
	// Secret signs the deliveries; it is given only when the webhook is created.
	Secret string `json:"secret,omitempty"`
}

// Event is what a webhook receives, as JSON.
type Event struct {
	// ID names the event: the same change found twice has the same ID, and goes out once.
	ID      string          `json:"id"`
	Type    string          `json:"type"`
	Time    time.Time       `json:"time"`
	Subject string          `json:"subject"`
	Data    json.RawMessage `json:"data"`
}

// Delivery is one event on its way to one webhook, with every attempt.
type Delivery struct {
	ID          string     `json:"id"`
	Webhook     string     `json:"webhook"`
	EventID     string     `json:"eventId"`
	EventType   string     `json:"eventType"`
	Subject     string     `json:"subject"`
	CreatedAt   time.Time  `json:"createdAt"`
	State       string     `json:"state"` // Pending, Delivered, Failed, Dropped
	Attempts    int        `json:"attempts"`
	LastStatus  int        `json:"lastStatus,omitempty"`
	LastError   string     `json:"lastError,omitempty"`
	DeliveredAt *time.Time `json:"deliveredAt,omitempty"`
	Tries       []Attempt  `json:"tries,omitempty"`
}

// Attempt is one POST of a delivery.
type Attempt struct {
	Attempt    int       `json:"attempt"`
	At         time.Time `json:"at"`
	Server     string    `json:"server"`
	Status     int       `json:"status,omitempty"`
	Error      string    `json:"error,omitempty"`
	DurationMS int64     `json:"durationMs"`
}

// Delivery states.
const (
	DeliveryPending   = "Pending"
	DeliveryDelivered = "Delivered"
	DeliveryFailed    = "Failed"
	DeliveryDropped   = "Dropped" // the webhook was deleted first
)

var webhookName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$`)

// CheckWebhook checks a webhook to be created, naming every bad field at once.
func CheckWebhook(w *Webhook) error {
	var errs []*resource.Error
	bad := func(field, format string, args ...any) {
		errs = append(errs, resource.Errorf(CodeInvalidWebhook, field, format, args...))
	}
	if !webhookName.MatchString(w.Name) {
		bad("name", "%q is not a webhook name: letters, digits, '_', '.' and '-', up to 80, starting with a letter or digit", w.Name)
	}
	if w.Scope == "" {
		w.Scope = "/"
	}
	if _, err := resource.Parse(w.Scope); err != nil || !mustParse(w.Scope).IsScope() {
		bad("scope", "%q is not a scope (/, a management group, a subscription or a resource group)", w.Scope)
	}
	u, err := url.Parse(w.URL)
	switch {
	case w.URL == "":
		bad("url", "a URL to POST events to is required")
	case err != nil:
		bad("url", "%q is not a URL: %v", w.URL, err)
	case u.Scheme != "https" && u.Scheme != "http":
		bad("url", "%q must be an http:// or https:// URL", w.URL)
	case u.Host == "":
		bad("url", "%q names no host", w.URL)
	}
	if len(w.Events) == 0 {
		bad("events", "name at least one event (%s, or * for all)", strings.Join(EventTypes, ", "))
	}
	for i, e := range w.Events {
		if e != EventAll && !slices.Contains(EventTypes, e) {
			bad(fmt.Sprintf("events[%d]", i), "%q is not an event; known: %s, or * for all", e, strings.Join(EventTypes, ", "))
		}
	}
	if len(errs) > 0 {
		return resource.Join(CodeInvalidWebhook, "the webhook is invalid", errs)
	}
	return nil
}

func mustParse(s string) resource.ID {
	id, _ := resource.Parse(s)
	return id
}

// CreateWebhook stores a webhook with a new secret and returns it, secret included.
func (s *Service) CreateWebhook(ctx context.Context, w Webhook) (*Webhook, error) {
	if err := CheckWebhook(&w); err != nil {
		return nil, err
	}
	w.Secret = "whsec_" + randomHex(24)
	w.CreatedAt = s.now().UTC().Truncate(time.Second)
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO gild_webhooks (name, scope, url, events, secret, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?)`),
		w.Name, w.Scope, w.URL, strings.Join(w.Events, ","), w.Secret, w.CreatedAt.Format(time.RFC3339Nano), w.CreatedBy)
	if err != nil {
		if _, getErr := s.Webhook(ctx, w.Name); getErr == nil {
			return nil, resource.Errorf(CodeWebhookExists, "name", "a webhook named %q exists; delete it first or pick another name", w.Name)
		}
		return nil, fmt.Errorf("jobs: create webhook %s: %w", w.Name, err)
	}
	return &w, nil
}

// Webhook returns one webhook, without its secret.
func (s *Service) Webhook(ctx context.Context, name string) (*Webhook, error) {
	hooks, err := s.webhooks(ctx, name)
	if err != nil {
		return nil, err
	}
	if len(hooks) == 0 {
		return nil, resource.Errorf(CodeWebhookNotFound, "name", "there is no webhook named %q", name)
	}
	hooks[0].Secret = ""
	return &hooks[0], nil
}

// Webhooks lists every webhook, without secrets.
func (s *Service) Webhooks(ctx context.Context) ([]Webhook, error) {
	hooks, err := s.webhooks(ctx, "")
	for i := range hooks {
		hooks[i].Secret = ""
	}
	return hooks, err
}

func (s *Service) webhooks(ctx context.Context, name string) ([]Webhook, error) {
	query, args := `SELECT name, scope, url, events, secret, created_at, created_by FROM gild_webhooks ORDER BY name`, []any{}
	if name != "" {
		query, args = `SELECT name, scope, url, events, secret, created_at, created_by FROM gild_webhooks WHERE name = ?`, []any{name}
	}
	rows, err := s.db.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return nil, fmt.Errorf("jobs: read webhooks: %w", err)
	}
	defer rows.Close()
	var out []Webhook
	for rows.Next() {
		var w Webhook
		var events, created string
		if err := rows.Scan(&w.Name, &w.Scope, &w.URL, &events, &w.Secret, &created, &w.CreatedBy); err != nil {
			return nil, fmt.Errorf("jobs: read webhooks: %w", err)
		}
		w.Events = strings.Split(events, ",")
		w.CreatedAt, _ = time.Parse(time.RFC3339Nano, created)
		out = append(out, w)
	}
	return out, rows.Err()
}

// DeleteWebhook removes a webhook; its pending deliveries are dropped when they come up.
func (s *Service) DeleteWebhook(ctx context.Context, name string) error {
	res, err := s.db.ExecContext(ctx, s.q(`DELETE FROM gild_webhooks WHERE name = ?`), name)
	if err != nil {
		return fmt.Errorf("jobs: delete webhook %s: %w", name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return resource.Errorf(CodeWebhookNotFound, "name", "there is no webhook named %q", name)
	}
	return nil
}

// Deliveries returns a webhook's newest deliveries, each with its attempts.
func (s *Service) Deliveries(ctx context.Context, webhook string, limit int) ([]Delivery, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT id, webhook, event_id, event_type, subject, created_at, state, attempts, last_status, last_error, delivered_at
		FROM gild_webhook_deliveries WHERE webhook = ? ORDER BY created_at DESC, id DESC LIMIT ?`), webhook, max(1, min(limit, 1000)))
	if err != nil {
		return nil, fmt.Errorf("jobs: read deliveries: %w", err)
	}
	var out []Delivery
	for rows.Next() {
		var d Delivery
		var created, delivered string
		if err := rows.Scan(&d.ID, &d.Webhook, &d.EventID, &d.EventType, &d.Subject, &created, &d.State, &d.Attempts, &d.LastStatus, &d.LastError, &delivered); err != nil {
			rows.Close()
			return nil, fmt.Errorf("jobs: read deliveries: %w", err)
		}
		d.CreatedAt, _ = time.Parse(time.RFC3339Nano, created)
		if t, err := time.Parse(time.RFC3339Nano, delivered); err == nil {
			d.DeliveredAt = &t
		}
		out = append(out, d)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i := range out {
		tries, err := s.attempts(ctx, out[i].ID)
		if err != nil {
			return nil, err
		}
		out[i].Tries = tries
	}
	return out, nil
}

func (s *Service) attempts(ctx context.Context, delivery string) ([]Attempt, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT attempt, at, server, status, error, duration_ms FROM gild_webhook_attempts WHERE delivery = ? ORDER BY attempt`), delivery)
	if err != nil {
		return nil, fmt.Errorf("jobs: read delivery attempts: %w", err)
	}
	defer rows.Close()
	var out []Attempt
	for rows.Next() {
		var a Attempt
		var at string
		if err := rows.Scan(&a.Attempt, &at, &a.Server, &a.Status, &a.Error, &a.DurationMS); err != nil {
			return nil, fmt.Errorf("jobs: read delivery attempts: %w", err)
		}
		a.At, _ = time.Parse(time.RFC3339Nano, at)
		out = append(out, a)
	}
	return out, rows.Err()
}

// Publish queues ev for every webhook that asks for it. An event already queued for a
// webhook (the same ID) is not queued again. A delivery row and its job are written in
// one transaction, so a crash leaves either both or neither.
func (s *Service) Publish(ctx context.Context, ev Event) error {
	if ev.Time.IsZero() {
		ev.Time = s.now().UTC()
	}
	if len(ev.Data) == 0 {
		ev.Data = json.RawMessage("{}")
	}
	hooks, err := s.webhooks(ctx, "")
	if err != nil {
		return err
	}
	subject, _ := resource.Parse(ev.Subject)
	var body []byte
	for _, w := range hooks {
		if !slices.Contains(w.Events, ev.Type) && !slices.Contains(w.Events, EventAll) {
			continue
		}
		if scope := mustParse(w.Scope); !scope.IsRoot() && (ev.Subject == "" || !s.opts.Within(subject, scope)) {
			continue
		}
		if body == nil {
			if body, err = json.Marshal(ev); err != nil {
				return fmt.Errorf("jobs: encode event %s: %w", ev.ID, err)
			}
		}
		if err := s.queueDelivery(ctx, w.Name, ev, body); err != nil {
			return err
		}
	}
	return nil
}

func (s *Service) queueDelivery(ctx context.Context, webhook string, ev Event, body []byte) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("jobs: queue delivery: %w", err)
	}
	defer tx.Rollback()
	id := "dlv_" + randomHex(10)
	res, err := tx.ExecContext(ctx, s.q(`INSERT INTO gild_webhook_deliveries (id, webhook, event_id, event_type, subject, body, created_at, state)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (webhook, event_id) DO NOTHING`),
		id, webhook, ev.ID, ev.Type, ev.Subject, string(body), s.now().UTC().Format(time.RFC3339Nano), DeliveryPending)
	if err != nil {
		return fmt.Errorf("jobs: queue delivery: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil // this webhook has it already
	}
	if _, err := s.client.InsertTx(ctx, tx, deliverArgs{Delivery: id}, &river.InsertOpts{MaxAttempts: s.opts.DeliveryAttempts}); err != nil {
		return fmt.Errorf("jobs: queue delivery: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("jobs: queue delivery: %w", err)
	}
	return nil
}

// Sign is the signature a delivery carries in X-Gild-Signature: "sha256=" and the hex
// HMAC-SHA256, under the webhook's secret, of the X-Gild-Timestamp value, a dot and the
// body. The timestamp is signed so that a recorded delivery cannot be replayed later.
func Sign(secret string, timestamp int64, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(m, "%d.", timestamp)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify checks a received delivery's signature and that its timestamp is within
// tolerance of now; receivers written in Go may use it.
func Verify(secret string, header http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	ts, err := strconv.ParseInt(header.Get("X-Gild-Timestamp"), 10, 64)
	if err != nil {
		return errors.New("webhook: X-Gild-Timestamp is missing or not a number")
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("webhook: the timestamp is %s away from now", d.Round(time.Second))
	}
	if !hmac.Equal([]byte(header.Get(webhookSignatureHeader)), []byte(Sign(secret, ts, body))) {
		return errors.New("webhook: the signature does not match")
	}
	return nil
}

type deliverArgs struct {
	Delivery string `json:"delivery"`
}

func (deliverArgs) Kind() string { return "gild.webhook_delivery" }

type deliverWorker struct {
	river.WorkerDefaults[deliverArgs]
	s *Service
}

// NextRetry doubles the wait after each failed attempt, up to an hour.
func (w *deliverWorker) NextRetry(job *river.Job[deliverArgs]) time.Time {
	wait := w.s.opts.DeliveryRetryBase << min(job.Attempt-1, 20)
	return time.Now().Add(min(wait, time.Hour))
}

func (w *deliverWorker) Work(ctx context.Context, job *river.Job[deliverArgs]) error {
	s := w.s
	var webhook, body, eventType, state string
	err := s.db.QueryRowContext(ctx, s.q(`SELECT webhook, body, event_type, state FROM gild_webhook_deliveries WHERE id = ?`), job.Args.Delivery).
		Scan(&webhook, &body, &eventType, &state)
	if errors.Is(err, sql.ErrNoRows) || state == DeliveryDelivered {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read delivery %s: %w", job.Args.Delivery, err)
	}
	hooks, err := s.webhooks(ctx, webhook)
	if err != nil {
		return err
	}
	if len(hooks) == 0 {
		s.finishDelivery(ctx, job.Args.Delivery, DeliveryDropped, 0, "the webhook was deleted")
		return nil
	}
	hook := hooks[0]
	start := time.Now()
	status, sendErr := s.send(ctx, hook, job.Args.Delivery, eventType, []byte(body))
	took := time.Since(start)
	if sendErr == nil && (status < 200 || status > 299) {
		sendErr = fmt.Errorf("the receiver answered %d", status)
	}
	_, err = s.db.ExecContext(ctx, s.q(`INSERT INTO gild_webhook_attempts (delivery, attempt, at, server, status, error, duration_ms) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (delivery, attempt) DO NOTHING`), job.Args.Delivery, job.Attempt, start.UTC().Format(time.RFC3339Nano), s.id, status, errorText(sendErr), took.Milliseconds())
	if err != nil {
		s.log.Warn("jobs: record a delivery attempt", "delivery", job.Args.Delivery, "err", err)
	}
	if sendErr == nil {
		s.finishDelivery(ctx, job.Args.Delivery, DeliveryDelivered, status, "")
		return nil
	}
	next := DeliveryPending
	if job.Attempt >= job.MaxAttempts {
		next = DeliveryFailed
	}
	s.finishDelivery(ctx, job.Args.Delivery, next, status, sendErr.Error())
	return fmt.Errorf("deliver %s to %s: %w", job.Args.Delivery, hook.Name, sendErr)
}

func (s *Service) send(ctx context.Context, hook Webhook, delivery, eventType string, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, hook.URL, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	ts := time.Now().Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "gild-webhook/1")
	req.Header.Set("X-Gild-Event", eventType)
	req.Header.Set("X-Gild-Delivery", delivery)
	req.Header.Set("X-Gild-Timestamp", strconv.FormatInt(ts, 10))
	req.Header.Set(webhookSignatureHeader, Sign(hook.Secret, ts, body))
	resp, err := s.opts.HTTP.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, nil
}

func (s *Service) finishDelivery(ctx context.Context, id, state string, status int, msg string) {
	delivered := ""
	if state == DeliveryDelivered {
		delivered = s.now().UTC().Format(time.RFC3339Nano)
	}
	_, err := s.db.ExecContext(ctx, s.q(`UPDATE gild_webhook_deliveries SET state = ?, attempts = attempts + 1, last_status = ?, last_error = ?, delivered_at = ? WHERE id = ?`),
		state, status, msg, delivered, id)
	if err != nil {
		s.log.Warn("jobs: record a delivery", "delivery", id, "err", err)
	}
}
