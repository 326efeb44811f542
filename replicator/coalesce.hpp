#pragma once
// The coalescer: the changes of one batch (whole source transactions, in journal order) reduced
// to at most one action per target row, so the applier can write each table with one set-based
// upsert and one set-based delete. Pure and deterministic.
//
// Per key, in journal order:
//   insert + update(s)        -> upsert of the last image
//   insert + delete           -> delete (absent on the target, unless this batch is applied a
//                                second time after its ack was lost: then the first time left it)
//   delete + insert           -> upsert of the new image
//   update changing the key   -> delete of the old key + upsert of the new key
//   truncate                  -> forget every earlier change of that table; truncate first
// A row that existed before the batch and ends deleted is deleted, whatever happened between.

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "journal.hpp"

namespace pgferry {

/// The final state of one row after a batch.
struct RowAction {
  std::string key;           // JSON array of key values, as in Change::key
  std::string image;         // upserts: the last image (source column names); deletes: empty
  std::int64_t last_id = 0;  // journal id of the last change that decided this action
  friend bool operator==(const RowAction&, const RowAction&) = default;
};

/// What a batch does to one table.
struct TableActions {
  bool truncate = false;           // TRUNCATE before anything else (a T in the batch)
  std::vector<RowAction> deletes;  // sorted by key text
  std::vector<RowAction> upserts;  // sorted by key text
  std::size_t changes = 0;         // journal rows of this table in the batch, before coalescing
  std::int64_t last_id = 0;        // highest journal id of this table in the batch
};

/// Coalesces `changes` (sorted by id) per table and key. Tables are keyed by table_id.
[[nodiscard]] std::map<std::int32_t, TableActions> coalesce(const std::vector<Change>& changes);

}  // namespace pgferry
