-- pgferry target schema, version 3: what the resilience machinery remembers on the target.
--   table_state.stop_class         why a stopped table stopped: stop_table (its schema or rights
--                                  are wrong) or mass_delete (the guard held a large delete back).
--   table_state.guard_confirmed_id deletes journaled at or below this id were confirmed by an
--                                  operator (`pgferry errors retry`): the guard lets them through.
--   table_state.last_sweep_started when the last successful sweep of the table started; the next
--                                  sweep re-reads rows changed since lookback before it.
ALTER TABLE pgferry.table_state
  ADD COLUMN stop_class text,
  ADD COLUMN guard_confirmed_id bigint,
  ADD COLUMN last_sweep_started timestamptz;

-- Open errors by class: the replicator loads the keys it holds back, `errors list --open` lists.
CREATE INDEX sync_errors_open_class_idx ON pgferry.sync_errors (error_class, id) WHERE NOT resolved;
