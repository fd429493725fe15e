-- The asset registry: sites, an asset hierarchy of any depth, devices bound to at most
-- one asset, and work orders. Times are microseconds since the Unix epoch (BIGINT), so
-- the same queries read them on PostgreSQL and SQLite. Attributes are JSON objects kept
-- as text and checked by the schema.

CREATE TABLE sites (
    id TEXT PRIMARY KEY CHECK (id <> ''),
    name TEXT NOT NULL CHECK (name <> ''),
    timezone TEXT NOT NULL DEFAULT '',
    attributes TEXT NOT NULL DEFAULT '{}'
        CHECK (jsonb_typeof(attributes::jsonb) = 'object'),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE assets (
    id TEXT PRIMARY KEY CHECK (id <> ''),
    site_id TEXT NOT NULL REFERENCES sites (id) ON DELETE RESTRICT,
    -- NULL for a node directly below the site.
    parent_id TEXT CHECK (parent_id <> id),
    name TEXT NOT NULL CHECK (name <> ''),
    level TEXT NOT NULL DEFAULT '',
    external_id TEXT NOT NULL DEFAULT '',
    criticality TEXT NOT NULL DEFAULT 'medium'
        CHECK (criticality IN ('low', 'medium', 'high', 'critical')),
    owner_team TEXT NOT NULL DEFAULT '',
    attributes TEXT NOT NULL DEFAULT '{}'
        CHECK (jsonb_typeof(attributes::jsonb) = 'object'),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (id, site_id),
    -- A parent is in the same site as its child.
    FOREIGN KEY (parent_id, site_id) REFERENCES assets (id, site_id) ON DELETE RESTRICT
);
CREATE INDEX assets_site ON assets (site_id);
CREATE INDEX assets_parent ON assets (parent_id);
CREATE UNIQUE INDEX assets_external_id ON assets (external_id) WHERE external_id <> '';

-- The primary key on the device id is what makes a second binding impossible: a device
-- has one row, and that row names one asset at most.
CREATE TABLE devices (
    id TEXT PRIMARY KEY CHECK (id <> ''),
    -- NULL while unbound; deleting the asset unbinds its devices.
    asset_id TEXT REFERENCES assets (id) ON DELETE SET NULL,
    device_type TEXT NOT NULL DEFAULT '',
    attributes TEXT NOT NULL DEFAULT '{}'
        CHECK (jsonb_typeof(attributes::jsonb) = 'object'),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX devices_asset ON devices (asset_id);

CREATE TABLE work_orders (
    id TEXT PRIMARY KEY CHECK (id <> ''),
    asset_id TEXT NOT NULL REFERENCES assets (id) ON DELETE CASCADE,
    external_id TEXT NOT NULL DEFAULT '',
    title TEXT NOT NULL CHECK (title <> ''),
    status TEXT NOT NULL CHECK (status IN ('open', 'closed')),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX work_orders_asset ON work_orders (asset_id, status);
CREATE UNIQUE INDEX work_orders_external_id ON work_orders (external_id)
    WHERE external_id <> '';

-- Every change is announced on the channel `sinter_context_registry` as `<kind>:<id>`,
-- naming what a cached asset context depends on: `device:<id>`, `asset:<id>` (an asset
-- or its work orders) or `site:<id>`.
CREATE FUNCTION sinter_context_notify() RETURNS trigger AS $$
BEGIN
    IF TG_TABLE_NAME = 'devices' THEN
        IF TG_OP <> 'INSERT' THEN
            PERFORM pg_notify('sinter_context_registry', 'device:' || OLD.id);
        END IF;
        IF TG_OP <> 'DELETE' THEN
            PERFORM pg_notify('sinter_context_registry', 'device:' || NEW.id);
        END IF;
    ELSIF TG_TABLE_NAME = 'assets' THEN
        IF TG_OP <> 'INSERT' THEN
            PERFORM pg_notify('sinter_context_registry', 'asset:' || OLD.id);
        END IF;
        IF TG_OP <> 'DELETE' THEN
            PERFORM pg_notify('sinter_context_registry', 'asset:' || NEW.id);
        END IF;
    ELSIF TG_TABLE_NAME = 'work_orders' THEN
        IF TG_OP <> 'INSERT' THEN
            PERFORM pg_notify('sinter_context_registry', 'asset:' || OLD.asset_id);
        END IF;
        IF TG_OP <> 'DELETE' THEN
            PERFORM pg_notify('sinter_context_registry', 'asset:' || NEW.asset_id);
        END IF;
    ELSIF TG_TABLE_NAME = 'sites' THEN
        IF TG_OP <> 'INSERT' THEN
            PERFORM pg_notify('sinter_context_registry', 'site:' || OLD.id);
        END IF;
        IF TG_OP <> 'DELETE' THEN
            PERFORM pg_notify('sinter_context_registry', 'site:' || NEW.id);
        END IF;
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER sites_notify AFTER INSERT OR UPDATE OR DELETE ON sites
    FOR EACH ROW EXECUTE FUNCTION sinter_context_notify();
CREATE TRIGGER assets_notify AFTER INSERT OR UPDATE OR DELETE ON assets
    FOR EACH ROW EXECUTE FUNCTION sinter_context_notify();
CREATE TRIGGER devices_notify AFTER INSERT OR UPDATE OR DELETE ON devices
    FOR EACH ROW EXECUTE FUNCTION sinter_context_notify();
CREATE TRIGGER work_orders_notify AFTER INSERT OR UPDATE OR DELETE ON work_orders
    FOR EACH ROW EXECUTE FUNCTION sinter_context_notify();
