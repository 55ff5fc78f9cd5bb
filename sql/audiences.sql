-- audiences.sql: every audience's current members in the example warehouse, for
-- `rokt-connector audiences sync` (config key audiences.query).
--
-- One row per (audience, member): `audience_name` and the member's identity columns
-- under their canonical names (email, email_sha256, customerid, rtid, device ids).
-- No $since/$until: the result is the whole current membership, and the connector
-- sends only what changed since the last run (a member missing here is dropped).
-- Values pass through untouched: the connector normalizes and hashes them exactly as
-- for conversions.
SELECT DISTINCT
    'loyalty_' || lower(trim(loyalty_tier)) AS audience_name,
    customer_email                          AS email,
    customer_id                             AS customerid
FROM orders
WHERE trim(loyalty_tier) <> ''
