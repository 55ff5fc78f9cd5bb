-- `ledger export --out FILE.csv`: the rows of audit_export.sql (`export_rows`), with
-- ISO 8601 UTC timestamps.
COPY export_rows TO $path (FORMAT csv, HEADER, TIMESTAMPFORMAT '%Y-%m-%dT%H:%M:%S.%fZ');
