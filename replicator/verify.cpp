#include "verify.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <tuple>
#include <unordered_map>
#include <unordered_set>

#include "apply_sql.hpp"
#include "capture_sql.hpp"
#include "journal.hpp"
#include "log.hpp"
#include "pg.hpp"
#include "setup.hpp"
#include "sql.hpp"

// How verify compares two servers without a shared snapshot and with bounded memory:
//
// Both sides are read in key order, in chunks of at most `chunk_rows` rows, with plain
// autocommit SELECTs (keyset pagination: WHERE key > last ORDER BY key LIMIT n), so no statement
// holds more than an ACCESS SHARE lock for a moment. A chunk is a key range (lo, hi]: the source
// decides hi (its n-th key), the target is read over the same range, and when the target alone
// holds n rows in it the range shrinks to the target's n-th key and the source is re-read over the
// smaller range. Comparing two key sets over one range needs no ordering in memory, only equality
// of the keys' text forms; the servers' orders agree because collatable key columns are ordered
// COLLATE "C" on both sides (byte order, independent of the servers' locales).
//
// Each row comes with md5(ROW(mapped columns)::text), computed on its server with the same output
// settings on both sessions; a source column whose type differs from its target column is cast to
// the target type first (json -> jsonb), so equal values have equal text. Per chunk the two lists
// are joined in memory: keys only in the source are missing on the target, keys only in the target
// are extra, and keys whose hashes differ are different.
//
// --repair re-walks only the ranges that differed. For each chunk's differing keys it opens a
// target transaction, takes the table's advisory lock exclusively (the replicator's batches hold it
// shared), then reads those keys' current rows from the source in a fresh statement and upserts
// them (the applier's statements) or deletes the keys the source no longer has. A batch that
// applied a newer change before the lock was granted is thus never overwritten by an older read.

namespace pgferry {
namespace {

using Key = std::vector<std::string>;  // key column values as text, in key order
using Bound = std::optional<Key>;      // a range end; nullopt is open

constexpr std::size_t kSampleKeys = 5;        // keys of each kind a report shows
constexpr std::size_t kRecheckKeys = 1000;    // keys of each kind the scheduler re-checks
constexpr std::size_t kDefaultChunk = 10000;  // rows per chunk and per repair transaction

const char* const kOutputSettings =
    "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'; "
    "SET extra_float_digits = 1; SET bytea_output = 'hex'";

std::size_t chunk_rows_from_env() {
  // For tests only (documented in OPERATIONS.md): small chunks exercise multi-chunk tables.
  if (const char* v = std::getenv("PGFERRY_TEST_VERIFY_CHUNK_ROWS"); v != nullptr) {
    const long n = std::atol(v);
    if (n > 0) return static_cast<std::size_t>(n);
  }
  return kDefaultChunk;
}

std::string encode_key(const Key& k) {
  std::string out;
  for (const auto& v : k) out += fmt::format("{}:{}", v.size(), v);
  return out;
}

/// A key for a person: the value alone for a one-column key, (a,b) for a composite one.
std::string display_key(const Key& k) {
  if (k.size() == 1) return k[0];
  std::string out = "(";
  for (std::size_t i = 0; i < k.size(); ++i) out += (i > 0 ? "," : "") + k[i];
  return out + ")";
}

std::string display_keys(const std::vector<Key>& keys, std::int64_t total) {
  std::string out;
  for (const auto& k : keys) out += (out.empty() ? "" : ", ") + display_key(k);
  if (total > static_cast<std::int64_t>(keys.size())) out += ", ...";
  return out;
}

std::string json_keys(const std::vector<Key>& keys) {
  std::string out = "[";
  for (std::size_t i = 0; i < keys.size(); ++i) {
    out += i > 0 ? ",[" : "[";
    for (std::size_t j = 0; j < keys[i].size(); ++j) out += (j > 0 ? "," : "") + json_quote(keys[i][j]);
    out += "]";
  }
  return out + "]";
}

/// JSON array of objects {name: value-as-text} for `keys`, e.g. [{"id":"42"}].
std::string key_objects(const std::vector<Key>& keys, const std::vector<std::string>& names) {
  std::string out = "[";
  for (std::size_t i = 0; i < keys.size(); ++i) {
    out += i > 0 ? ",{" : "{";
    for (std::size_t j = 0; j < names.size(); ++j) {
      out += (j > 0 ? "," : "") + json_quote(names[j]) + ":" + json_quote(keys[i][j]);
    }
    out += "}";
  }
  return out + "]";
}

/// One side of a table as verify reads it. Every expression is over the alias `t`.
struct SideSql {
  std::string relation;                // quoted
  std::string filter = "true";         // row filter (source only)
  std::vector<std::string> key;        // key column names, in key order
  std::vector<std::string> key_types;  // their format_type()
  std::vector<bool> key_collatable;    // ordered COLLATE "C"
  std::vector<std::string> values;     // hashed column expressions, in mapping order

