-- `ledger reconcile`: the source's confirmationrefs, normalized as the pipeline does
-- (null where a row has none), gathered chunk by chunk.
CREATE TEMP TABLE source_refs (ref VARCHAR);
