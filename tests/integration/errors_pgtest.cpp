// `pgferry errors list|retry|resolve` against two real servers. The sync_errors rows are written
// here the way the replicator writes them (see replicator/errors_cmd.hpp and the target schema),
// and table_state is set as the replicator sets it when it stops a table; then the CLI is run the
// way an operator runs it and the target is checked.
#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "support/ferry.hpp"
#include "support/fixture.hpp"

namespace pgferry::test {
namespace {

// apply::kTableLockClass: the advisory lock class every applied batch holds shared per table.
constexpr int kTableLockClass = 0x70676673;

constexpr const char* kItems = "CREATE TABLE public.items (id int PRIMARY KEY, name text, qty int, note text)";
constexpr const char* kItemsQ = R"("public"."items")";

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) out.push_back(line);
  }
  return out;
}

class Errors : public ReplicationTest {
 protected:
  /// One sync_errors row as the replicator writes it; returns its id.
  std::string add_error(const std::string& source_table, const std::string& error_class, const std::string& op,
                        const std::optional<std::string>& row_key, const std::optional<std::string>& row_image,
                        const std::optional<std::string>& sqlstate, const std::string& message,
                        const std::optional<std::string>& journal_id = std::nullopt,
                        const std::string& target_table = "") {
    return target().scalar(
        "INSERT INTO pgferry.sync_errors (source_table, target_table, op, row_key, row_image, sqlstate, error_class, "
        "message, journal_id, source_xid) VALUES ($1, $2, $3::\"char\", $4::jsonb, $5::jsonb, $6, $7, $8, "
        "$9::bigint, '777'::xid8) RETURNING id",
        {source_table, target_table.empty() ? source_table : target_table, op, row_key, row_image, sqlstate,
         error_class, message, journal_id});
  }

  /// Stops a table the way the replicator does.
  void stop_table(const std::string& source_table, const std::string& stop_class, const std::string& reason) {
    target().query(
        "UPDATE pgferry.table_state SET status = 'stopped', stop_class = $2, stop_reason = $3 WHERE source_table = $1",
        {source_table, stop_class, reason});
  }

  /// One column of one error.
  std::string error_field(const std::string& id, const std::string& column) {
    return target().scalar("SELECT " + column + "::text FROM pgferry.sync_errors WHERE id = $1::bigint", {id});
  }

  std::string table_field(const std::string& source_table, const std::string& column) {
    return target().scalar("SELECT " + column + "::text FROM pgferry.table_state WHERE source_table = $1",
                           {source_table});
  }

  /// The target row of public.items with this id as text, "" when absent.
  std::string target_item(int id) {
    auto rows =
        target().query("SELECT (name, qty, note)::text FROM public.items WHERE id = $1::int", {std::to_string(id)});
    return rows.empty() ? "" : rows[0][0].value_or("");
  }

  std::string error_count() { return target().scalar("SELECT count(*) FROM pgferry.sync_errors"); }

  /// A field of a JSON object (PostgreSQL parses it: a line that is not JSON fails the test).
  std::string json_field(const std::string& line, const std::string& field) {
    return target().scalar("SELECT coalesce(($1::jsonb -> $2)::text, 'absent')", {line, field});
  }
};

// ---------------------------------------------------------------------------------------------
// list