  [[nodiscard]] std::string key_list(bool for_order) const {
    std::string out;
    for (std::size_t i = 0; i < key.size(); ++i) {
      if (i > 0) out += ", ";
      out += "t." + sql::quote_ident(key[i]);
      if (for_order && key_collatable[i]) out += " COLLATE \"C\"";
      if (!for_order) out += "::text";
    }
    return out;
  }
  /// `(key) op ($first..)`: one key column compares as a value, several as a row.
  [[nodiscard]] std::string key_compare(const char* op, std::size_t first) const {
    std::string params;
    for (std::size_t i = 0; i < key.size(); ++i) params += fmt::format("{}${}", i > 0 ? ", " : "", first + i);
    return fmt::format("({}) {} ({})", key_list(true), op, params);
  }
  [[nodiscard]] std::string row_hash() const {
    std::string cols;
    for (const auto& v : values) cols += (cols.empty() ? "" : ", ") + v;
    return fmt::format("md5(ROW({})::text)", cols);
  }
  /// Keys and row hashes of one chunk: (lo, hi], in key order, at most `limit` rows.
  [[nodiscard]] std::string chunk(bool lo, bool hi, std::size_t limit) const {
    std::string out = fmt::format("SELECT {}, {} FROM {} AS t WHERE {}", key_list(false), row_hash(), relation, filter);
    if (lo) out += " AND " + key_compare(">", 1);
    if (hi) out += " AND " + key_compare("<=", lo ? key.size() + 1 : 1);
    return out + fmt::format(" ORDER BY {} LIMIT {}", key_list(true), limit);
  }
  /// `FROM relation AS t JOIN <the keys in $1> WHERE filter`: the rows of the given keys.
  [[nodiscard]] std::string from_keys() const {
    std::string cols;
    std::string match;
    for (std::size_t i = 0; i < key.size(); ++i) {
      const auto q = sql::quote_ident(key[i]);
      cols += fmt::format("{}{} {}", i > 0 ? ", " : "", q, key_types[i]);
      match += fmt::format("{}t.{} = k.{}", i > 0 ? " AND " : "", q, q);
    }
    return fmt::format("FROM {} AS t JOIN jsonb_to_recordset($1::jsonb) AS k({}) ON {} WHERE {}", relation, cols, match,
                       filter);
  }
  /// Keys and row hashes of the rows whose keys are in $1 (key objects).
  [[nodiscard]] std::string lookup() const {
    return fmt::format("SELECT {}, {} {}", key_list(false), row_hash(), from_keys());
  }
};

/// A table as verify compares it.
struct Plan {
  const StreamTable* table = nullptr;
  SideSql source;
  SideSql target;
  std::string source_rows;  // SELECT key text, image text for the keys in $1 (repair)
  std::string upsert;
  std::string del;
  std::string lock;
};

struct Row {
  Key key;
  std::string hash;
};

/// What one chunk (or one re-check) found.
struct ChunkDiff {
  std::int64_t source_rows = 0;
  std::int64_t target_rows = 0;
  std::vector<Key> missing;
  std::vector<Key> extra;
  std::vector<Key> different;
  [[nodiscard]] bool empty() const { return missing.empty() && extra.empty() && different.empty(); }
};

ChunkDiff diff_rows(const std::vector<Row>& src, const std::vector<Row>& dst) {
  ChunkDiff d;
  d.source_rows = static_cast<std::int64_t>(src.size());
  d.target_rows = static_cast<std::int64_t>(dst.size());
  std::unordered_map<std::string, std::size_t> at;
  at.reserve(dst.size());
  for (std::size_t i = 0; i < dst.size(); ++i) at.emplace(encode_key(dst[i].key), i);
  std::vector<bool> seen(dst.size(), false);
  for (const auto& r : src) {
    const auto it = at.find(encode_key(r.key));
    if (it == at.end()) {
      d.missing.push_back(r.key);
      continue;
    }
    seen[it->second] = true;
    if (dst[it->second].hash != r.hash) d.different.push_back(r.key);
  }
  for (std::size_t i = 0; i < dst.size(); ++i) {
    if (!seen[i]) d.extra.push_back(dst[i].key);
  }
  return d;
}

/// What verify found in one table.
struct TableReport {
  std::string label;
  std::string source_table;
  std::string target_table;
  std::int64_t source_rows = 0;
  std::int64_t target_rows = 0;
  std::int64_t missing = 0;
  std::int64_t extra = 0;
  std::int64_t different = 0;
  std::int64_t repaired = 0;
  std::vector<Key> missing_keys;
  std::vector<Key> extra_keys;
  std::vector<Key> different_keys;
  bool deletes_refused = false;  // the mass-delete guard kept --repair from deleting
  bool repair_done = false;      // --repair went through every difference
  std::optional<std::string> error;
  std::vector<std::pair<Bound, Bound>> ranges;  // chunks that differed, for --repair

