-- Keys use the "C" collation so that comparisons are byte order, which the key-range scope
-- scans of store/sqldb rely on; the database's locale collation would interleave them.
CREATE TABLE resources (
    id_key     TEXT COLLATE "C" PRIMARY KEY,
    id         TEXT NOT NULL,
    type_key   TEXT COLLATE "C" NOT NULL,
    etag       TEXT NOT NULL,
    seq        BIGINT NOT NULL,
    -- json, not jsonb: it keeps the body byte for byte, so properties read back as written.
    body       JSON NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX resources_type ON resources (type_key, id_key);

CREATE TABLE changes (
    seq  BIGINT PRIMARY KEY,
    id   TEXT NOT NULL,
    type TEXT NOT NULL,
    op   TEXT NOT NULL,
    etag TEXT NOT NULL,
    at   TIMESTAMPTZ NOT NULL
);

CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);

INSERT INTO counters (name, value) VALUES ('seq', 0);

CREATE TABLE audit (
    seq         BIGSERIAL PRIMARY KEY,
    at          TIMESTAMPTZ NOT NULL,
    principal   TEXT NOT NULL,
    action      TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    id_key      TEXT COLLATE "C" NOT NULL,
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
    created_at   TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ
);

CREATE INDEX tokens_principal ON tokens (principal_id);
