-- Template of the capture function pgferry installs for each replicated table (rendered by
-- replicator/capture_sql.cpp; {{...}} are filled in per table, and a section between the
-- #filtered and /filtered marks is kept only for a table with a row filter).
-- One function per table lets the column list, key and row filter be compiled in instead of
-- interpreted on every row.
--
-- It journals what the target must do, not what the source did:
--   INSERT that passes the filter                -> I  (new image)
--   DELETE of a row that passed the filter       -> D  (old key)
--   UPDATE, in the filter before and after       -> U  (new image; old key too if the key changed)
--   UPDATE that changes no replicated column     -> nothing
--   UPDATE that moves the row out of the filter  -> D  (old key)
--   UPDATE that moves the row into the filter    -> I  (new image)
--   TRUNCATE (statement trigger)                 -> T
-- On an ordinary table (not partitioned, neither a partition nor an inheritance child) INSERT is
-- captured per statement from its transition table ({{new_rows}}): one INSERT ... SELECT into the
-- journal, in the rows' order, instead of one trigger call and one journal INSERT per row.
-- UPDATE stays per row (its old and new transition rows cannot be paired when the key changes),
-- and so does DELETE (on an inheritance parent its transition table would hold the children's
-- rows too, which the row trigger never sees).
-- Then, once per transaction, it rings the doorbell if the replicator is idle and listening.
--
-- SECURITY DEFINER lets writers journal without any right on schema pgferry (so nobody can
-- forge journal rows). It runs under the writer's search_path, so everything pgferry writes here
-- names its schema: functions (pg_catalog.to_jsonb), operators (OPERATOR(pg_catalog.=)), types
-- (pg_catalog.text) and tables. A writer cannot then redirect any of it to code of its own that
-- would run with pgferry's rights. A row filter is the user's SQL, not pgferry's, so a filtered
-- table's function pins search_path instead (row filters see only pg_catalog: schema-qualify any
-- other function they call). Pinning costs every call a save and restore of the setting, which
-- is why it is not done for every table.
--
-- Cost matters here: this runs inside every writing transaction. UPDATE, the commonest row
-- event, is tested first, an unfiltered table's function has no filter logic at all, unchanged
-- rows are found by comparing the binary row images (*<>, no output functions), and the bell is
-- read with a function call instead of a query.
CREATE OR REPLACE FUNCTION {{function}}() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
{{#filtered}}SET search_path = pg_catalog, pg_temp
{{/filtered}}AS $pgferry_capture$
#variable_conflict use_column
{{#filtered}}DECLARE
  was_in boolean;
  is_in  boolean;
{{/filtered}}BEGIN
  IF TG_OP OPERATOR(pg_catalog.=) 'UPDATE' THEN
{{#filtered}}    was_in := {{old_in}};
    is_in := {{new_in}};
    IF NOT (was_in AND is_in) THEN  -- moved out of the filter or into it, or never in it
      IF was_in THEN
        INSERT INTO pgferry.journal (id, xid, table_id, op, old_key, new_row, captured_at)
        VALUES (pg_catalog.nextval('pgferry.journal_id_seq'), pg_catalog.pg_current_xact_id(), {{table_id}}, 'D', {{old_key}}, NULL, pg_catalog.clock_timestamp());
      ELSIF is_in THEN
        INSERT INTO pgferry.journal (id, xid, table_id, op, old_key, new_row, captured_at)
        VALUES (pg_catalog.nextval('pgferry.journal_id_seq'), pg_catalog.pg_current_xact_id(), {{table_id}}, 'I', NULL, {{new_image}}, pg_catalog.clock_timestamp());
      ELSE
        RETURN NULL;
      END IF;
    ELSE  -- in the filter before and after: what an unfiltered table does
{{/filtered}}    IF {{key_changed}} THEN
      INSERT INTO pgferry.journal (id, xid, table_id, op, old_key, new_row, captured_at)
      VALUES (pg_catalog.nextval('pgferry.journal_id_seq'), pg_catalog.pg_current_xact_id(), {{table_id}}, 'U', {{old_key}}, {{new_image}}, pg_catalog.clock_timestamp());
    ELSIF {{row_changed}} THEN
      INSERT INTO pgferry.journal (id, xid, table_id, op, old_key, new_row, captured_at)
      VALUES (pg_catalog.nextval('pgferry.journal_id_seq'), pg_catalog.pg_current_xact_id(), {{table_id}}, 'U', NULL, {{new_image}}, pg_catalog.clock_timestamp());
    ELSE
      RETURN NULL;
    END IF;
{{#filtered}}    END IF;
{{/filtered}}  ELSIF TG_LEVEL OPERATOR(pg_catalog.=) 'STATEMENT' THEN
    IF TG_OP OPERATOR(pg_catalog.=) 'INSERT' THEN
      INSERT INTO pgferry.journal (id, xid, table_id, op, old_key, new_row, captured_at)
      SELECT pg_catalog.nextval('pgferry.journal_id_seq'), pg_catalog.pg_current_xact_id(), {{table_id}}, 'I', NULL, {{set_new_image}}, pg_catalog.clock_timestamp()
      FROM {{new_rows}} AS pgferry_new{{#filtered}} WHERE {{set_new_in}}{{/filtered}};
    ELSE
      INSERT INTO pgferry.journal (id, xid, table_id, op, old_key, new_row, captured_at)
      VALUES (pg_catalog.nextval('pgferry.journal_id_seq'), pg_catalog.pg_current_xact_id(), {{table_id}}, 'T', NULL, NULL, pg_catalog.clock_timestamp());
    END IF;
    IF NOT FOUND THEN RETURN NULL; END IF;  -- no row journaled: nothing to ring for
  ELSIF TG_OP OPERATOR(pg_catalog.=) 'INSERT' THEN
{{#filtered}}    IF NOT {{new_in}} THEN RETURN NULL; END IF;
{{/filtered}}    INSERT INTO pgferry.journal (id, xid, table_id, op, old_key, new_row, captured_at)
    VALUES (pg_catalog.nextval('pgferry.journal_id_seq'), pg_catalog.pg_current_xact_id(), {{table_id}}, 'I', NULL, {{new_image}}, pg_catalog.clock_timestamp());
  ELSE  -- DELETE
{{#filtered}}    IF NOT {{old_in}} THEN RETURN NULL; END IF;
{{/filtered}}    INSERT INTO pgferry.journal (id, xid, table_id, op, old_key, new_row, captured_at)
    VALUES (pg_catalog.nextval('pgferry.journal_id_seq'), pg_catalog.pg_current_xact_id(), {{table_id}}, 'D', {{old_key}}, NULL, pg_catalog.clock_timestamp());
  END IF;

  -- The doorbell, at most once per transaction (the transaction-local setting remembers it):
  -- ring only when the bell is armed (the replicator is idle) and someone is listening (the
  -- replicator's LISTEN session holds the exclusive advisory lock {{listen_lock}}; if a shared
  -- try-lock succeeds, nobody is). Identical notifications in one transaction collapse anyway;
  -- this spares the per-row work and, while the bell is off, NOTIFY's global commit lock.
  IF COALESCE(pg_catalog.current_setting('pgferry.rung', true), '') OPERATOR(pg_catalog.<>) 'y' THEN
    PERFORM pg_catalog.set_config('pgferry.rung', 'y', true);
    IF pg_catalog.pg_sequence_last_value('pgferry.doorbell'::pg_catalog.regclass) OPERATOR(pg_catalog.=) 1 THEN
      IF pg_catalog.pg_try_advisory_lock_shared({{listen_lock}}) THEN
        PERFORM pg_catalog.pg_advisory_unlock_shared({{listen_lock}});
      ELSE
        PERFORM pg_catalog.pg_notify('pgferry', '');
      END IF;
    END IF;
  END IF;
  RETURN NULL;
END
$pgferry_capture$;
