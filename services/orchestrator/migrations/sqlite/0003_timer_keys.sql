-- An escalation timer is identified by its recommendation and its step, as on
-- PostgreSQL. The table is made anew, keeping the pending timers.
CREATE TABLE keyed_timers (
    recommendation_id TEXT NOT NULL REFERENCES recommendations (id),
    step INTEGER NOT NULL,
    target TEXT NOT NULL,
    due_at INTEGER NOT NULL,
    PRIMARY KEY (recommendation_id, step)
);
-- Were there two timers for a step, the one with the lower id stays, as on PostgreSQL.
INSERT OR IGNORE INTO keyed_timers (recommendation_id, step, target, due_at)
    SELECT recommendation_id, step, target, due_at FROM escalation_timers
    ORDER BY recommendation_id, step, id;
DROP TABLE escalation_timers;
ALTER TABLE keyed_timers RENAME TO escalation_timers;
CREATE INDEX escalation_timers_due ON escalation_timers (due_at);
