-- 0002: tamper evidence. Every write appends one hash-chained entry per
-- record; signed checkpoints commit to the chain's head.
CREATE TABLE audit_chain (
    seq        INTEGER PRIMARY KEY,
    kind       TEXT NOT NULL,
    request_id TEXT NOT NULL,
    payload    BLOB NOT NULL,
    prev_hash  BLOB NOT NULL,
    hash       BLOB NOT NULL
);
CREATE TABLE audit_checkpoints (
    id        INTEGER PRIMARY KEY,
    size      INTEGER NOT NULL,
    head      BLOB    NOT NULL,
    time_ns   INTEGER NOT NULL,
    key_id    TEXT    NOT NULL,
    note      TEXT    NOT NULL,
    signature BLOB    NOT NULL
);
