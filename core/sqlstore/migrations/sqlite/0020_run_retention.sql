-- Retention (sqlstore/retention.go): how many days a workspace keeps its
-- ended runs; NULL keeps the server's default (relay serve
-- --run-retention).
ALTER TABLE workspaces ADD COLUMN run_retention_days INTEGER;