TEST_F(Errors, ListFiltersByTableAndOpenAndPrintsJsonLinesWithEveryColumn) {
  on_both(kItems);
  source().exec("CREATE TABLE public.orders (id int PRIMARY KEY, total int)");
  target().exec("CREATE TABLE public.orders_copy (id int PRIMARY KEY, total int)");
  const auto config = configure("  - public.items\n  - name: public.orders\n    target: public.orders_copy\n");

  // Empty: exit 0, nothing on stdout when it is not a terminal.
  auto empty = pgferry("errors", config, {"list"});
  ASSERT_EQ(empty.exit_code, 0) << empty.all();
  EXPECT_TRUE(lines_of(empty.out).empty()) << empty.out;

  const auto a = add_error(kItemsQ, "quarantine_row", "U", R"({"id": 7})", R"({"id": 7, "name": "x", "qty": -1})",
                           "23514", "new row violates check constraint \"qty_positive\"", "101");
  const auto b = add_error(kItemsQ, "held_back", "U", R"({"id": 7})", R"({"id": 7, "name": "y", "qty": 2})",
                           std::nullopt, "held back: an earlier change to this row is in error " + a, "102");
  const auto c =
      add_error(R"("public"."orders")", "stop_table", "I", std::nullopt, std::nullopt, "42703",
                "column \"total\" of relation \"orders_copy\" does not exist", "103", R"("public"."orders_copy")");
  target().query(
      "UPDATE pgferry.sync_errors SET resolved = true, resolved_at = now(), resolution_note = 'done' "
      "WHERE id = $1::bigint",
      {b});

  auto all = pgferry("errors", config, {"list", "--json"});
  ASSERT_EQ(all.exit_code, 0) << all.all();
  auto lines = lines_of(all.out);
  ASSERT_EQ(lines.size(), 3U) << all.out;
  // Newest first.
  EXPECT_EQ(json_field(lines[0], "id"), c);
  EXPECT_EQ(json_field(lines[1], "id"), b);
  EXPECT_EQ(json_field(lines[2], "id"), a);
  for (const char* column : {"id", "first_seen", "last_seen", "source_table", "target_table", "op", "row_key",
                             "row_image", "sqlstate", "error_class", "message", "attempts", "journal_id", "source_xid",
                             "resolved", "resolved_at", "resolution_note"}) {
    EXPECT_NE(json_field(lines[2], column), "absent") << column << " missing from " << lines[2];
  }
  EXPECT_EQ(json_field(lines[2], "row_key"), R"({"id": 7})");
  EXPECT_EQ(json_field(lines[2], "error_class"), R"("quarantine_row")");
  EXPECT_EQ(json_field(lines[2], "sqlstate"), R"("23514")");
  EXPECT_EQ(json_field(lines[2], "journal_id"), "101");
  EXPECT_EQ(json_field(lines[2], "resolved"), "false");
  EXPECT_EQ(json_field(lines[1], "resolved"), "true");
  EXPECT_EQ(json_field(lines[1], "resolution_note"), R"("done")");
  EXPECT_EQ(json_field(lines[0], "target_table"), R"("\"public\".\"orders_copy\"")");

  auto open = pgferry("errors", config, {"list", "--open", "--json"});
  ASSERT_EQ(open.exit_code, 0) << open.all();
  lines = lines_of(open.out);
  ASSERT_EQ(lines.size(), 2U) << open.out;
  EXPECT_EQ(json_field(lines[0], "id"), c);
  EXPECT_EQ(json_field(lines[1], "id"), a);

  auto items = pgferry("errors", config, {"list", "--table", "public.items", "--json"});
  ASSERT_EQ(items.exit_code, 0) << items.all();
  lines = lines_of(items.out);
  ASSERT_EQ(lines.size(), 2U) << items.out;
  EXPECT_EQ(json_field(lines[0], "id"), b);
  EXPECT_EQ(json_field(lines[1], "id"), a);

  auto items_open = pgferry("errors", config, {"list", "--table", "items", "--open", "--json"});
  ASSERT_EQ(items_open.exit_code, 0) << items_open.all();
  lines = lines_of(items_open.out);
  ASSERT_EQ(lines.size(), 1U) << items_open.out;
  EXPECT_EQ(json_field(lines[0], "id"), a);

  // The table form: a header, one line per error, the status and the renamed target.
  auto text = pgferry("errors", config, {"list"});
  ASSERT_EQ(text.exit_code, 0) << text.all();
  lines = lines_of(text.out);
  ASSERT_EQ(lines.size(), 4U) << text.out;
  EXPECT_NE(lines[0].find("STATUS"), std::string::npos) << text.out;
  EXPECT_EQ(lines[1].rfind(c, 0), 0U) << text.out;
  EXPECT_NE(lines[1].find("public.orders -> public.orders_copy"), std::string::npos) << text.out;
  EXPECT_NE(lines[1].find("stop_table"), std::string::npos) << text.out;
  EXPECT_NE(lines[2].find("resolved"), std::string::npos) << text.out;
  EXPECT_NE(lines[3].find("open"), std::string::npos) << text.out;
  EXPECT_NE(lines[3].find(R"({"id": 7})"), std::string::npos) << text.out;
  EXPECT_NE(lines[3].find("23514"), std::string::npos) << text.out;
  EXPECT_NE(lines[3].find("qty_positive"), std::string::npos) << text.out;

  auto unknown = pgferry("errors", config, {"list", "--table", "public.nope"});
  EXPECT_EQ(unknown.exit_code, 2) << unknown.all();
  EXPECT_NE(unknown.err.find("public.nope"), std::string::npos) << unknown.err;
  EXPECT_NE(unknown.err.find("fix:"), std::string::npos) << unknown.err;
}

