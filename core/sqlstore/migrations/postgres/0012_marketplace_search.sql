-- Finding templates (marketplace/search.go, docs/marketplace.md): one
-- listing per template, made at its first version and rewritten when a
-- newer version is published (its words are the newest version's), with
-- a full-text index of its name, title, summary, categories and readme.
-- Which version is the latest (newest not yanked) is read from
-- registry_versions, so that a yank shows at once.

CREATE TABLE marketplace_listings (
    name       TEXT PRIMARY KEY REFERENCES registry_packages (name),
    publisher  TEXT NOT NULL,
    title      TEXT NOT NULL,
    summary    TEXT NOT NULL,
    categories TEXT NOT NULL DEFAULT '', -- separated by spaces
    icon       TEXT NOT NULL DEFAULT '',
    readme     TEXT NOT NULL DEFAULT '',
    version    TEXT NOT NULL,            -- the newest published, whose words these are
    updated_at TIMESTAMPTZ NOT NULL,     -- when a version was last published
    -- Words stemmed (english), weighted: name and title A, summary and
    -- categories B, readme C.
    search     TSVECTOR GENERATED ALWAYS AS (
        setweight(to_tsvector('english', replace(name, '/', ' ')), 'A') ||
        setweight(to_tsvector('english', title), 'A') ||
        setweight(to_tsvector('english', summary), 'B') ||
        setweight(to_tsvector('english', categories), 'B') ||
        setweight(to_tsvector('english', readme), 'C')
    ) STORED
);

CREATE INDEX marketplace_listings_publisher ON marketplace_listings (publisher, name);
-- The orders of a search without words: by name (the key), the last
-- published first, the most installed first; ties by name.
CREATE INDEX marketplace_listings_updated ON marketplace_listings (updated_at DESC, name);
CREATE INDEX marketplace_template_stats_installs ON marketplace_template_stats (installs DESC, template);
CREATE INDEX marketplace_listings_search ON marketplace_listings USING GIN (search);

-- A listing's categories, one row each, for the category filter.
CREATE TABLE marketplace_listing_categories (
    category TEXT NOT NULL,
    name     TEXT NOT NULL REFERENCES marketplace_listings (name),
    PRIMARY KEY (category, name)
);

-- Templates published before this migration: listed from the version
-- published last (a later publish of a newer version rewrites it).
INSERT INTO marketplace_listings (name, publisher, title, summary, categories, icon, readme, version, updated_at)
SELECT p.name, p.publisher,
    COALESCE(v.manifest::jsonb ->> 'title', ''),
    COALESCE(v.manifest::jsonb ->> 'summary', ''),
    COALESCE(array_to_string(ARRAY(SELECT jsonb_array_elements_text(COALESCE(v.manifest::jsonb -> 'categories', '[]'))), ' '), ''),
    COALESCE(v.manifest::jsonb ->> 'icon', ''),
    COALESCE(v.manifest::jsonb ->> 'readme', ''),
    v.version, v.published_at
FROM registry_packages p
JOIN registry_versions v ON v.package = p.name
WHERE p.kind = 'template'
  AND v.version = (SELECT version FROM registry_versions WHERE package = p.name ORDER BY published_at DESC, version DESC LIMIT 1);

INSERT INTO marketplace_listing_categories (category, name)
SELECT DISTINCT c.value, l.name
FROM marketplace_listings l
JOIN registry_versions v ON v.package = l.name AND v.version = l.version,
    jsonb_array_elements_text(COALESCE(v.manifest::jsonb -> 'categories', '[]')) c;

-- Every listing has its row of install counts (the installs order reads
-- from it): made here for any that lacks one.
INSERT INTO marketplace_template_stats (template, installs)
SELECT name, 0 FROM marketplace_listings
ON CONFLICT (template) DO NOTHING;
