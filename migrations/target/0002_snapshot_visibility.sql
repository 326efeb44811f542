-- pgferry target schema, version 2: the initial copy's snapshot.
-- copy_snapshot holds pg_current_snapshot() of the source transaction that copied the
-- table (the first one, when an interrupted copy was resumed). Journal rows of transactions
-- visible to it are already in the copy: the replicator discards them before it streams the
-- table, then clears the column. A non-NULL value after a crash means "discard, then stream".
ALTER TABLE pgferry.table_state ADD COLUMN copy_snapshot text;
