-- conversions.sql: map the warehouse table `orders` (its own column names) to the
-- connector's canonical conversion columns. Values are passed through untouched; the
-- connector does all trimming, normalising, hashing and validation.
--
-- Parameters (bound by the caller, never interpolated): $since and $until, TIMESTAMPTZ,
-- half-open window [since, until) on the event time.
--
-- created_at is text in mixed renderings ('2026-11-10 14:03:22', '...T14:03:22Z',
-- '...T16:03:22+02:00', optional '.123'). The caller runs with SET TimeZone = 'UTC', so
-- naive values are read as UTC. Unparseable values become NULL and fall out of the window.
--
-- Works unchanged when `orders` is a view over export/orders.parquet.
-- No ORDER BY: rows come in the table's order, and nothing depends on it (ids are per
-- conversion; of duplicate order_ids, exact copies here, the first read is sent).
-- Sorting millions of rows would cost seconds, disk and memory before the first send.
WITH src AS (
    SELECT
        *,
        TRY_CAST(created_at AS TIMESTAMPTZ) AS event_time
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
    event_time       AS event_time,
    ip_address       AS ipaddress,
    user_agent       AS user_agent,
    rokt_tracking_id AS rtid,
    loyalty_tier     AS loyalty_tier
FROM src
WHERE event_time >= CAST($since AS TIMESTAMPTZ)
  AND event_time < CAST($until AS TIMESTAMPTZ)
