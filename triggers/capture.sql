-- Template of the capture function pgferry installs for each replicated table (rendered by
-- replicator/capture_sql.cpp; {{...}} are filled in per table). One function per table lets
-- the column list, key and row filter be compiled in instead of interpreted on every row.
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
-- forge journal rows); the pinned search_path stops a writer from redirecting an unqualified
-- function or operator to code of its own that would then run with pgferry's rights. Row
-- filters therefore see only pg_catalog: schema-qualify any other function they call.
CREATE OR REPLACE FUNCTION {{function}}() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $pgferry_capture$
#variable_conflict use_column
DECLARE
  was_in boolean;
  is_in  boolean;
BEGIN
  IF TG_LEVEL = 'STATEMENT' THEN
    IF TG_OP = 'INSERT' THEN
      INSERT INTO pgferry.journal (id, xid, table_id, op, old_key, new_row, captured_at)
      SELECT nextval('pgferry.journal_id_seq'), pg_current_xact_id(), {{table_id}}, 'I', NULL, {{set_new_image}}, clock_timestamp()
      FROM {{new_rows}} AS pgferry_new WHERE {{set_new_in}};
    ELSE
      INSERT INTO pgferry.journal (id, xid, table_id, op, old_key, new_row, captured_at)
      VALUES (nextval('pgferry.journal_id_seq'), pg_current_xact_id(), {{table_id}}, 'T', NULL, NULL, clock_timestamp());
    END IF;
    IF NOT FOUND THEN RETURN NULL; END IF;  -- no row journaled: nothing to ring for
  ELSIF TG_OP = 'INSERT' THEN
    IF NOT {{new_in}} THEN RETURN NULL; END IF;
    INSERT INTO pgferry.journal (id, xid, table_id, op, old_key, new_row, captured_at)
    VALUES (nextval('pgferry.journal_id_seq'), pg_current_xact_id(), {{table_id}}, 'I', NULL, {{new_image}}, clock_timestamp());
  ELSIF TG_OP = 'DELETE' THEN
    IF NOT {{old_in}} THEN RETURN NULL; END IF;
    INSERT INTO pgferry.journal (id, xid, table_id, op, old_key, new_row, captured_at)
    VALUES (nextval('pgferry.journal_id_seq'), pg_current_xact_id(), {{table_id}}, 'D', {{old_key}}, NULL, clock_timestamp());
  ELSE
    was_in := {{old_in}};
    is_in := {{new_in}};
    IF was_in AND is_in THEN
      IF {{key_changed}} THEN
        INSERT INTO pgferry.journal (id, xid, table_id, op, old_key, new_row, captured_at)
        VALUES (nextval('pgferry.journal_id_seq'), pg_current_xact_id(), {{table_id}}, 'U', {{old_key}}, {{new_image}}, clock_timestamp());
      ELSIF {{row_changed}} THEN
        INSERT INTO pgferry.journal (id, xid, table_id, op, old_key, new_row, captured_at)
        VALUES (nextval('pgferry.journal_id_seq'), pg_current_xact_id(), {{table_id}}, 'U', NULL, {{new_image}}, clock_timestamp());
      ELSE
        RETURN NULL;
      END IF;
    ELSIF was_in THEN
      INSERT INTO pgferry.journal (id, xid, table_id, op, old_key, new_row, captured_at)
      VALUES (nextval('pgferry.journal_id_seq'), pg_current_xact_id(), {{table_id}}, 'D', {{old_key}}, NULL, clock_timestamp());
    ELSIF is_in THEN
      INSERT INTO pgferry.journal (id, xid, table_id, op, old_key, new_row, captured_at)
      VALUES (nextval('pgferry.journal_id_seq'), pg_current_xact_id(), {{table_id}}, 'I', NULL, {{new_image}}, clock_timestamp());
    ELSE
      RETURN NULL;
    END IF;
  END IF;

  -- The doorbell, at most once per transaction (the transaction-local setting remembers it):
  -- ring only when the bell is armed (the replicator is idle) and someone is listening (the
  -- replicator's LISTEN session holds the exclusive advisory lock {{listen_lock}}; if a shared
  -- try-lock succeeds, nobody is). Identical notifications in one transaction collapse anyway;
  -- this spares the per-row work and, while the bell is off, NOTIFY's global commit lock.
  IF current_setting('pgferry.rung', true) IS DISTINCT FROM 'y' THEN
    PERFORM set_config('pgferry.rung', 'y', true);
    IF (SELECT last_value FROM pgferry.doorbell) = 1 THEN
      IF pg_try_advisory_lock_shared({{listen_lock}}) THEN
        PERFORM pg_advisory_unlock_shared({{listen_lock}});
      ELSE
        PERFORM pg_notify('pgferry', '');
      END IF;
    END IF;
  END IF;
  RETURN NULL;
END
$pgferry_capture$;
