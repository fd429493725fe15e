-- An escalation timer is identified by its recommendation and its step: one key serves
-- the lookups by recommendation (cancelling), where a derived id and an index by
-- recommendation were two to write for each timer. The due index holds the due time
-- alone; timers due at the same moment fire in no particular order.
--
-- Every replica must be stopped before this runs: an older orchestrator writes and reads
-- the timer ids this drops.
-- Only an opening writes a recommendation's ladder, one timer per step; were there two
-- for a step, the one with the lower id stays.
DELETE FROM escalation_timers AS later USING escalation_timers AS earlier
    WHERE later.recommendation_id = earlier.recommendation_id
    AND later.step = earlier.step AND later.id > earlier.id;
ALTER TABLE escalation_timers DROP CONSTRAINT escalation_timers_pkey;
DROP INDEX escalation_timers_by_recommendation;
DROP INDEX escalation_timers_due;
ALTER TABLE escalation_timers DROP COLUMN id;
ALTER TABLE escalation_timers ADD PRIMARY KEY (recommendation_id, step);
-- The due timers and the pending actions are queues: an entry lives until its timer
-- fires or its action is delivered, and a batch's entries share a time (its openings share
-- the moment they were applied). Deduplication would merge those equal keys into posting
-- lists, work that only pays for entries that stay; these indexes do without it.
CREATE INDEX escalation_timers_due ON escalation_timers (due_at)
    WITH (deduplicate_items = off);
ALTER INDEX action_outbox_pending SET (deduplicate_items = off);
