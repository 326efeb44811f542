-- pgferry source schema, version 3: the reader asks "does this transaction have rows after the
-- batch's cut-off id?" once per transaction per batch; (xid, id) answers it from the index alone.
CREATE INDEX journal_xid_id_idx ON pgferry.journal (xid, id);
DROP INDEX pgferry.journal_xid_idx;
