// Decoding journal rows: the key in key-column order, the image passed through, and map_image and
// key_object rewriting JSON. Inputs are written the way PostgreSQL's jsonb::text writes them
// (a space after ':' and ','); outputs are asserted byte for byte, because values must reach the
// target exactly as the source wrote them and the surrounding JSON minified.
#include "journal.hpp"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace pgferry {
namespace {

using Mapping = std::vector<std::pair<std::string, std::string>>;

const std::vector<std::string> kId = {"id"};
const std::vector<std::string> kIdRegion = {"id", "region"};

/// The error's text, or a marker when there was none.
template <typename T>
std::string error_of(const Result<T>& r) {
  return r ? "(no error)" : r.error().describe();
}

/// The key decode_change finds for an insert of `row` keyed by `columns`.
std::string key_of(std::string_view row, const std::vector<std::string>& columns = kId) {
  auto c = decode_change(1, "1", 1, 'I', "", row, columns);
  return c ? c->key : "(error) " + c.error().describe();
}

// --- decode_change: ops --------------------------------------------------------------------------

TEST(Journal, InsertTakesKeyAndImageFromTheNewRow) {
  const std::string row = R"({"id": 42, "name": "x", "price": 1.50})";
  auto c = decode_change(7, "900", 3, 'I', "", row, kId, "2024-05-01 12:00:00+00");
  ASSERT_TRUE(c) << error_of(c);
  EXPECT_EQ(c->id, 7);
  EXPECT_EQ(c->xid, "900");
  EXPECT_EQ(c->table_id, 3);
  EXPECT_EQ(c->op, Op::Insert);
  EXPECT_EQ(c->key, "[42]");
  EXPECT_EQ(c->old_key, "");
  EXPECT_EQ(c->image, row);
  EXPECT_EQ(c->captured_at, "2024-05-01 12:00:00+00");
}

TEST(Journal, UpdateWithoutOldKeyHasNoOldKey) {
  const std::string row = R"({"id": 42, "name": "y"})";
  auto c = decode_change(8, "901", 3, 'U', "", row, kId);
  ASSERT_TRUE(c) << error_of(c);
  EXPECT_EQ(c->op, Op::Update);
  EXPECT_EQ(c->key, "[42]");
  EXPECT_EQ(c->old_key, "");
  EXPECT_EQ(c->image, row);
}

TEST(Journal, UpdateWithAnOldKeyEqualToTheNewKeyHasNoOldKey) {
  // Member order and spacing differ from the new row; the key values are the same.
  auto c = decode_change(9, "902", 3, 'U', R"({"region": "eu", "id": 42})",
                         R"({"id": 42, "name": "z", "region": "eu"})", kIdRegion);
  ASSERT_TRUE(c) << error_of(c);
  EXPECT_EQ(c->key, R"([42,"eu"])");
  EXPECT_EQ(c->old_key, "");
}

TEST(Journal, UpdateThatChangedTheKeyKeepsTheOldKey) {
  const std::string row = R"({"id": 43, "name": "z", "region": "eu"})";
  auto c = decode_change(10, "903", 3, 'U', R"({"id": 42, "region": "eu"})", row, kIdRegion);
  ASSERT_TRUE(c) << error_of(c);
  EXPECT_EQ(c->op, Op::Update);
  EXPECT_EQ(c->key, R"([43,"eu"])");
  EXPECT_EQ(c->old_key, R"([42,"eu"])");
  EXPECT_EQ(c->image, row);
}

TEST(Journal, DeleteTakesTheKeyFromTheOldKeyAndHasNoImage) {
  auto c = decode_change(11, "904", 3, 'D', R"({"id": 42, "region": "eu"})", "", kIdRegion);
  ASSERT_TRUE(c) << error_of(c);
  EXPECT_EQ(c->op, Op::Delete);
  EXPECT_EQ(c->key, R"([42,"eu"])");
  EXPECT_EQ(c->old_key, "");
  EXPECT_EQ(c->image, "");
}

TEST(Journal, TruncateHasNoKeyAndNoImage) {
  auto c = decode_change(12, "905", 3, 'T', "", "", kId, "2024-05-01 12:00:01+00");
  ASSERT_TRUE(c) << error_of(c);
  EXPECT_EQ(c->op, Op::Truncate);
  EXPECT_EQ(c->id, 12);
  EXPECT_EQ(c->xid, "905");
  EXPECT_EQ(c->table_id, 3);
  EXPECT_EQ(c->key, "");
  EXPECT_EQ(c->old_key, "");
  EXPECT_EQ(c->image, "");
  EXPECT_EQ(c->captured_at, "2024-05-01 12:00:01+00");
}

// --- decode_change: keys -------------------------------------------------------------------------

TEST(Journal, CompositeKeyFollowsKeyColumnOrderNotMemberOrder) {
  EXPECT_EQ(key_of(R"({"region": "eu", "name": "x", "id": 42})", kIdRegion), R"([42,"eu"])");
  EXPECT_EQ(key_of(R"({"region": "eu", "name": "x", "id": 42})", {"region", "id"}), R"(["eu",42])");
  EXPECT_EQ(key_of(R"({"a": 1, "b": 2, "c": 3})", {"c", "a", "b"}), "[3,1,2]");
}

TEST(Journal, KeyValuesKeepEveryDigitAndTheirScale) {
  EXPECT_EQ(key_of(R"({"id": 1.50})"), "[1.50]");
  EXPECT_EQ(key_of(R"({"id": 1.0})"), "[1.0]");
  EXPECT_EQ(key_of(R"({"id": -0.000})"), "[-0.000]");
  EXPECT_EQ(key_of(R"({"id": 123456789012345678901234567890.123456789})"),
            "[123456789012345678901234567890.123456789]");
  // Wider than 64 bits, signed and unsigned.
  EXPECT_EQ(key_of(R"({"id": 18446744073709551616})"), "[18446744073709551616]");
  EXPECT_EQ(key_of(R"({"id": -9223372036854775809})"), "[-9223372036854775809]");
  // Beyond a double's range.
  EXPECT_EQ(key_of(R"({"id": 1e400})"), "[1e400]");
  const std::string huge = "1" + std::string(400, '0');
  EXPECT_EQ(key_of(R"({"id": )" + huge + "}"), "[" + huge + "]");
}

TEST(Journal, KeyStringsKeepTheirEscapes) {
  EXPECT_EQ(key_of(R"({"id": "a\"b\\c"})"), R"(["a\"b\\c"])");
  EXPECT_EQ(key_of(R"({"id": "naïve 日本 \ud83d\ude00 \u00e9"})"), R"(["naïve 日本 \ud83d\ude00 \u00e9"])");
  EXPECT_EQ(key_of(R"({"id": "tab\there\nline\/slash"})"), R"(["tab\there\nline\/slash"])");
  EXPECT_EQ(key_of(R"({"id": "", "region": " "})", kIdRegion), R"([""," "])");
}

TEST(Journal, KeyNullBooleanAndNestedValuesPassThroughAsText) {
  EXPECT_EQ(key_of(R"({"id": null})"), "[null]");
  EXPECT_EQ(key_of(R"({"id": true, "region": false})", kIdRegion), "[true,false]");
  // Inside a nested value the source's spacing is kept: it is passed through, not rewritten.
  EXPECT_EQ(key_of(R"({"id": {"a": [1, 2], "b": {}}, "region": [1, "x"]})", kIdRegion),
            R"([{"a": [1, 2], "b": {}},[1, "x"]])");
}

TEST(Journal, WhitespaceAroundValuesIsNotPartOfTheKey) {
  EXPECT_EQ(key_of(" {\"id\" :  42 ,\n\t\"region\":\"eu\"  } ", kIdRegion), R"([42,"eu"])");
  EXPECT_EQ(key_of(R"({"id":42,"region":"eu"})", kIdRegion), R"([42,"eu"])");
}

TEST(Journal, KeyColumnNamesMatchTheUnescapedMemberNames) {
  EXPECT_EQ(key_of(R"({"we\"ird": 5, "back\\slash": 6})", {"we\"ird", "back\\slash"}), "[5,6]");
  EXPECT_EQ(key_of(R"({"gr\u00f6\u00dfe": 7, "größe2": 8})", {"größe", "größe2"}), "[7,8]");
  // Only whole names match.
  EXPECT_EQ(key_of(R"({"idx": 1, "id": 2, "i": 3})"), "[2]");
}

