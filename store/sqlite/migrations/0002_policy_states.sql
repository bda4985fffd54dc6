-- Compliance states: one row per resource, assignment and initiative member. The *_key
-- columns are lower-cased so identity is case-insensitive, as for resources.id_key; the
-- spelled columns keep the first writer's spelling for display.
--
-- WITHOUT ROWID clusters the rows by resource_key: a scan rewrites the states of a batch
-- of resources, and reading them back is then one range per resource instead of an index
-- probe plus a table lookup per state. Rows are a few hundred bytes, well under the
-- ~1 KB a WITHOUT ROWID cell holds before it spills to overflow pages.
CREATE TABLE policy_states (
    resource_key      TEXT NOT NULL,   -- BINARY collation = byte order, for scope ranges
    assignment_key    TEXT NOT NULL,
    reference_key     TEXT NOT NULL,   -- '' when the assignment is of a single policy
    resource_id       TEXT NOT NULL,
    assignment_id     TEXT NOT NULL,
    definition_id     TEXT NOT NULL,
    set_definition_id TEXT NOT NULL,
    reference_id      TEXT NOT NULL,
    resource_type     TEXT NOT NULL,
    resource_group    TEXT NOT NULL,
    subscription      TEXT NOT NULL,
    location          TEXT NOT NULL,
    state             TEXT NOT NULL,
    effect            TEXT NOT NULL,
    reasons           TEXT,            -- compact JSON; NULL when there are none
    evaluated_at      TEXT NOT NULL,
    changed_at        TEXT NOT NULL,
    PRIMARY KEY (resource_key, assignment_key, reference_key)
) WITHOUT ROWID;

-- A WITHOUT ROWID table's secondary indexes end with its primary key, so these also hand
-- rows out in (resource_key, assignment_key, reference_key) order for paging.
CREATE INDEX policy_states_assignment ON policy_states (assignment_key, resource_key, reference_key);
-- Partial: most states are Compliant, and a query for them is not selective enough to
-- want an index (the key order serves it), while leaving them out makes the index a
-- seventh of the size and halves what a change of state costs it. Queries spell the state
-- as a literal so that the planner can match the index's condition.
CREATE INDEX policy_states_state ON policy_states (state, resource_key) WHERE state <> 'Compliant';

-- AUTOINCREMENT: a seq is never reused, even after the newest rows are deleted, so a
-- reader that remembers the last seq it saw never skips a later transition.
CREATE TABLE policy_state_history (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    at            TEXT NOT NULL,
    resource_id   TEXT NOT NULL,
    resource_key  TEXT NOT NULL,
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
    resource_key TEXT PRIMARY KEY,
    digest       BLOB NOT NULL
) WITHOUT ROWID;
