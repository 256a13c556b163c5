-- 0001: one row per request (begun, then completed in place).
CREATE TABLE audit_records (
    seq                            INTEGER PRIMARY KEY,
    request_id                     TEXT    NOT NULL UNIQUE,
    time_ns                        INTEGER NOT NULL,
    state                          TEXT    NOT NULL,
    method                         TEXT    NOT NULL DEFAULT '',
    path                           TEXT    NOT NULL DEFAULT '',
    user_key                       TEXT    NOT NULL DEFAULT '',
    tenant_id                      TEXT    NOT NULL DEFAULT '',
    object_id                      TEXT    NOT NULL DEFAULT '',
    subject                        TEXT    NOT NULL DEFAULT '',
    issuer                         TEXT    NOT NULL DEFAULT '',
    user_name                      TEXT    NOT NULL DEFAULT '',
    user_agent                     TEXT    NOT NULL DEFAULT '',
    session_id                     TEXT    NOT NULL DEFAULT '',
    client_ip                      TEXT    NOT NULL DEFAULT '',
    model                          TEXT    NOT NULL DEFAULT '',
    upstream_model                 TEXT    NOT NULL DEFAULT '',
    upstream                       TEXT    NOT NULL DEFAULT '',
    stream                         INTEGER NOT NULL DEFAULT 0,
    status                         INTEGER NOT NULL DEFAULT 0,
    error_type                     TEXT    NOT NULL DEFAULT '',
    reason                         TEXT    NOT NULL DEFAULT '',
    latency_ms                     REAL    NOT NULL DEFAULT 0,
    ttfb_ms                        REAL    NOT NULL DEFAULT 0,
    upstream_request_id            TEXT    NOT NULL DEFAULT '',
    input_tokens                   INTEGER NOT NULL DEFAULT 0,
    output_tokens                  INTEGER NOT NULL DEFAULT 0,
    cache_creation_input_tokens    INTEGER NOT NULL DEFAULT 0,
    cache_read_input_tokens        INTEGER NOT NULL DEFAULT 0,
    cache_creation_5m_input_tokens INTEGER NOT NULL DEFAULT 0,
    cache_creation_1h_input_tokens INTEGER NOT NULL DEFAULT 0,
    cost_usd                       REAL    NOT NULL DEFAULT 0,
    instance                       TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX audit_records_time ON audit_records (time_ns);
CREATE INDEX audit_records_user ON audit_records (user_key);
CREATE INDEX audit_records_begun ON audit_records (state) WHERE state = 'begun';
