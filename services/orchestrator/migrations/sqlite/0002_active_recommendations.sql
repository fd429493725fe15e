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

-- A timer row exists while the timer is pending: firing or cancelling one deletes it
-- (the audit trail keeps the escalation). The table is made anew, keeping the pending.
CREATE TABLE pending_timers (
    id TEXT PRIMARY KEY,
    recommendation_id TEXT NOT NULL REFERENCES recommendations (id),
    step INTEGER NOT NULL,
    target TEXT NOT NULL,
    due_at INTEGER NOT NULL
);
INSERT INTO pending_timers (id, recommendation_id, step, target, due_at)
    SELECT id, recommendation_id, step, target, due_at FROM escalation_timers
    WHERE state = 'pending';
DROP TABLE escalation_timers;
ALTER TABLE pending_timers RENAME TO escalation_timers;
CREATE INDEX escalation_timers_due ON escalation_timers (due_at, id);
CREATE INDEX escalation_timers_by_recommendation ON escalation_timers (recommendation_id);