  [[nodiscard]] std::int64_t differences() const { return missing + extra + different; }
  void add(const ChunkDiff& d, std::size_t keep) {
    source_rows += d.source_rows;
    target_rows += d.target_rows;
    missing += static_cast<std::int64_t>(d.missing.size());
    extra += static_cast<std::int64_t>(d.extra.size());
    different += static_cast<std::int64_t>(d.different.size());
    for (auto [from, to] : {std::pair{&d.missing, &missing_keys}, std::pair{&d.extra, &extra_keys},
                            std::pair{&d.different, &different_keys}}) {
      for (const auto& k : *from) {
        if (to->size() >= keep) break;
        to->push_back(k);
      }
    }
  }
};

/// Cancel handles of the sessions a verify uses, so another thread can abort a statement.
class Cancels {
 public:
  void add(PGconn* conn) {
    std::lock_guard lock(mu_);
    if (PGcancel* c = PQgetCancel(conn); c != nullptr) cancels_.push_back(c);
  }
  void clear() {
    std::lock_guard lock(mu_);
    for (auto* c : cancels_) PQfreeCancel(c);
    cancels_.clear();
  }
  void cancel_all() {
    std::lock_guard lock(mu_);
    char buf[256];
    for (auto* c : cancels_) (void)PQcancel(c, buf, sizeof buf);
  }
  ~Cancels() { clear(); }

 private:
  std::mutex mu_;
  std::vector<PGcancel*> cancels_;
};

/// Compares (and repairs) tables over one source and one target session.
class Verifier {
 public:
  Verifier(const Config& config, std::size_t chunk_rows, const std::atomic<bool>* stop, Cancels* cancels)
      : config_(config), chunk_rows_(chunk_rows), stop_(stop), cancels_(cancels) {}

  /// Connects both sessions (again, when one was lost) with the same output settings.
  Status connect() {
    if (source_ && source_->alive() && target_ && target_->alive()) return Ok{};
    if (cancels_ != nullptr) cancels_->clear();
    source_.reset();
    target_.reset();
    auto s = Session::connect(config_.source, "source", "pgferry verify");
    if (!s) return std::move(s).error();
    auto t = Session::connect(config_.target, "target", "pgferry verify");
    if (!t) return std::move(t).error();
    source_.emplace(std::move(*s));
    target_.emplace(std::move(*t));
    for (auto* db : {&*source_, &*target_}) {
      if (auto r = db->run(kOutputSettings); !r) return r;
    }
    if (config_.apply.replica_role) {
      // Repairs write like the applier does: without firing the target's triggers and FKs.
      if (auto r = target_->run("SET session_replication_role = replica"); !r) return r;
    }
    if (cancels_ != nullptr) {
      cancels_->add(source_->raw());
      cancels_->add(target_->raw());
    }
    return Ok{};
  }

