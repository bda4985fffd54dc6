-- Machines' agents: one row per enrolled VM or hybrid machine, keyed like resources.id_key.
-- The last report is kept whole (the agent's JSON); heartbeats rewrite the row in place.
CREATE TABLE machines (
    id_key          TEXT PRIMARY KEY,
    id              TEXT NOT NULL,
    credential_hash TEXT NOT NULL UNIQUE,
    enrolled_at     TEXT NOT NULL,
    last_seen       TEXT,
    last_report_id  TEXT NOT NULL,
    last_report_at  TEXT,
    report          TEXT
);

-- What agents did or saw (corrections of drift, with the value before and after). An
-- event is kept once per machine and agent-assigned ID, so a resent report adds nothing.
CREATE TABLE machine_events (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    machine_key TEXT NOT NULL,
    machine_id TEXT NOT NULL,
    event_id   TEXT NOT NULL,
    at         TEXT NOT NULL,
    kind       TEXT NOT NULL,
    assignment TEXT NOT NULL,
    check_name TEXT NOT NULL,
    target     TEXT NOT NULL,
    before_value TEXT NOT NULL,
    after_value  TEXT NOT NULL,
    message    TEXT NOT NULL,
    UNIQUE (machine_key, event_id)
);

CREATE INDEX machine_events_machine ON machine_events (machine_key, seq);

-- One-time enrollment tokens; only the secret's hash is kept.
CREATE TABLE enrollment_tokens (
    hash       TEXT PRIMARY KEY,
    target     TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT,
    used_at    TEXT
);
