-- pgferry source schema, version 4: no CHECK constraint on the journal's op.
-- Only the capture functions write the journal (writers have no right on it; the functions are
-- SECURITY DEFINER), and the reader refuses an op it does not know, naming the journal row. The
-- check itself was not cheap: PostgreSQL rebuilds a table's CHECK expressions from their stored
-- form each time a statement starts inserting into it, and the capture function's journal
-- INSERT is one statement per captured row. Measured on pgbench's TPC-B-like transaction (four
-- captured rows), it was a fifth of the instructions capture added (docs/BENCHMARKS.md).
ALTER TABLE pgferry.journal DROP CONSTRAINT IF EXISTS journal_op_check;
