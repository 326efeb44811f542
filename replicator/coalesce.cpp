#include "coalesce.hpp"

#include <algorithm>
#include <unordered_map>

namespace pgferry {
namespace {

/// One key's state while the batch is folded.
struct KeyState {
  bool born = false;     // the row did not exist before the batch (its first change made it)
  bool deleted = false;  // the row ends deleted (else upserted with `image`)
  std::string image;
  std::int64_t last_id = 0;
};

struct TableFold {
  bool truncate = false;
  std::size_t changes = 0;
  std::int64_t last_id = 0;
  std::unordered_map<std::string, KeyState> keys;
};

void upsert(TableFold& t, const std::string& key, const std::string& image, std::int64_t id, bool creates) {
  auto [it, inserted] = t.keys.try_emplace(key);
  KeyState& k = it->second;
  // A row first seen being created did not exist before the batch; a row first seen any other
  // way (update, or a delete followed by an insert) did.
  if (inserted) k.born = creates;
  k.deleted = false;
  k.image = image;
  k.last_id = id;
}

void remove(TableFold& t, const std::string& key, std::int64_t id) {
  auto [it, inserted] = t.keys.try_emplace(key);
  KeyState& k = it->second;
  if (inserted) k.born = false;
  k.deleted = true;
  k.image.clear();
  k.last_id = id;
}

}  // namespace

std::map<std::int32_t, TableActions> coalesce(const std::vector<Change>& changes) {
  std::map<std::int32_t, TableFold> folds;
  for (const Change& c : changes) {
    TableFold& t = folds[c.table_id];
    ++t.changes;
    t.last_id = std::max(t.last_id, c.id);
    switch (c.op) {
      case Op::Truncate:
        // Everything before the truncate is gone on the source; rows written after it are new.
        t.truncate = true;
        t.keys.clear();
        break;
      case Op::Insert:
        upsert(t, c.key, c.image, c.id, true);
        break;
      case Op::Update:
        if (!c.old_key.empty() && c.old_key != c.key) {
          remove(t, c.old_key, c.id);
          upsert(t, c.key, c.image, c.id, true);
        } else {
          upsert(t, c.key, c.image, c.id, false);
        }
        break;
      case Op::Delete:
        remove(t, c.key, c.id);
        break;
    }
  }

  std::map<std::int32_t, TableActions> out;
  for (auto& [table_id, t] : folds) {
    TableActions& a = out[table_id];
    a.truncate = t.truncate;
    a.changes = t.changes;
    a.last_id = t.last_id;
    for (auto& [key, k] : t.keys) {
      if (k.deleted) {
        // After a truncate (applied first) the row cannot be on the target. Born and died inside
        // the batch it is still deleted: this batch may be applied a second time (its ack was lost
        // after the target committed it), and the first time left the row there.
        if (t.truncate) continue;
        a.deletes.push_back(RowAction{key, {}, k.last_id});
      } else {
        a.upserts.push_back(RowAction{key, std::move(k.image), k.last_id});
      }
    }
    const auto by_key = [](const RowAction& x, const RowAction& y) { return x.key < y.key; };
    std::sort(a.deletes.begin(), a.deletes.end(), by_key);
    std::sort(a.upserts.begin(), a.upserts.end(), by_key);
  }
  return out;
}

}  // namespace pgferry
