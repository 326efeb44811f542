// Resolving a configured table against both catalogs: the column mapping, the key, and every
// reason the pair cannot replicate, each naming the table and column with a fix.
#include "mapping.hpp"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace pgferry {
namespace {

ColumnInfo column(std::string name, std::string type, char category = 'N') {
  ColumnInfo c;
  c.name = std::move(name);
  c.type = type;
  c.base_type = std::move(type);
  c.category = category;
  return c;
}

TableInfo users_table() {
  TableInfo t;
  t.exists = true;
  t.columns = {column("id", "bigint"), column("first_name", "text", 'S'), column("status", "text", 'S'),
               column("score", "integer")};
  t.primary_key = {"id"};
  return t;
}

TableConfig users_config() {
  TableConfig c;
  c.source = {"public", "users"};
  c.target = {"public", "chat_users"};
  c.origin = "pgferry.yaml:4 tables[0]";
  return c;
}

bool no_casts(const std::string&, const std::string&) { return false; }

std::string problems_of(const ResolvedTable& r) {
  std::string out;
  for (const auto& p : r.problems) {
    EXPECT_FALSE(p.fix.empty()) << p.message;
    out += p.message + " | fix: " + p.fix + "\n";
  }
  return out;
}

TEST(Mapping, DefaultsToEveryColumnUnderTheSameName) {
  const auto r = resolve_table(users_config(), users_table(), users_table(), no_casts);
  EXPECT_TRUE(r.problems.empty()) << problems_of(r);
  ASSERT_EQ(r.columns.size(), 4U);
  EXPECT_EQ(r.columns[1], (ColumnMapping{"first_name", "first_name"}));
  EXPECT_EQ(r.source_key, std::vector<std::string>{"id"});
  EXPECT_EQ(r.target_key, std::vector<std::string>{"id"});
}

TEST(Mapping, ExplicitColumnsRenameAndSubset) {
  TableConfig cfg = users_config();
  cfg.columns = {{"id", "user_id"}, {"first_name", "name"}};
  TableInfo target;
  target.exists = true;
  target.columns = {column("user_id", "bigint"), column("name", "text", 'S'), column("extra", "text", 'S')};
  target.primary_key = {"user_id"};
  const auto r = resolve_table(cfg, users_table(), target, no_casts);
  EXPECT_TRUE(r.problems.empty()) << problems_of(r);
  EXPECT_EQ(r.target_key, std::vector<std::string>{"user_id"});
  ASSERT_EQ(r.columns.size(), 2U);
  EXPECT_EQ(r.columns[1], (ColumnMapping{"first_name", "name"}));
}

TEST(Mapping, MissingTablesAreReported) {
  TableInfo absent;
  const auto r = resolve_table(users_config(), absent, absent, no_casts);
  const std::string text = problems_of(r);
  EXPECT_NE(text.find("source table public.users does not exist"), std::string::npos) << text;
  EXPECT_NE(text.find("target table public.chat_users does not exist"), std::string::npos) << text;
}

TEST(Mapping, SourceWithoutPrimaryKeyIsReported) {
  TableInfo source = users_table();
  source.primary_key.clear();
  const auto r = resolve_table(users_config(), source, users_table(), no_casts);
  const std::string text = problems_of(r);
  EXPECT_NE(text.find("public.users has no primary key"), std::string::npos) << text;
  EXPECT_NE(text.find("ADD PRIMARY KEY"), std::string::npos) << text;
}

TEST(Mapping, MissingColumnsOnEitherSideAreNamed) {
  TableConfig cfg = users_config();
  cfg.columns = {{"id", "id"}, {"nickname", "nickname"}};
  auto r = resolve_table(cfg, users_table(), users_table(), no_casts);
  std::string text = problems_of(r);
  EXPECT_NE(text.find("nickname"), std::string::npos) << text;
  EXPECT_NE(text.find("do not exist on the source table public.users"), std::string::npos) << text;

  TableInfo target = users_table();
  target.columns.pop_back();  // no "score"
  r = resolve_table(users_config(), users_table(), target, no_casts);
  text = problems_of(r);
  EXPECT_NE(text.find("target table public.chat_users is missing column(s) score"), std::string::npos) << text;
  EXPECT_TRUE(r.target_only) << "only the target is wrong: run can start with the table stopped";
}

TEST(Mapping, EveryProblemNamesTheConfigEntry) {
  TableInfo source = users_table();
  source.primary_key.clear();
  TableInfo target = users_table();
  target.columns.pop_back();
  for (const auto& r : {resolve_table(users_config(), source, users_table(), no_casts),
                        resolve_table(users_config(), users_table(), target, no_casts),
                        resolve_table(users_config(), users_table(), TableInfo{}, no_casts)}) {
    ASSERT_FALSE(r.problems.empty());
    for (const auto& p : r.problems) {
      EXPECT_EQ(p.message.rfind("pgferry.yaml:4 tables[0]: ", 0), 0U) << p.message;
      EXPECT_EQ(p.message.find("tables[0]", 10), p.message.find("tables[0]")) << "named once: " << p.message;
    }
  }
}

TEST(Mapping, TargetOnlyProblemsAreToldApartFromSourceOnes) {
  TableInfo absent;
  auto r = resolve_table(users_config(), users_table(), absent, no_casts);
  EXPECT_TRUE(r.target_only) << problems_of(r);
  EXPECT_EQ(r.target_key, (std::vector<std::string>{"id"}));
  r = resolve_table(users_config(), absent, users_table(), no_casts);
  EXPECT_FALSE(r.target_only);
  TableConfig cfg = users_config();
  cfg.updated_at = "modified";
  TableInfo target = users_table();
  target.columns.pop_back();
  r = resolve_table(cfg, users_table(), target, no_casts);
  EXPECT_FALSE(r.target_only) << "a missing updated_at column is the source's problem";
  r = resolve_table(users_config(), users_table(), users_table(), no_casts);
  EXPECT_FALSE(r.target_only);
  EXPECT_TRUE(r.problems.empty());
}

TEST(Mapping, KeyColumnMustBeReplicated) {
  TableConfig cfg = users_config();
  cfg.columns = {{"first_name", "first_name"}};
  const auto r = resolve_table(cfg, users_table(), users_table(), no_casts);
  const std::string text = problems_of(r);
  EXPECT_NE(text.find("primary key column public.users.id is not in 'columns:'"), std::string::npos) << text;
}

TEST(Mapping, TargetNeedsAUniqueKeyOnTheMappedKey) {
  TableInfo target = users_table();
  target.primary_key = {"score"};
  auto r = resolve_table(users_config(), users_table(), target, no_casts);
  std::string text = problems_of(r);
  EXPECT_NE(text.find("no primary key or unique index on (id)"), std::string::npos) << text;
  // A unique index on the key columns is as good as a primary key.
  target.unique_keys = {{"id"}};
  r = resolve_table(users_config(), users_table(), target, no_casts);
  EXPECT_TRUE(r.problems.empty()) << problems_of(r);
}

TEST(Mapping, IncompatibleTypesNameBothSides) {
  TableInfo target = users_table();
  target.columns[3] = column("score", "jsonb", 'U');
  auto r = resolve_table(users_config(), users_table(), target, no_casts);
  std::string text = problems_of(r);
  EXPECT_NE(text.find("public.users.score is integer but target column public.chat_users.score is jsonb"),
            std::string::npos)
      << text;
  // With an assignment cast the pair works, and says how.
  r = resolve_table(users_config(), users_table(), target,
                    [](const std::string& s, const std::string& t) { return s == "integer" && t == "jsonb"; });
  EXPECT_TRUE(r.problems.empty()) << problems_of(r);
  ASSERT_EQ(r.notes.size(), 1U);
  EXPECT_NE(r.notes[0].find("assignment cast"), std::string::npos);
  // Any type can be written into a text column.
  target.columns[3] = column("score", "text", 'S');
  r = resolve_table(users_config(), users_table(), target, no_casts);
  EXPECT_TRUE(r.problems.empty()) << problems_of(r);
}

TEST(Mapping, EnumTargetMustHaveEverySourceLabel) {
  TableInfo source = users_table();
  source.columns[2] = column("status", "mood", 'E');
  source.columns[2].enum_labels = {"active", "away", "gone"};
  TableInfo target = source;
  target.columns[2].enum_labels = {"active", "away"};
  const auto r = resolve_table(users_config(), source, target, no_casts);
  const std::string text = problems_of(r);
  EXPECT_NE(text.find("lacks the label(s) gone"), std::string::npos) << text;
}

TEST(Mapping, GeneratedAndRequiredTargetColumnsAreReported) {
  TableConfig cfg = users_config();
  cfg.columns = {{"id", "id"}, {"first_name", "first_name"}, {"score", "score"}};
  TableInfo target = users_table();
  target.columns[3].generated = true;
  target.columns[2].not_null = true;  // status: NOT NULL, no default, not replicated
  const auto r = resolve_table(cfg, users_table(), target, no_casts);
  const std::string text = problems_of(r);
  EXPECT_NE(text.find("public.chat_users.score is a generated column"), std::string::npos) << text;
  EXPECT_NE(text.find("public.chat_users.status is NOT NULL without a default"), std::string::npos) << text;
}

TEST(Mapping, UpdatedAtMustExistOnTheSource) {
  TableConfig cfg = users_config();
  cfg.updated_at = "modified";
  const auto r = resolve_table(cfg, users_table(), users_table(), no_casts);
  const std::string text = problems_of(r);
  EXPECT_NE(text.find("updated_at column public.users.modified does not exist"), std::string::npos) << text;
}

TEST(Mapping, OddColumnNamesAreQuotedInMessages) {
  TableConfig cfg = users_config();
  cfg.columns = {{"id", "id"}, {"Odd Col", "Odd Col"}};
  const auto r = resolve_table(cfg, users_table(), users_table(), no_casts);
  const std::string text = problems_of(r);
  EXPECT_NE(text.find("\"Odd Col\""), std::string::npos) << text;
}

TEST(Mapping, CastCheckIsAskedAboutBaseTypes) {
  TableInfo source = users_table();
  source.columns[3] = column("score", "integer");
  TableInfo target = users_table();
  target.columns[3] = column("score", "numeric", 'N');
  target.columns[3].type = "numeric(10,2)";
  std::vector<std::pair<std::string, std::string>> asked;
  const auto r = resolve_table(users_config(), source, target, [&](const std::string& s, const std::string& t) {
    asked.emplace_back(s, t);
    return true;
  });
  EXPECT_TRUE(r.problems.empty()) << problems_of(r);
  ASSERT_EQ(asked.size(), 1U);
  EXPECT_EQ(asked[0], (std::pair<std::string, std::string>{"integer", "numeric"}));
  ASSERT_EQ(r.notes.size(), 1U);
  EXPECT_NE(r.notes[0].find("public.users.score (integer) is written to public.chat_users.score (numeric(10,2))"),
            std::string::npos)
      << r.notes[0];
}

TEST(Mapping, RefusedCastIsAProblemWithAFix) {
  TableInfo target = users_table();
  target.columns[0] = column("id", "uuid", 'U');
  const auto r = resolve_table(users_config(), users_table(), target, no_casts);
  ASSERT_EQ(r.problems.size(), 1U) << problems_of(r);
  EXPECT_NE(r.problems[0].message.find("PostgreSQL has no assignment cast from bigint to uuid"), std::string::npos)
      << r.problems[0].message;
  EXPECT_NE(r.problems[0].fix.find("change the target column's type"), std::string::npos);
  // Without a cast checker at all the answer is still "no", not a crash.
  const auto unchecked = resolve_table(users_config(), users_table(), target, AssignmentCastCheck{});
  EXPECT_EQ(unchecked.problems.size(), 1U) << problems_of(unchecked);
}

TEST(Mapping, SameTypesNeedNoCastCheck) {
  const auto r = resolve_table(users_config(), users_table(), users_table(),
                               [](const std::string& s, const std::string& t) -> bool {
                                 ADD_FAILURE() << "asked about " << s << " -> " << t;
                                 return false;
                               });
  EXPECT_TRUE(r.problems.empty()) << problems_of(r);
  EXPECT_TRUE(r.notes.empty());
}

TEST(Mapping, RequiredTargetColumnsAreFineWhenFilledOrDefaulted) {
  TableConfig cfg = users_config();
  cfg.columns = {{"id", "id"}, {"first_name", "first_name"}};
  TableInfo target = users_table();
  target.columns[1].not_null = true;     // first_name: NOT NULL but replicated
  target.columns[2].not_null = true;     // status: NOT NULL with a default
  target.columns[2].has_default = true;  //
  target.columns[3].generated = true;    // score: generated, not written
  target.columns[3].has_default = true;  //
  const auto r = resolve_table(cfg, users_table(), target, no_casts);
  EXPECT_TRUE(r.problems.empty()) << problems_of(r);
}

TEST(Mapping, CompositeKeysMapInKeyOrder) {
  TableInfo source = users_table();
  source.columns.insert(source.columns.begin(), column("tenant", "integer"));
  source.primary_key = {"tenant", "id"};
  TableConfig cfg = users_config();
  cfg.columns = {{"id", "user_id"}, {"tenant", "org"}, {"first_name", "first_name"}};
  TableInfo target;
  target.exists = true;
  target.columns = {column("org", "integer"), column("user_id", "bigint"), column("first_name", "text", 'S')};
  target.unique_keys = {{"first_name"}, {"user_id", "org"}};  // Any column order; not the primary key.
  const auto r = resolve_table(cfg, source, target, no_casts);
  EXPECT_TRUE(r.problems.empty()) << problems_of(r);
  EXPECT_EQ(r.source_key, (std::vector<std::string>{"tenant", "id"}));
  EXPECT_EQ(r.target_key, (std::vector<std::string>{"org", "user_id"}));
}

TEST(Mapping, TargetKeyWiderThanTheSourceKeyIsAProblem) {
  TableInfo target = users_table();
  target.primary_key = {"id", "score"};
  const auto r = resolve_table(users_config(), users_table(), target, no_casts);
  ASSERT_EQ(r.problems.size(), 1U) << problems_of(r);
  EXPECT_NE(r.problems[0].message.find("target table public.chat_users has no primary key or unique index on (id)"),
            std::string::npos)
      << r.problems[0].message;
  EXPECT_EQ(r.problems[0].fix, "ALTER TABLE \"public\".\"chat_users\" ADD PRIMARY KEY (\"id\")");
}

TEST(Mapping, MissingColumnsOnBothSidesAreReportedTogether) {
  TableConfig cfg = users_config();
  cfg.columns = {{"id", "id"}, {"ghost", "ghost"}, {"first_name", "phantom"}};
  const auto r = resolve_table(cfg, users_table(), users_table(), no_casts);
  ASSERT_EQ(r.problems.size(), 2U) << problems_of(r);
  EXPECT_NE(r.problems[0].message.find("pgferry.yaml:4 tables[0]: column(s) ghost do not exist on the source"),
            std::string::npos)
      << r.problems[0].message;
  EXPECT_NE(r.problems[1].message.find("missing column(s) ghost, phantom"), std::string::npos) << r.problems[1].message;
  EXPECT_NE(r.problems[1].fix.find("map to existing columns"), std::string::npos) << r.problems[1].fix;
}

TEST(Mapping, MissingSourceTableStillChecksTheTarget) {
  TableInfo absent;
  const auto r = resolve_table(users_config(), absent, users_table(), no_casts);
  ASSERT_EQ(r.problems.size(), 1U) << problems_of(r);
  EXPECT_NE(r.problems[0].message.find("source table public.users"), std::string::npos);
  EXPECT_TRUE(r.columns.empty());
}

TEST(Mapping, EnumIntoTextNeedsNoLabels) {
  TableInfo source = users_table();
  source.columns[2] = column("status", "mood", 'E');
  source.columns[2].enum_labels = {"active", "gone"};
  const auto r = resolve_table(users_config(), source, users_table(), no_casts);
  EXPECT_TRUE(r.problems.empty()) << problems_of(r);
}

}  // namespace
}  // namespace pgferry
