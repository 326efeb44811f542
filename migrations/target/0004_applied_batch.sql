-- pgferry target schema, version 4: batches applied and not yet acknowledged on the source.
--   applied_batch  one row per batch, written in the batch's own transaction: the `pgferry run`
--                  process (run: random per start), the batch's number in that run, and the
--                  journal rows it applied (ids and their transactions). Deleted once the source
--                  has deleted those journal rows (the ack). So the target itself says which
--                  batches it has: a `run` that starts after a crash acknowledges what an earlier
--                  one applied instead of applying it twice, and after a target crash the
--                  batches lost with it (committed without waiting for the WAL flush,
--                  apply.synchronous_commit = off) are exactly those of this run above the
--                  highest number left.
--   flush_marker   the flusher calls setval() on it with synchronous_commit = local: setval
--                  writes WAL under a transaction id, so that commit flushes the target's WAL up
--                  to itself, and with it every batch committed before. (A transaction that
--                  writes no WAL commits without a flush, whatever synchronous_commit says.)
--                  Its value means nothing.
CREATE TABLE pgferry.applied_batch (
  run text NOT NULL,
  batch bigint NOT NULL,
  ids bigint[] NOT NULL,
  xids xid8[] NOT NULL,
  PRIMARY KEY (run, batch)
);

CREATE SEQUENCE pgferry.flush_marker;
