-- conversions.sql: map the warehouse table `orders` (its own column names) to the
-- connector's canonical conversion columns. Values are passed through untouched; the
-- connector does all trimming, normalising, hashing and validation.
--
-- Parameters (bound by the caller, never interpolated): $since and $until, TIMESTAMPTZ,
-- half-open window [since, until) on the event time.
--
-- created_at is text in mixed renderings ('2026-11-10 14:03:22', '...T14:03:22Z',
-- '...T16:03:22+02:00', optional '.123'), parsed in the SELECT with explicit formats:
-- list yours (e.g. '%m/%d/%Y %H:%M' for '11/10/2026 14:03'). Never filter on a
-- TRY_CAST: a value it cannot read becomes NULL and the row vanishes, uncounted.
--   * Formats with %z and without go in two lists: DuckDB types a mixed list as
--     TIMESTAMPTZ and reads its naive values in the session's time zone, or (seen in
--     DuckDB 2.0) at the offset of an earlier row that had one. DuckDB's %z takes
--     '+02', '+0200' and '+02:00', not 'Z': a 'Z' is a literal of a naive format.
--   * Naive values are UTC: timezone('UTC', ...) says so whatever the session's zone.
--   * A row whose created_at no format reads is returned whatever the window, with
--     event_time 'infinity': the connector rejects it as invalid_event_time, counted,
--     with example rows, and the ledger keeps it rejected_local (an empty created_at
--     stays NULL: missing_event_time). `validate` counts these rows ("event time: N
--     rows have none that parses"). Every sync and every backfill window reads them
--     again, until the formats are fixed.
--   * Why 'infinity' and not the raw text: event_time stays a TIMESTAMPTZ (no text to
--     parse again), and the formats here alone decide what a row's time is. Raw text
--     the connector could read (say '2026-11-10T14:03', which no format here lists)
--     would be sent from every window, whatever its time.
--
-- Works unchanged when `orders` is a view over export/orders.parquet.
-- No ORDER BY: rows come in the table's order, and nothing depends on it (ids are per
-- conversion; of duplicate order_ids, exact copies here, the first read is sent).
-- Sorting millions of rows would cost seconds, disk and memory before the first send.
WITH src AS (
    SELECT
        *,
        COALESCE(
            try_strptime(created_at, ['%Y-%m-%dT%H:%M:%S%z', '%Y-%m-%dT%H:%M:%S.%f%z']),
            timezone('UTC', try_strptime(created_at, [
                '%Y-%m-%d %H:%M:%S', '%Y-%m-%d %H:%M:%S.%f',
                '%Y-%m-%dT%H:%M:%SZ', '%Y-%m-%dT%H:%M:%S.%fZ'
            ]))
        ) AS created_utc
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
   OR (created_utc >= CAST($since AS TIMESTAMPTZ) AND created_utc < CAST($until AS TIMESTAMPTZ))
