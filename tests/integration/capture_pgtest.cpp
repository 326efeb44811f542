// Capture triggers against a real PostgreSQL: each kind of write produces exactly the journal
// rows the replicator needs, and the doorbell rings at most once per transaction, only while
// the bell is on and someone listens.
#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "support/fixture.hpp"

namespace pgferry::test {
namespace {

constexpr const char* kTakeListenLock = "SELECT pg_advisory_lock(1885824626, 1)";

class Capture : public SourceTargetTest {
 protected:
  /// Creates `ddl` on both sides and installs capture with the given tables block.
  void install(const std::string& ddl, const std::string& tables_yaml) {
    on_both(ddl);
    const CliResult r = pgferry("setup", write_config(tables_yaml));
    ASSERT_EQ(r.exit_code, 0) << r.all();
  }

  /// The journal as "op old_key new_row" lines in id order.
  std::vector<std::string> journal() const {
    std::vector<std::string> out;
    for (const auto& row :
         source().query("SELECT op::text || ' ' || coalesce(old_key::text, '-') || ' ' || coalesce(new_row::text, '-') "
                        "FROM pgferry.journal ORDER BY id")) {
      out.push_back(row[0].value_or("NULL"));
    }
    return out;
  }

  std::string journal_count() const { return source().scalar("SELECT count(*) FROM pgferry.journal"); }
  void clear_journal() const { source().exec("DELETE FROM pgferry.journal"); }
  void bell(bool on) const {
    source().scalar(std::string("SELECT setval('pgferry.doorbell', ") + (on ? "1" : "0") + ")");
  }

  /// A connection that listens the way the replicator does: holds the listen lock and LISTENs.
  PgClient listener() const {
    PgClient l = source();
    l.scalar(kTakeListenLock);
    l.exec("LISTEN pgferry");
    return l;
  }

