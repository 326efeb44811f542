-- pgferry target schema, version 1: what pgferry could not apply, and per-table state.
-- Applied by `pgferry setup` inside one transaction under an advisory lock; the runner has
-- already created schema pgferry and pgferry.schema_version.

CREATE TABLE pgferry.sync_errors (
  id              bigint      NOT NULL PRIMARY KEY GENERATED ALWAYS AS IDENTITY,
  first_seen      timestamptz NOT NULL DEFAULT now(),
  last_seen       timestamptz NOT NULL DEFAULT now(),
  source_table    text        NOT NULL,          -- "schema"."table" on the source
  target_table    text        NOT NULL,          -- "schema"."table" on the target
  op              "char"      NOT NULL CHECK (op IN ('I', 'U', 'D', 'T')),
  row_key         jsonb,                         -- key of the row the change is for
  row_image       jsonb,                         -- the change's row image (I/U)
  sqlstate        text,                          -- the target's SQLSTATE, e.g. 23514
  error_class     text        NOT NULL,          -- quarantine_row, stop_table, held_back, mass_delete, ...
  message         text        NOT NULL,
  attempts        integer     NOT NULL DEFAULT 1,
  journal_id      bigint,                        -- pgferry.journal.id on the source
  source_xid      xid8,                          -- the source transaction that made the change
  resolved        boolean     NOT NULL DEFAULT false,
  resolved_at     timestamptz,
  resolution_note text
);
CREATE INDEX sync_errors_open_idx ON pgferry.sync_errors (source_table, row_key) WHERE NOT resolved;

CREATE TABLE pgferry.table_state (
  source_table     text        NOT NULL PRIMARY KEY,  -- "schema"."table" on the source
  target_table     text        NOT NULL,
  -- pending: never copied; snapshotting: initial copy running; streaming: in step;
  -- stopped: needs an operator (see stop_reason).
  status           text        NOT NULL DEFAULT 'pending'
                   CHECK (status IN ('pending', 'snapshotting', 'streaming', 'stopped')),
  stop_reason      text,
  snapshot_started timestamptz,
  snapshot_done    timestamptz,
  snapshot_rows    bigint      NOT NULL DEFAULT 0,
  snapshot_key     jsonb,                             -- resume point of an interrupted copy
  last_applied_at  timestamptz,
  last_journal_id  bigint,
  rows_applied     bigint      NOT NULL DEFAULT 0,
  updated_at       timestamptz NOT NULL DEFAULT now()
);