  /// Reads both catalogs and renders the statements for `t`.
  Result<Plan> plan(const StreamTable& t) {
    Plan p;
    p.table = &t;
    auto src_cols = columns(*source_, t.config->source.quoted());
    if (!src_cols) return std::move(src_cols).error();
    auto dst_cols = columns(*target_, t.shape.table.quoted());
    if (!dst_cols) return std::move(dst_cols).error();
    p.source.relation = t.config->source.quoted();
    p.target.relation = t.shape.table.quoted();
    p.source.filter = capture::filter_expression(t.capture, "t");
    for (auto [side, names, cols] :
         {std::tuple{&p.source, &t.source_key, &*src_cols}, std::tuple{&p.target, &t.shape.key, &*dst_cols}}) {
      for (const auto& k : *names) {
        const auto it = cols->find(k);
        if (it == cols->end()) {
          return runtime_error(t.label, fmt::format("key column {} is gone from {}", k, side->relation),
                               "run pgferry check to see what changed");
        }
        side->key.push_back(k);
        side->key_types.push_back(it->second.type);
        side->key_collatable.push_back(it->second.collatable);
      }
    }
    for (const auto& [s, d] : t.mapping) {
      const auto si = src_cols->find(s);
      const auto di = dst_cols->find(d);
      if (si == src_cols->end() || di == dst_cols->end()) {
        return runtime_error(t.label, fmt::format("column {} -> {} is gone", s, d), "run pgferry check");
      }
      std::string expr = "t." + sql::quote_ident(s);
      if (si->second.base != di->second.base) {
        // Compare in the target's type when the source can cast to it (json -> jsonb), so equal
        // values print alike; otherwise compare the text forms as they are.
        const auto cast = fmt::format("{}::{}", expr, di->second.type);
        if (source_->run(fmt::format("SELECT NULL::{}::{}", si->second.type, di->second.type))) expr = cast;
      }
      p.source.values.push_back(expr);
      p.target.values.push_back("t." + sql::quote_ident(d));
    }
    p.source_rows = fmt::format("SELECT {}, {}::text {}", p.source.key_list(false),
                                capture::image_expression(t.capture, "t"), p.source.from_keys());
    p.upsert = apply::render_upsert(t.shape, apply::Compare::Text);
    p.del = apply::render_delete(t.shape);
    p.lock = apply::render_table_locks({t.table_id}, false);
    return p;
  }

  /// Walks (lo, hi] chunk by chunk and calls `on_chunk` with each chunk's differences and range.
  Status walk(const Plan& p, Bound lo, const Bound& hi,
              const std::function<Status(const ChunkDiff&, const Bound&, const Bound&)>& on_chunk) {
    for (;;) {
      if (stopping()) return runtime_error(p.table->label, "verify stopped");
      auto src = fetch(*source_, p.source, lo, hi);
      if (!src) return std::move(src).error();
      Bound upper = src->size() == chunk_rows_ ? Bound(src->back().key) : hi;
      auto dst = fetch(*target_, p.target, lo, upper);
      if (!dst) return std::move(dst).error();
      if (dst->size() == chunk_rows_ && (!upper || dst->back().key != *upper)) {
        // The target holds a full chunk before the source's end of range: shrink the range to it.
        upper = dst->back().key;
        src = fetch(*source_, p.source, lo, upper);
        if (!src) return std::move(src).error();
      }
      if (auto s = on_chunk(diff_rows(*src, *dst), lo, upper); !s) return s;
      if (!upper || (hi && *upper == *hi)) return Ok{};
      lo = std::move(upper);
    }
  }

  /// Compares the whole table into `report`, keeping `keep` keys of each kind.
  Status compare(const Plan& p, TableReport& report, std::size_t keep, bool progress) {
    auto s = walk(p, std::nullopt, std::nullopt, [&](const ChunkDiff& d, const Bound& lo, const Bound& hi) -> Status {
      report.add(d, keep);
      if (!d.empty()) {
        // Adjacent differing chunks merge into one range.
        if (!report.ranges.empty() && report.ranges.back().second == lo) {
          report.ranges.back().second = hi;
        } else {
          report.ranges.emplace_back(lo, hi);
        }
      }
      if (progress) {
        print_stderr("\r\033[K{}: {} source rows, {} target rows compared, {} differ", report.label, report.source_rows,
                     report.target_rows, report.differences());
        (void)std::fflush(stderr);
      }
      return Ok{};
    });
    if (progress) print_stderr("\r\033[K");
    return s;
  }

  /// Repairs every range that differed, adding the rows written or deleted to report.repaired.
  Status repair(const Plan& p, TableReport& report, bool allow_delete) {
    for (const auto& [lo, hi] : report.ranges) {
      auto s = walk(p, lo, hi, [&](const ChunkDiff& d, const Bound&, const Bound&) -> Status {
        if (d.empty()) return Ok{};
        std::vector<Key> keys = d.missing;
        keys.insert(keys.end(), d.extra.begin(), d.extra.end());
        keys.insert(keys.end(), d.different.begin(), d.different.end());
        auto n = repair_keys(p, keys, allow_delete);
        if (!n) return std::move(n).error();
        report.repaired += *n;
        return Ok{};
      });
      if (!s) return s;
    }
    return Ok{};
  }