// On a terminal (a pseudo-terminal from script(1)): an empty list says so, and long messages are
// cut to the terminal's width.
TEST_F(Errors, ListOnATerminalSaysWhenEmptyAndTruncatesMessages) {
  if (run_process({"sh", "-c", "command -v script"}).exit_code != 0) GTEST_SKIP() << "script(1) is not installed";
  on_both(kItems);
  const auto config = configure("  - public.items\n");
  const std::string command = std::string(PGFERRY_BINARY) + " errors -c '" + config + "' list";
  auto on_terminal = [&] { return run_process({"script", "-q", "-e", "-c", command, "/dev/null"}); };
  auto empty = on_terminal();
  ASSERT_EQ(empty.exit_code, 0) << empty.all();
  EXPECT_NE(empty.out.find("no sync errors"), std::string::npos) << empty.all();

  const std::string long_message = "the target rejected the row " + std::string(400, 'x') + " END";
  add_error(kItemsQ, "quarantine_row", "U", R"({"id": 1})", std::nullopt, "23514", long_message, "1");
  auto listed = on_terminal();
  ASSERT_EQ(listed.exit_code, 0) << listed.all();
  EXPECT_NE(listed.out.find("the target rejected the row"), std::string::npos) << listed.out;
  EXPECT_EQ(listed.out.find("END"), std::string::npos) << "not truncated:\n" << listed.out;
  EXPECT_NE(listed.out.find("..."), std::string::npos) << listed.out;
  // Off a terminal the whole message is printed.
  auto piped = pgferry("errors", config, {"list"});
  EXPECT_NE(piped.out.find(long_message), std::string::npos) << piped.out;
}

// ---------------------------------------------------------------------------------------------
// retry: rows

TEST_F(Errors, RetrySetsTheTargetRowToTheSourcesCurrentRowAndResolvesEveryErrorOfTheKey) {
  on_both(kItems);
  const auto config = configure("  - public.items\n");
  source().exec("INSERT INTO items VALUES (1, 'current', 10, 'n1'), (3, 'three', 3, NULL)");
  // The target missed the latest change of 1, still has 2 (deleted on the source), and has 3 right.
  target().exec(
      "INSERT INTO items VALUES (1, 'old', 1, NULL), (2, 'deleted on source', 2, NULL), (3, 'three', 3, NULL)");

  const auto q1 = add_error(kItemsQ, "quarantine_row", "U", R"({"id": 1})", R"({"id": 1, "name": "mid", "qty": 5})",
                            "23505", "duplicate key value violates unique constraint", "10");
  const auto h1 =
      add_error(kItemsQ, "held_back", "U", R"({"id": 1})", R"({"id": 1, "name": "current", "qty": 10, "note": "n1"})",
                std::nullopt, "held back behind error " + q1, "11");
  const auto q2 = add_error(kItemsQ, "quarantine_row", "D", R"({"id": 2})", std::nullopt, "23503",
                            "update or delete violates foreign key constraint", "12");
  const auto q3 = add_error(kItemsQ, "quarantine_row", "U", R"({"id": 3})", R"({"id": 3, "name": "three", "qty": 3})",
                            "22001", "value too long", "13");

  // Retry names only q1 and q2: h1 is about the same key as q1 and is resolved with it; q3 is not
  // named and stays open.
  auto r = pgferry("errors", config, {"retry", q1, q2});
  ASSERT_EQ(r.exit_code, 0) << r.all();
  EXPECT_EQ(target_item(1), "(current,10,n1)");
  EXPECT_EQ(target_item(2), "") << "a key the source no longer has is deleted on the target";
  EXPECT_EQ(target_item(3), "(three,3,)");
  for (const auto& id : {q1, h1, q2}) {
    EXPECT_EQ(error_field(id, "resolved"), "true") << id << "\n" << r.all();
    EXPECT_EQ(error_field(id, "resolution_note"), "retried: target set to the source's current row");
    EXPECT_NE(error_field(id, "resolved_at"), "");
  }
  EXPECT_EQ(error_field(q3, "resolved"), "false");
  EXPECT_EQ(error_count(), "4") << "errors are never deleted";

  // Retrying a resolved id says so and is not a failure; an unknown id is bad usage.
  auto again = pgferry("errors", config, {"retry", q1});
  EXPECT_EQ(again.exit_code, 0) << again.all();
  EXPECT_NE(again.out.find("already resolved"), std::string::npos) << again.all();
  auto unknown = pgferry("errors", config, {"retry", "987654"});
  EXPECT_EQ(unknown.exit_code, 2) << unknown.all();
  EXPECT_NE(unknown.err.find("987654"), std::string::npos) << unknown.err;

  // --all takes what is still open.
  auto all = pgferry("errors", config, {"retry", "--all"});
  ASSERT_EQ(all.exit_code, 0) << all.all();
  EXPECT_EQ(error_field(q3, "resolved"), "true");
}

