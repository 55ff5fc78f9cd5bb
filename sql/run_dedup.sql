-- First-wins within one run: which confirmationrefs of this chunk (`chunk_refs`)
-- an earlier chunk of the same run already had (`seen`).
SELECT DISTINCT ref FROM chunk_refs SEMI JOIN seen USING (ref);