  /// Notifications that arrive within `first_ms`, then any more within 500 ms.
  static std::size_t bells(PgClient& l, int first_ms = 3000) {
    auto got = l.notifications(first_ms);
    const std::size_t n = got.size();
    return n + l.notifications(n == 0 ? 0 : 500).size();
  }
};

const char* kUsers = "CREATE TABLE public.users (id int PRIMARY KEY, name text, status text, score int)";

// One row's life in users: inserted, updated, updated to what it was, given a new key, deleted.
void live_one_row(PgClient& app) {
  app.exec("INSERT INTO users VALUES (1, 'ann', 'active', 10)");
  app.exec("UPDATE users SET score = 11 WHERE id = 1");
  app.exec("UPDATE users SET score = score WHERE id = 1");
  app.exec("UPDATE users SET id = 2 WHERE id = 1");
  app.exec("DELETE FROM users WHERE id = 2");
}
// What the journal holds after live_one_row: the no-op update is not there.
const std::vector<std::string> kOneRowsJournal = {
    R"(I - {"id": 1, "name": "ann", "score": 10, "status": "active"})",
    R"(U - {"id": 1, "name": "ann", "score": 11, "status": "active"})",
    R"(U {"id": 1} {"id": 2, "name": "ann", "score": 11, "status": "active"})",
    R"(D {"id": 2} -)",
};

TEST_F(Capture, InsertUpdateDeleteJournalExactlyWhatTheTargetNeeds) {
  install(kUsers, "  - public.users\n");
  PgClient app = source();
  live_one_row(app);
  EXPECT_EQ(journal(), kOneRowsJournal);
  const auto table_id =
      source().scalar("SELECT id FROM pgferry.captured_table WHERE source_table = '\"public\".\"users\"'");
  EXPECT_EQ(source().scalar("SELECT count(DISTINCT table_id) || ':' || min(table_id) FROM pgferry.journal"),
            "1:" + table_id);
  EXPECT_EQ(source().scalar("SELECT bool_and(captured_at <= clock_timestamp()) FROM pgferry.journal"), "t");
}

TEST_F(Capture, TruncateIsOneStatementLevelRow) {
  install(kUsers, "  - public.users\n");
  source().exec("INSERT INTO users SELECT g, 'x', 'active', g FROM generate_series(1, 50) g");
  clear_journal();
  source().exec("TRUNCATE users");
  EXPECT_EQ(journal(), std::vector<std::string>{"T - -"});
}

TEST_F(Capture, TruncateCanBeLeftOut) {
  install(kUsers, "  - name: public.users\n    truncate: false\n");
  source().exec("INSERT INTO users VALUES (1, 'x', 'a', 1)");
  clear_journal();
  source().exec("TRUNCATE users");
  EXPECT_TRUE(journal().empty());
}

TEST_F(Capture, NoOpUpdatesJournalNothing) {
  install(kUsers, "  - name: public.users\n    columns: [id, name, status]\n");
  source().exec("INSERT INTO users VALUES (1, 'ann', 'active', 10)");
  clear_journal();
  source().exec("UPDATE users SET name = name");              // nothing changed
  source().exec("UPDATE users SET score = 99 WHERE id = 1");  // only a column that is not replicated
  EXPECT_TRUE(journal().empty());
  source().exec("UPDATE users SET name = 'bob'");
  EXPECT_EQ(journal(), std::vector<std::string>{R"(U - {"id": 1, "name": "bob", "status": "active"})"});
}

TEST_F(Capture, TypesRoundTripThroughTheJournal) {
  install(
      "CREATE TABLE public.t (id bigint PRIMARY KEY, i int, txt text, nothing text, flag boolean, "
      "num numeric(12,4), ts timestamptz, doc jsonb, arr int[], raw bytea, uid uuid, d date, f float8)",
      "  - public.t\n");
  source().exec(
      "INSERT INTO t VALUES (9007199254740993, -5, E'line\\nbreak \"q\" \\\\ ünï', NULL, true, 12345678.1234, "
      "'2026-11-22 10:11:12.345678+00', '{\"a\": [1, {\"b\": null}]}', '{1,NULL,3}', '\\xdeadbeef00', "
      "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '2026-02-28', 1.5e-300)");
  // The journal image rebuilds the source row exactly, once the jsonb column, journaled as its
  // text (a JSON string), is parsed back as the applier does.
  EXPECT_EQ(source().scalar("SELECT jsonb_typeof(new_row->'doc') FROM pgferry.journal"), "string");
  EXPECT_EQ(
      source().scalar("SELECT count(*) FROM pgferry.journal j, public.t s WHERE jsonb_populate_record(NULL::public.t, "
                      "j.new_row || jsonb_build_object('doc', (j.new_row->>'doc')::jsonb))::text = s::text"),
      "1");
  EXPECT_EQ(source().scalar("SELECT jsonb_typeof(new_row->'nothing') FROM pgferry.journal"), "null");
  EXPECT_EQ(source().scalar("SELECT new_row->>'id' FROM pgferry.journal"), "9007199254740993");
}

TEST_F(Capture, LargeRowsAreCapturedWhole) {
  install("CREATE TABLE public.docs (id int PRIMARY KEY, body text, noise text)", "  - public.docs\n");
  source().exec(
      "INSERT INTO docs SELECT 1, repeat('x', 20000), "
      "(SELECT string_agg(md5(g::text), '') FROM generate_series(1, 625) g)");
  EXPECT_EQ(source().scalar("SELECT length(new_row->>'body') || ' ' || length(new_row->>'noise') FROM pgferry.journal"),
            "20000 20000");
  EXPECT_EQ(source().scalar("SELECT count(*) FROM pgferry.journal j, docs d "
                            "WHERE j.new_row->>'noise' = d.noise AND j.new_row->>'body' = d.body"),
            "1");
}

TEST_F(Capture, RowFilterTurnsMovesIntoInsertsAndDeletes) {
  install(kUsers, "  - name: public.users\n    where: \"status = 'active'\"\n");
  PgClient app = source();
  app.exec("INSERT INTO users VALUES (1, 'ann', 'inactive', 1)");     // out: nothing
  app.exec("UPDATE users SET score = 2 WHERE id = 1");                // out -> out: nothing
  app.exec("UPDATE users SET status = 'active' WHERE id = 1");        // in: I
  app.exec("UPDATE users SET score = 3 WHERE id = 1");                // in -> in: U
  app.exec("UPDATE users SET status = 'gone', id = 5 WHERE id = 1");  // leaves: D of the old key
  app.exec("DELETE FROM users WHERE id = 5");                         // was out: nothing
  app.exec("INSERT INTO users VALUES (7, 'nul', NULL, 1)");           // NULL is not a match
  EXPECT_EQ(journal(), (std::vector<std::string>{
                           R"(I - {"id": 1, "name": "ann", "score": 2, "status": "active"})",
                           R"(U - {"id": 1, "name": "ann", "score": 3, "status": "active"})",
                           R"(D {"id": 1} -)",
                       }));
}

TEST_F(Capture, MultiRowStatementsJournalEveryRowInStatementOrder) {
  // An ordinary table's INSERTs are captured per statement, from the transition table (UPDATE
  // and DELETE per row): every row still gets its own journal row, filtered and imaged like the
  // row path's, in statement order, mixed with row-level ones in the same transaction.
  install(kUsers, "  - name: public.users\n    where: \"status = 'active'\"\n");
  EXPECT_EQ(source().scalar("SELECT string_agg(tgname || ':' || CASE WHEN tgtype & 1 = 1 THEN 'row' ELSE "
                            "'statement' END, ',' ORDER BY tgname) FROM pg_trigger "
                            "WHERE tgrelid = 'public.users'::regclass"),
            "pgferry_capture:row,pgferry_capture_guard:row,pgferry_capture_insert:statement,"
            "pgferry_capture_truncate:statement");
  PgClient l = listener();
  bell(true);
  PgClient app = source();
  app.exec(
      "BEGIN; "
      "INSERT INTO users VALUES (1, 'a', 'active', 1), (2, 'b', 'inactive', 2), (3, 'c', 'active', 3); "
      "UPDATE users SET score = 10 WHERE id = 1; "
      "DELETE FROM users WHERE id IN (1, 2); "
      "INSERT INTO users SELECT 9, 'none', 'active', 9 WHERE false; "
      "COPY users FROM PROGRAM 'printf \"5,e,active,5\\n6,f,inactive,6\\n\"' WITH (FORMAT csv); "
      "COMMIT");
  EXPECT_EQ(journal(), (std::vector<std::string>{
                           R"(I - {"id": 1, "name": "a", "score": 1, "status": "active"})",
                           R"(I - {"id": 3, "name": "c", "score": 3, "status": "active"})",
                           R"(U - {"id": 1, "name": "a", "score": 10, "status": "active"})",
                           R"(D {"id": 1} -)",
                           R"(I - {"id": 5, "name": "e", "score": 5, "status": "active"})",
                       }));
  EXPECT_EQ(source().scalar("SELECT count(DISTINCT xid) FROM pgferry.journal"), "1");
  EXPECT_EQ(bells(l), 1U);
  // A statement that journals nothing (no rows, or none in the filter) rings nothing.
  clear_journal();
  app.exec("INSERT INTO users SELECT 9, 'none', 'active', 9 WHERE false");
  app.exec("DELETE FROM users WHERE id = 6");
  EXPECT_TRUE(journal().empty());
  EXPECT_EQ(bells(l, 1500), 0U);
}

/// The message of the error `sql` fails with ("" if it succeeds).
std::string error_of(PgClient& db, const std::string& sql) {
  try {
    db.exec(sql);
  } catch (const std::exception& e) {
    return e.what();
  }
  return {};
}

TEST_F(Capture, AStatementCapturedTableCannotSilentlyBecomeAPartitionOrAChild) {
  // A write routed to a partition through its parent fires the partition's row triggers only:
  // the statement-level INSERT capture would miss it. The guard makes PostgreSQL refuse to
  // attach or inherit, naming pgferry's trigger, instead.
  install(kUsers, "  - public.users\n");
  PgClient app = source();
  app.exec(
      "CREATE TABLE parts (id int PRIMARY KEY, name text, status text, score int) PARTITION BY RANGE (id); "
      "CREATE TABLE base (id int, name text, status text, score int)");
  const auto attach = error_of(app, "ALTER TABLE parts ATTACH PARTITION users FOR VALUES FROM (0) TO (100)");
  EXPECT_NE(attach.find(R"(trigger "pgferry_capture_guard" prevents table "users" from becoming a partition)"),
            std::string::npos)
      << attach;
  const auto inherit = error_of(app, "ALTER TABLE users INHERIT base");
  EXPECT_NE(
      inherit.find(R"(trigger "pgferry_capture_guard" prevents table "users" from becoming an inheritance child)"),
      std::string::npos)
      << inherit;
  // Becoming an inheritance parent is harmless: an INSERT into the parent writes the parent
  // only, and the children's rows never reach its row-level UPDATE and DELETE capture.
  app.exec("CREATE TABLE kid (extra int) INHERITS (users)");
  app.exec("INSERT INTO users VALUES (1, 'a', 's', 1); INSERT INTO kid VALUES (2, 'k', 's', 2, 0)");
  app.exec("UPDATE users SET score = score + 10; DELETE FROM users");
  EXPECT_EQ(journal(), (std::vector<std::string>{
                           R"(I - {"id": 1, "name": "a", "score": 1, "status": "s"})",
                           R"(U - {"id": 1, "name": "a", "score": 11, "status": "s"})",
                           R"(D {"id": 1} -)",
                       }));
  app.exec("DROP TABLE kid");

  // insert_capture: row takes the guard away (setup says so); then the table can be attached,
  // and rows written through the parent are journaled by its row trigger.
  const CliResult r = pgferry("setup", write_config("  - name: public.users\n    insert_capture: row\n"));
  ASSERT_EQ(r.exit_code, 0) << r.all();
  EXPECT_NE(r.out.find("public.users: capture reinstalled: configuration changed"), std::string::npos) << r.all();
  EXPECT_EQ(source().scalar("SELECT string_agg(tgname, ',' ORDER BY tgname) FROM pg_trigger "
                            "WHERE tgrelid = 'public.users'::regclass"),
            "pgferry_capture,pgferry_capture_truncate");
  clear_journal();
  app.exec("ALTER TABLE parts ATTACH PARTITION users FOR VALUES FROM (0) TO (100)");
  app.exec("INSERT INTO parts VALUES (3, 'p', 's', 3), (4, 'q', 's', 4)");
  EXPECT_EQ(journal(), (std::vector<std::string>{
                           R"(I - {"id": 3, "name": "p", "score": 3, "status": "s"})",
                           R"(I - {"id": 4, "name": "q", "score": 4, "status": "s"})",
                       }));
  // And setup, asked for statement capture again, keeps row capture for what is now a partition.
  const CliResult again = pgferry("setup", write_config("  - public.users\n"));
  ASSERT_EQ(again.exit_code, 0) << again.all();
  EXPECT_EQ(source().scalar("SELECT string_agg(tgname, ',' ORDER BY tgname) FROM pg_trigger "
                            "WHERE tgrelid = 'public.users'::regclass AND NOT tgisinternal"),
            "pgferry_capture,pgferry_capture_truncate");
}

TEST_F(Capture, CompositeKeysWithOddValues) {
  install("CREATE TABLE public.m (tenant text, id int, v text, PRIMARY KEY (tenant, id))", "  - public.m\n");
  PgClient app = source();
  app.exec("INSERT INTO m VALUES ('a\"b''c', 1, 'x')");
  app.exec("UPDATE m SET id = 2 WHERE id = 1");
  app.exec("DELETE FROM m");
  EXPECT_EQ(journal(), (std::vector<std::string>{
                           R"(I - {"v": "x", "id": 1, "tenant": "a\"b'c"})",
                           R"(U {"id": 1, "tenant": "a\"b'c"} {"v": "x", "id": 2, "tenant": "a\"b'c"})",
                           R"(D {"id": 2, "tenant": "a\"b'c"} -)",
                       }));
}

