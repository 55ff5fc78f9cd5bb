-- Who each audience holds in Rokt (audiences sync compares the query with it).
SELECT audience, member_key, identities
FROM audience_members
WHERE environment = $environment;