// --- decode_change: errors -----------------------------------------------------------------------

TEST(Journal, MissingKeyColumnInTheNewRowNamesJournalRowAndColumn) {
  auto c = decode_change(17, "1", 1, 'I', "", R"({"id": 5, "name": "x"})", kIdRegion);
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().kind, ErrorKind::Runtime);
  EXPECT_NE(c.error().describe().find("journal row 17"), std::string::npos) << c.error().describe();
  EXPECT_NE(c.error().describe().find("\"region\""), std::string::npos) << c.error().describe();
}

TEST(Journal, MissingKeyColumnInTheOldKeyNamesJournalRowAndColumn) {
  auto u = decode_change(18, "1", 1, 'U', R"({"id": 5})", R"({"id": 5, "region": "eu"})", kIdRegion);
  ASSERT_FALSE(u);
  EXPECT_NE(u.error().describe().find("journal row 18"), std::string::npos) << u.error().describe();
  EXPECT_NE(u.error().describe().find("\"region\""), std::string::npos) << u.error().describe();

  auto d = decode_change(19, "1", 1, 'D', R"({"region": "eu"})", "", kIdRegion);
  ASSERT_FALSE(d);
  EXPECT_NE(d.error().describe().find("journal row 19"), std::string::npos) << d.error().describe();
  EXPECT_NE(d.error().describe().find("\"id\""), std::string::npos) << d.error().describe();
}