TEST_F(Capture, HostileNamesWork) {
  install(
      "CREATE SCHEMA \"My Schema\"; "
      "CREATE TABLE \"My Schema\".\"Odd \"\"Table\"\"; drop\" (\"Key Col\" int PRIMARY KEY, \"it's\" text, "
      "\"naïve\" text, \"MixedCase\" int)",
      "  - name: '\"My Schema\".\"Odd \"\"Table\"\"; drop\"'\n");
  source().exec("INSERT INTO \"My Schema\".\"Odd \"\"Table\"\"; drop\" VALUES (1, 'a', 'b', 2)");
  source().exec("DELETE FROM \"My Schema\".\"Odd \"\"Table\"\"; drop\"");
  EXPECT_EQ(journal(), (std::vector<std::string>{
                           R"(I - {"it's": "a", "naïve": "b", "Key Col": 1, "MixedCase": 2})",
                           R"(D {"Key Col": 1} -)",
                       }));
}

TEST_F(Capture, RolledBackWritesLeaveNothing) {
  install(kUsers, "  - public.users\n");
  PgClient app = source();
  app.exec("BEGIN; INSERT INTO users VALUES (1, 'a', 'x', 1); ROLLBACK");
  EXPECT_TRUE(journal().empty());
  app.exec(
      "BEGIN; INSERT INTO users VALUES (2, 'kept', 'x', 1); SAVEPOINT s; INSERT INTO users VALUES (3, 'lost', 'x', 1); "
      "ROLLBACK TO s; COMMIT");
  EXPECT_EQ(journal(), std::vector<std::string>{R"(I - {"id": 2, "name": "kept", "score": 1, "status": "x"})"});
}

