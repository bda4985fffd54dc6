-- Times are fixed-width UTC text (see store/sqldb), which sorts in time order.
-- resources is a rowid table on purpose: WITHOUT ROWID would put each ~1 KB body in the
-- primary-key b-tree, whose cells spill to overflow pages past about 1 KB.
CREATE TABLE resources (
    id_key     TEXT PRIMARY KEY,   -- lower-case canonical ID; BINARY collation = byte order
    id         TEXT NOT NULL,      -- as first created
    type_key   TEXT NOT NULL,
    etag       TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    body       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE INDEX resources_type ON resources (type_key, id_key);

CREATE TABLE changes (
    seq  INTEGER PRIMARY KEY,
    id   TEXT NOT NULL,
    type TEXT NOT NULL,
    op   TEXT NOT NULL,
    etag TEXT NOT NULL,
    at   TEXT NOT NULL
);

CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);

INSERT INTO counters (name, value) VALUES ('seq', 0);

CREATE TABLE audit (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    at          TEXT NOT NULL,
    principal   TEXT NOT NULL,
    action      TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    id_key      TEXT NOT NULL,
    type        TEXT NOT NULL,
    before_etag TEXT NOT NULL,
    after_etag  TEXT NOT NULL,
    detail      TEXT NOT NULL
);

CREATE INDEX audit_id_key ON audit (id_key, seq);
CREATE INDEX audit_at ON audit (at);

CREATE TABLE tokens (
    id           TEXT PRIMARY KEY,
    principal_id TEXT NOT NULL,
    hash         TEXT NOT NULL UNIQUE,
    description  TEXT NOT NULL,
    created_by   TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    expires_at   TEXT,
    revoked_at   TEXT
);

CREATE INDEX tokens_principal ON tokens (principal_id);
