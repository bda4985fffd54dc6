package jobs

// schema holds gild's own tables beside River's. Statements are written once for SQLite
// and PostgreSQL (text times in RFC 3339 UTC, which sort as they read) and are safe to run
// on every start.
var schema = []string{
	// Webhooks keep their secret readable: a delivery must sign with it. It is shown to
	// whoever creates or rotates it and never listed.
	`CREATE TABLE IF NOT EXISTS gild_webhooks (
		name       TEXT PRIMARY KEY,
		scope      TEXT NOT NULL,
		url        TEXT NOT NULL,
		events     TEXT NOT NULL,
		secret     TEXT NOT NULL,
		created_at TEXT NOT NULL,
		created_by TEXT NOT NULL
	)`,
	// One delivery per webhook and event: the unique pair is what makes an event found by
	// two servers at once go out once.
	`CREATE TABLE IF NOT EXISTS gild_webhook_deliveries (
		id           TEXT PRIMARY KEY,
		webhook      TEXT NOT NULL,
		event_id     TEXT NOT NULL,
		event_type   TEXT NOT NULL,
		subject      TEXT NOT NULL,
		body         TEXT NOT NULL,
		created_at   TEXT NOT NULL,
		state        TEXT NOT NULL,
		attempts     INTEGER NOT NULL DEFAULT 0,
		last_status  INTEGER NOT NULL DEFAULT 0,
		last_error   TEXT NOT NULL DEFAULT '',
		delivered_at TEXT NOT NULL DEFAULT '',
		UNIQUE (webhook, event_id)
	)`,
	`CREATE INDEX IF NOT EXISTS gild_webhook_deliveries_by_webhook ON gild_webhook_deliveries (webhook, created_at)`,
	`CREATE TABLE IF NOT EXISTS gild_webhook_attempts (
		delivery    TEXT NOT NULL,
		attempt     INTEGER NOT NULL,
		at          TEXT NOT NULL,
		server      TEXT NOT NULL,
		status      INTEGER NOT NULL,
		error       TEXT NOT NULL,
		duration_ms BIGINT NOT NULL,
		PRIMARY KEY (delivery, attempt)
	)`,
	// Where each follower of a change sequence has got to.
	`CREATE TABLE IF NOT EXISTS gild_cursors (
		name TEXT PRIMARY KEY,
		seq  BIGINT NOT NULL
	)`,
	// The roll-up state last announced for each resource, so that "became non-compliant"
	// and "compliant again" are said once per change.
	`CREATE TABLE IF NOT EXISTS gild_announced_compliance (
		resource_id TEXT PRIMARY KEY,
		state       TEXT NOT NULL
	)`,
}
