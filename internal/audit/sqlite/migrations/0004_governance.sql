-- 0004: the admitting policy, the user's groups and the upstreams that failed before the one that served.
ALTER TABLE audit_records ADD COLUMN policy TEXT NOT NULL DEFAULT '';
ALTER TABLE audit_records ADD COLUMN groups TEXT NOT NULL DEFAULT '';
ALTER TABLE audit_records ADD COLUMN failed_upstreams TEXT NOT NULL DEFAULT '';