TEST_F(Errors, RetryWritesThroughTheTableAndColumnMappingAndTheRowFilter) {
  source().exec(
      "CREATE TABLE public.people (id int, region text, full_name text, secret text, doc jsonb, "
      "PRIMARY KEY (region, id))");
  target().exec(
      "CREATE TABLE public.people_copy (person_id int, region text, name text, doc jsonb, "
      "PRIMARY KEY (region, person_id))");
  const auto config = configure(
      "  - name: public.people\n    target: public.people_copy\n"
      "    columns: {id: person_id, region: region, full_name: name, doc: doc}\n"
      "    where: \"full_name <> 'hidden'\"\n");
  source().exec(
      "INSERT INTO people VALUES (1, 'eu', 'Ada', 's', '{\"b\": 1, \"a\": null}'), "
      "(2, 'eu', 'hidden', 's', NULL)");
  target().exec("INSERT INTO people_copy VALUES (1, 'eu', 'old', NULL), (2, 'eu', 'was visible', NULL)");
  const std::string people = R"("public"."people")";
  const auto e1 = add_error(people, "quarantine_row", "U", R"({"id": 1, "region": "eu"})", std::nullopt, "23514",
                            "check", "1", R"("public"."people_copy")");
  const auto e2 = add_error(people, "quarantine_row", "U", R"({"id": 2, "region": "eu"})", std::nullopt, "23514",
                            "check", "2", R"("public"."people_copy")");
  auto r = pgferry("errors", config, {"retry", e1, e2});
  ASSERT_EQ(r.exit_code, 0) << r.all();
  EXPECT_EQ(target().scalar("SELECT (name, doc)::text FROM people_copy WHERE person_id = 1"),
            R"((Ada,"{""a"": null, ""b"": 1}"))");
  EXPECT_EQ(target().scalar("SELECT count(*) FROM people_copy WHERE person_id = 2"), "0")
      << "a row that no longer passes the filter is deleted on the target";
  EXPECT_EQ(error_field(e1, "resolved"), "true");
  EXPECT_EQ(error_field(e2, "resolved"), "true");
}