TEST_F(Capture, UnprivilegedWritersAreJournaledButCannotForgeTheJournal) {
  install(kUsers, "  - public.users\n");
  source().exec(
      "DROP ROLE IF EXISTS capture_app; CREATE ROLE capture_app LOGIN; "
      "GRANT SELECT, INSERT, UPDATE, DELETE ON public.users TO capture_app");
  PgClient app(source_conninfo("capture_app"));
  app.exec("INSERT INTO users VALUES (1, 'a', 'x', 1)");
  app.exec("UPDATE users SET score = 2");
  app.exec("DELETE FROM users");
  EXPECT_EQ(journal_count(), "3");
  EXPECT_EQ(app.try_exec("INSERT INTO pgferry.journal VALUES (999, '1', 1, 'I', NULL, '{}', now())"), "42501");
  EXPECT_EQ(app.try_exec("SELECT setval('pgferry.doorbell', 1)"), "42501");
  EXPECT_EQ(app.try_exec("SELECT pgferry.capture_1()"), "42501");
}

TEST_F(Capture, HundredThousandRowUpdateRingsOnce) {
  install(kUsers, "  - public.users\n");
  source().exec("INSERT INTO users SELECT g, 'n' || g, 'active', 0 FROM generate_series(1, 100000) g");
  clear_journal();
  PgClient l = listener();
  bell(true);
  source().exec("UPDATE users SET score = score + 1");
  EXPECT_EQ(journal_count(), "100000");
  EXPECT_EQ(bells(l), 1U);
  EXPECT_EQ(source().scalar("SELECT count(DISTINCT xid) FROM pgferry.journal"), "1");

  // Bell off: the same statement rings nothing at all.
  bell(false);
  source().exec("UPDATE users SET score = score + 1");
  EXPECT_EQ(journal_count(), "200000");
  EXPECT_EQ(bells(l, 1500), 0U);
}