TEST(Journal, MalformedJsonIsAnErrorNamingTheJournalRow) {
  for (const char* bad : {R"({"id": 1, "name": )", R"({"name": "x", "id": )", R"({"id": 1)", R"({"id": 1} x)", "hello",
                          R"([1])", R"("id")", "{"}) {
    SCOPED_TRACE(bad);
    auto i = decode_change(23, "1", 1, 'I', "", bad, kId);
    ASSERT_FALSE(i);
    EXPECT_NE(i.error().describe().find("journal row 23"), std::string::npos) << i.error().describe();
    auto u = decode_change(24, "1", 1, 'U', bad, R"({"id": 1})", kId);
    ASSERT_FALSE(u);
    EXPECT_NE(u.error().describe().find("journal row 24"), std::string::npos) << u.error().describe();
    auto d = decode_change(25, "1", 1, 'D', bad, "", kId);
    ASSERT_FALSE(d);
    EXPECT_NE(d.error().describe().find("journal row 25"), std::string::npos) << d.error().describe();
  }
}

TEST(Journal, InvalidLiteralIsAnError) {
  // journal.hpp: decoding "fails ... when the JSON is malformed". These are malformed values in
  // an otherwise well-formed object, in a key column and in another column.
  for (const char* bad :
       {R"({"id": tru})", R"({"id": 1.2.3})", R"({"id": 1, "name": nul})", R"({"id": 1, "price": 01})"}) {
    SCOPED_TRACE(bad);
    EXPECT_FALSE(decode_change(26, "1", 1, 'I', "", bad, kId));
    EXPECT_FALSE(map_image(bad, {{"id", "id"}, {"name", "name"}, {"price", "price"}}));
  }
  EXPECT_FALSE(key_object("[tru]", {"id"}));
}

