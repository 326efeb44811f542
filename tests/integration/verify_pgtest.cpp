// `pgferry verify` against two real servers: drift is made behind pgferry's back (directly on the
// target, or on the source with the capture triggers bypassed), and verify must name exactly the
// rows that differ, --repair must make the target equal to the source, and the scheduled verify
// inside `run` must report real drift but not a change the replicator has yet to apply.
#include <gtest/gtest.h>

#include <cstdlib>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "support/ferry.hpp"
#include "support/fixture.hpp"

namespace pgferry::test {
namespace {

constexpr const char* kItems = "CREATE TABLE public.items (id int PRIMARY KEY, name text, qty int, note text)";
constexpr const char* kFillItems =
    "INSERT INTO public.items SELECT g, 'n' || g, g, NULL FROM generate_series(1, 200) g";

class Verify : public ReplicationTest {
 protected:
  CliResult verify(const std::string& config, std::vector<std::string> extra = {}) const {
    return pgferry("verify", config, std::move(extra));
  }
  /// A value out of verify's JSON report, read by PostgreSQL's JSON parser: `path` as for #>>,
  /// e.g. "{tables,0,missing}". Throws (fails the test) when the output is not JSON.
  std::string field(const CliResult& r, const std::string& path) const {
    return source().scalar("SELECT $1::jsonb #>> $2::text[]", {r.out, path});
  }
  /// Whether the JSON value at `path` equals `expected` (JSON text).
  bool json_equals(const CliResult& r, const std::string& path, const std::string& expected) const {
    return source().scalar("SELECT ($1::jsonb #> $2::text[]) = $3::jsonb", {r.out, path, expected}) == "t";
  }
  /// A source session whose writes bypass the capture triggers (drift pgferry cannot see).
  PgClient untracked_source() const {
    PgClient s = source();
    s.exec("SET session_replication_role = replica");
    return s;
  }
  /// Whether `source_sql` on the source and `target_sql` on the target return the same rows.
  bool equal(const std::string& source_sql, const std::string& target_sql, const std::string& order_by) const {
    PgClient s = src();
    PgClient t = dst();
    return digest(s, source_sql, order_by) == digest(t, target_sql, order_by);
  }
  bool items_equal() const {
    return equal("SELECT id, name, qty, note FROM public.items", "SELECT id, name, qty, note FROM public.items", "id");
  }
  std::string target_count(const std::string& table) const { return target().scalar("SELECT count(*) FROM " + table); }
};

// ---------------------------------------------------------------------------------------------
// 1. Nothing to report.

TEST_F(Verify, IdenticalTablesAgreeAfterTheInitialCopy) {
  on_both(kItems);
  source().exec(kFillItems);
  const auto config = configure("  - public.items\n");
  start(config);
  ASSERT_TRUE(same_tables({"public.items"}));

  const CliResult json = verify(config, {"--json"});
  EXPECT_EQ(json.exit_code, 0) << json.all();
  EXPECT_EQ(field(json, "{ok}"), "true");
  EXPECT_EQ(field(json, "{tables,0,table}"), "public.items");
  EXPECT_EQ(field(json, "{tables,0,source_rows}"), "200");
  EXPECT_EQ(field(json, "{tables,0,target_rows}"), "200");
  for (const char* kind : {"missing", "extra", "different"}) {
    EXPECT_EQ(field(json, std::string("{tables,0,") + kind + "}"), "0") << kind;
  }

  const CliResult text = verify(config);
  EXPECT_EQ(text.exit_code, 0) << text.all();
  EXPECT_NE(text.out.find("source and target agree"), std::string::npos) << text.all();
}

// ---------------------------------------------------------------------------------------------
// 2. Drift on either side is named key by key, and --repair removes it.

TEST_F(Verify, DriftIsNamedExactlyAndRepaired) {
  on_both(kItems);
  on_both(kFillItems);
  const auto config = configure("  - public.items\n");
  {
    PgClient t = target();
    t.exec("UPDATE items SET name = 'changed on target' WHERE id = 10");
    t.exec("DELETE FROM items WHERE id = 20");
    t.exec("INSERT INTO items VALUES (1000, 'only on target', 1, NULL)");
    PgClient s = untracked_source();
    s.exec("UPDATE items SET qty = -1 WHERE id = 30");
    s.exec("INSERT INTO items VALUES (300, 'only on source', 3, 'x')");
    s.exec("DELETE FROM items WHERE id = 40");
    s.exec("UPDATE items SET note = 'a note' WHERE id = 50");
  }
  ASSERT_EQ(source().scalar("SELECT count(*) FROM pgferry.journal"), "0");  // pgferry saw none of it

  const CliResult found = verify(config, {"--json"});
  EXPECT_EQ(found.exit_code, 1) << found.all();
  EXPECT_EQ(field(found, "{ok}"), "false");
  EXPECT_EQ(field(found, "{tables,0,source_rows}"), "200");
  EXPECT_EQ(field(found, "{tables,0,target_rows}"), "200");
  EXPECT_TRUE(json_equals(found, "{tables,0,missing_keys}", R"([["20"],["300"]])")) << found.out;
  EXPECT_TRUE(json_equals(found, "{tables,0,extra_keys}", R"([["40"],["1000"]])")) << found.out;
  EXPECT_TRUE(json_equals(found, "{tables,0,different_keys}", R"([["10"],["30"],["50"]])")) << found.out;
  EXPECT_EQ(field(found, "{tables,0,missing}"), "2");
  EXPECT_EQ(field(found, "{tables,0,extra}"), "2");
  EXPECT_EQ(field(found, "{tables,0,different}"), "3");

  const CliResult text = verify(config);
  EXPECT_EQ(text.exit_code, 1) << text.all();
  EXPECT_NE(text.out.find("missing on target: 2 (20, 300)"), std::string::npos) << text.all();
  EXPECT_NE(text.out.find("extra on target:   2 (40, 1000)"), std::string::npos) << text.all();
  EXPECT_NE(text.out.find("different:         3 (10, 30, 50)"), std::string::npos) << text.all();
  EXPECT_FALSE(items_equal());

  const CliResult repair = verify(config, {"--repair"});
  EXPECT_EQ(repair.exit_code, 0) << repair.all();
  EXPECT_NE(repair.out.find("repaired:          7"), std::string::npos) << repair.all();
  EXPECT_TRUE(items_equal());
  const CliResult again = verify(config, {"--json"});
  EXPECT_EQ(again.exit_code, 0) << again.all();
  EXPECT_EQ(field(again, "{tables,0,different}"), "0");
}

// ---------------------------------------------------------------------------------------------
// 3. A renamed, filtered column subset is compared through the mapping.

TEST_F(Verify, RenamedFilteredSubsetIsComparedThroughTheMapping) {
  source().exec(
      "CREATE TABLE public.users (id int PRIMARY KEY, first_name text, status text, secret text, score numeric)");
  target().exec("CREATE TABLE public.members (uid int PRIMARY KEY, name text, status text, extra text)");
  source().exec(
      "INSERT INTO users SELECT g, 'u' || g, CASE WHEN g % 2 = 0 THEN 'active' ELSE 'idle' END, 's' || g, g "
      "FROM generate_series(1, 60) g");
  target().exec(
      "INSERT INTO members SELECT g, 'u' || g, 'active', 'target only column' FROM generate_series(2, 60, 2) g");
  const auto config = configure(
      "  - name: public.users\n    target: public.members\n    columns: {id: uid, first_name: name, status: status}\n"
      "    where: \"status = 'active'\"\n");

  const CliResult clean = verify(config, {"--json"});
  EXPECT_EQ(clean.exit_code, 0) << clean.all();
  EXPECT_EQ(field(clean, "{tables,0,source_rows}"), "30");  // the filter applies on the source
  EXPECT_EQ(field(clean, "{tables,0,target_table}"), "public.members");

  {
    PgClient s = untracked_source();
    s.exec("UPDATE users SET secret = 'not replicated', score = 0 WHERE id = 4");  // unmapped: no difference
    s.exec("UPDATE users SET first_name = 'filtered out anyway' WHERE id = 5");    // idle: no difference
    s.exec("UPDATE users SET first_name = 'renamed' WHERE id = 6");                // mapped: different
    s.exec("UPDATE users SET status = 'idle' WHERE id = 8");                       // left the filter: extra
    PgClient t = target();
    t.exec("UPDATE members SET extra = 'unmapped target column' WHERE uid = 10");  // not compared
    t.exec("UPDATE members SET name = 'drift' WHERE uid = 12");                    // different
  }
  const CliResult found = verify(config, {"--json"});
  EXPECT_EQ(found.exit_code, 1) << found.all();
  EXPECT_TRUE(json_equals(found, "{tables,0,different_keys}", R"([["6"],["12"]])")) << found.out;
  EXPECT_TRUE(json_equals(found, "{tables,0,extra_keys}", R"([["8"]])")) << found.out;
  EXPECT_EQ(field(found, "{tables,0,missing}"), "0");

  const CliResult repair = verify(config, {"--repair"});
  EXPECT_EQ(repair.exit_code, 0) << repair.all();
  EXPECT_TRUE(equal("SELECT id, first_name, status FROM users WHERE status = 'active'",
                    "SELECT uid AS id, name, status FROM members", "id"));
  EXPECT_EQ(target().scalar("SELECT extra FROM members WHERE uid = 10"), "unmapped target column");
  EXPECT_EQ(verify(config).exit_code, 0);
}

// ---------------------------------------------------------------------------------------------
// 4. Composite text keys over several chunks, with more target rows than a chunk in one range.

TEST_F(Verify, CompositeTextKeysAcrossChunks) {
  ScopedEnv chunk("PGFERRY_TEST_VERIFY_CHUNK_ROWS", "10000");
  on_both(
      "CREATE TABLE public.stock (region text, id int, payload text, PRIMARY KEY (region, id));"
      "INSERT INTO public.stock SELECT (ARRAY['Zürich', 'apple', 'Berlin', 'éclair', 'b', 'B b'])[g % 6 + 1], g, "
      "md5(g::text) FROM generate_series(1, 25000) g");
  const auto config = configure("  - name: public.stock\n", "guard: {max_delete_fraction: 0.9}\n");
  EXPECT_EQ(verify(config).exit_code, 0);

  {
    PgClient t = target();
    t.exec("UPDATE stock SET payload = 'x' WHERE (region, id) IN (('apple', 1), ('Zürich', 24996))");
    t.exec("DELETE FROM stock WHERE (region, id) IN (('Berlin', 2), ('éclair', 12003))");
    // 12,000 rows in one key range the source does not have: more than a chunk of target rows.
    t.exec("INSERT INTO stock SELECT 'm', g, 'extra' FROM generate_series(1, 12000) g");
    t.exec("INSERT INTO stock VALUES ('A first', 1, 'extra'), ('zz last', 1, 'extra')");
    PgClient s = untracked_source();
    s.exec("INSERT INTO stock VALUES ('Berlin', 100000, 'only on source')");
    s.exec("UPDATE stock SET payload = 'y' WHERE region = 'b' AND id = 24994");
  }
  const CliResult found = verify(config, {"--json"});
  EXPECT_EQ(found.exit_code, 1) << found.all();
  EXPECT_EQ(field(found, "{tables,0,source_rows}"), "25001");
  EXPECT_EQ(field(found, "{tables,0,target_rows}"), std::to_string(25000 - 2 + 12002));
  EXPECT_EQ(field(found, "{tables,0,missing}"), "3");
  EXPECT_EQ(field(found, "{tables,0,extra}"), "12002");
  EXPECT_EQ(field(found, "{tables,0,different}"), "3");
  // Keys in byte order (COLLATE "C"): upper case before lower case, 'é' last.
  EXPECT_TRUE(
      json_equals(found, "{tables,0,missing_keys}", R"([["Berlin","2"],["Berlin","100000"],["éclair","12003"]])"))
      << found.out;
  EXPECT_TRUE(json_equals(found, "{tables,0,different_keys}", R"([["Zürich","24996"],["apple","1"],["b","24994"]])"))
      << found.out;

  const CliResult repair = verify(config, {"--repair", "--json"});
  EXPECT_EQ(repair.exit_code, 0) << repair.all();
  EXPECT_EQ(field(repair, "{tables,0,repaired}"), "12008");
  EXPECT_TRUE(equal("SELECT region, id, payload FROM stock", "SELECT region, id, payload FROM stock", "region, id"));
  EXPECT_EQ(verify(config).exit_code, 0);
}

// ---------------------------------------------------------------------------------------------
// 5. The mass-delete guard.

TEST_F(Verify, RepairRefusesAMassDeleteUnlessAllowed) {
  on_both(kItems);
  on_both("INSERT INTO items SELECT g, 'n' || g, g, NULL FROM generate_series(1, 20) g");
  target().exec("INSERT INTO items SELECT g, 'stale', g, NULL FROM generate_series(101, 130) g");
  target().exec("UPDATE items SET name = 'drift' WHERE id = 5");
  const auto config = configure("  - public.items\n", "guard: {min_rows: 10}\n");

  const CliResult refused = verify(config, {"--repair"});
  EXPECT_EQ(refused.exit_code, 1) << refused.all();
  EXPECT_NE(refused.err.find("public.items"), std::string::npos) << refused.all();
  EXPECT_NE(refused.err.find("delete 30 of its 50 target rows"), std::string::npos) << refused.all();
  EXPECT_NE(refused.err.find("--allow-mass-delete"), std::string::npos) << refused.all();
  EXPECT_EQ(target_count("items"), "50");                                   // nothing deleted
  EXPECT_EQ(target().scalar("SELECT name FROM items WHERE id = 5"), "n5");  // the upsert still ran

  const CliResult allowed = verify(config, {"--repair", "--allow-mass-delete"});
  EXPECT_EQ(allowed.exit_code, 0) << allowed.all();
  EXPECT_EQ(target_count("items"), "20");
  EXPECT_TRUE(items_equal());
}

// ---------------------------------------------------------------------------------------------
// 6. Usage.

TEST_F(Verify, UnknownTableIsAUsageErrorAndTableSelectsOne) {
  on_both(kItems);
  on_both("CREATE TABLE public.other (id int PRIMARY KEY)");
  const auto config = configure("  - public.items\n  - public.other\n");

  const CliResult unknown = verify(config, {"--table", "public.nope"});
  EXPECT_EQ(unknown.exit_code, 2) << unknown.all();
  EXPECT_NE(unknown.err.find("public.nope"), std::string::npos) << unknown.all();
  EXPECT_NE(unknown.err.find("fix:"), std::string::npos) << unknown.all();

  target().exec("INSERT INTO other VALUES (1)");
  const CliResult one = verify(config, {"--table", "public.items", "--json"});
  EXPECT_EQ(one.exit_code, 0) << one.all();
  EXPECT_EQ(field(one, "{tables,0,table}"), "public.items");
  EXPECT_EQ(source().scalar("SELECT jsonb_array_length($1::jsonb -> 'tables')", {one.out}), "1");

  const CliResult all = verify(config, {"--json"});
  EXPECT_EQ(all.exit_code, 1) << all.all();
  EXPECT_EQ(field(all, "{tables,1,extra}"), "1");
}

// ---------------------------------------------------------------------------------------------
// 7. verify.every inside run.

std::vector<std::string> lines_with(const std::string& log, const std::string& needle) {
  std::vector<std::string> out;
  std::istringstream in(log);
  for (std::string line; std::getline(in, line);) {
    if (line.find(needle) != std::string::npos) out.push_back(line);
  }
  return out;
}

TEST_F(Verify, ScheduledVerifyReportsDriftButNotRowsInFlight) {
  ScopedEnv every("PGFERRY_TEST_VERIFY_EVERY_MS", "500");
  on_both(kItems);
  source().exec(kFillItems);
  // The re-check waits 2 x poll_interval: 4 s, ample for a batch that is only waiting for a lock.
  const auto config = configure("  - public.items\n", "verify: {every: 1m}\npoll_interval: 2s\n");
  start(config);
  ASSERT_TRUE(same_tables({"public.items"}));
  ASSERT_TRUE(
      eventually([&] { return logged("verify public.items: source 200 rows, target 200 rows; they agree"); }, 30000))
      << log();

  // Hold the table's apply lock (apply::kTableLockClass, "pgfs") so the replicator's next batch of
  // items waits: a source change is then "in flight" for as long as the test wants.
  const std::string table_id =
      source().scalar("SELECT id FROM pgferry.captured_table WHERE source_table::regclass = 'public.items'::regclass");
  PgClient lock = target();
  lock.exec("BEGIN; SELECT pg_advisory_xact_lock(1885824627, " + table_id + ")");
  target().exec("UPDATE items SET name = 'drift on the target' WHERE id = 7");
  source().exec("UPDATE items SET name = 'in flight' WHERE id = 8");

  ASSERT_TRUE(eventually([&] { return logged("rows differ at first look (7, 8)"); }, 30000)) << log();
  lock.exec("COMMIT");  // the batch applies id 8 now, well before the re-check

  ASSERT_TRUE(eventually([&] { return logged("1 different; missing: [], extra: [], different: [7]"); }, 30000))
      << log();
  ASSERT_TRUE(eventually([&] { return target().scalar("SELECT name FROM items WHERE id = 8") == "in flight"; }, 30000));
  for (const auto& line : lines_with(ferry().log(), "different: [")) {
    EXPECT_EQ(line.find("different: [7]"), line.find("different: [")) << line;  // never 8
    EXPECT_EQ(line.find('8', line.find("different: [")), std::string::npos) << line;
  }
}

}  // namespace
}  // namespace pgferry::test