  /// Looks `keys` up again on both sides; returns what still differs among them.
  Result<ChunkDiff> recheck(const Plan& p, const std::vector<Key>& keys) {
    ChunkDiff all;
    for (std::size_t at = 0; at < keys.size(); at += chunk_rows_) {
      const std::vector<Key> part(keys.begin() + static_cast<std::ptrdiff_t>(at),
                                  keys.begin() + static_cast<std::ptrdiff_t>(std::min(keys.size(), at + chunk_rows_)));
      auto src = rows(*source_, p.source.lookup(), {key_objects(part, p.source.key)}, p.source.key.size());
      if (!src) return std::move(src).error();
      auto dst = rows(*target_, p.target.lookup(), {key_objects(part, p.target.key)}, p.target.key.size());
      if (!dst) return std::move(dst).error();
      auto d = diff_rows(*src, *dst);
      for (auto [from, to] : {std::pair{&d.missing, &all.missing}, std::pair{&d.extra, &all.extra},
                              std::pair{&d.different, &all.different}}) {
        to->insert(to->end(), from->begin(), from->end());
      }
    }
    return all;
  }

 private:
  struct Column {
    std::string type;  // format_type with modifiers
    std::string base;  // without
    bool collatable = false;
  };

  bool stopping() const { return stop_ != nullptr && stop_->load(); }

  static Result<std::unordered_map<std::string, Column>> columns(Session& db, const std::string& relation) {
    auto r = db.query(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod), format_type(a.atttypid, NULL), a.attcollation <> 0 "
        "FROM pg_attribute a WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped",
        {relation});
    if (!r) return std::move(r).error();
    std::unordered_map<std::string, Column> out;
    for (int i = 0; i < PQntuples(r->get()); ++i) {
      out[value(r->get(), i, 0)] = Column{value(r->get(), i, 1), value(r->get(), i, 2), is_true(r->get(), i, 3)};
    }
    return out;
  }

  static Result<std::vector<Row>> rows(Session& db, const std::string& sql, const std::vector<Param>& params,
                                       std::size_t key_columns) {
    auto r = db.query(sql, params);
    if (!r) return std::move(r).error();
    std::vector<Row> out;
    const int n = PQntuples(r->get());
    out.reserve(static_cast<std::size_t>(n));
    const int k = static_cast<int>(key_columns);
    for (int i = 0; i < n; ++i) {
      Row row;
      for (int c = 0; c < k; ++c) row.key.push_back(value(r->get(), i, c));
      row.hash = value(r->get(), i, k);
      out.push_back(std::move(row));
    }
    return out;
  }

  Result<std::vector<Row>> fetch(Session& db, const SideSql& side, const Bound& lo, const Bound& hi) {
    std::vector<Param> params;
    if (lo) params.insert(params.end(), lo->begin(), lo->end());
    if (hi) params.insert(params.end(), hi->begin(), hi->end());
    return rows(db, side.chunk(lo.has_value(), hi.has_value(), chunk_rows_), params, side.key.size());
  }

  /// One target transaction: lock the table, re-read `keys` from the source, upsert what the
  /// source has and delete (when allowed) what it does not.
  Result<std::int64_t> repair_keys(const Plan& p, const std::vector<Key>& keys, bool allow_delete) {
    if (auto s = target_->run("BEGIN"); !s) return std::move(s).error();
    auto fail = [&](Error e) -> Result<std::int64_t> {
      (void)target_->run("ROLLBACK");
      return e;
    };
    if (auto s = target_->run(p.lock); !s) return fail(std::move(s).error());
    // Only now, with every batch of this table excluded, read what to write.
    auto r = source_->query(p.source_rows, {key_objects(keys, p.source.key)});
    if (!r) return fail(std::move(r).error());
    std::unordered_set<std::string> found;
    std::string images = "[";
    const int k = static_cast<int>(p.source.key.size());
    for (int i = 0; i < PQntuples(r->get()); ++i) {
      Key key;
      for (int c = 0; c < k; ++c) key.push_back(value(r->get(), i, c));
      found.insert(encode_key(key));
      auto mapped = map_image(value(r->get(), i, k), p.table->mapping);
      if (!mapped) return fail(std::move(mapped).error());
      images += (images.size() > 1 ? "," : "") + *mapped;
    }
    images += "]";
    std::vector<Key> gone;
    for (const auto& key : keys) {
      if (!found.contains(encode_key(key))) gone.push_back(key);
    }
    std::int64_t changed = 0;
    if (!gone.empty() && allow_delete) {
      auto d = target_->query(p.del, {key_objects(gone, p.target.key)});
      if (!d) return fail(std::move(d).error());
      changed += std::atoll(PQcmdTuples(d->get()));
    }
    if (!found.empty()) {
      auto u = target_->query(p.upsert, {images});
      if (!u) return fail(std::move(u).error());
      changed += std::atoll(PQcmdTuples(u->get()));
    }
    if (auto s = target_->run("COMMIT"); !s) return fail(std::move(s).error());
    return changed;
  }

