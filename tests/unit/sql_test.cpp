// Identifier and literal quoting with hostile names, and parsing names as PostgreSQL reads them.
#include "sql.hpp"

#include <gtest/gtest.h>

namespace pgferry::sql {
namespace {

TEST(Sql, QuoteIdentAlwaysQuotesAndDoublesQuotes) {
  EXPECT_EQ(quote_ident("users"), "\"users\"");
  EXPECT_EQ(quote_ident("Users"), "\"Users\"");
  EXPECT_EQ(quote_ident("My \"odd\" name"), "\"My \"\"odd\"\" name\"");
  EXPECT_EQ(quote_ident("x; DROP TABLE y"), "\"x; DROP TABLE y\"");
  EXPECT_EQ(quote_ident("naïve_表"), "\"naïve_表\"");
  EXPECT_EQ(quote_ident("it's"), "\"it's\"");
  EXPECT_EQ(quote_ident(""), "\"\"");
}

TEST(Sql, QuoteLiteralDoublesSingleQuotesOnly) {
  EXPECT_EQ(quote_literal("plain"), "'plain'");
  EXPECT_EQ(quote_literal("it's"), "'it''s'");
  EXPECT_EQ(quote_literal("back\\slash"), "'back\\slash'");
  EXPECT_EQ(quote_literal("'; DROP TABLE users; --"), "'''; DROP TABLE users; --'");
  EXPECT_EQ(quote_literal(""), "''");
}

TEST(Sql, QualifiedNameQuotesForSqlAndDisplaysForPeople) {
  const QualifiedName plain{"public", "users"};
  EXPECT_EQ(plain.quoted(), "\"public\".\"users\"");
  EXPECT_EQ(plain.display(), "public.users");
  const QualifiedName odd{"My Schema", "Odd \"Table\""};
  EXPECT_EQ(odd.quoted(), "\"My Schema\".\"Odd \"\"Table\"\"\"");
  EXPECT_EQ(odd.display(), "\"My Schema\".\"Odd \"\"Table\"\"\"");
  EXPECT_EQ((QualifiedName{"public", "Users"}).display(), "public.\"Users\"");
}

TEST(Sql, ParseIdentifierFoldsUnquotedAndKeepsQuoted) {
  EXPECT_EQ(*parse_identifier("Users"), "users");
  EXPECT_EQ(*parse_identifier("\"Users\""), "Users");
  EXPECT_EQ(*parse_identifier("\"a \"\"b\"\" c\""), "a \"b\" c");
  EXPECT_EQ(*parse_identifier("\"x; DROP TABLE y\""), "x; DROP TABLE y");
  EXPECT_EQ(*parse_identifier("\"naïve_表\""), "naïve_表");
  EXPECT_EQ(*parse_identifier("_under_score9$"), "_under_score9$");
}

TEST(Sql, ParseIdentifierRejectsWhatSqlWouldNotRead) {
  for (const char* bad : {"", "\"", "\"unclosed", "has space", "semi;colon", "9starts_with_digit", "\"\"", "a\"b"}) {
    auto r = parse_identifier(bad);
    EXPECT_FALSE(r.ok()) << "accepted [" << bad << "]";
    if (!r.ok()) {
      EXPECT_EQ(r.error().kind, ErrorKind::Config);
      EXPECT_FALSE(r.error().fix.empty()) << r.error().describe();
    }
  }
}

TEST(Sql, ParseQualifiedNameHandlesSchemasAndQuotedDots) {
  EXPECT_EQ(*parse_qualified_name("users"), (QualifiedName{"public", "users"}));
  EXPECT_EQ(*parse_qualified_name("users", "app"), (QualifiedName{"app", "users"}));
  EXPECT_EQ(*parse_qualified_name("App.Users"), (QualifiedName{"app", "users"}));
  EXPECT_EQ(*parse_qualified_name("\"a.b\".\"c.d\""), (QualifiedName{"a.b", "c.d"}));
  EXPECT_EQ(*parse_qualified_name("\"My Schema\".\"Odd \"\"Table\"\"; drop\""),
            (QualifiedName{"My Schema", "Odd \"Table\"; drop"}));
  EXPECT_EQ(*parse_qualified_name("public.\"Mixed\""), (QualifiedName{"public", "Mixed"}));
}

TEST(Sql, ParseQualifiedNameRejectsMalformedNames) {
  for (const char* bad : {"", "a.b.c", ".users", "users.", "a..b", "\"a.b", "has space.t"}) {
    auto r = parse_qualified_name(bad);
    EXPECT_FALSE(r.ok()) << "accepted [" << bad << "]";
  }
}

TEST(Sql, QuotedNamesRoundTripThroughTheParser) {
  for (const char* name : {"users", "Users", "a \"b\" c", "x; DROP TABLE y", "naïve_表", "a.b", " "}) {
    const QualifiedName original{"Sch ema", name};
    auto back = parse_qualified_name(original.quoted());
    ASSERT_TRUE(back.ok()) << original.quoted();
    EXPECT_EQ(*back, original);
    auto shown = parse_qualified_name(original.display());
    ASSERT_TRUE(shown.ok()) << original.display();
    EXPECT_EQ(*shown, original);
  }
}

TEST(Sql, PlainIdentifiersNeedNoQuotes) {
  EXPECT_TRUE(is_plain_identifier("users"));
  EXPECT_TRUE(is_plain_identifier("_x1$"));
  EXPECT_FALSE(is_plain_identifier("Users"));
  EXPECT_FALSE(is_plain_identifier("has space"));
  EXPECT_FALSE(is_plain_identifier("1abc"));
  EXPECT_FALSE(is_plain_identifier(""));
  EXPECT_FALSE(is_plain_identifier("naïve"));
}

TEST(Sql, QuoteIdentListJoinsWithCommas) {
  EXPECT_EQ(quote_ident_list({"a", "B", "c\"d"}), "\"a\", \"B\", \"c\"\"d\"");
  EXPECT_EQ(quote_ident_list({}), "");
}

TEST(Sql, UnquotedNamesFoldOnlyAsciiLetters) {
  EXPECT_EQ(*parse_identifier("naïve_表"), "naïve_表");
  EXPECT_EQ(*parse_identifier("NAÏVE"), "naÏve");  // PostgreSQL folds only ASCII in multibyte encodings.
  EXPECT_EQ(*parse_qualified_name("Sales.\"Q1 Report\""), (QualifiedName{"sales", "Q1 Report"}));
  EXPECT_EQ(*parse_qualified_name("\"Sales\".q1"), (QualifiedName{"Sales", "q1"}));
}

TEST(Sql, UnquotedNamesLongerThanSixtyThreeBytesAreRejected) {
  const std::string limit(63, 'a');
  EXPECT_EQ(*parse_identifier(limit), limit);
  auto too_long = parse_identifier(limit + "a");
  ASSERT_FALSE(too_long.ok());
  EXPECT_NE(too_long.error().describe().find("63-byte"), std::string::npos) << too_long.error().describe();
}

TEST(Sql, RejectionsQuoteTheInputAndOfferAFix) {
  for (const char* bad :
       {"x; DROP TABLE y", "\"a\"b", "a.\"b\"c", " users", "public . users", "\"\".t", "t.\"\"", "a-b", "a\"b\""}) {
    auto r = parse_qualified_name(bad);
    EXPECT_FALSE(r.ok()) << "accepted [" << bad << "]";
    if (!r.ok()) {
      EXPECT_EQ(r.error().kind, ErrorKind::Config);
      EXPECT_NE(r.error().message.find(std::string("'") + bad + "'"), std::string::npos) << r.error().describe();
      EXPECT_FALSE(r.error().fix.empty()) << r.error().describe();
    }
  }
}

TEST(Sql, ParseIdentifierRejectsQualifiedNames) {
  auto r = parse_identifier("a.b");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("not a single name"), std::string::npos) << r.error().describe();
  EXPECT_EQ(*parse_identifier("\"a.b\""), "a.b");
}

TEST(Sql, DisplayQuotesOnlyPartsThatNeedIt) {
  EXPECT_EQ((QualifiedName{"Sales", "orders"}).display(), "\"Sales\".orders");
  EXPECT_EQ((QualifiedName{"a.b", "c.d"}).display(), "\"a.b\".\"c.d\"");
  EXPECT_EQ((QualifiedName{"public", "x; DROP TABLE y"}).display(), "public.\"x; DROP TABLE y\"");
  EXPECT_EQ((QualifiedName{"public", "naïve_表"}).display(), "public.\"naïve_表\"");
  EXPECT_EQ((QualifiedName{"public", "1st"}).display(), "public.\"1st\"");
}

TEST(Sql, PlainIdentifierRejectsPunctuation) {
  for (const char* name : {"a.b", "a-b", "a;b", "a\"b", "a'b", "$a", " a", "a "}) {
    EXPECT_FALSE(is_plain_identifier(name)) << name;
  }
  EXPECT_TRUE(is_plain_identifier("a1_b$"));
}

TEST(Sql, QuoteIdentListQuotesEveryHostileName) {
  EXPECT_EQ(quote_ident_list({"x; DROP TABLE y", "it's", "\""}), "\"x; DROP TABLE y\", \"it's\", \"\"\"\"");
  EXPECT_EQ(quote_ident_list({"only"}), "\"only\"");
}

}  // namespace
}  // namespace pgferry::sql
