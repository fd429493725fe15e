-- The one-active rule moves from a partial unique index on `recommendations` to a table
-- of its own, as on PostgreSQL (where that lets a state change update a recommendation in
-- place). SQLite keeps the foreign keys PostgreSQL dropped: they cost it little.

CREATE TABLE active_recommendations (
    solution TEXT NOT NULL,
    rule TEXT NOT NULL,
    asset_key TEXT NOT NULL,
    recommendation_id TEXT NOT NULL,
    PRIMARY KEY (solution, rule, asset_key)
);
INSERT INTO active_recommendations (solution, rule, asset_key, recommendation_id)
    SELECT solution, rule, asset_key, id FROM recommendations
    WHERE state IN ('open', 'acknowledged', 'in_progress');
DROP INDEX recommendations_one_active;
