// Rendering of the per-table capture function and its triggers.
#include "capture_sql.hpp"

#include <gtest/gtest.h>

#include <regex>
#include <string>

namespace pgferry::capture {
namespace {

CaptureSpec users_spec() {
  CaptureSpec spec;
  spec.table_id = 7;
  spec.table = {"public", "users"};
  spec.key_columns = {"id"};
  return spec;
}

std::string joined(const CaptureDdl& ddl) {
  std::string all;
  for (const auto& s : ddl.statements) all += s + ";\n";
  return all;
}

int count_of(const std::string& text, const std::string& what) {
  int n = 0;
  for (auto pos = text.find(what); pos != std::string::npos; pos = text.find(what, pos + 1)) ++n;
  return n;
}

TEST(CaptureSql, RendersFunctionAndBothTriggers) {
  const CaptureDdl ddl = render_capture(users_spec());
  const std::string sql = joined(ddl);
  EXPECT_EQ(ddl.function_name, "pgferry.\"capture_7\"");
  EXPECT_NE(sql.find("CREATE OR REPLACE FUNCTION pgferry.\"capture_7\"()"), std::string::npos);
  EXPECT_NE(sql.find("SECURITY DEFINER"), std::string::npos);
  EXPECT_NE(sql.find("SET search_path = pg_catalog, pg_temp"), std::string::npos);
  EXPECT_NE(sql.find("CREATE TRIGGER \"pgferry_capture\" AFTER INSERT OR UPDATE OR DELETE ON \"public\".\"users\""),
            std::string::npos);
  EXPECT_NE(sql.find("CREATE TRIGGER \"pgferry_capture_truncate\" AFTER TRUNCATE ON \"public\".\"users\""),
            std::string::npos);
  EXPECT_NE(sql.find("to_jsonb(NEW)"), std::string::npos);
  EXPECT_NE(sql.find("pg_notify('pgferry'"), std::string::npos);
  EXPECT_NE(sql.find(std::to_string(kLockClass) + ", " + std::to_string(kListenLock)), std::string::npos);
  EXPECT_FALSE(std::regex_search(sql, std::regex(R"(\{\{[a-z_]+\}\})"))) << "unreplaced placeholder";
}

TEST(CaptureSql, TruncateTriggerOnlyWhenConfigured) {
  CaptureSpec spec = users_spec();
  spec.truncate = false;
  const std::string sql = joined(render_capture(spec));
  EXPECT_EQ(sql.find("AFTER TRUNCATE"), std::string::npos);
  // A reinstall must still remove a TRUNCATE trigger left by an earlier configuration.
  EXPECT_NE(sql.find("DROP TRIGGER IF EXISTS \"pgferry_capture_truncate\""), std::string::npos);
}

TEST(CaptureSql, ColumnSubsetAndFilterAreCompiledIn) {
  CaptureSpec spec = users_spec();
  spec.columns = {"id", "first_name"};
  spec.where = "status = 'active'";
  const std::string sql = joined(render_capture(spec));
  EXPECT_NE(sql.find("jsonb_build_object('id', NEW.\"id\", 'first_name', NEW.\"first_name\")"), std::string::npos);
  EXPECT_EQ(sql.find("to_jsonb(NEW)"), std::string::npos);
  EXPECT_NE(
      sql.find("ROW(NEW.\"id\", NEW.\"first_name\")::text IS DISTINCT FROM ROW(OLD.\"id\", OLD.\"first_name\")::text"),
      std::string::npos);
  EXPECT_NE(sql.find("(SELECT (status = 'active') FROM (SELECT NEW.*) AS pgferry_row)"), std::string::npos);
  EXPECT_NE(sql.find("(SELECT (status = 'active') FROM (SELECT OLD.*) AS pgferry_row)"), std::string::npos);
}

TEST(CaptureSql, HostileNamesAppearOnlyQuoted) {
  CaptureSpec spec;
  spec.table_id = 1;
  spec.table = {"My Schema", "Odd \"Table\"; drop"};
  spec.key_columns = {"Key Col", "it's"};
  spec.columns = {"Key Col", "it's", "naïve \"x\""};
  const std::string sql = joined(render_capture(spec));
  EXPECT_NE(sql.find("ON \"My Schema\".\"Odd \"\"Table\"\"; drop\""), std::string::npos);
  EXPECT_NE(sql.find("jsonb_build_object('Key Col', OLD.\"Key Col\", 'it''s', OLD.\"it's\")"), std::string::npos);
  EXPECT_NE(sql.find("'naïve \"x\"', NEW.\"naïve \"\"x\"\"\""), std::string::npos);
  EXPECT_EQ(sql.find("Odd \"Table\"; drop"), std::string::npos) << "an unquoted name leaked into the SQL";
}

TEST(CaptureSql, CompositeKeyComparesWholeKey) {
  CaptureSpec spec = users_spec();
  spec.key_columns = {"tenant", "id"};
  const std::string sql = joined(render_capture(spec));
  EXPECT_NE(sql.find("ROW(NEW.\"tenant\", NEW.\"id\") IS DISTINCT FROM ROW(OLD.\"tenant\", OLD.\"id\")"),
            std::string::npos);
  EXPECT_NE(sql.find("jsonb_build_object('tenant', OLD.\"tenant\", 'id', OLD.\"id\")"), std::string::npos);
}

TEST(CaptureSql, WideTablesStayUnderTheFunctionArgumentLimit) {
  CaptureSpec spec = users_spec();
  for (int i = 0; i < 120; ++i) spec.columns.push_back("c" + std::to_string(i));
  const std::string sql = joined(render_capture(spec));
  // 120 columns: 50 + 50 + 20 pairs, so three calls joined with ||; each stays under 100 args.
  const std::string image_start = "jsonb_build_object('c0'";
  const auto start = sql.find(image_start);
  ASSERT_NE(start, std::string::npos);
  const auto end = sql.find(", clock_timestamp()", start);
  const std::string image = sql.substr(start, end - start);
  EXPECT_EQ(count_of(image, "jsonb_build_object("), 3);
  EXPECT_EQ(count_of(image, " || "), 2);
  EXPECT_NE(image.find("'c119', NEW.\"c119\""), std::string::npos);
  EXPECT_NE(image.find("'c49', NEW.\"c49\")"), std::string::npos);
}

TEST(CaptureSql, FingerprintIsStableAndNoticesEveryChange) {
  const std::string base = render_capture(users_spec()).fingerprint;
  EXPECT_EQ(base.size(), 16U);
  EXPECT_EQ(render_capture(users_spec()).fingerprint, base);
  CaptureSpec columns = users_spec();
  columns.columns = {"id"};
  CaptureSpec where = users_spec();
  where.where = "true";
  CaptureSpec truncate = users_spec();
  truncate.truncate = false;
  CaptureSpec key = users_spec();
  key.key_columns = {"id", "other"};
  CaptureSpec id = users_spec();
  id.table_id = 8;
  for (const CaptureSpec* changed : {&columns, &where, &truncate, &key, &id}) {
    EXPECT_NE(render_capture(*changed).fingerprint, base);
  }
}

TEST(CaptureSql, FingerprintSeparatesParts) {
  EXPECT_NE(fingerprint_of({"ab", "c"}), fingerprint_of({"a", "bc"}));
  EXPECT_EQ(fingerprint_of({"x"}), fingerprint_of({"x"}));
  EXPECT_NE(fingerprint_of({}), fingerprint_of({""}));
}

TEST(CaptureSql, DropCaptureIsRerunnable) {
  const sql::QualifiedName table{"public", "Users"};
  const auto with_table = render_drop_capture(table, "pgferry.\"capture_3\"", true);
  ASSERT_EQ(with_table.size(), 3U);
  EXPECT_EQ(with_table[0], "DROP TRIGGER IF EXISTS \"pgferry_capture\" ON \"public\".\"Users\"");
  EXPECT_EQ(with_table[1], "DROP TRIGGER IF EXISTS \"pgferry_capture_truncate\" ON \"public\".\"Users\"");
  EXPECT_EQ(with_table[2], "DROP FUNCTION IF EXISTS pgferry.\"capture_3\"()");
  const auto without = render_drop_capture(table, "pgferry.\"capture_3\"", false);
  ASSERT_EQ(without.size(), 1U);
  EXPECT_EQ(without[0], with_table[2]);
  EXPECT_EQ(function_name_for(12), "capture_12");
}

}  // namespace
}  // namespace pgferry::capture
