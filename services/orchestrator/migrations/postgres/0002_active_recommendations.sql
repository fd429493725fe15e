-- A schema for many lifecycles a second.
--
-- The one-active rule moves from a partial unique index on `recommendations` to a table
-- of its own. As long as the index named `state` in its predicate, every state change
-- rewrote an entry in each of the table's indexes; now no index holds a column a state
-- change or an escalation changes, so PostgreSQL updates a recommendation in place (a HOT
-- update) when its page has room, and the fill factor leaves that room.
--
-- The audit trail, the timers and the outbox no longer reference `recommendations` by a
-- foreign key: each of their rows is written in the transaction that changes its
-- recommendation, and recommendations are never deleted, so the key checked nothing the
-- code does not already ensure, at the cost of a lookup and a row lock per row.
--
-- Every replica must be stopped before this runs: an older orchestrator neither claims
-- nor releases the one-active key.

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
ALTER TABLE recommendations SET (fillfactor = 70);

ALTER TABLE recommendation_history DROP CONSTRAINT recommendation_history_recommendation_id_fkey;
ALTER TABLE escalation_timers DROP CONSTRAINT escalation_timers_recommendation_id_fkey;
ALTER TABLE action_outbox DROP CONSTRAINT action_outbox_recommendation_id_fkey;

-- A timer row exists while the timer is pending: firing or cancelling one deletes it
-- (the audit trail keeps the escalation), which writes no index entry, where moving it
-- to another state rewrote its row and two index entries.
DELETE FROM escalation_timers WHERE state <> 'pending';
DROP INDEX escalation_timers_due;
ALTER TABLE escalation_timers DROP COLUMN state, DROP COLUMN fired_at;
CREATE INDEX escalation_timers_due ON escalation_timers (due_at, id);

-- The audit trail is read by recommendation, in order: one index serves that and
-- identifies an entry, where a key on `seq` alone and an index by recommendation were two
-- to write for each entry.
ALTER TABLE recommendation_history DROP CONSTRAINT recommendation_history_pkey;
DROP INDEX recommendation_history_by_recommendation;
ALTER TABLE recommendation_history ADD PRIMARY KEY (recommendation_id, seq);
