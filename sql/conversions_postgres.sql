-- conversions_postgres.sql: sql/conversions.sql for PostgreSQL (`source.warehouse` with
-- `driver: postgresql`): the example warehouse's table `orders`, loaded into Postgres by
-- examples/load_postgres.py, mapped to the connector's canonical columns. It runs in
-- Postgres, in Postgres's SQL; the connector only streams its rows back.
--
-- Parameters: $since and $until, TIMESTAMPTZ, the half-open window [since, until); the
-- connector binds them as $1 and $2, never pasting a value into the text. The session's
-- time zone is UTC, so a timestamp without an offset reads as UTC.
--
-- created_at is text in mixed renderings ('2026-11-10 14:03:22', '...T14:03:22Z',
-- '...T16:03:22+02:00', optional '.123'): only a value of those shapes is cast. Never
-- cast all of them: one value Postgres cannot read stops the whole query, and Postgres
-- reads words like 'now' or 'tomorrow' as times. A value of another shape is returned
-- whatever the window, with event_time 'infinity': the connector rejects it as
-- invalid_event_time, counted, and keeps it in the ledger (an empty one stays NULL:
-- missing_event_time). A shape that matches but is no date (2026-02-30) stops the query
-- with Postgres's message: fix the row, or narrow the pattern.
WITH src AS (
    SELECT
        *,
        CASE
            WHEN created_at ~ '^\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d(:?\d\d)?)?$'
            THEN created_at::timestamptz
        END AS created_utc
    FROM orders
)
SELECT
    order_id         AS confirmationref,
    customer_id      AS customerid,
    customer_email   AS email,
    first_name       AS firstname,
    last_name        AS lastname,
    phone            AS mobile,
    postal_code      AS zip,
    birth_date       AS dob,
    order_total      AS amount,
    currency_code    AS currency,
    item_count       AS quantity,
    product_name     AS productname,
    sku              AS sku,
    payment_method   AS paymenttype,
    order_type       AS conversiontype,
    CASE
        WHEN created_utc IS NULL AND trim(created_at) <> '' THEN 'infinity'
        ELSE created_utc
    END              AS event_time,
    ip_address       AS ipaddress,
    user_agent       AS user_agent,
    rokt_tracking_id AS rtid,
    loyalty_tier     AS loyalty_tier
FROM src
WHERE created_utc IS NULL
   OR (created_utc >= $since AND created_utc < $until)