  const Config& config_;
  std::size_t chunk_rows_;
  const std::atomic<bool>* stop_;
  Cancels* cancels_;
  std::optional<Session> source_;
  std::optional<Session> target_;
};

/// The keys a report kept, of every kind.
std::vector<Key> kept_keys(const TableReport& r) {
  std::vector<Key> keys = r.missing_keys;
  keys.insert(keys.end(), r.extra_keys.begin(), r.extra_keys.end());
  keys.insert(keys.end(), r.different_keys.begin(), r.different_keys.end());
  return keys;
}

bool guard_refuses(const Config& config, const TableReport& r) {
  return r.extra > 0 && r.target_rows >= config.guard.min_rows &&
         static_cast<double>(r.extra) > config.guard.max_delete_fraction * static_cast<double>(r.target_rows);
}

void print_text(const std::vector<TableReport>& reports, bool repair) {
  for (const auto& r : reports) {
    fmt::print("{}\n", r.label);
    if (r.error) {
      fmt::print("  error: {}\n", *r.error);
      continue;
    }
    fmt::print("  source rows:       {}\n  target rows:       {}\n", r.source_rows, r.target_rows);
    for (auto [what, n, keys] : {std::tuple{"missing on target:", r.missing, &r.missing_keys},
                                 std::tuple{"extra on target:  ", r.extra, &r.extra_keys},
                                 std::tuple{"different:        ", r.different, &r.different_keys}}) {
      if (n == 0) {
        fmt::print("  {} 0\n", what);
      } else {
        fmt::print("  {} {} ({})\n", what, n, display_keys(*keys, n));
      }
    }
    if (repair) {
      fmt::print("  repaired:          {}{}\n", r.repaired,
                 r.deletes_refused ? " (extra rows not deleted: mass-delete guard)" : "");
    }
  }
}

void print_json(const std::vector<TableReport>& reports, bool repair, bool ok) {
  std::string out = "{\"ok\":";
  out += ok ? "true" : "false";
  out += ",\"tables\":[";
  for (std::size_t i = 0; i < reports.size(); ++i) {
    const auto& r = reports[i];
    out += i > 0 ? ",{" : "{";
    out += fmt::format(
        "\"table\":{},\"target_table\":{},\"source_rows\":{},\"target_rows\":{},\"missing\":{},\"extra\":{},"
        "\"different\":{},\"missing_keys\":{},\"extra_keys\":{},\"different_keys\":{}",
        json_quote(r.source_table), json_quote(r.target_table), r.source_rows, r.target_rows, r.missing, r.extra,
        r.different, json_keys(r.missing_keys), json_keys(r.extra_keys), json_keys(r.different_keys));
    if (repair) {
      out += fmt::format(",\"repaired\":{},\"deletes_refused\":{}", r.repaired, r.deletes_refused ? "true" : "false");
    }
    out += ",\"error\":" + (r.error ? json_quote(*r.error) : std::string("null"));
    out += "}";
  }
  out += "]}\n";
  fmt::print("{}", out);
}

}  // namespace

