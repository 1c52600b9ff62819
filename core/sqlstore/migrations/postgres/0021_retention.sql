-- Retention (sqlstore/retention.go): how many days a workspace keeps its
-- audit records (older ones give way to a signed checkpoint) and how many
-- hours it remembers an idempotency key; NULL keeps the server's default
-- (relay serve --audit-retention-days, --idempotency-retention-hours).
ALTER TABLE workspaces ADD COLUMN audit_retention_days INTEGER;
ALTER TABLE workspaces ADD COLUMN idempotency_retention_hours INTEGER;
