#pragma once
// Renders the per-table capture function and triggers (template: triggers/capture.sql).

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "sql.hpp"

namespace pgferry::capture {

/// Name of the row-level trigger pgferry puts on every replicated source table.
inline constexpr const char* kRowTrigger = "pgferry_capture";
/// Name of the statement-level TRUNCATE trigger.
inline constexpr const char* kTruncateTrigger = "pgferry_capture_truncate";
/// Name of the statement-level INSERT trigger of a set-based capture (see
/// CaptureSpec::set_based), and of the transition table it reads.
inline constexpr const char* kInsertTrigger = "pgferry_capture_insert";
inline constexpr const char* kInsertedRows = "pgferry_inserted";
/// Name of the guard of a set-based capture: a row trigger with a transition table that never
/// fires (WHEN (false)). PostgreSQL refuses to make a table with such a trigger a partition or an
/// inheritance child, which would route writes past the statement trigger; see render_capture.
inline constexpr const char* kGuardTrigger = "pgferry_capture_guard";
inline constexpr const char* kGuardedRows = "pgferry_guarded";
/// NOTIFY channel of the doorbell.
inline constexpr const char* kChannel = "pgferry";
/// Advisory lock (two int4 keys) the replicator's LISTEN session holds exclusively while it
/// listens; triggers ring only while it is held. 0x70676672 is "pgfr".
inline constexpr std::int32_t kLockClass = 0x70676672;
inline constexpr std::int32_t kListenLock = 1;
/// Advisory lock `setup`, `teardown` and the migration runner hold for their transaction.
inline constexpr std::int32_t kSetupLock = 2;
/// Advisory lock the replicator's reader session holds while it streams the journal: one run
/// reads and acknowledges a journal at a time; another stands by until it is free.
inline constexpr std::int32_t kStreamLock = 3;

/// What to capture for one table.
struct CaptureSpec {
  std::int32_t table_id = 0;             // pgferry.captured_table.id
  sql::QualifiedName table;              // the source table
  std::vector<std::string> key_columns;  // its primary key columns, in key order
  std::vector<std::string> columns;      // columns to journal; empty means every column
  /// Columns journaled as a JSON string of their text form instead of as JSON values: json and
  /// jsonb (see captured_as_text). Any such column makes the image list its columns explicitly.
  std::vector<std::string> text_columns;
  std::string where;     // row filter over the table's columns; empty for none
  bool truncate = true;  // install the TRUNCATE trigger
  /// Capture INSERT per statement, from its transition table (UPDATE and DELETE stay per row).
  /// Only for an ordinary table that is neither a partition nor an inheritance child: a write
  /// routed to a partition through its parent fires the partition's row triggers, not its
  /// statement triggers.
  bool set_based = false;
};

/// Whether a column of type `base_type` (format_type without modifiers) is journaled as its text
/// form. json and jsonb are: to_jsonb() would turn JSON null into SQL NULL on the target, reorder
/// and deduplicate a json value's keys, drop its whitespace, and refuse json holding \u0000 —
/// failing the application's own write. The applier turns the text back into the target type.
[[nodiscard]] bool captured_as_text(std::string_view base_type);

/// The row image exactly as the capture trigger journals it, as an expression over `rec` (a row
/// variable or a table alias): rows read outside the journal (the sweep, `verify --repair`,
/// `errors retry`) then go through the applier's statements just like journaled changes.
[[nodiscard]] std::string image_expression(const CaptureSpec& spec, std::string_view rec);

/// The key as the trigger journals an old key: a jsonb object of the key columns over `rec`.
[[nodiscard]] std::string key_expression(const CaptureSpec& spec, std::string_view rec);

/// Whether `rec` passes the table's row filter, as the trigger decides it ("true" without one).
[[nodiscard]] std::string filter_expression(const CaptureSpec& spec, std::string_view rec);

/// The SQL that installs capture for one table.
struct CaptureDdl {
  std::string function_name;            // pgferry.capture_<id>, quoted
  std::vector<std::string> statements;  // run in order, inside setup's transaction
  std::string fingerprint;              // changes whenever any statement would change
};

/// Renders the capture function and the triggers for `spec`.
[[nodiscard]] CaptureDdl render_capture(const CaptureSpec& spec);

/// The triggers render_capture installs for `spec`, by name.
[[nodiscard]] std::vector<std::string> trigger_names(const CaptureSpec& spec);

/// Statements that remove capture from a table (IF EXISTS throughout, so they are safe to rerun).
/// `table_exists` is false when the table itself is gone and only the function is left to drop.
[[nodiscard]] std::vector<std::string> render_drop_capture(const sql::QualifiedName& table,
                                                           const std::string& function_name, bool table_exists);

/// The unquoted function name used for a table id: capture_<id> in schema pgferry.
[[nodiscard]] std::string function_name_for(std::int32_t table_id);

/// A 64-bit FNV-1a hash as 16 hex digits; used to notice changed DDL, not for security.
[[nodiscard]] std::string fingerprint_of(const std::vector<std::string>& parts);

}  // namespace pgferry::capture
