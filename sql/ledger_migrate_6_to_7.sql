-- Schema 6 -> 7: the audience tables lose their primary keys (an index DuckDB keeps in
-- memory: the ledger's memory limit capped an audience at a few 100,000 members), and
-- an audience change keeps the user attributes it was sent with, so a resend is the
-- same batch. Each table is copied into its new form (as ledger.sql creates it).
ALTER TABLE audience_members RENAME TO audience_members_6;
CREATE TABLE audience_members (
    environment  VARCHAR NOT NULL,
    audience     VARCHAR NOT NULL,
    member_key   VARCHAR NOT NULL,
    identities   VARCHAR NOT NULL,
    change_id    VARCHAR NOT NULL,
    added_at     TIMESTAMPTZ NOT NULL
);
INSERT INTO audience_members
SELECT environment, audience, member_key, identities, change_id, added_at
FROM audience_members_6;
DROP TABLE audience_members_6;
ALTER TABLE audience_changes RENAME TO audience_changes_6;
CREATE TABLE audience_changes (
    environment      VARCHAR NOT NULL,
    change_id        VARCHAR NOT NULL,
    audience         VARCHAR NOT NULL,
    member_key       VARCHAR NOT NULL,
    action           VARCHAR NOT NULL,
    seq              INTEGER NOT NULL,
    status           VARCHAR NOT NULL,
    reason           VARCHAR,
    attempts         INTEGER NOT NULL DEFAULT 0,
    run_id           VARCHAR NOT NULL,
    request_id       VARCHAR,
    identities       VARCHAR NOT NULL,
    attributes       VARCHAR,
    event_ms         BIGINT NOT NULL,
    recorded_at      TIMESTAMPTZ NOT NULL,
    settled_at       TIMESTAMPTZ
);
INSERT INTO audience_changes
SELECT environment, change_id, audience, member_key, action, seq, status, reason, attempts,
       run_id, request_id, identities, NULL, event_ms, recorded_at, settled_at
FROM audience_changes_6;
DROP TABLE audience_changes_6;
UPDATE ledger_meta SET value = '7' WHERE key = 'schema_version';
