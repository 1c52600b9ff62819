-- Confusable names (registry/relaypkg.Skeleton): a publisher's or a
-- package's skeleton, its name as a reader sees it, is unique, so that no
-- one registers re1ay beside relay, or acme/n0tes beside acme/notes. The
-- REPLACE chain is Skeleton's, in its order.

ALTER TABLE registry_publishers ADD COLUMN skeleton TEXT;
UPDATE registry_publishers SET skeleton = REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(name, '-', ''), '0', 'o'), '1', 'l'), '5', 's'), 'rn', 'm'), 'vv', 'w');
CREATE UNIQUE INDEX registry_publishers_skeleton ON registry_publishers (skeleton);

ALTER TABLE registry_packages ADD COLUMN skeleton TEXT;
UPDATE registry_packages SET skeleton = REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(name, '-', ''), '0', 'o'), '1', 'l'), '5', 's'), 'rn', 'm'), 'vv', 'w');
CREATE UNIQUE INDEX registry_packages_skeleton ON registry_packages (skeleton);
