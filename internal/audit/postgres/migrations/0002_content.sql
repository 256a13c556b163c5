-- 0002: captured content (audit.content), encrypted; metadata in clear.
CREATE TABLE audit_content (
    request_id      text   PRIMARY KEY,
    time_ns         bigint NOT NULL,
    user_key        text   NOT NULL DEFAULT '',
    mode            text   NOT NULL,
    request_sha256  text   NOT NULL,
    response_sha256 text   NOT NULL,
    request_bytes   bigint NOT NULL,
    response_bytes  bigint NOT NULL,
    redactions      text   NOT NULL DEFAULT '',
    key_id          text   NOT NULL DEFAULT '',
    sealed          bytea
);
CREATE INDEX audit_content_user ON audit_content (user_key, time_ns);
CREATE INDEX audit_content_time ON audit_content (time_ns);
