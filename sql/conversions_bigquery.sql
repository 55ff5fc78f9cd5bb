-- conversions_bigquery.sql: the example warehouse's `orders` in BigQuery (`source.warehouse`
-- with `driver: bigquery`; the table in `options.dataset`), mapped to the connector's
-- canonical columns, in GoogleSQL. Not run against live BigQuery by this project's tests
-- (see the README).
--
-- Parameters: $since and $until, bound by the connector as the named query parameters
-- @since and @until (TIMESTAMP), never pasted into the text. BigQuery reads a timestamp
-- without an offset as UTC. SAFE_CAST reads the example's renderings; a created_at it
-- cannot read comes back in every window with a NULL event_time (rejected as
-- missing_event_time, counted, kept in the ledger), never lost.
WITH src AS (
    SELECT *, SAFE_CAST(created_at AS TIMESTAMP) AS created_utc
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