TEST_F(Capture, NobodyListeningMeansNoNotify) {
  install(kUsers, "  - public.users\n");
  PgClient eavesdropper = source();  // LISTENs but does not hold the listen lock
  eavesdropper.exec("LISTEN pgferry");
  bell(true);
  source().exec("INSERT INTO users VALUES (1, 'a', 'x', 1)");
  EXPECT_EQ(bells(eavesdropper, 1500), 0U);
  // Once the replicator's lock is held, the same write rings.
  PgClient l = listener();
  source().exec("INSERT INTO users VALUES (2, 'a', 'x', 1)");
  EXPECT_EQ(bells(eavesdropper), 1U);
}

TEST_F(Capture, ConcurrentTransactionsCommittingOutOfOrderEachRingOnceWithTheirOwnXid) {
  install(kUsers, "  - public.users\n");
  PgClient l = listener();
  bell(true);
  PgClient first = source();
  PgClient second = source();
  first.exec("BEGIN; INSERT INTO users VALUES (1, 'first', 'x', 1); INSERT INTO users VALUES (2, 'first', 'x', 1)");
  second.exec("BEGIN; INSERT INTO users VALUES (3, 'second', 'x', 1)");
  const std::string xid1 = first.scalar("SELECT pg_current_xact_id()");
  const std::string xid2 = second.scalar("SELECT pg_current_xact_id()");
  second.exec("COMMIT");
  first.exec("INSERT INTO users VALUES (4, 'first', 'x', 1); COMMIT");
  // PostgreSQL folds notifications with the same channel and payload only within a transaction:
  // two transactions, two notifications, whatever the rows.
  EXPECT_EQ(bells(l), 2U);
  const auto rows = source().query(
      "SELECT xid::text, string_agg(new_row->>'id', ',' ORDER BY id) FROM pgferry.journal "
      "GROUP BY xid ORDER BY min(id)");
  ASSERT_EQ(rows.size(), 2U);
  EXPECT_EQ(rows[0][0], xid1);
  EXPECT_EQ(rows[0][1], "1,2,4");
  EXPECT_EQ(rows[1][0], xid2);
  EXPECT_EQ(rows[1][1], "3");
}