TEST_F(Errors, RetryTheTargetStillRejectsCountsTheAttemptAndSucceedsOnceTheTargetIsFixed) {
  on_both(kItems);
  const auto config = configure("  - public.items\n");
  target().exec("ALTER TABLE items ADD CONSTRAINT qty_positive CHECK (qty >= 0)");
  source().exec("INSERT INTO items VALUES (1, 'negative', -5, NULL)");
  const auto q = add_error(kItemsQ, "quarantine_row", "I", R"({"id": 1})",
                           R"({"id": 1, "name": "negative", "qty": -5})", "23514", "old message", "5");
  target().exec(
      "UPDATE pgferry.sync_errors SET first_seen = now() - interval '1 hour', "
      "last_seen = now() - interval '1 hour'");

  auto r = pgferry("errors", config, {"retry", q});
  EXPECT_EQ(r.exit_code, 1) << r.all();
  EXPECT_NE(r.err.find("qty_positive"), std::string::npos) << r.err;
  EXPECT_EQ(error_field(q, "resolved"), "false");
  EXPECT_EQ(error_field(q, "attempts"), "2");
  EXPECT_NE(error_field(q, "message").find("qty_positive"), std::string::npos) << error_field(q, "message");
  EXPECT_EQ(error_field(q, "sqlstate"), "23514");
  EXPECT_EQ(target().scalar("SELECT last_seen > first_seen + interval '30 minutes' FROM pgferry.sync_errors "
                            "WHERE id = $1::bigint",
                            {q}),
            "t");
  EXPECT_EQ(target_item(1), "") << "nothing of a failed retry is applied";

  target().exec("ALTER TABLE items DROP CONSTRAINT qty_positive");
  auto ok = pgferry("errors", config, {"retry", q});
  ASSERT_EQ(ok.exit_code, 0) << ok.all();
  EXPECT_EQ(error_field(q, "resolved"), "true");
  EXPECT_EQ(error_field(q, "attempts"), "2");
  EXPECT_EQ(target_item(1), "(negative,-5,)");
}

// ---------------------------------------------------------------------------------------------
// retry: stopped tables

TEST_F(Errors, RetryOfAStoppedTableResumesItOnlyOnceTheTargetTableIsFixed) {
  on_both(kItems);
  const auto config = configure("  - public.items\n");
  target().exec("ALTER TABLE items DROP COLUMN note");
  const std::string message = R"(column "note" of relation "items" does not exist)";
  stop_table(kItemsQ, "stop_table", message);
  const auto s = add_error(kItemsQ, "stop_table", "U", std::nullopt, std::nullopt, "42703", message, "9");

  auto r = pgferry("errors", config, {"retry", s});
  EXPECT_EQ(r.exit_code, 1) << r.all();
  EXPECT_NE(r.err.find("note"), std::string::npos) << r.err;
  EXPECT_EQ(table_field(kItemsQ, "status"), "stopped");
  EXPECT_EQ(table_field(kItemsQ, "stop_class"), "stop_table");
  EXPECT_EQ(error_field(s, "resolved"), "false");
  EXPECT_EQ(error_field(s, "attempts"), "2");
  EXPECT_NE(error_field(s, "message").find("note"), std::string::npos);

  target().exec("ALTER TABLE items ADD COLUMN note text");
  auto ok = pgferry("errors", config, {"retry", "--all"});
  ASSERT_EQ(ok.exit_code, 0) << ok.all();
  EXPECT_EQ(table_field(kItemsQ, "status"), "streaming");
  EXPECT_EQ(table_field(kItemsQ, "stop_class"), "");
  EXPECT_EQ(table_field(kItemsQ, "stop_reason"), "");
  EXPECT_EQ(error_field(s, "resolved"), "true");
  EXPECT_EQ(error_field(s, "resolution_note"), "retried: table resumed");
}