int run_verify(const Config& config, const VerifyOptions& options) {
  const TableConfig* only = nullptr;
  if (options.table) {
    auto name = sql::parse_qualified_name(*options.table);
    if (!name) {
      auto e = std::move(name).error();
      e.where = "--table";
      print_error(e);
      return 2;
    }
    only = config.find_table(*name);
    if (only == nullptr) {
      print_error(config_error(
          "--table", fmt::format("{} is not a configured table", name->display()),
          "name a source table listed under tables: in the configuration, e.g. --table " +
              (config.tables.empty() ? std::string("public.users") : config.tables.front().source.display())));
      return 2;
    }
  }
  std::vector<StreamTable> tables;
  if (const int code = load_stream_tables(config, tables); code != 0) return code;

  const bool progress = isatty(STDERR_FILENO) != 0;
  Verifier v(config, chunk_rows_from_env(), nullptr, nullptr);
  std::vector<TableReport> reports;
  bool failed = false;
  for (const auto& t : tables) {
    if (only != nullptr && t.config != only) continue;
    TableReport r;
    r.label = t.label;
    r.source_table = t.config->source.display();
    r.target_table = t.shape.table.display();
    auto fail = [&](const Error& e) {
      r.error = e.describe();
      print_error(e);
      failed = true;
    };
    if (auto s = v.connect(); !s) {
      fail(s.error());
      reports.push_back(std::move(r));
      continue;
    }
    auto p = v.plan(t);
    if (!p) {
      fail(p.error());
      reports.push_back(std::move(r));
      continue;
    }
    if (auto s = v.compare(*p, r, kSampleKeys, progress); !s) {
      fail(s.error());
      reports.push_back(std::move(r));
      continue;
    }
    if (options.repair && r.differences() > 0) {
      r.deletes_refused = !options.allow_mass_delete && guard_refuses(config, r);
      if (r.deletes_refused) {
        print_error(runtime_error(
            t.label,
            fmt::format("--repair would delete {} of its {} target rows ({:.0f}%), more than guard.max_delete_fraction "
                        "({:.0f}%); no row was deleted from it",
                        r.extra, r.target_rows,
                        100.0 * static_cast<double>(r.extra) / static_cast<double>(r.target_rows),
                        100.0 * config.guard.max_delete_fraction),
            "check that the source really lost these rows (a broken upstream load looks the same); then run "
            "pgferry verify --repair --allow-mass-delete" +
                std::string(only != nullptr ? " --table " + r.source_table : std::string())));
        failed = true;
      }
      if (auto s = v.repair(*p, r, !r.deletes_refused); !s) {
        fail(s.error());
      } else {
        r.repair_done = true;
      }
    }
    if (r.differences() > 0 && !r.repair_done) failed = true;
    reports.push_back(std::move(r));
  }
  if (options.json) {
    print_json(reports, options.repair, !failed);
  } else {
    print_text(reports, options.repair);
    std::int64_t differing = 0;
    for (const auto& r : reports) differing += r.differences() > 0 ? 1 : 0;
    if (differing == 0 && !failed) {
      fmt::print("source and target agree ({} table{})\n", reports.size(), reports.size() == 1 ? "" : "s");
    } else if (options.repair && !failed) {
      fmt::print("repaired {} table{}; source and target now agree\n", differing, differing == 1 ? "" : "s");
    } else {
      fmt::print("{} of {} table{} differ{}\n", differing, reports.size(), reports.size() == 1 ? "" : "s",
                 options.repair ? "" : "; pgferry verify --repair fixes them");
    }
  }
  return failed ? 1 : 0;
}

// ---------------------------------------------------------------------------------------------
// verify.every inside `pgferry run`.

struct VerifyScheduler::Impl {
  const Config& config;
  std::vector<StreamTable> tables;
  Control& control;
  std::chrono::milliseconds every;
  std::mutex mu;
  std::condition_variable cv;
  std::atomic<bool> stop{false};
  Cancels cancels;
  std::thread thread;

  Impl(const Config& c, std::vector<StreamTable> t, Control& ctl)
      : config(c), tables(std::move(t)), control(ctl), every(c.verify.every) {
    // For tests only (documented in OPERATIONS.md): verify.every cannot be below 1m.
    if (const char* v = std::getenv("PGFERRY_TEST_VERIFY_EVERY_MS"); v != nullptr && std::atol(v) > 0) {
      every = std::chrono::milliseconds(std::atol(v));
    }
  }

  bool stopping() const { return stop.load() || control.stopping(); }

  /// Sleeps `d` or until stopped; returns false when stopped.
  bool pause(std::chrono::milliseconds d) {
    const auto until = std::chrono::steady_clock::now() + d;
    std::unique_lock lock(mu);
    while (!stopping()) {
      const auto now = std::chrono::steady_clock::now();
      if (now >= until) return true;
      // Control has no way to notify this condition variable; look at it every 200 ms.
      cv.wait_for(lock, std::min<std::chrono::steady_clock::duration>(until - now, std::chrono::milliseconds(200)));
    }
    return false;
  }

