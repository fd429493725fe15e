-- The asset registry, as in the PostgreSQL migration: the same tables, columns and
-- constraints (sqlx turns SQLite's foreign keys on for every connection). SQLite has no
-- LISTEN/NOTIFY: the service invalidates its cache after its own writes.

CREATE TABLE sites (
    id TEXT PRIMARY KEY NOT NULL CHECK (id <> ''),
    name TEXT NOT NULL CHECK (name <> ''),
    timezone TEXT NOT NULL DEFAULT '',
    attributes TEXT NOT NULL DEFAULT '{}'
        CHECK (json_valid(attributes) AND json_type(attributes) = 'object'),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE assets (
    id TEXT PRIMARY KEY NOT NULL CHECK (id <> ''),
    site_id TEXT NOT NULL REFERENCES sites (id) ON DELETE RESTRICT,
    parent_id TEXT CHECK (parent_id <> id),
    name TEXT NOT NULL CHECK (name <> ''),
    level TEXT NOT NULL DEFAULT '',
    external_id TEXT NOT NULL DEFAULT '',
    criticality TEXT NOT NULL DEFAULT 'medium'
        CHECK (criticality IN ('low', 'medium', 'high', 'critical')),
    owner_team TEXT NOT NULL DEFAULT '',
    attributes TEXT NOT NULL DEFAULT '{}'
        CHECK (json_valid(attributes) AND json_type(attributes) = 'object'),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (id, site_id),
    FOREIGN KEY (parent_id, site_id) REFERENCES assets (id, site_id) ON DELETE RESTRICT
);
CREATE INDEX assets_site ON assets (site_id);
CREATE INDEX assets_parent ON assets (parent_id);
CREATE UNIQUE INDEX assets_external_id ON assets (external_id) WHERE external_id <> '';

CREATE TABLE devices (
    id TEXT PRIMARY KEY NOT NULL CHECK (id <> ''),
    asset_id TEXT REFERENCES assets (id) ON DELETE SET NULL,
    device_type TEXT NOT NULL DEFAULT '',
    attributes TEXT NOT NULL DEFAULT '{}'
        CHECK (json_valid(attributes) AND json_type(attributes) = 'object'),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX devices_asset ON devices (asset_id);

CREATE TABLE work_orders (
    id TEXT PRIMARY KEY NOT NULL CHECK (id <> ''),
    asset_id TEXT NOT NULL REFERENCES assets (id) ON DELETE CASCADE,
    external_id TEXT NOT NULL DEFAULT '',
    title TEXT NOT NULL CHECK (title <> ''),
    status TEXT NOT NULL CHECK (status IN ('open', 'closed')),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX work_orders_asset ON work_orders (asset_id, status);
CREATE UNIQUE INDEX work_orders_external_id ON work_orders (external_id)
    WHERE external_id <> '';