TEST(Journal, TextAfterTheTopLevelValueIsAnError) {
  EXPECT_FALSE(decode_change(27, "1", 1, 'I', "", R"({"id": 1}})", kId));
  EXPECT_FALSE(decode_change(27, "1", 1, 'D', R"({"id": 1}, 2)", "", kId));
  EXPECT_FALSE(map_image(R"({"id": 1}})", {{"id", "id"}}));
  EXPECT_FALSE(key_object("[1]]", {"id"}));
}

TEST(Journal, UnknownOpIsAnErrorNamingTheOp) {
  for (const char op : {'X', 'i', 'u', '\0'}) {
    auto c = decode_change(21, "1", 1, op, R"({"id": 1})", R"({"id": 1})", kId);
    ASSERT_FALSE(c) << "op " << static_cast<int>(op);
    EXPECT_NE(c.error().describe().find("journal row 21"), std::string::npos) << c.error().describe();
    EXPECT_NE(c.error().describe().find("unknown op"), std::string::npos) << c.error().describe();
  }
  auto x = decode_change(21, "1", 1, 'X', "", R"({"id": 1})", kId);
  ASSERT_FALSE(x);
  EXPECT_NE(x.error().describe().find("'X'"), std::string::npos) << x.error().describe();
}

TEST(Journal, DeleteWithoutOldKeyIsAnError) {
  auto c = decode_change(22, "1", 1, 'D', "", R"({"id": 1})", kId);
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().describe().find("journal row 22"), std::string::npos) << c.error().describe();
  EXPECT_NE(c.error().describe().find("no old key"), std::string::npos) << c.error().describe();
}

TEST(Journal, InsertOrUpdateWithoutImageIsAnError) {
  auto i = decode_change(30, "1", 1, 'I', "", "", kId);
  ASSERT_FALSE(i);
  EXPECT_NE(i.error().describe().find("journal row 30"), std::string::npos) << i.error().describe();
  auto u = decode_change(31, "1", 1, 'U', R"({"id": 1})", "", kId);
  ASSERT_FALSE(u);
  EXPECT_NE(u.error().describe().find("journal row 31"), std::string::npos) << u.error().describe();
}

TEST(Journal, DecodingAfterAnErrorIsUnaffected) {
  // The parser is reused between calls; a failed parse must leave nothing behind.
  ASSERT_FALSE(decode_change(40, "1", 1, 'I', "", R"({"id": )", kId));
  ASSERT_FALSE(map_image(R"({"a": )", {{"a", "a"}}));
  ASSERT_FALSE(key_object("[1,", {"a"}));
  EXPECT_EQ(key_of(R"({"id": 41})"), "[41]");
  EXPECT_EQ(*map_image(R"({"a": 1})", {{"a", "b"}}), R"({"b":1})");
  EXPECT_EQ(*key_object("[2]", {"a"}), R"({"a":2})");
}

// --- map_image -----------------------------------------------------------------------------------

TEST(Journal, MapImageRenamesAndSubsetsColumns) {
  auto m = map_image(R"({"id": 1, "name": "x", "price": 1.50})", {{"id", "id"}, {"price", "price"}});
  ASSERT_TRUE(m) << error_of(m);
  EXPECT_EQ(*m, R"({"id":1,"price":1.50})");

  auto renamed = map_image(R"({"id": 1, "name": "x", "price": 1.50})", {{"id", "user_id"}, {"name", "full_name"}});
  ASSERT_TRUE(renamed) << error_of(renamed);
  EXPECT_EQ(*renamed, R"({"user_id":1,"full_name":"x"})");
}

TEST(Journal, MapImageWritesColumnsInMappingOrder) {
  auto m = map_image(R"({"a": 1, "b": 2, "c": 3})", {{"c", "C"}, {"a", "A"}});
  ASSERT_TRUE(m) << error_of(m);
  EXPECT_EQ(*m, R"({"C":3,"A":1})");
}

