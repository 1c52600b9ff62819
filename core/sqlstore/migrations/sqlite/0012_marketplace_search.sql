-- Finding templates (marketplace/search.go, docs/marketplace.md): one
-- listing per template, made at its first version and rewritten when a
-- newer version is published (its words are the newest version's), with
-- a full-text index of its name, title, summary, categories and readme.
-- Which version is the latest (newest not yanked) is read from
-- registry_versions, so that a yank shows at once.

CREATE TABLE marketplace_listings (
    -- The full-text index's rowid: an INTEGER PRIMARY KEY keeps it
    -- through a VACUUM.
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE REFERENCES registry_packages (name),
    publisher  TEXT NOT NULL,
    title      TEXT NOT NULL,
    summary    TEXT NOT NULL,
    categories TEXT NOT NULL DEFAULT '', -- separated by spaces
    icon       TEXT NOT NULL DEFAULT '',
    readme     TEXT NOT NULL DEFAULT '',
    version    TEXT NOT NULL,            -- the newest published, whose words these are
    updated_at TIMESTAMP NOT NULL        -- when a version was last published
);

CREATE INDEX marketplace_listings_publisher ON marketplace_listings (publisher, name);
-- The orders of a search without words: by name (the key), the last
-- published first, the most installed first; ties by name.
CREATE INDEX marketplace_listings_updated ON marketplace_listings (updated_at DESC, name);
CREATE INDEX marketplace_template_stats_installs ON marketplace_template_stats (installs DESC, template);

-- A listing's categories, one row each, for the category filter.
CREATE TABLE marketplace_listing_categories (
    category TEXT NOT NULL,
    name     TEXT NOT NULL REFERENCES marketplace_listings (name),
    PRIMARY KEY (category, name)
);

-- Words stemmed (porter), accents folded; the listing table holds the
-- text, and the triggers keep the index in step with it.
CREATE VIRTUAL TABLE marketplace_listings_fts USING fts5 (
    name, title, summary, categories, readme,
    content = 'marketplace_listings', content_rowid = 'id',
    tokenize = 'porter unicode61 remove_diacritics 2'
);

CREATE TRIGGER marketplace_listings_fts_insert AFTER INSERT ON marketplace_listings BEGIN
    INSERT INTO marketplace_listings_fts (rowid, name, title, summary, categories, readme)
    VALUES (new.id, new.name, new.title, new.summary, new.categories, new.readme);
END;

CREATE TRIGGER marketplace_listings_fts_delete AFTER DELETE ON marketplace_listings BEGIN
    INSERT INTO marketplace_listings_fts (marketplace_listings_fts, rowid, name, title, summary, categories, readme)
    VALUES ('delete', old.id, old.name, old.title, old.summary, old.categories, old.readme);
END;

CREATE TRIGGER marketplace_listings_fts_update AFTER UPDATE ON marketplace_listings BEGIN
    INSERT INTO marketplace_listings_fts (marketplace_listings_fts, rowid, name, title, summary, categories, readme)
    VALUES ('delete', old.id, old.name, old.title, old.summary, old.categories, old.readme);
    INSERT INTO marketplace_listings_fts (rowid, name, title, summary, categories, readme)
    VALUES (new.id, new.name, new.title, new.summary, new.categories, new.readme);
END;

-- Templates published before this migration: listed from the version
-- published last (a later publish of a newer version rewrites it).
INSERT INTO marketplace_listings (name, publisher, title, summary, categories, icon, readme, version, updated_at)
SELECT p.name, p.publisher,
    COALESCE(json_extract(v.manifest, '$.title'), ''),
    COALESCE(json_extract(v.manifest, '$.summary'), ''),
    COALESCE((SELECT group_concat(c.value, ' ') FROM json_each(v.manifest, '$.categories') c), ''),
    COALESCE(json_extract(v.manifest, '$.icon'), ''),
    COALESCE(json_extract(v.manifest, '$.readme'), ''),
    v.version, v.published_at
FROM registry_packages p
JOIN registry_versions v ON v.package = p.name
WHERE p.kind = 'template'
  AND v.version = (SELECT version FROM registry_versions WHERE package = p.name ORDER BY published_at DESC, version DESC LIMIT 1);

INSERT INTO marketplace_listing_categories (category, name)
SELECT DISTINCT c.value, l.name
FROM marketplace_listings l
JOIN registry_versions v ON v.package = l.name AND v.version = l.version,
    json_each(v.manifest, '$.categories') c;

-- Every listing has its row of install counts (the installs order reads
-- from it): made here for any that lacks one.
INSERT INTO marketplace_template_stats (template, installs)
SELECT name, 0 FROM marketplace_listings WHERE true -- (SQLite's upsert after a SELECT needs a WHERE)
ON CONFLICT (template) DO NOTHING;
