// The statements the applier prepares: every name quoted, one statement per table and action,
// no-op updates skipped, and key-only tables handled.
#include "apply_sql.hpp"

#include <gtest/gtest.h>

namespace pgferry::apply {
namespace {

TargetShape users() { return TargetShape{{"public", "chat_users"}, {"id", "name", "status"}, {"id"}, {}}; }

TEST(ApplySql, UpsertWritesOnlyRowsThatDiffer) {
  EXPECT_EQ(render_upsert(users(), Compare::Native),
            "INSERT INTO \"public\".\"chat_users\" AS t (\"id\", \"name\", \"status\") SELECT r.\"id\", r.\"name\", "
            "r.\"status\" FROM jsonb_populate_recordset(NULL::\"public\".\"chat_users\", $1::jsonb) AS r ON CONFLICT "
            "(\"id\") DO UPDATE SET (\"name\", \"status\") = ROW(EXCLUDED.\"name\", EXCLUDED.\"status\") WHERE "
            "(t.\"name\", t.\"status\") IS DISTINCT FROM (EXCLUDED.\"name\", EXCLUDED.\"status\")");
}

TEST(ApplySql, TextComparisonForTypesWithoutEquality) {
  const auto sql = render_upsert(users(), Compare::Text);
  EXPECT_NE(sql.find("(t.\"name\"::text, t.\"status\"::text) IS DISTINCT FROM (EXCLUDED.\"name\"::text, "
                     "EXCLUDED.\"status\"::text)"),
            std::string::npos)
      << sql;
}

TEST(ApplySql, OneNonKeyColumnNeedsNoRowConstructor) {
  const TargetShape t{{"s", "t"}, {"k", "v"}, {"k"}, {}};
  const auto sql = render_upsert(t, Compare::Native);
  EXPECT_NE(sql.find("DO UPDATE SET \"v\" = EXCLUDED.\"v\" WHERE t.\"v\" IS DISTINCT FROM EXCLUDED.\"v\""),
            std::string::npos)
      << sql;
}

TEST(ApplySql, KeyOnlyTablesDoNothingOnConflict) {
  const TargetShape t{{"s", "tags"}, {"a", "b"}, {"a", "b"}, {}};
  const auto sql = render_upsert(t, Compare::Native);
  EXPECT_TRUE(sql.ends_with("ON CONFLICT (\"a\", \"b\") DO NOTHING")) << sql;
}

TEST(ApplySql, DeleteMatchesEveryKeyColumn) {
  const TargetShape t{{"s", "t"}, {"a", "b", "c"}, {"a", "b"}, {}};
  EXPECT_EQ(render_delete(t),
            "DELETE FROM \"s\".\"t\" AS t USING jsonb_populate_recordset(NULL::\"s\".\"t\", $1::jsonb) AS k WHERE "
            "t.\"a\" = k.\"a\" AND t.\"b\" = k.\"b\"");
}

TEST(ApplySql, HostileNamesStayQuoted) {
  const TargetShape t{{"we\"ird", "ta ble"}, {"i\"d", "$1"}, {"i\"d"}, {}};
  const auto up = render_upsert(t, Compare::Native);
  EXPECT_NE(up.find("\"we\"\"ird\".\"ta ble\""), std::string::npos) << up;
  EXPECT_NE(up.find("r.\"i\"\"d\""), std::string::npos) << up;
  EXPECT_NE(up.find("\"$1\""), std::string::npos) << up;
}

TEST(ApplySql, CopyOutSelectsMappedColumnsUnderTheFilter) {
  EXPECT_EQ(render_copy_out({"public", "users"}, {"id", "first_name"}, "status <> 'x'"),
            "COPY (SELECT \"id\", \"first_name\" FROM \"public\".\"users\" WHERE (status <> 'x')) TO STDOUT");
  EXPECT_EQ(render_copy_out({"public", "users"}, {"id"}, ""),
            "COPY (SELECT \"id\" FROM \"public\".\"users\") TO STDOUT");
}

TEST(ApplySql, CopyInStagesThenUpsertsAndRemovesWhatTheSourceLacks) {
  const auto c = render_copy_in(users(), "pgferry_copy", Compare::Native);
  EXPECT_EQ(c.create_staging,
            "CREATE TEMP TABLE \"pgferry_copy\" ON COMMIT DROP AS SELECT \"id\", \"name\", \"status\" FROM "
            "\"public\".\"chat_users\" WITH NO DATA");
  EXPECT_EQ(c.copy_in, "COPY \"pgferry_copy\" (\"id\", \"name\", \"status\") FROM STDIN");
  EXPECT_EQ(c.copy_direct, "COPY \"public\".\"chat_users\" (\"id\", \"name\", \"status\") FROM STDIN");
  EXPECT_NE(c.upsert.find("SELECT \"id\", \"name\", \"status\" FROM \"pgferry_copy\" ON CONFLICT (\"id\")"),
            std::string::npos)
      << c.upsert;
  EXPECT_EQ(c.delete_missing,
            "DELETE FROM \"public\".\"chat_users\" AS t WHERE NOT EXISTS (SELECT 1 FROM \"pgferry_copy\" AS s WHERE "
            "s.\"id\" = t.\"id\")");
}

TEST(ApplySql, TextJournaledJsonIsCastBackInUpsertsAndKeyMatches) {
  const TargetShape t{{"s", "docs"}, {"id", "doc"}, {"id"}, {{"id", "jsonb"}, {"doc", "json"}}};
  const auto up = render_upsert(t, Compare::Text);
  EXPECT_NE(up.find("SELECT (r.\"id\" #>> '{}')::jsonb, (r.\"doc\" #>> '{}')::json FROM jsonb_populate_recordset"),
            std::string::npos)
      << up;
  EXPECT_EQ(render_delete(t),
            "DELETE FROM \"s\".\"docs\" AS t USING jsonb_populate_recordset(NULL::\"s\".\"docs\", $1::jsonb) AS k "
            "WHERE t.\"id\" = (k.\"id\" #>> '{}')::jsonb");
}

}  // namespace
}  // namespace pgferry::apply
