-- pgferry source schema, version 2: vacuum the journal like the queue it is.
-- Every journal row is deleted soon after it is written (after the target committed it), so the
-- table's live size stays small while dead tuples pile up fast. The default scale factor (20 %
-- of a small table) would let the dead tuples, and the index entries pointing at them, grow
-- between runs; vacuum after a fixed number of dead rows instead, without cost-based sleeping.
ALTER TABLE pgferry.journal SET (
  autovacuum_vacuum_scale_factor = 0,
  autovacuum_vacuum_threshold = 5000,
  autovacuum_vacuum_insert_scale_factor = 0,
  autovacuum_vacuum_insert_threshold = 50000,
  autovacuum_analyze_scale_factor = 0,
  autovacuum_analyze_threshold = 5000,
  autovacuum_vacuum_cost_delay = 0
);
