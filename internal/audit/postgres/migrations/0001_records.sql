-- 0001: records (partitioned by month on time_ns), hash chains (one per
-- writer instance), signed checkpoints, retention log.
CREATE SEQUENCE audit_records_seq;
CREATE TABLE audit_records (
    seq                            bigint           NOT NULL DEFAULT nextval('audit_records_seq'),
    request_id                     text             NOT NULL,
    time_ns                        bigint           NOT NULL,
    state                          text             NOT NULL,
    method                         text             NOT NULL DEFAULT '',
    path                           text             NOT NULL DEFAULT '',
    user_key                       text             NOT NULL DEFAULT '',
    tenant_id                      text             NOT NULL DEFAULT '',
    object_id                      text             NOT NULL DEFAULT '',
    subject                        text             NOT NULL DEFAULT '',
    issuer                         text             NOT NULL DEFAULT '',
    user_name                      text             NOT NULL DEFAULT '',
    user_agent                     text             NOT NULL DEFAULT '',
    session_id                     text             NOT NULL DEFAULT '',
    client_ip                      text             NOT NULL DEFAULT '',
    model                          text             NOT NULL DEFAULT '',
    upstream_model                 text             NOT NULL DEFAULT '',
    upstream                       text             NOT NULL DEFAULT '',
    stream                         boolean          NOT NULL DEFAULT false,
    status                         integer          NOT NULL DEFAULT 0,
    error_type                     text             NOT NULL DEFAULT '',
    reason                         text             NOT NULL DEFAULT '',
    latency_ms                     double precision NOT NULL DEFAULT 0,
    ttfb_ms                        double precision NOT NULL DEFAULT 0,
    upstream_request_id            text             NOT NULL DEFAULT '',
    input_tokens                   bigint           NOT NULL DEFAULT 0,
    output_tokens                  bigint           NOT NULL DEFAULT 0,
    cache_creation_input_tokens    bigint           NOT NULL DEFAULT 0,
    cache_read_input_tokens        bigint           NOT NULL DEFAULT 0,
    cache_creation_5m_input_tokens bigint           NOT NULL DEFAULT 0,
    cache_creation_1h_input_tokens bigint           NOT NULL DEFAULT 0,
    cost_usd                       double precision NOT NULL DEFAULT 0,
    instance                       text             NOT NULL DEFAULT '',
    PRIMARY KEY (request_id, time_ns)
) PARTITION BY RANGE (time_ns);
CREATE TABLE audit_records_default PARTITION OF audit_records DEFAULT;
CREATE INDEX audit_records_seq_idx ON audit_records (seq);
CREATE INDEX audit_records_time_idx ON audit_records (time_ns);
CREATE INDEX audit_records_user_idx ON audit_records (user_key);
CREATE INDEX audit_records_begun_idx ON audit_records (instance) WHERE state = 'begun';

CREATE TABLE audit_chain (
    chain      text   NOT NULL,
    seq        bigint NOT NULL,
    kind       text   NOT NULL,
    request_id text   NOT NULL,
    payload    bytea  NOT NULL,
    prev_hash  bytea  NOT NULL,
    hash       bytea  NOT NULL,
    PRIMARY KEY (chain, seq)
);

CREATE TABLE audit_checkpoints (
    id        bigserial PRIMARY KEY,
    chain     text   NOT NULL,
    size      bigint NOT NULL,
    head      bytea  NOT NULL,
    time_ns   bigint NOT NULL,
    key_id    text   NOT NULL,
    note      text   NOT NULL,
    signature bytea  NOT NULL
);

CREATE TABLE audit_retention (
    id         bigserial PRIMARY KEY,
    partition  text   NOT NULL,
    horizon_ns bigint NOT NULL,
    dropped_ns bigint NOT NULL
);
