-- `ledger export --out FILE.parquet`: the rows of audit_export.sql (`export_rows`).
COPY export_rows TO $path (FORMAT parquet);