  void loop() {
    while (pause(every)) {
      try {
        round();
      } catch (const std::exception& e) {
        spdlog::error("verify: {}", e.what());
      }
    }
  }

  void round() {
    std::atomic<bool>* stop_flag = &stop;
    Verifier v(config, chunk_rows_from_env(), stop_flag, &cancels);
    struct Pending {
      Plan plan;
      TableReport report;
    };
    std::vector<Pending> pending;
    for (const auto& t : tables) {
      if (stopping()) return;
      TableReport r;
      r.label = t.label;
      Status s = v.connect();
      std::optional<Plan> plan;
      if (s) {
        auto p = v.plan(t);
        if (p) {
          plan = std::move(*p);
          s = v.compare(*plan, r, kRecheckKeys, false);
        } else {
          s = std::move(p).error();
        }
      }
      if (!s) {
        if (!stopping()) spdlog::error("verify {}: {}", t.label, s.error().describe());
        continue;
      }
      if (r.differences() == 0) {
        spdlog::info("verify {}: source {} rows, target {} rows; they agree", r.label, r.source_rows, r.target_rows);
        continue;
      }
      pending.push_back({std::move(*plan), std::move(r)});
    }
    if (pending.empty()) return;
    // The replicator may simply not have applied a change yet: look again after it had time to.
    const auto wait = 2 * config.poll_interval;
    for (const auto& p : pending) {
      spdlog::info("verify {}: {} rows differ at first look ({}); checking them again in {}", p.report.label,
                   p.report.differences(), display_keys(kept_keys(p.report), p.report.differences()),
                   format_duration(wait));
    }
    if (!pause(wait)) return;
    for (auto& p : pending) {
      auto& r = p.report;
      const std::vector<Key> keys = kept_keys(r);
      Status s = v.connect();
      if (!s) {
        if (!stopping()) spdlog::error("verify {}: {}", r.label, s.error().describe());
        continue;
      }
      auto again = v.recheck(p.plan, keys);
      if (!again) {
        if (!stopping()) spdlog::error("verify {}: {}", r.label, again.error().describe());
        continue;
      }
      // Keys beyond those kept for the re-check are counted as first seen.
      const auto unchecked = [](std::int64_t total, std::size_t kept) {
        return total - static_cast<std::int64_t>(kept);
      };
      const std::int64_t missing =
          unchecked(r.missing, r.missing_keys.size()) + static_cast<std::int64_t>(again->missing.size());
      const std::int64_t extra =
          unchecked(r.extra, r.extra_keys.size()) + static_cast<std::int64_t>(again->extra.size());
      const std::int64_t different =
          unchecked(r.different, r.different_keys.size()) + static_cast<std::int64_t>(again->different.size());
      if (missing + extra + different == 0) {
        spdlog::info(
            "verify {}: source {} rows, target {} rows; they agree (rows that differed at first were in flight)",
            r.label, r.source_rows, r.target_rows);
        continue;
      }
      auto sample = [](std::vector<Key> keys_of_kind) {
        if (keys_of_kind.size() > kSampleKeys) keys_of_kind.resize(kSampleKeys);
        return keys_of_kind;
      };
      spdlog::warn(
          "verify {}: source {} rows, target {} rows; {} missing on target, {} extra on target, {} different; "
          "missing: [{}], extra: [{}], different: [{}]; pgferry verify --repair fixes them",
          r.label, r.source_rows, r.target_rows, missing, extra, different,
          display_keys(sample(again->missing), missing), display_keys(sample(again->extra), extra),
          display_keys(sample(again->different), different));
    }
  }
};

VerifyScheduler::VerifyScheduler(const Config& config, std::vector<StreamTable> tables, Control& control)
    : impl_(std::make_unique<Impl>(config, std::move(tables), control)) {}

VerifyScheduler::~VerifyScheduler() { stop(); }

void VerifyScheduler::start() {
  if (impl_->every.count() <= 0 || impl_->thread.joinable() || impl_->tables.empty()) return;
  spdlog::info("verify: every {}, report only", format_duration(impl_->every));
  impl_->thread = std::thread([this] { impl_->loop(); });
}

void VerifyScheduler::stop() {
  if (!impl_->thread.joinable()) return;
  {
    std::lock_guard lock(impl_->mu);
    impl_->stop = true;
  }
  impl_->cv.notify_all();
  impl_->cancels.cancel_all();
  impl_->thread.join();
}

}  // namespace pgferry
