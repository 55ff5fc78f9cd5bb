-- The results ledger (docs/ledger.md). One row per (environment,
-- confirmationref): the latest state of that conversion's delivery. No raw PII:
-- identity_sha256 is the SHA-256 of the normalized email (or the given hash).
CREATE TABLE IF NOT EXISTS ledger (
    environment      VARCHAR NOT NULL,
    confirmationref  VARCHAR NOT NULL,
    status           VARCHAR NOT NULL,  -- pending | accepted | rejected | rejected_local | failed
    reason           VARCHAR,           -- reason code, or the platform's message
    http_status      INTEGER,
    attempts         INTEGER NOT NULL DEFAULT 0,
    run_id           VARCHAR NOT NULL,
    request_id       VARCHAR,           -- the batch's source_request_id
    payload_sha256   VARCHAR,           -- SHA-256 of the batch JSON without source_request_id
    identity_sha256  VARCHAR,
    conversiontype   VARCHAR,
    amount           DOUBLE,
    currency         VARCHAR,
    event_time       TIMESTAMPTZ,
    first_seen_at    TIMESTAMPTZ NOT NULL,
    last_attempt_at  TIMESTAMPTZ,
    accepted_at      TIMESTAMPTZ,
    transport        VARCHAR,
    warnings         VARCHAR,           -- field warnings of what was sent (fields left out)
    payload_prefix   UINTEGER,          -- payload_sha256's first 32 bits (for a run's index)
    PRIMARY KEY (environment, confirmationref)
);

