-- 0003: captured content (audit.content), encrypted; metadata in clear.
CREATE TABLE audit_content (
    request_id      TEXT    PRIMARY KEY,
    time_ns         INTEGER NOT NULL,
    user_key        TEXT    NOT NULL DEFAULT '',
    mode            TEXT    NOT NULL,
    request_sha256  TEXT    NOT NULL,
    response_sha256 TEXT    NOT NULL,
    request_bytes   INTEGER NOT NULL,
    response_bytes  INTEGER NOT NULL,
    redactions      TEXT    NOT NULL DEFAULT '',
    key_id          TEXT    NOT NULL DEFAULT '',
    sealed          BLOB
);
CREATE INDEX audit_content_user ON audit_content (user_key, time_ns);
CREATE INDEX audit_content_time ON audit_content (time_ns);
