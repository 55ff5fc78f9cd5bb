-- SHA-1 hex of (namespace bytes || UTF-8 name) for each row of `frame`: the hash
-- inside an RFC 4122 UUIDv5 (connector/digest.py sets the version and variant bits).
SELECT sha1($namespace::BLOB || encode(name)) AS h FROM frame