-- Every HTTP attempt of every conversion (the history behind `ledger show`): one
-- row per conversion per attempt, so a bulk request of 100 batches answered at its
-- third attempt adds 300 rows. `message` is the platform's answer for that
-- conversion (or the connector's account of the attempt), never a value it sent.
CREATE TABLE IF NOT EXISTS attempts (
    environment      VARCHAR NOT NULL,
    confirmationref  VARCHAR NOT NULL,
    run_id           VARCHAR NOT NULL,
    request_id       VARCHAR NOT NULL,  -- the batch's source_request_id
    attempt          INTEGER NOT NULL,  -- 1, 2, ... within one run's delivery
    attempted_at     TIMESTAMPTZ NOT NULL,  -- when the request left
    http_status      INTEGER,           -- null when no response came
    error            VARCHAR,           -- then the transport error: ReadTimeout, ConnectError, ...
    outcome          VARCHAR NOT NULL,  -- accepted | rejected | retry | failed
    message          VARCHAR
);

-- One row per run, with the run report's counts.
CREATE TABLE IF NOT EXISTS runs (
    run_id               VARCHAR PRIMARY KEY,
    mode                 VARCHAR NOT NULL,  -- sync | backfill (dry_run: older versions)
    status               VARCHAR NOT NULL,  -- running | succeeded | completed_with_rejections | failed | interrupted
    environment          VARCHAR NOT NULL,
    window_since         TIMESTAMPTZ,
    window_until         TIMESTAMPTZ,
    started_at           TIMESTAMPTZ NOT NULL,
    finished_at          TIMESTAMPTZ,
    rows_read            BIGINT DEFAULT 0,
    rows_rejected_local  BIGINT DEFAULT 0,
    rows_rejected_known  BIGINT DEFAULT 0,  -- of those, rejected before as they are now
    rows_skipped_ledger  BIGINT DEFAULT 0,
    changed_after_accept BIGINT DEFAULT 0,  -- of those, accepted with another payload
    rows_duplicate       BIGINT DEFAULT 0,
    duplicates_differing BIGINT DEFAULT 0,  -- of those, unlike the row that won
    duplicates_differing_known BIGINT DEFAULT 0,  -- of those, seen by an earlier run
    pending              BIGINT DEFAULT 0,  -- no answer when the run ended
    batches_sent         BIGINT DEFAULT 0,
    requests             BIGINT DEFAULT 0,
    accepted             BIGINT DEFAULT 0,
    rejected             BIGINT DEFAULT 0,
    failed               BIGINT DEFAULT 0,
    retries              BIGINT DEFAULT 0,
    isolated             BIGINT DEFAULT 0,  -- batches resent alone to learn their fate
    duration_s           DOUBLE,
    message              VARCHAR,
    warnings             VARCHAR,           -- JSON: rows sent without a field, by warning
    rejected_by_reason   VARCHAR            -- JSON: rows rejected, by reason
);

-- What this ledger is: `schema_version` (for migrations) and the `environment`
-- it records, written when the ledger is created and checked on every open.
CREATE TABLE IF NOT EXISTS ledger_meta (
    key    VARCHAR PRIMARY KEY,
    value  VARCHAR NOT NULL
);

-- One row per backfill window that finished: every row it read got a final outcome
-- (none failed, none left pending). A backfill skips a window that lies inside
-- finished ones, so a rerun resumes where an interrupted one stopped.
CREATE TABLE IF NOT EXISTS backfill_windows (
    environment   VARCHAR NOT NULL,
    window_since  TIMESTAMPTZ NOT NULL,
    window_until  TIMESTAMPTZ NOT NULL,
    backfill_id   VARCHAR NOT NULL,
    run_id        VARCHAR NOT NULL,  -- the run (runs.run_id) that finished it
    finished_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (environment, window_since, window_until)
);

-- Every row rejected before sending (and every duplicate unlike the row that won:
-- reason duplicate_differs), by a fingerprint of its content (the SHA-256 of its
-- column names and values, so no value can be read back): a later run that meets
-- the same row for the same reason counts it as known (exit 0), rows without a
-- confirmationref included.
CREATE TABLE IF NOT EXISTS rejected_rows (
    environment   VARCHAR NOT NULL,
    row_sha256    VARCHAR NOT NULL,
    reason        VARCHAR NOT NULL,
    first_run_id  VARCHAR NOT NULL,
    last_seen_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (environment, row_sha256)
);

-- Audience membership (docs/ledger.md, "Audiences"): who Rokt has been told is in
-- each audience (an `add` accepted, no `drop` accepted since). `member_key` is
-- the SHA-256 of the normalized email, or `customerid:` + the SHA-256 of the
-- customerid; `identities` is the user_identities/device_info JSON as sent (hashed).
-- Neither audience table has a key: DuckDB keeps a key's index in memory, and the
-- ledger's memory limit would cap an audience at a few 100,000 members; the connector
-- writes each (environment, change_id) and member once (sql/audience_*.sql).
CREATE TABLE IF NOT EXISTS audience_members (
    environment  VARCHAR NOT NULL,
    audience     VARCHAR NOT NULL,
    member_key   VARCHAR NOT NULL,
    identities   VARCHAR NOT NULL,
    change_id    VARCHAR NOT NULL,   -- the accepted add's source_message_id
    added_at     TIMESTAMPTZ NOT NULL
);

-- Every membership change (`add` or `drop`), written `pending` before its batch
-- leaves and settled after the answer; `change_id` is the event's
-- source_message_id (add, drop, add again: three ids).
CREATE TABLE IF NOT EXISTS audience_changes (
    environment      VARCHAR NOT NULL,
    change_id        VARCHAR NOT NULL,
    audience         VARCHAR NOT NULL,
    member_key       VARCHAR NOT NULL,
    action           VARCHAR NOT NULL,  -- add | drop
    seq              INTEGER NOT NULL,  -- 1, 2, ... per (audience, member)
    status           VARCHAR NOT NULL,  -- pending | accepted | rejected | failed | superseded
    reason           VARCHAR,
    attempts         INTEGER NOT NULL DEFAULT 0,
    run_id           VARCHAR NOT NULL,  -- the run that last recorded or settled it
    request_id       VARCHAR,           -- the batch's source_request_id
    identities       VARCHAR NOT NULL,
    attributes       VARCHAR,           -- the user attributes it was sent with (hashed PII)
    event_ms         BIGINT NOT NULL,   -- timestamp_unixtime_ms
    recorded_at      TIMESTAMPTZ NOT NULL,
    settled_at       TIMESTAMPTZ
);