TEST(Journal, MapImageLeavesOutColumnsMissingFromTheImage) {
  auto m = map_image(R"({"id": 1, "name": "x"})", {{"id", "id"}, {"gone", "gone"}, {"name", "name"}});
  ASSERT_TRUE(m) << error_of(m);
  EXPECT_EQ(*m, R"({"id":1,"name":"x"})");

  auto none = map_image(R"({"id": 1})", {{"other", "other"}});
  ASSERT_TRUE(none) << error_of(none);
  EXPECT_EQ(*none, "{}");

  auto empty = map_image(R"({"id": 1})", {});
  ASSERT_TRUE(empty) << error_of(empty);
  EXPECT_EQ(*empty, "{}");

  auto from_empty = map_image("{}", {{"id", "id"}});
  ASSERT_TRUE(from_empty) << error_of(from_empty);
  EXPECT_EQ(*from_empty, "{}");
}

TEST(Journal, MapImageKeepsValuesExactlyAsWritten) {
  const std::string huge = "1" + std::string(400, '0');
  const std::string image =
      R"({"n": 123456789012345678901234567890.123456789, "scale": 1.50, "big": )" + huge +
      R"(, "e": 1e400, "neg": -0.0, "s": "q\"b\\s\/\u00e9 ü 日本 \ud83d\ude00", )"
      R"("t": true, "f": false, "z": null, "arr": ["a", 1, [2, 3]], "obj": {"k": [1, 2], "m": {}}})";
  auto m = map_image(image, {{"n", "n"},
                             {"scale", "scale"},
                             {"big", "big"},
                             {"e", "e"},
                             {"neg", "neg"},
                             {"s", "s"},
                             {"t", "t"},
                             {"f", "f"},
                             {"z", "z"},
                             {"arr", "arr"},
                             {"obj", "obj"}});
  ASSERT_TRUE(m) << error_of(m);
  EXPECT_EQ(*m, R"({"n":123456789012345678901234567890.123456789,"scale":1.50,"big":)" + huge +
                    R"(,"e":1e400,"neg":-0.0,"s":"q\"b\\s\/\u00e9 ü 日本 \ud83d\ude00",)"
                    R"("t":true,"f":false,"z":null,"arr":["a", 1, [2, 3]],"obj":{"k": [1, 2], "m": {}}})");
}

TEST(Journal, MapImageDropsWhitespaceBetweenMembersOnly) {
  auto m = map_image(" {\"id\" :  1.50 ,\n \"b\": [1 ,2 ]\t} ", {{"id", "id"}, {"b", "b"}});
  ASSERT_TRUE(m) << error_of(m);
  EXPECT_EQ(*m, R"({"id":1.50,"b":[1 ,2 ]})");
}

TEST(Journal, MapImageMatchesUnescapedSourceNames) {
  auto m = map_image(R"({"a\"b": 1, "gr\u00f6\u00dfe": 2})", {{"a\"b", "ab"}, {"größe", "size"}});
  ASSERT_TRUE(m) << error_of(m);
  EXPECT_EQ(*m, R"({"ab":1,"size":2})");
}

TEST(Journal, MapImageEscapesTargetNames) {
  auto m = map_image(R"({"a": 1, "b": 2, "c": 3, "d": 4})",
                     {{"a", "x\"y"}, {"b", "back\\slash"}, {"c", "n\nl\rt\t\x01"}, {"d", "größe"}});
  ASSERT_TRUE(m) << error_of(m);
  EXPECT_EQ(*m, R"({"x\"y":1,"back\\slash":2,"n\nl\rt\t\u0001":3,"größe":4})");
}

TEST(Journal, MapImageOfSomethingOtherThanAnObjectIsAnError) {
  for (const char* bad : {R"([1, 2])", R"("x")", "1", "", R"({"a": 1)", "nope"}) {
    SCOPED_TRACE(bad);
    EXPECT_FALSE(map_image(bad, {{"a", "a"}}));
  }
}

// --- key_object ----------------------------------------------------------------------------------

