-- 0003: the admitting policy, the user's groups and the upstreams that failed before the one that served.
ALTER TABLE audit_records ADD COLUMN policy text NOT NULL DEFAULT '';
ALTER TABLE audit_records ADD COLUMN groups text NOT NULL DEFAULT '';
ALTER TABLE audit_records ADD COLUMN failed_upstreams text NOT NULL DEFAULT '';