TEST_F(Capture, RepeatableReadWriterSeesTheBellTurnedOnAfterItsSnapshot) {
  install(kUsers, "  - public.users\n");
  PgClient l = listener();
  bell(false);
  PgClient writer = source();
  writer.exec("BEGIN ISOLATION LEVEL REPEATABLE READ");
  writer.scalar("SELECT count(*) FROM users");  // the snapshot is taken here, bell off
  bell(true);
  writer.exec("INSERT INTO users VALUES (1, 'a', 'x', 1); COMMIT");
  EXPECT_EQ(bells(l), 1U);
}

TEST_F(Capture, CaptureSurvivesSearchPathTricks) {
  // A writer with its own search_path and a shadowing function cannot redirect the capture
  // function, which runs with search_path pinned to pg_catalog.
  install(kUsers, "  - name: public.users\n    where: \"lower(status) = 'active'\"\n");
  source().exec(
      "CREATE SCHEMA evil; CREATE FUNCTION evil.lower(text) RETURNS text LANGUAGE sql AS $$ SELECT 'active' $$; "
      "CREATE FUNCTION evil.to_jsonb(anyelement) RETURNS jsonb LANGUAGE sql AS $$ SELECT '{}'::jsonb $$");
  PgClient app = source();
  app.exec("SET search_path = evil, public, pg_catalog");
  app.exec("INSERT INTO users VALUES (1, 'a', 'INACTIVE', 1), (2, 'b', 'ACTIVE', 1)");
  EXPECT_EQ(journal(), std::vector<std::string>{R"(I - {"id": 2, "name": "b", "score": 1, "status": "ACTIVE"})"});
}

TEST_F(Capture, AnUnfilteredTableIsCapturedAsUsualUnderAHostileSearchPath) {
  // Without a row filter the function runs under the writer's search_path (pinning it costs every
  // call), so it names every function, operator and type with its schema. A writer's own
  // look-alikes ahead of pg_catalog change nothing: here = on text is always false (the function
  // would take every UPDATE for a DELETE), *<> on records always true (a no-op UPDATE would be
  // journaled) and to_jsonb returns {}.
  install(kUsers, "  - public.users\n");
  source().exec(
      "CREATE SCHEMA evil; "
      "CREATE FUNCTION evil.never(text, text) RETURNS boolean LANGUAGE sql AS $$ SELECT false $$; "
      "CREATE OPERATOR evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.never); "
      "CREATE FUNCTION evil.always(record, record) RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN RETURN true; END $$; "
      "CREATE OPERATOR evil.*<> (LEFTARG = record, RIGHTARG = record, FUNCTION = evil.always); "
      "CREATE FUNCTION evil.to_jsonb(anyelement) RETURNS jsonb LANGUAGE sql AS $$ SELECT '{}'::jsonb $$");
  PgClient app = source();
  app.exec("SET search_path = evil, public, pg_catalog");
  ASSERT_EQ(app.scalar("SELECT 'a'::text = 'a'::text"), "f");  // the look-alikes are in effect
  live_one_row(app);
  EXPECT_EQ(journal(), kOneRowsJournal);
}

}  // namespace
}  // namespace pgferry::test