// point has no equality operator: the check must fall back to comparing text, as the replicator does.
TEST_F(Errors, RetryOfAStoppedTableChecksRightsAndTypesWithoutEquality) {
  source().exec("CREATE TABLE public.spots (id int PRIMARY KEY, p point)");
  target().exec("CREATE TABLE public.spots (id int PRIMARY KEY, p point)");
  configure("  - public.spots\n");
  const std::string spots = R"("public"."spots")";
  target().exec(
      "CREATE ROLE ferry_t LOGIN; GRANT USAGE ON SCHEMA pgferry TO ferry_t; "
      "GRANT ALL ON ALL TABLES IN SCHEMA pgferry TO ferry_t; GRANT SELECT, INSERT, UPDATE ON spots TO ferry_t");
  stop_table(spots, "stop_table", "permission denied for table spots");
  const auto s = add_error(spots, "stop_table", "D", std::nullopt, std::nullopt, "42501",
                           "permission denied for table spots", "3");
  // The same configuration, connecting to the target as the role without DELETE.
  const auto limited = dir_.write("limited.yaml", "source: \"" + source_conninfo() + "\"\ntarget: \"" +
                                                      target_conninfo("ferry_t") + "\"\ntables:\n  - public.spots\n");
  auto r = pgferry("errors", limited, {"retry", s});
  EXPECT_EQ(r.exit_code, 1) << r.all();
  EXPECT_NE(r.err.find("DELETE"), std::string::npos) << r.err;
  EXPECT_EQ(table_field(spots, "status"), "stopped");

  target().exec("GRANT DELETE ON spots TO ferry_t");
  auto ok = pgferry("errors", limited, {"retry", s});
  ASSERT_EQ(ok.exit_code, 0) << ok.all();
  EXPECT_EQ(table_field(spots, "status"), "streaming");
  EXPECT_EQ(error_field(s, "resolved"), "true");
}

TEST_F(Errors, RetryOfAMassDeleteConfirmsItUpToItsJournalId) {
  on_both(kItems);
  const auto config = configure("  - public.items\n");
  stop_table(kItemsQ, "mass_delete", "a batch would delete 90% of public.items");
  const auto m = add_error(kItemsQ, "mass_delete", "D", std::nullopt, std::nullopt, std::nullopt,
                           "a batch would delete 900 of 1000 rows", "4242");
  auto r = pgferry("errors", config, {"retry", m});
  ASSERT_EQ(r.exit_code, 0) << r.all();
  EXPECT_EQ(table_field(kItemsQ, "guard_confirmed_id"), "4242");
  EXPECT_EQ(table_field(kItemsQ, "status"), "streaming");
  EXPECT_EQ(table_field(kItemsQ, "stop_class"), "");
  EXPECT_EQ(error_field(m, "resolved"), "true");
  EXPECT_EQ(error_field(m, "resolution_note"), "confirmed by errors retry: the delete is applied");

  // A later confirmation never lowers what was confirmed before.
  target().exec("UPDATE pgferry.table_state SET guard_confirmed_id = 9000");
  stop_table(kItemsQ, "mass_delete", "again");
  const auto m2 = add_error(kItemsQ, "mass_delete", "D", std::nullopt, std::nullopt, std::nullopt, "again", "5000");
  auto r2 = pgferry("errors", config, {"retry", "--all"});
  ASSERT_EQ(r2.exit_code, 0) << r2.all();
  EXPECT_EQ(table_field(kItemsQ, "guard_confirmed_id"), "9000");
  EXPECT_EQ(table_field(kItemsQ, "status"), "streaming");

  // Another open error that stops the table keeps it stopped though the delete is confirmed.
  stop_table(kItemsQ, "mass_delete", "third");
  const auto m3 = add_error(kItemsQ, "mass_delete", "D", std::nullopt, std::nullopt, std::nullopt, "third", "9500");
  const auto m4 = add_error(kItemsQ, "mass_delete", "D", std::nullopt, std::nullopt, std::nullopt, "fourth", "9600");
  auto r3 = pgferry("errors", config, {"retry", m3});
  ASSERT_EQ(r3.exit_code, 0) << r3.all();
  EXPECT_EQ(table_field(kItemsQ, "guard_confirmed_id"), "9500");
  EXPECT_EQ(table_field(kItemsQ, "status"), "stopped");
  EXPECT_NE(r3.out.find(m4), std::string::npos) << r3.all();
  (void)m2;
}

// ---------------------------------------------------------------------------------------------
// resolve

