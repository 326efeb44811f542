// Rendering of the per-table capture function and its triggers.
#include "capture_sql.hpp"

#include <gtest/gtest.h>

#include <regex>
#include <string>
#include <vector>

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
  // No row filter: nothing but pgferry's own schema-qualified SQL, so search_path is not pinned.
  EXPECT_EQ(sql.find("SET search_path"), std::string::npos);
  EXPECT_EQ(sql.find("was_in"), std::string::npos);
  EXPECT_NE(sql.find("IF TG_OP OPERATOR(pg_catalog.=) 'UPDATE' THEN"), std::string::npos);
  EXPECT_NE(sql.find("NEW OPERATOR(pg_catalog.*<>) OLD"), std::string::npos);
  EXPECT_NE(sql.find("CREATE TRIGGER \"pgferry_capture\" AFTER INSERT OR UPDATE OR DELETE ON \"public\".\"users\""),
            std::string::npos);
  EXPECT_NE(sql.find("CREATE TRIGGER \"pgferry_capture_truncate\" AFTER TRUNCATE ON \"public\".\"users\""),
            std::string::npos);
  EXPECT_NE(sql.find("pg_catalog.to_jsonb(NEW)"), std::string::npos);
  EXPECT_NE(sql.find("pg_catalog.pg_notify('pgferry'"), std::string::npos);
  EXPECT_NE(sql.find(std::to_string(kLockClass) + ", " + std::to_string(kListenLock)), std::string::npos);
  EXPECT_FALSE(std::regex_search(sql, std::regex(R"(\{\{[#^/]?[a-z_]+\}\})"))) << "unreplaced placeholder";
}

TEST(CaptureSql, EveryNameTheFunctionUsesIsSchemaQualified) {
  // The function runs under the writer's search_path (without a row filter it is not pinned), so
  // a function, operator or type name left bare could be resolved to the writer's own code.
  CaptureSpec spec = users_spec();
  spec.columns = {"id", "doc"};
  spec.text_columns = {"doc"};
  for (int i = 0; i < 60; ++i) spec.columns.push_back("c" + std::to_string(i));  // two image calls, joined
  const std::string fn = render_capture(spec).statements[0];
  const std::string body = fn.substr(fn.find("AS $pgferry_capture$"));
  std::string code;  // the body without its comments and string literals
  for (size_t i = 0; i < body.size(); ++i) {
    if (body.compare(i, 2, "--") == 0) {
      i = body.find('\n', i);
      if (i == std::string::npos) break;
    } else if (body[i] == '\'') {
      i = body.find('\'', i + 1);
    } else {
      code += body[i];
    }
  }
  // Every call of a function is qualified, and no operator or cast is bare.
  const std::regex call(R"(([A-Za-z_.]+)\()");
  for (auto it = std::sregex_iterator(code.begin(), code.end(), call); it != std::sregex_iterator(); ++it) {
    const std::string name = (*it)[1];
    if (name == "ROW" || name == "COALESCE") continue;
    if (name == "OPERATOR") {
      EXPECT_EQ(code.compare(static_cast<size_t>(it->position(0) + it->length(0)), 11, "pg_catalog."), 0) << code;
      continue;
    }
    EXPECT_EQ(name.rfind("pg_catalog.", 0), 0U) << "unqualified call of " << name << " in\n" << code;
  }
  EXPECT_FALSE(std::regex_search(code, std::regex(R"([^):] *(=|<>|\|\||\*<>) )"))) << code;
  EXPECT_FALSE(std::regex_search(code, std::regex(R"(IS (NOT )?DISTINCT FROM)"))) << code;
  EXPECT_FALSE(std::regex_search(code, std::regex(R"(::(?!pg_catalog\.))"))) << code;
}

TEST(CaptureSql, ARowFilterPinsTheSearchPath) {
  // A row filter is the user's SQL, with bare names: its function runs with search_path pinned.
  CaptureSpec spec = users_spec();
  spec.where = "lower(status) = 'active'";
  const std::string sql = joined(render_capture(spec));
  EXPECT_NE(sql.find("SET search_path = pg_catalog, pg_temp"), std::string::npos);
  EXPECT_NE(
      sql.find("was_in := COALESCE((SELECT (lower(status) = 'active') FROM (SELECT OLD.*) AS pgferry_row), false)"),
      std::string::npos)
      << sql;
  EXPECT_NE(sql.find("FROM \"pgferry_inserted\" AS pgferry_new WHERE COALESCE("), std::string::npos) << sql;
  EXPECT_FALSE(std::regex_search(sql, std::regex(R"(\{\{[#^/]?[a-z_]+\}\})"))) << "unreplaced placeholder";
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
  EXPECT_NE(sql.find("ROW(NEW.\"id\", NEW.\"first_name\")::pg_catalog.record OPERATOR(pg_catalog.*<>) "
                     "ROW(OLD.\"id\", OLD.\"first_name\")::pg_catalog.record"),
            std::string::npos);
  EXPECT_NE(sql.find("(SELECT (status = 'active') FROM (SELECT NEW.*) AS pgferry_row)"), std::string::npos);
  EXPECT_NE(sql.find("(SELECT (status = 'active') FROM (SELECT OLD.*) AS pgferry_row)"), std::string::npos);
}

