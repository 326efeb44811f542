#pragma once
// Journal rows as the replicator reads them, decoded (simdjson) into what the coalescer needs:
// which table, which key, which image. Pure: no libpq.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "result.hpp"

namespace pgferry {

/// What a journal row says the target must do (pgferry.journal.op).
enum class Op : char { Insert = 'I', Update = 'U', Delete = 'D', Truncate = 'T' };

/// One journal row, decoded.
struct Change {
  std::int64_t id = 0;        // pgferry.journal.id: per row, commit order
  std::string xid;            // the source transaction (xid8 as text)
  std::int32_t table_id = 0;  // pgferry.captured_table.id
  Op op = Op::Insert;
  /// The key of the row the change leaves behind (I/U: the new key; D: the deleted key) as a
  /// minified JSON array of the key values in key-column order, e.g. [42,"eu"]. Empty for T.
  std::string key;
  /// For a U that changed the key: the old key, in the same form. Empty otherwise.
  std::string old_key;
  /// I/U: the row image, a JSON object keyed by source column names. Empty for D and T.
  std::string image;
  std::string captured_at;  // clock_timestamp() in the trigger: seconds since the epoch, as text
};

/// Decodes one journal row. `old_key_json` and `new_row_json` are the jsonb columns as text
/// (empty for NULL); `key_columns` are the table's source key columns in key order. Fails,
/// naming the journal id and the column, when the JSON is malformed or lacks a key column.
[[nodiscard]] Result<Change> decode_change(std::int64_t id, std::string xid, std::int32_t table_id, char op,
                                           std::string_view old_key_json, std::string_view new_row_json,
                                           const std::vector<std::string>& key_columns, std::string captured_at = {});

/// Rewrites a row image (source column names) into a JSON object keyed by target column names,
/// keeping only the mapped columns: `mapping` is pairs of {source, target}. Columns missing from
/// the image are left out (the target keeps its value or default).
[[nodiscard]] Result<std::string> map_image(std::string_view image_json,
                                            const std::vector<std::pair<std::string, std::string>>& mapping);

/// `text` as a JSON string literal, quotes included (control characters escaped as \uXXXX).
[[nodiscard]] std::string json_quote(std::string_view text);

/// Turns a key array ([42,"eu"]) into a JSON object keyed by `names` ({"id":42,"region":"eu"}).
[[nodiscard]] Result<std::string> key_object(std::string_view key_array_json, const std::vector<std::string>& names);

/// `ids` as int8multirange text, runs of consecutive ids merged: "{[1,3],[7,7]}" ("{}" when
/// empty). The journal ids of the batches in flight are mostly consecutive, so this stays a few
/// ranges where a bigint[] of them held thousands of ids, and the reader tests a row against it
/// (`@>`) by binary search whether its statement was planned for the values or prepared (a
/// `<> ALL` over a bigint[] parameter of a prepared statement is a linear scan per row).
[[nodiscard]] std::string id_ranges(std::vector<std::int64_t> ids);

}  // namespace pgferry