TEST_F(Errors, ResolveMarksErrorsResolvedWithTheNoteAndNeverResumesOrDeletes) {
  on_both(kItems);
  const auto config = configure("  - public.items\n");
  const auto q = add_error(kItemsQ, "quarantine_row", "U", R"({"id": 1})", R"({"id": 1})", "23514", "check", "1");
  stop_table(kItemsQ, "stop_table", "column missing");
  const auto s = add_error(kItemsQ, "stop_table", "U", std::nullopt, std::nullopt, "42703", "column missing", "2");

  auto no_note = pgferry("errors", config, {"resolve", q});
  EXPECT_EQ(no_note.exit_code, 2) << no_note.all();
  EXPECT_EQ(error_field(q, "resolved"), "false");

  auto unknown = pgferry("errors", config, {"resolve", q, "424242", "--note", "x"});
  EXPECT_EQ(unknown.exit_code, 2) << unknown.all();
  EXPECT_NE(unknown.err.find("424242"), std::string::npos) << unknown.err;
  EXPECT_EQ(error_field(q, "resolved"), "false") << "nothing changes when an id is unknown";

  auto ok = pgferry("errors", config, {"resolve", q, "--note", "fixed by hand"});
  ASSERT_EQ(ok.exit_code, 0) << ok.all();
  EXPECT_EQ(error_field(q, "resolved"), "true");
  EXPECT_EQ(error_field(q, "resolution_note"), "fixed by hand");
  EXPECT_NE(error_field(q, "resolved_at"), "");
  EXPECT_EQ(target_item(1), "") << "resolve applies nothing";

  auto stopped = pgferry("errors", config, {"resolve", s, "--note", "will fix later"});
  ASSERT_EQ(stopped.exit_code, 0) << stopped.all();
  EXPECT_NE(stopped.err.find("stays stopped"), std::string::npos) << stopped.all();
  EXPECT_EQ(error_field(s, "resolved"), "true");
  EXPECT_EQ(table_field(kItemsQ, "status"), "stopped");
  EXPECT_EQ(table_field(kItemsQ, "stop_class"), "stop_table");

  auto twice = pgferry("errors", config, {"resolve", q, "--note", "other"});
  EXPECT_EQ(twice.exit_code, 0) << twice.all();
  EXPECT_EQ(error_field(q, "resolution_note"), "fixed by hand");
  EXPECT_EQ(error_count(), "2") << "errors are never deleted";
}

// ---------------------------------------------------------------------------------------------
// the table lock

TEST_F(Errors, RetryWaitsForBatchesHoldingTheTableLockAndReadsTheSourceOnlyAfterThem) {
  on_both(kItems);
  const auto config = configure("  - public.items\n");
  const auto table_id = source().scalar("SELECT id FROM pgferry.captured_table WHERE source_table = $1", {kItemsQ});
  source().exec("INSERT INTO items VALUES (1, 'before', 1, NULL)");
  target().exec("INSERT INTO items VALUES (1, 'wrong', 0, NULL)");
  const auto q = add_error(kItemsQ, "quarantine_row", "U", R"({"id": 1})", R"({"id": 1})", "23514", "check", "1");

  // A batch in flight: it holds the table lock shared until it commits.
  PgClient batch = target();
  batch.exec("BEGIN");
  batch.query("SELECT pg_advisory_xact_lock_shared($1::int, $2::int)", {std::to_string(kTableLockClass), table_id});
  FerryProcess retry({"errors", "-c", config, "retry", q}, dir_.path() + "/retry.log");
  // It gets as far as asking for the lock, and waits there.
  ASSERT_TRUE(eventually(
      [&] {
        return target().scalar(
                   "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND "
                   "classid = $1::int::oid AND objid = $2::int::oid",
                   {std::to_string(kTableLockClass), table_id}) == "1";
      },
      20000))
      << "retry never asked for the table lock\n"
      << retry.log();
  std::this_thread::sleep_for(std::chrono::seconds(1));
  EXPECT_TRUE(retry.running()) << "retry did not wait for the batch holding the table lock\n" << retry.log();
  EXPECT_EQ(target_item(1), "(wrong,0,)");
  // A change committed while the batch is in flight: the retry reads the source after the lock, so
  // it sees this one.
  source().exec("UPDATE items SET name = 'after' WHERE id = 1");
  batch.exec("COMMIT");
  const int code = retry.wait(60000);
  EXPECT_EQ(code, 0) << retry.log();
  EXPECT_EQ(target_item(1), "(after,1,)");
  EXPECT_EQ(error_field(q, "resolved"), "true");
}

}  // namespace
}  // namespace pgferry::test