TEST(CaptureSql, JsonColumnsAreJournaledAsTheirText) {
  CaptureSpec spec = users_spec();
  spec.key_columns = {"id", "tag"};
  spec.columns = {"id", "tag", "doc"};
  spec.text_columns = {"tag", "doc"};
  const std::string sql = joined(render_capture(spec));
  EXPECT_NE(sql.find("jsonb_build_object('id', NEW.\"id\", 'tag', NEW.\"tag\"::pg_catalog.text, 'doc', "
                     "NEW.\"doc\"::pg_catalog.text)"),
            std::string::npos)
      << sql;
  EXPECT_NE(sql.find("jsonb_build_object('id', OLD.\"id\", 'tag', OLD.\"tag\"::pg_catalog.text)"), std::string::npos)
      << sql;
  EXPECT_TRUE(captured_as_text("json"));
  EXPECT_TRUE(captured_as_text("jsonb"));
  EXPECT_FALSE(captured_as_text("text"));
  EXPECT_FALSE(captured_as_text("json[]"));
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

TEST(CaptureSql, CompositeKeyComparesTheWholeKeysImage) {
  CaptureSpec spec = users_spec();
  spec.key_columns = {"tenant", "id"};
  const std::string sql = joined(render_capture(spec));
  // By image, not equality: numeric 1 -> 1.00 is equal but changes the key the replicator knows
  // the row by.
  EXPECT_NE(sql.find("ROW(NEW.\"tenant\", NEW.\"id\")::pg_catalog.record OPERATOR(pg_catalog.*<>) "
                     "ROW(OLD.\"tenant\", OLD.\"id\")::pg_catalog.record"),
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
  const auto end = sql.find(", pg_catalog.clock_timestamp()", start);
  const std::string image = sql.substr(start, end - start);
  EXPECT_EQ(count_of(image, "jsonb_build_object("), 3);
  EXPECT_EQ(count_of(image, " OPERATOR(pg_catalog.||) "), 2);
  // The first image in the function is the UPDATE's, over NEW; the set-based INSERT's is over the
  // transition table's rows.
  EXPECT_NE(image.find("'c119', NEW.\"c119\""), std::string::npos);
  EXPECT_NE(image.find("'c49', NEW.\"c49\")"), std::string::npos);
  EXPECT_NE(sql.find("'c119', pgferry_new.\"c119\""), std::string::npos);
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
  ASSERT_EQ(with_table.size(), 5U);
  EXPECT_EQ(with_table[0], "DROP TRIGGER IF EXISTS \"pgferry_capture\" ON \"public\".\"Users\"");
  EXPECT_EQ(with_table[1], "DROP TRIGGER IF EXISTS \"pgferry_capture_insert\" ON \"public\".\"Users\"");
  EXPECT_EQ(with_table[2], "DROP TRIGGER IF EXISTS \"pgferry_capture_guard\" ON \"public\".\"Users\"");
  EXPECT_EQ(with_table[3], "DROP TRIGGER IF EXISTS \"pgferry_capture_truncate\" ON \"public\".\"Users\"");
  EXPECT_EQ(with_table[4], "DROP FUNCTION IF EXISTS pgferry.\"capture_3\"()");
  const auto without = render_drop_capture(table, "pgferry.\"capture_3\"", false);
  ASSERT_EQ(without.size(), 1U);
  EXPECT_EQ(without[0], with_table[4]);
  EXPECT_EQ(function_name_for(12), "capture_12");
}

// Every argument list of jsonb_build_object( in `sql`, as the number of top-level arguments.
std::vector<int> jsonb_call_arities(const std::string& sql) {
  std::vector<int> out;
  const std::string call = "jsonb_build_object(";
  for (auto pos = sql.find(call); pos != std::string::npos; pos = sql.find(call, pos + 1)) {
    int depth = 0;
    int args = 1;
    char quote = 0;
    for (size_t i = pos + call.size(); i < sql.size(); ++i) {
      const char c = sql[i];
      if (quote != 0) {
        if (c == quote) quote = 0;  // A doubled quote reopens at once, which counts the same.
        continue;
      }
      if (c == '\'' || c == '"') {
        quote = c;
      } else if (c == '(') {
        ++depth;
      } else if (c == ')') {
        if (depth == 0) break;
        --depth;
      } else if (c == ',' && depth == 0) {
        ++args;
      }
    }
    out.push_back(args);
  }
  return out;
}

TEST(CaptureSql, NoJsonbBuildObjectCallExceedsOneHundredArguments) {
  CaptureSpec spec = users_spec();
  for (int i = 0; i < 120; ++i) {
    spec.columns.push_back("c" + std::to_string(i));
    if (i < 60) spec.key_columns.push_back("k" + std::to_string(i));
  }
  const std::string sql = joined(render_capture(spec));
  const auto arities = jsonb_call_arities(sql);
  ASSERT_FALSE(arities.empty());
  for (const int n : arities) EXPECT_LE(n, 100);
  // The 61-column key (id, k0..k59) is split too: 50 + 11 pairs.
  EXPECT_NE(sql.find("jsonb_build_object('id', OLD.\"id\", "), std::string::npos);
  EXPECT_NE(sql.find(" OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object('k49', OLD.\"k49\", "), std::string::npos);
}

TEST(CaptureSql, ChunksSplitExactlyAfterFiftyPairs) {
  CaptureSpec fifty = users_spec();
  for (int i = 0; i < 50; ++i) fifty.columns.push_back("c" + std::to_string(i));
  CaptureSpec fifty_one = fifty;
  fifty_one.columns.emplace_back("c50");
  const std::string one_call = joined(render_capture(fifty));
  const std::string two_calls = joined(render_capture(fifty_one));
  EXPECT_EQ(one_call.find("NEW.\"c49\") OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object("), std::string::npos);
  EXPECT_NE(two_calls.find("NEW.\"c49\") OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object('c50', NEW.\"c50\")"),
            std::string::npos);
}

TEST(CaptureSql, StatementsComeInInstallOrder) {
  const CaptureDdl with_truncate = render_capture(users_spec());
  ASSERT_EQ(with_truncate.statements.size(), 7U);
  EXPECT_EQ(with_truncate.statements[0].rfind("-- ", 0), 0U);  // The template's header comment comes first.
  EXPECT_NE(with_truncate.statements[0].find("CREATE OR REPLACE FUNCTION"), std::string::npos);
  EXPECT_EQ(with_truncate.statements[1], "DROP TRIGGER IF EXISTS \"pgferry_capture\" ON \"public\".\"users\"");
  EXPECT_EQ(with_truncate.statements[2],
            "CREATE TRIGGER \"pgferry_capture\" AFTER INSERT OR UPDATE OR DELETE ON \"public\".\"users\" "
            "FOR EACH ROW EXECUTE FUNCTION pgferry.\"capture_7\"()");
  // A table that was set-based before loses its statement triggers.
  EXPECT_EQ(with_truncate.statements[3], "DROP TRIGGER IF EXISTS \"pgferry_capture_insert\" ON \"public\".\"users\"");
  EXPECT_EQ(with_truncate.statements[4], "DROP TRIGGER IF EXISTS \"pgferry_capture_guard\" ON \"public\".\"users\"");
  EXPECT_EQ(with_truncate.statements[5], "DROP TRIGGER IF EXISTS \"pgferry_capture_truncate\" ON \"public\".\"users\"");
  EXPECT_EQ(with_truncate.statements[6],
            "CREATE TRIGGER \"pgferry_capture_truncate\" AFTER TRUNCATE ON \"public\".\"users\" "
            "FOR EACH STATEMENT EXECUTE FUNCTION pgferry.\"capture_7\"()");
  CaptureSpec spec = users_spec();
  spec.truncate = false;
  const CaptureDdl without = render_capture(spec);
  ASSERT_EQ(without.statements.size(), 6U);
  EXPECT_EQ(without.statements[5], with_truncate.statements[5]);
  EXPECT_EQ(trigger_names(users_spec()), (std::vector<std::string>{"pgferry_capture", "pgferry_capture_truncate"}));
  EXPECT_EQ(trigger_names(spec), std::vector<std::string>{"pgferry_capture"});
}

TEST(CaptureSql, ASetBasedTableCapturesInsertsPerStatementBehindAGuard) {
  CaptureSpec spec = users_spec();
  spec.set_based = true;
  spec.where = "active";
  const CaptureDdl ddl = render_capture(spec);
  ASSERT_EQ(ddl.statements.size(), 9U);
  EXPECT_EQ(ddl.statements[2],
            "CREATE TRIGGER \"pgferry_capture\" AFTER UPDATE OR DELETE ON \"public\".\"users\" "
            "FOR EACH ROW EXECUTE FUNCTION pgferry.\"capture_7\"()");
  EXPECT_EQ(
      ddl.statements[4],
      "CREATE TRIGGER \"pgferry_capture_insert\" AFTER INSERT ON \"public\".\"users\" "
      "REFERENCING NEW TABLE AS \"pgferry_inserted\" FOR EACH STATEMENT EXECUTE FUNCTION pgferry.\"capture_7\"()");
  // The guard: a row trigger with a transition table, which never fires.
  EXPECT_EQ(ddl.statements[6],
            "CREATE TRIGGER \"pgferry_capture_guard\" AFTER INSERT ON \"public\".\"users\" "
            "REFERENCING NEW TABLE AS \"pgferry_guarded\" FOR EACH ROW WHEN (false) EXECUTE FUNCTION "
            "pgferry.\"capture_7\"()");
  CaptureSpec row_based = spec;
  row_based.set_based = false;
  EXPECT_NE(ddl.fingerprint, render_capture(row_based).fingerprint);
  EXPECT_EQ(trigger_names(spec), (std::vector<std::string>{"pgferry_capture", "pgferry_capture_insert",
                                                           "pgferry_capture_guard", "pgferry_capture_truncate"}));
  // The journal rows come from the transition table, filtered and imaged like the row path's.
  const std::string& fn = ddl.statements[0];
  EXPECT_NE(fn.find("FROM \"pgferry_inserted\" AS pgferry_new WHERE COALESCE((SELECT (active) FROM (SELECT "
                    "pgferry_new.*) AS pgferry_row), false)"),
            std::string::npos)
      << fn;
  EXPECT_EQ(fn.find("pgferry_old"), std::string::npos) << fn;
}

TEST(CaptureSql, JournalRowsCarryTheTableId) {
  CaptureSpec spec = users_spec();
  spec.table_id = 4242;
  const std::string fn = render_capture(spec).statements[0];
  EXPECT_EQ(count_of(fn, "pg_current_xact_id(), 4242, "), 6) << fn;  // U (key changed or not), I, T, I, D
  EXPECT_EQ(fn.find("{{table_id}}"), std::string::npos);
  spec.where = "true";  // and U, U, D, I in the filtered UPDATE
  EXPECT_EQ(count_of(render_capture(spec).statements[0], "pg_current_xact_id(), 4242, "), 8);
}

TEST(CaptureSql, FingerprintCoversTheStatementsAndTheTable) {
  const CaptureDdl ddl = render_capture(users_spec());
  EXPECT_EQ(ddl.fingerprint, fingerprint_of(ddl.statements));
  CaptureSpec renamed = users_spec();
  renamed.table = {"public", "Users"};
  EXPECT_NE(render_capture(renamed).fingerprint, ddl.fingerprint);
  CaptureSpec reordered = users_spec();
  reordered.columns = {"a", "b"};
  CaptureSpec swapped = users_spec();
  swapped.columns = {"b", "a"};
  EXPECT_NE(render_capture(reordered).fingerprint, render_capture(swapped).fingerprint);
  EXPECT_EQ(fingerprint_of({"x"}).find_first_not_of("0123456789abcdef"), std::string::npos);
}

TEST(CaptureSql, FunctionNameIsDerivedFromTheTableId) {
  EXPECT_EQ(function_name_for(0), "capture_0");
  EXPECT_EQ(function_name_for(2147483647), "capture_2147483647");
  CaptureSpec spec = users_spec();
  spec.table_id = 31;
  EXPECT_EQ(render_capture(spec).function_name, "pgferry." + sql::quote_ident(function_name_for(31)));
}

TEST(CaptureSql, PlaceholderLookalikesInNamesAndFiltersAreLeftAlone) {
  CaptureSpec spec = users_spec();
  spec.key_columns = {"{{new_image}}"};
  spec.where = "note <> '{{row_changed}}'";
  const std::string fn = render_capture(spec).statements[0];
  const bool name_kept = fn.find("jsonb_build_object('{{new_image}}', OLD.\"{{new_image}}\")") != std::string::npos;
  const bool filter_kept = fn.find("(SELECT (note <> '{{row_changed}}') FROM (SELECT OLD.*)") != std::string::npos;
  EXPECT_TRUE(name_kept);
  EXPECT_TRUE(filter_kept);
}

TEST(CaptureSql, ColumnNamesCannotEndTheDollarQuotedBody) {
  CaptureSpec spec = users_spec();
  spec.key_columns = {"x$pgferry_capture$; DROP TABLE users; --"};
  const std::string fn = render_capture(spec).statements[0];
  // The body opens after "AS " and must close only at the very end of the statement.
  const auto open = fn.find("AS $");
  ASSERT_NE(open, std::string::npos);
  const auto tag_end = fn.find('$', open + 4);
  const std::string tag = fn.substr(open + 3, tag_end - open - 2);
  const auto close = fn.find(tag, tag_end + 1);
  ASSERT_NE(close, std::string::npos);
  const bool closes_at_end = fn.find_first_not_of("; \n", close + tag.size()) == std::string::npos;
  EXPECT_TRUE(closes_at_end);
}

}  // namespace
}  // namespace pgferry::capture
