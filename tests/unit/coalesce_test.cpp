// The coalescer: a batch of journal changes reduced to at most one action per target row. The
// named cases pin each rule of coalesce.hpp; the generated ones check every short sequence of
// changes against a reference model that replays the batch on a source and the coalesced actions
// on a target, from every prior state the source allows, and demands the same rows at the end.
#include "coalesce.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace pgferry {

// gtest prints RowAction values this way when an expectation fails; it must live in RowAction's
// namespace to be found.
static void PrintTo(const RowAction& a, std::ostream* os) {
  *os << "{key " << a.key << ", image " << (a.image.empty() ? "(none)" : a.image) << ", last_id " << a.last_id << "}";
}

namespace {

constexpr std::int32_t kTable = 7;

Change insert(std::int64_t id, std::string key, std::string image, std::int32_t table = kTable) {
  Change c;
  c.id = id;
  c.table_id = table;
  c.op = Op::Insert;
  c.key = std::move(key);
  c.image = std::move(image);
  return c;
}

Change update(std::int64_t id, std::string key, std::string image, std::int32_t table = kTable) {
  Change c = insert(id, std::move(key), std::move(image), table);
  c.op = Op::Update;
  return c;
}

/// An update that moved the row from `old_key` to `key`.
Change move_key(std::int64_t id, std::string old_key, std::string key, std::string image, std::int32_t table = kTable) {
  Change c = update(id, std::move(key), std::move(image), table);
  c.old_key = std::move(old_key);
  return c;
}

Change remove(std::int64_t id, std::string key, std::int32_t table = kTable) {
  Change c;
  c.id = id;
  c.table_id = table;
  c.op = Op::Delete;
  c.key = std::move(key);
  return c;
}

Change truncate(std::int64_t id, std::int32_t table = kTable) {
  Change c;
  c.id = id;
  c.table_id = table;
  c.op = Op::Truncate;
  return c;
}

RowAction upserted(std::string key, std::string image, std::int64_t last_id) {
  return RowAction{std::move(key), std::move(image), last_id};
}

RowAction deleted(std::string key, std::int64_t last_id) { return RowAction{std::move(key), {}, last_id}; }

/// The actions for kTable; fails the test when the batch produced none.
TableActions only_table(const std::vector<Change>& changes) {
  auto out = coalesce(changes);
  EXPECT_EQ(out.size(), 1U);
  EXPECT_TRUE(out.contains(kTable));
  return out[kTable];
}

using Rows = std::vector<RowAction>;

// --- The rules, one by one ----------------------------------------------------------------------

TEST(Coalesce, EmptyBatchHasNoTables) { EXPECT_TRUE(coalesce({}).empty()); }

TEST(Coalesce, SingleInsertIsUpserted) {
  const auto t = only_table({insert(1, "[1]", R"({"id": 1, "v": "a"})")});
  EXPECT_FALSE(t.truncate);
  EXPECT_EQ(t.deletes, Rows{});
  EXPECT_EQ(t.upserts, Rows{upserted("[1]", R"({"id": 1, "v": "a"})", 1)});
}

TEST(Coalesce, SingleUpdateIsUpserted) {
  const auto t = only_table({update(4, "[1]", R"({"id": 1, "v": "b"})")});
  EXPECT_EQ(t.deletes, Rows{});
  EXPECT_EQ(t.upserts, Rows{upserted("[1]", R"({"id": 1, "v": "b"})", 4)});
}

TEST(Coalesce, SingleDeleteIsDeleted) {
  const auto t = only_table({remove(9, "[1]")});
  EXPECT_EQ(t.deletes, Rows{deleted("[1]", 9)});
  EXPECT_EQ(t.upserts, Rows{});
}

TEST(Coalesce, InsertThenUpdatesUpsertsTheLastImage) {
  const auto t =
      only_table({insert(1, "[1]", R"({"v": 1})"), update(2, "[1]", R"({"v": 2})"), update(3, "[1]", R"({"v": 3})")});
  EXPECT_EQ(t.deletes, Rows{});
  EXPECT_EQ(t.upserts, Rows{upserted("[1]", R"({"v": 3})", 3)});
}

TEST(Coalesce, InsertThenDeleteDeletesInCaseTheBatchIsAppliedTwice) {
  // The row never existed outside the batch — unless the batch is applied a second time after
  // its ack was lost: the first application left it on the target. A delete of an absent row is
  // harmless; leaving it would keep a row the source deleted.
  const auto t = only_table({insert(1, "[1]", R"({"v": 1})"), remove(2, "[1]")});
  EXPECT_FALSE(t.truncate);
  EXPECT_EQ(t.deletes, Rows{deleted("[1]", 2)});
  EXPECT_EQ(t.upserts, Rows{});
  // The changes still count: the applier advances past them.
  EXPECT_EQ(t.changes, 2U);
  EXPECT_EQ(t.last_id, 2);
}

TEST(Coalesce, InsertUpdateDeleteDeletes) {
  const auto t = only_table({insert(1, "[1]", R"({"v": 1})"), update(2, "[1]", R"({"v": 2})"), remove(3, "[1]")});
  EXPECT_EQ(t.deletes, Rows{deleted("[1]", 3)});
  EXPECT_EQ(t.upserts, Rows{});
}

TEST(Coalesce, DeleteThenInsertUpsertsWithoutDeleting) {
  const auto t = only_table({remove(1, "[1]"), insert(2, "[1]", R"({"v": "new"})")});
  EXPECT_EQ(t.deletes, Rows{});
  EXPECT_EQ(t.upserts, Rows{upserted("[1]", R"({"v": "new"})", 2)});
}

TEST(Coalesce, UpdateThenDeleteDeletesTheRowThatExistedBefore) {
  const auto t = only_table({update(1, "[1]", R"({"v": 1})"), remove(2, "[1]")});
  EXPECT_EQ(t.deletes, Rows{deleted("[1]", 2)});
  EXPECT_EQ(t.upserts, Rows{});
}

TEST(Coalesce, DeleteInsertDeleteDeletesTheRowThatExistedBefore) {
  const auto t = only_table({remove(1, "[1]"), insert(2, "[1]", R"({"v": 1})"), remove(3, "[1]")});
  EXPECT_EQ(t.deletes, Rows{deleted("[1]", 3)});
  EXPECT_EQ(t.upserts, Rows{});
}

TEST(Coalesce, UpdateWithTheSameOldKeyIsAPlainUpdate) {
  // decode_change leaves old_key empty when it equals the key; a caller that does not is still
  // not asked to delete the row it upserts.
  const auto t = only_table({move_key(1, "[1]", "[1]", R"({"v": 1})")});
  EXPECT_EQ(t.deletes, Rows{});
  EXPECT_EQ(t.upserts, Rows{upserted("[1]", R"({"v": 1})", 1)});
}

// --- Key changes ---------------------------------------------------------------------------------

TEST(Coalesce, KeyChangeDeletesTheOldKeyAndUpsertsTheNewOne) {
  const auto t = only_table({move_key(5, "[1]", "[2]", R"({"id": 2})")});
  EXPECT_EQ(t.deletes, Rows{deleted("[1]", 5)});
  EXPECT_EQ(t.upserts, Rows{upserted("[2]", R"({"id": 2})", 5)});
  EXPECT_EQ(t.changes, 1U);
}

TEST(Coalesce, ChainedKeyChangesDeleteEveryKeyButTheLast) {
  // A -> B -> C: B is deleted too (a second application of the batch would find it there).
  const auto t = only_table({move_key(1, "[1]", "[2]", R"({"id": 2})"), move_key(2, "[2]", "[3]", R"({"id": 3})")});
  EXPECT_EQ(t.deletes, (Rows{deleted("[1]", 1), deleted("[2]", 2)}));
  EXPECT_EQ(t.upserts, Rows{upserted("[3]", R"({"id": 3})", 2)});
}

TEST(Coalesce, KeyChangedAwayAndBackUpsertsTheOriginalKeyAndDeletesTheOther) {
  // A -> B -> A: the row is where it started, with the last image; B is deleted.
  const auto t = only_table(
      {move_key(1, "[1]", "[2]", R"({"id": 2, "v": 1})"), move_key(2, "[2]", "[1]", R"({"id": 1, "v": 2})")});
  EXPECT_EQ(t.deletes, Rows{deleted("[2]", 2)});
  EXPECT_EQ(t.upserts, Rows{upserted("[1]", R"({"id": 1, "v": 2})", 2)});
}

TEST(Coalesce, KeyChangeThenDeleteOfTheNewKeyDeletesBothKeys) {
  const auto t = only_table({move_key(1, "[1]", "[2]", R"({"id": 2})"), remove(2, "[2]")});
  EXPECT_EQ(t.deletes, (Rows{deleted("[1]", 1), deleted("[2]", 2)}));
  EXPECT_EQ(t.upserts, Rows{});
}

TEST(Coalesce, InsertOfTheOldKeyAfterAKeyChangeUpsertsBothKeys) {
  const auto t = only_table(
      {move_key(1, "[1]", "[2]", R"({"id": 2, "v": "moved"})"), insert(2, "[1]", R"({"id": 1, "v": "new"})")});
  EXPECT_EQ(t.deletes, Rows{});
  EXPECT_EQ(t.upserts,
            (Rows{upserted("[1]", R"({"id": 1, "v": "new"})", 2), upserted("[2]", R"({"id": 2, "v": "moved"})", 1)}));
}

TEST(Coalesce, KeyChangeOfARowInsertedInTheBatchDeletesItsFirstKey) {
  const auto t = only_table({insert(1, "[1]", R"({"id": 1})"), move_key(2, "[1]", "[2]", R"({"id": 2})")});
  EXPECT_EQ(t.deletes, Rows{deleted("[1]", 2)});
  EXPECT_EQ(t.upserts, Rows{upserted("[2]", R"({"id": 2})", 2)});
}

TEST(Coalesce, KeysSwappedThroughAThirdKeyUpsertBothWithTheirLastImages) {
  // The classic swap: A -> C, B -> A, C -> B.
  const auto t = only_table({move_key(1, "[1]", "[3]", R"({"id": 3, "was": 1})"),
                             move_key(2, "[2]", "[1]", R"({"id": 1, "was": 2})"),
                             move_key(3, "[3]", "[2]", R"({"id": 2, "was": 1})")});
  EXPECT_EQ(t.deletes, Rows{deleted("[3]", 3)});
  EXPECT_EQ(t.upserts,
            (Rows{upserted("[1]", R"({"id": 1, "was": 2})", 2), upserted("[2]", R"({"id": 2, "was": 1})", 3)}));
}

// --- Truncate ------------------------------------------------------------------------------------

TEST(Coalesce, TruncateForgetsEarlierChangesOfTheTable) {
  const auto t =
      only_table({insert(1, "[1]", R"({"v": 1})"), update(2, "[2]", R"({"v": 2})"), remove(3, "[3]"), truncate(4)});
  EXPECT_TRUE(t.truncate);
  EXPECT_EQ(t.deletes, Rows{});
  EXPECT_EQ(t.upserts, Rows{});
  EXPECT_EQ(t.changes, 4U);
  EXPECT_EQ(t.last_id, 4);
}

TEST(Coalesce, ChangesAfterATruncateStillApply) {
  const auto t = only_table({update(1, "[1]", R"({"v": "old"})"), truncate(2), insert(3, "[1]", R"({"v": "new"})"),
                             insert(4, "[2]", R"({"v": 2})")});
  EXPECT_TRUE(t.truncate);
  EXPECT_EQ(t.deletes, Rows{});
  EXPECT_EQ(t.upserts, (Rows{upserted("[1]", R"({"v": "new"})", 3), upserted("[2]", R"({"v": 2})", 4)}));
}

TEST(Coalesce, DeleteAfterATruncateNeedsNoDelete) {
  // The truncate already emptied the target.
  const auto t = only_table({truncate(1), insert(2, "[1]", R"({"v": 1})"), remove(3, "[1]"), remove(4, "[2]")});
  EXPECT_TRUE(t.truncate);
  EXPECT_EQ(t.deletes, Rows{});
  EXPECT_EQ(t.upserts, Rows{});
}

TEST(Coalesce, TruncateOfOneTableLeavesOtherTablesAlone) {
  const auto out = coalesce({insert(1, "[1]", R"({"t": 1})", 1), insert(2, "[1]", R"({"t": 2})", 2), truncate(3, 2)});
  ASSERT_EQ(out.size(), 2U);
  EXPECT_FALSE(out.at(1).truncate);
  EXPECT_EQ(out.at(1).upserts, Rows{upserted("[1]", R"({"t": 1})", 1)});
  EXPECT_TRUE(out.at(2).truncate);
  EXPECT_EQ(out.at(2).upserts, Rows{});
}

// --- Tables, counters, order ---------------------------------------------------------------------

TEST(Coalesce, TablesAreCoalescedSeparately) {
  // The same key text in two tables is two different rows.
  const auto out = coalesce({insert(1, "[1]", R"({"t": 1})", 1), insert(2, "[1]", R"({"t": 2})", 2),
                             remove(3, "[1]", 1), update(4, "[1]", R"({"t": 2, "v": 2})", 2), remove(5, "[9]", 3)});
  ASSERT_EQ(out.size(), 3U);
  EXPECT_EQ(out.at(1).deletes, Rows{deleted("[1]", 3)});
  EXPECT_EQ(out.at(1).upserts, Rows{});
  EXPECT_EQ(out.at(1).changes, 2U);
  EXPECT_EQ(out.at(1).last_id, 3);
  EXPECT_EQ(out.at(2).deletes, Rows{});
  EXPECT_EQ(out.at(2).upserts, Rows{upserted("[1]", R"({"t": 2, "v": 2})", 4)});
  EXPECT_EQ(out.at(2).changes, 2U);
  EXPECT_EQ(out.at(2).last_id, 4);
  EXPECT_EQ(out.at(3).deletes, Rows{deleted("[9]", 5)});
  EXPECT_EQ(out.at(3).changes, 1U);
  EXPECT_EQ(out.at(3).last_id, 5);
}

TEST(Coalesce, CountersCountJournalRowsBeforeCoalescing) {
  std::vector<Change> batch;
  for (std::int64_t id = 100; id < 110; ++id)
    batch.push_back(update(id, "[1]", R"({"v": )" + std::to_string(id) + "}"));
  const auto t = only_table(batch);
  EXPECT_EQ(t.changes, 10U);
  EXPECT_EQ(t.last_id, 109);
  EXPECT_EQ(t.upserts, Rows{upserted("[1]", R"({"v": 109})", 109)});
}

TEST(Coalesce, RowLastIdIsTheLastChangeOfThatRow) {
  const auto t =
      only_table({insert(10, "[1]", R"({"v": 1})"), insert(11, "[2]", R"({"v": 2})"), update(12, "[1]", R"({"v": 3})"),
                  remove(13, "[3]"), update(14, "[2]", R"({"v": 4})"), update(15, "[4]", R"({"v": 5})")});
  EXPECT_EQ(t.deletes, Rows{deleted("[3]", 13)});
  EXPECT_EQ(t.upserts, (Rows{upserted("[1]", R"({"v": 3})", 12), upserted("[2]", R"({"v": 4})", 14),
                             upserted("[4]", R"({"v": 5})", 15)}));
  EXPECT_EQ(t.last_id, 15);
}

TEST(Coalesce, ActionsAreSortedByKeyText) {
  // Byte order of the JSON text, not numeric order: "[10]" sorts before "[2]", and a string
  // value's quote sorts before any digit.
  const auto t = only_table({insert(1, "[2]", "{}"), insert(2, "[10]", "{}"), insert(3, R"([1,"a"])", "{}"),
                             insert(4, R"(["b"])", "{}"), remove(5, "[20]"), remove(6, "[3]"), remove(7, R"(["a"])"),
                             remove(8, "[100]")});
  std::vector<std::string> upsert_keys;
  for (const auto& a : t.upserts) upsert_keys.push_back(a.key);
  std::vector<std::string> delete_keys;
  for (const auto& a : t.deletes) delete_keys.push_back(a.key);
  EXPECT_EQ(upsert_keys, (std::vector<std::string>{R"(["b"])", R"([1,"a"])", "[10]", "[2]"}));
  EXPECT_EQ(delete_keys, (std::vector<std::string>{R"(["a"])", "[100]", "[20]", "[3]"}));
}

TEST(Coalesce, ResultDependsOnlyOnTheChanges) {
  // Many keys so that any dependence on hash order would show: the same rows, journaled in
  // opposite orders, coalesce to the same sorted actions.
  std::vector<Change> forward;
  std::vector<Change> backward;
  for (int i = 0; i < 200; ++i) {
    const std::string key = "[" + std::to_string(i) + "]";
    const std::string image = R"({"id": )" + std::to_string(i) + "}";
    forward.push_back(i % 3 == 0 ? remove(i, key) : insert(i, key, image));
  }
  for (int i = 199; i >= 0; --i) {
    const std::string key = "[" + std::to_string(i) + "]";
    const std::string image = R"({"id": )" + std::to_string(i) + "}";
    // Same id per key, so the row actions must match exactly.
    backward.push_back(i % 3 == 0 ? remove(i, key) : insert(i, key, image));
  }
  const auto a = only_table(forward);
  const auto b = only_table(backward);
  const auto again = only_table(forward);
  EXPECT_EQ(a.upserts.size(), 133U);
  EXPECT_EQ(a.deletes.size(), 67U);
  EXPECT_EQ(a.upserts, b.upserts);
  EXPECT_EQ(a.deletes, b.deletes);
  EXPECT_EQ(a.upserts, again.upserts);
  EXPECT_EQ(a.deletes, again.deletes);
}

// --- Every short sequence against a reference model ----------------------------------------------

// The reference model knows nothing of how coalesce works. It replays a batch on a source table
// from a prior state, checking that the source could have journaled it (no insert of a present
// row, no update or delete of an absent one), and applies coalesced actions on a target from the
// same prior state the way the applier does: truncate, then deletes, then upserts.

using Table = std::map<std::string, std::string>;  // key -> image

/// The source after `batch`, or nothing when the source could not have journaled it from `prior`.
std::optional<Table> replay_source(Table rows, const std::vector<Change>& batch) {
  for (const Change& c : batch) {
    switch (c.op) {
      case Op::Truncate:
        rows.clear();
        break;
      case Op::Insert:
        if (rows.contains(c.key)) return std::nullopt;
        rows[c.key] = c.image;
        break;
      case Op::Update:
        if (!c.old_key.empty() && c.old_key != c.key) {
          if (!rows.contains(c.old_key) || rows.contains(c.key)) return std::nullopt;
          rows.erase(c.old_key);
        } else if (!rows.contains(c.key)) {
          return std::nullopt;
        }
        rows[c.key] = c.image;
        break;
      case Op::Delete:
        if (!rows.erase(c.key)) return std::nullopt;
        break;
    }
  }
  return rows;
}

/// The target after applying `actions`.
Table apply_target(Table rows, const TableActions& actions) {
  if (actions.truncate) rows.clear();
  for (const RowAction& d : actions.deletes) rows.erase(d.key);
  for (const RowAction& u : actions.upserts) rows[u.key] = u.image;
  return rows;
}

/// Every prior state of `keys` (each present or absent).
std::vector<Table> prior_states(const std::vector<std::string>& keys) {
  std::vector<Table> out;
  for (std::size_t mask = 0; mask < (std::size_t{1} << keys.size()); ++mask) {
    Table t;
    for (std::size_t k = 0; k < keys.size(); ++k) {
      if (mask & (std::size_t{1} << k)) t[keys[k]] = "(prior " + keys[k] + ")";
    }
    out.push_back(std::move(t));
  }
  return out;
}

/// What coalesce must return for `batch`, derived from the model.
struct Expected {
  bool possible = false;  // some prior state lets the source journal this batch
  bool truncate = false;
  Rows deletes;  // only the rows some possible prior state leaves on the target
  Rows upserts;  // the rows the batch leaves behind, with their last image
  std::size_t changes = 0;
  std::int64_t last_id = 0;
};

Expected expect(const std::vector<Change>& batch, const std::vector<std::string>& keys) {
  Expected e;
  e.changes = batch.size();
  // The last change touching each key since the last truncate, and the rows the batch leaves.
  std::map<std::string, std::int64_t> last_touch;
  Table left;  // The batch's own writes: prior rows it never touched do not matter here.
  for (const Change& c : batch) {
    e.last_id = std::max(e.last_id, c.id);
    switch (c.op) {
      case Op::Truncate:
        e.truncate = true;
        last_touch.clear();
        left.clear();
        break;
      case Op::Insert:
      case Op::Update:
        if (!c.old_key.empty() && c.old_key != c.key) {
          left.erase(c.old_key);
          last_touch[c.old_key] = c.id;
        }
        left[c.key] = c.image;
        last_touch[c.key] = c.id;
        break;
      case Op::Delete:
        left.erase(c.key);
        last_touch[c.key] = c.id;
        break;
    }
  }
  std::set<std::string> needs_delete;
  for (const Table& prior : prior_states(keys)) {
    const auto source = replay_source(prior, batch);
    if (!source) continue;
    e.possible = true;
    Table target = prior;
    if (e.truncate) target.clear();
    for (const auto& [key, id] : last_touch) {
      if (!source->contains(key) && target.contains(key)) needs_delete.insert(key);
    }
  }
  // A batch may be applied twice (its ack lost after the target committed): the target may then
  // hold any row the batch wrote, so every key it touched and left absent is deleted — unless a
  // truncate, applied first, cleared them all.
  if (!e.truncate) {
    for (const auto& [key, id] : last_touch) needs_delete.insert(key);
  }
  for (const auto& [key, id] : last_touch) {
    if (left.contains(key)) {
      e.upserts.push_back(upserted(key, left.at(key), id));
    } else if (needs_delete.contains(key)) {
      e.deletes.push_back(deleted(key, id));
    }
  }
  return e;
}

std::string describe(const std::vector<Change>& batch) {
  std::string out;
  for (const Change& c : batch) {
    if (!out.empty()) out += ", ";
    out += static_cast<char>(c.op);
    if (c.op == Op::Truncate) continue;
    out += c.old_key.empty() || c.old_key == c.key ? c.key : c.old_key + "->" + c.key;
  }
  return out;
}

/// Checks coalesce(batch) against the model, and that its actions bring a target from every
/// possible prior state to the state of the source.
void check(const std::vector<Change>& batch, const std::vector<std::string>& keys) {
  SCOPED_TRACE("batch: " + describe(batch));
  const Expected e = expect(batch, keys);
  const auto out = coalesce(batch);
  ASSERT_EQ(out.size(), 1U);
  const TableActions& t = out.at(kTable);
  EXPECT_EQ(t.truncate, e.truncate);
  EXPECT_EQ(t.changes, e.changes);
  EXPECT_EQ(t.last_id, e.last_id);
  EXPECT_EQ(t.upserts, e.upserts);
  if (!e.possible) {
    // No source journals this batch; all that is asked is that the last image wins and that no
    // row left behind is also deleted.
    for (const RowAction& d : t.deletes) {
      EXPECT_FALSE(std::any_of(t.upserts.begin(), t.upserts.end(), [&](const RowAction& u) { return u.key == d.key; }))
          << d.key;
    }
    return;
  }
  EXPECT_EQ(t.deletes, e.deletes);
  for (const Table& prior : prior_states(keys)) {
    const auto source = replay_source(prior, batch);
    if (!source) continue;
    EXPECT_EQ(apply_target(prior, t), *source) << "from a prior state with " << prior.size() << " rows";
  }
}

/// Every sequence of `length` steps, each step drawn from `steps` (a step builds a change from
/// its journal id). Returns how many batches were checked.
template <typename Step>
int check_every_sequence(const std::vector<Step>& steps, std::size_t length, const std::vector<std::string>& keys) {
  int checked = 0;
  std::vector<std::size_t> pick(length, 0);
  while (true) {
    std::vector<Change> batch;
    for (std::size_t i = 0; i < length; ++i) batch.push_back(steps[pick[i]](static_cast<std::int64_t>(i + 1)));
    check(batch, keys);
    ++checked;
    std::size_t i = 0;
    while (i < length && ++pick[i] == steps.size()) pick[i++] = 0;
    if (i == length) return checked;
  }
}

using Step = Change (*)(std::int64_t);

// Images carry the journal id, so the test sees which change's image won.
std::string image_of(const std::string& key, std::int64_t id) {
  return R"({"id": )" + key.substr(1, key.size() - 2) + R"(, "v": )" + std::to_string(id) + "}";
}

const std::vector<Step> kOneKeySteps = {
    [](std::int64_t id) { return insert(id, "[1]", image_of("[1]", id)); },
    [](std::int64_t id) { return update(id, "[1]", image_of("[1]", id)); },
    [](std::int64_t id) { return remove(id, "[1]"); },
    [](std::int64_t id) { return truncate(id); },
};

TEST(Coalesce, ModelAgreesOnEverySequenceOfTwoChangesToOneKey) {
  EXPECT_EQ(check_every_sequence(kOneKeySteps, 2, {"[1]"}), 16);
}

TEST(Coalesce, ModelAgreesOnEverySequenceOfThreeChangesToOneKey) {
  EXPECT_EQ(check_every_sequence(kOneKeySteps, 3, {"[1]"}), 64);
}

const std::vector<Step> kTwoKeySteps = {
    [](std::int64_t id) { return insert(id, "[1]", image_of("[1]", id)); },
    [](std::int64_t id) { return insert(id, "[2]", image_of("[2]", id)); },
    [](std::int64_t id) { return update(id, "[1]", image_of("[1]", id)); },
    [](std::int64_t id) { return update(id, "[2]", image_of("[2]", id)); },
    [](std::int64_t id) { return move_key(id, "[1]", "[2]", image_of("[2]", id)); },
    [](std::int64_t id) { return move_key(id, "[2]", "[1]", image_of("[1]", id)); },
    [](std::int64_t id) { return remove(id, "[1]"); },
    [](std::int64_t id) { return remove(id, "[2]"); },
    [](std::int64_t id) { return truncate(id); },
};

TEST(Coalesce, ModelAgreesOnEverySequenceOfThreeChangesToTwoKeysWithKeyChanges) {
  EXPECT_EQ(check_every_sequence(kTwoKeySteps, 3, {"[1]", "[2]"}), 729);
}

TEST(Coalesce, ModelAgreesOnEverySequenceOfFourChangesToTwoKeysWithKeyChanges) {
  EXPECT_EQ(check_every_sequence(kTwoKeySteps, 4, {"[1]", "[2]"}), 6561);
}

TEST(Coalesce, ModelDemandsADeleteOnlyWhereARowMayHaveExisted) {
  // The model itself, on the cases the brief names: without these, a model that never expected
  // deletes (or always did) would agree with a broken coalescer.
  // Inserted and deleted in the batch: deleted all the same (the batch may be applied twice).
  EXPECT_EQ(expect({insert(1, "[1]", "{}"), remove(2, "[1]")}, {"[1]"}).deletes, Rows{deleted("[1]", 2)});
  EXPECT_EQ(expect({update(1, "[1]", "{}"), remove(2, "[1]")}, {"[1]"}).deletes, Rows{deleted("[1]", 2)});
  EXPECT_EQ(expect({remove(1, "[1]"), insert(2, "[1]", "{}"), remove(3, "[1]")}, {"[1]"}).deletes,
            Rows{deleted("[1]", 3)});
  EXPECT_EQ(expect({truncate(1), insert(2, "[1]", "{}"), remove(3, "[1]")}, {"[1]"}).deletes, Rows{});
  EXPECT_FALSE(expect({insert(1, "[1]", "{}"), insert(2, "[1]", "{}")}, {"[1]"}).possible);
}

}  // namespace
}  // namespace pgferry
