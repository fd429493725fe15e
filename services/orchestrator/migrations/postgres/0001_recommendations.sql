-- Recommendations, their audit trail, escalation timers, the action outbox, and the
-- consumer's progress through each Solution's situations. Times are microseconds since
-- the Unix epoch (UTC).

CREATE TABLE recommendations (
    id TEXT PRIMARY KEY,
    solution TEXT NOT NULL,
    rule TEXT NOT NULL,
    -- The asset id, or the device id when the registry knew no asset.
    asset_key TEXT NOT NULL,
    asset_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    state TEXT NOT NULL,
    severity BIGINT NOT NULL,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    -- The encoded sinter.events.v1.Situation that opened it.
    situation BYTEA NOT NULL,
    -- The incident of the latest raising situation: its clear ends the recommendation.
    incident_id TEXT NOT NULL,
    occurrences BIGINT NOT NULL,
    assignee TEXT NOT NULL DEFAULT '',
    escalation_level BIGINT NOT NULL DEFAULT 0,
    escalated_to TEXT NOT NULL DEFAULT '',
    outcome BIGINT NOT NULL DEFAULT 0,
    opened_at BIGINT NOT NULL,
    acknowledged_at BIGINT,
    resolved_at BIGINT,
    updated_at BIGINT NOT NULL
);

-- At most one active recommendation per Solution, rule and asset.
CREATE UNIQUE INDEX recommendations_one_active
    ON recommendations (solution, rule, asset_key)
    WHERE state IN ('open', 'acknowledged', 'in_progress');
CREATE INDEX recommendations_by_opening ON recommendations (solution, opened_at, id);
CREATE INDEX recommendations_by_incident ON recommendations (solution, incident_id);

CREATE TABLE recommendation_history (
    seq BIGSERIAL PRIMARY KEY,
    recommendation_id TEXT NOT NULL REFERENCES recommendations (id),
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    event TEXT NOT NULL,
    from_state TEXT NOT NULL,
    to_state TEXT NOT NULL,
    comment TEXT NOT NULL
);
CREATE INDEX recommendation_history_by_recommendation
    ON recommendation_history (recommendation_id, seq);

CREATE TABLE escalation_timers (
    id TEXT PRIMARY KEY,
    recommendation_id TEXT NOT NULL REFERENCES recommendations (id),
    step BIGINT NOT NULL,
    target TEXT NOT NULL,
    due_at BIGINT NOT NULL,
    -- pending, fired, cancelled
    state TEXT NOT NULL,
    fired_at BIGINT
);
CREATE INDEX escalation_timers_due ON escalation_timers (due_at) WHERE state = 'pending';
CREATE INDEX escalation_timers_by_recommendation ON escalation_timers (recommendation_id);

CREATE TABLE action_outbox (
    -- The sinter.events.v1.Action id, also the webhook's idempotency key.
    id TEXT PRIMARY KEY,
    recommendation_id TEXT NOT NULL REFERENCES recommendations (id),
    solution TEXT NOT NULL,
    -- webhook or topic
    kind TEXT NOT NULL,
    -- The URL or the topic.
    target TEXT NOT NULL,
    -- For webhooks: the header that carries the secret and where the secret is read
    -- from (env:NAME or file:PATH); never the secret itself.
    secret_header TEXT NOT NULL,
    secret_ref TEXT NOT NULL,
    -- The encoded sinter.events.v1.Action.
    action BYTEA NOT NULL,
    -- pending, delivered, parked
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    delivered_at BIGINT,
    parked_at BIGINT
);
CREATE INDEX action_outbox_pending ON action_outbox (next_attempt_at) WHERE state = 'pending';
CREATE INDEX action_outbox_parked ON action_outbox (solution, parked_at, id)
    WHERE state = 'parked';

-- Situations already applied: a redelivered one changes nothing.
CREATE TABLE applied_situations (
    solution TEXT NOT NULL,
    situation_id TEXT NOT NULL,
    applied_at BIGINT NOT NULL,
    PRIMARY KEY (solution, situation_id)
);

-- Where the consumer stands in each partition of the situations topics, written in the
-- same transaction as what the situation changed.
CREATE TABLE consumer_positions (
    consumer_group TEXT NOT NULL,
    topic TEXT NOT NULL,
    partition_id BIGINT NOT NULL,
    next_offset BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (consumer_group, topic, partition_id)
);

-- Rules that could not be judged on a situation, for operators to look at.
CREATE TABLE rule_failures (
    solution TEXT NOT NULL,
    situation_id TEXT NOT NULL,
    rule TEXT NOT NULL,
    reason TEXT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (solution, situation_id, rule)
);