TEST(Journal, KeyObjectNamesTheKeyValues) {
  auto k = key_object(R"([42,"eu"])", {"id", "region"});
  ASSERT_TRUE(k) << error_of(k);
  EXPECT_EQ(*k, R"({"id":42,"region":"eu"})");

  auto one = key_object("[7]", {"id"});
  ASSERT_TRUE(one) << error_of(one);
  EXPECT_EQ(*one, R"({"id":7})");
}

TEST(Journal, KeyObjectKeepsValuesExactlyAsWritten) {
  const std::string huge = "1" + std::string(400, '0');
  auto k = key_object(R"([123456789012345678901234567890.123456789, 1.50, -0.000, 1e400, )" + huge +
                          R"(, "a\"b\\c\u00e9 ü", null, true, {"x": [1, 2]}])",
                      {"a", "b", "c", "d", "e", "f", "g", "h", "i"});
  ASSERT_TRUE(k) << error_of(k);
  EXPECT_EQ(*k, R"({"a":123456789012345678901234567890.123456789,"b":1.50,"c":-0.000,"d":1e400,"e":)" + huge +
                    R"(,"f":"a\"b\\c\u00e9 ü","g":null,"h":true,"i":{"x": [1, 2]}})");
}

TEST(Journal, KeyObjectIgnoresWhitespaceBetweenValues) {
  auto k = key_object(" [ 42 ,\n \"eu\" ] ", {"id", "region"});
  ASSERT_TRUE(k) << error_of(k);
  EXPECT_EQ(*k, R"({"id":42,"region":"eu"})");
}

TEST(Journal, KeyObjectEscapesNames) {
  auto k = key_object("[1,2]", {"a\"b", "c\\d"});
  ASSERT_TRUE(k) << error_of(k);
  EXPECT_EQ(*k, R"({"a\"b":1,"c\\d":2})");
}

TEST(Journal, KeyObjectRoundTripsADecodedKey) {
  auto c = decode_change(50, "1", 1, 'I', "", R"({"region": "eu", "name": "x", "id": 1.50})", kIdRegion);
  ASSERT_TRUE(c) << error_of(c);
  auto k = key_object(c->key, kIdRegion);
  ASSERT_TRUE(k) << error_of(k);
  EXPECT_EQ(*k, R"({"id":1.50,"region":"eu"})");
}

TEST(Journal, KeyObjectWithTheWrongNumberOfNamesIsAnError) {
  auto too_few_values = key_object("[42]", {"id", "region"});
  ASSERT_FALSE(too_few_values);
  EXPECT_NE(too_few_values.error().describe().find("1 values for 2 key columns"), std::string::npos)
      << too_few_values.error().describe();

  auto too_many_values = key_object(R"([42,"eu",3])", {"id", "region"});
  ASSERT_FALSE(too_many_values);
  EXPECT_NE(too_many_values.error().describe().find("3 values for 2 key columns"), std::string::npos)
      << too_many_values.error().describe();

  EXPECT_FALSE(key_object("[]", {"id"}));
  EXPECT_FALSE(key_object("[1]", {}));
}

TEST(Journal, KeyObjectOfSomethingOtherThanAnArrayIsAnError) {
  for (const char* bad : {R"({"id": 1})", R"("x")", "1", "", "[1,", "nope"}) {
    SCOPED_TRACE(bad);
    EXPECT_FALSE(key_object(bad, {"id"}));
  }
}

TEST(Journal, IdRangesMergeRunsOfConsecutiveIds) {
  EXPECT_EQ(id_ranges({}), "{}");
  EXPECT_EQ(id_ranges({42}), "{[42,42]}");
  EXPECT_EQ(id_ranges({3, 1, 2}), "{[1,3]}");
  EXPECT_EQ(id_ranges({10, 1, 2, 3, 7, 11, 12, 5}), "{[1,3],[5,5],[7,7],[10,12]}");
  EXPECT_EQ(id_ranges({9223372036854775806, 9223372036854775807}), "{[9223372036854775806,9223372036854775807]}");
}

}  // namespace
}  // namespace pgferry
