-- conversions_snowflake.sql: the example warehouse's `orders` in Snowflake (`source.warehouse`
-- with `driver: snowflake`), mapped to the connector's canonical columns, in Snowflake's SQL.
-- Not run against a live Snowflake account by this project's tests (see the README).
--
-- Parameters: $since and $until, bound by the connector as `?` (in the order they appear),
-- never pasted into the text. The session's time zone is UTC (the connector sets it), so a
-- created_at without an offset reads as UTC. TRY_TO_TIMESTAMP_TZ reads the example's
-- renderings; a created_at it cannot read comes back in every window with a NULL
-- event_time (rejected as missing_event_time, counted, kept in the ledger), never lost.
WITH src AS (
    SELECT *, TRY_TO_TIMESTAMP_TZ(created_at) AS created_utc
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
    created_utc      AS event_time,
    ip_address       AS ipaddress,
    user_agent       AS user_agent,
    rokt_tracking_id AS rtid,
    loyalty_tier     AS loyalty_tier
FROM src
WHERE created_utc IS NULL
   OR (created_utc >= $since AND created_utc < $until)
