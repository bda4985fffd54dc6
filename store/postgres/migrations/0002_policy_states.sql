-- Compliance states: one row per resource, assignment and initiative member. The *_key
-- columns are lower-cased so identity is case-insensitive, as for resources.id_key, and
-- use the "C" collation so that they compare in byte order: store/sqldb's scope ranges,
-- paging cursors and the merge of stored rows with a scan's results all rely on it.
CREATE TABLE policy_states (
    resource_key      TEXT COLLATE "C" NOT NULL,
    assignment_key    TEXT COLLATE "C" NOT NULL,
    reference_key     TEXT COLLATE "C" NOT NULL,   -- '' for a single-policy assignment
    resource_id       TEXT NOT NULL,
    assignment_id     TEXT NOT NULL,
    definition_id     TEXT NOT NULL,
    set_definition_id TEXT NOT NULL,
    reference_id      TEXT NOT NULL,
    resource_type     TEXT NOT NULL,
    resource_group    TEXT NOT NULL,
    subscription      TEXT NOT NULL,
    location          TEXT NOT NULL,
    state             TEXT COLLATE "C" NOT NULL,
    effect            TEXT NOT NULL,
    -- text, not json or jsonb: the store compares reasons byte for byte.
    reasons           TEXT,
    evaluated_at      TIMESTAMPTZ NOT NULL,
    changed_at        TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (resource_key, assignment_key, reference_key)
);

CREATE INDEX policy_states_assignment ON policy_states (assignment_key, resource_key, reference_key);
-- Partial: most states are Compliant, and a query for them is not selective enough to
-- want an index (the key order serves it), while leaving them out makes the index a
-- seventh of the size and halves what a change of state costs it. Queries spell the state
-- as a literal so that the planner can match the index's condition.
CREATE INDEX policy_states_state ON policy_states (state, resource_key) WHERE state <> 'Compliant';

CREATE TABLE policy_state_history (
    seq           BIGSERIAL PRIMARY KEY,
    at            TIMESTAMPTZ NOT NULL,
    resource_id   TEXT NOT NULL,
    resource_key  TEXT COLLATE "C" NOT NULL,
    assignment_id TEXT NOT NULL,
    definition_id TEXT NOT NULL,
    reference_id  TEXT NOT NULL,
    from_state    TEXT NOT NULL,   -- '' when the state appeared
    to_state      TEXT NOT NULL    -- '' when the state went away
);

CREATE INDEX policy_state_history_resource ON policy_state_history (resource_key, seq);
CREATE INDEX policy_state_history_at ON policy_state_history (at);

-- A digest of each resource's states as the last full replacement wrote them (see
-- store/sqldb/psdigest.go): a cache that lets a scan skip the rows of resources whose
-- states it finds unchanged. Dropping a row only costs the next scan a row-by-row diff.
CREATE TABLE policy_state_digests (
    resource_key TEXT COLLATE "C" PRIMARY KEY,
    digest       BYTEA NOT NULL
);
