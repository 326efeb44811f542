#include "config.hpp"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

extern char** environ;  // NOLINT(readability-redundant-declaration): POSIX, not in a header.

namespace pgferry {
namespace {

using std::chrono::milliseconds;

// Levenshtein distance, to suggest the key a typo meant.
size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : ", ") + s;
  return out;
}

// Reads one configuration document, remembering where each value came from.
class Parser {
 public:
  Parser(std::string_view origin, const Env& env) : origin_(origin), env_(env) {}

  Result<Config> parse(YAML::Node root) {
    Config cfg;
    cfg.origin = origin_;
    if (root.IsNull()) root = YAML::Node(YAML::NodeType::Map);
    if (!root.IsMap())
      return error(root, "", "the configuration must be a mapping of keys to values",
                   "start from the example in docs/CONFIGURATION.md");
    if (auto s = apply_env_overrides(root, cfg); !s) return std::move(s).error();
    if (auto s =
            known_keys(root, "",
                       {"source", "target", "tables", "sweep", "batch", "apply", "journal", "reconnect", "connection",
                        "guard", "verify", "doorbell", "poll_interval", "shutdown_timeout", "http", "health", "log"});
        !s) {
      return std::move(s).error();
    }

    auto source = required_string(root, "source", "a libpq conninfo or URI, e.g. \"host=db port=5432 dbname=app\"");
    if (!source) return std::move(source).error();
    cfg.source = std::move(*source);
    auto target = required_string(root, "target", "a libpq conninfo or URI, e.g. \"postgresql://pgferry@replica/app\"");
    if (!target) return std::move(target).error();
    cfg.target = std::move(*target);

    if (auto s = parse_tables(root["tables"], cfg); !s) return std::move(s).error();
    if (auto s = parse_sweep(root["sweep"], cfg.sweep); !s) return std::move(s).error();
    if (auto s = parse_batch(root["batch"], cfg.batch); !s) return std::move(s).error();
    if (auto s = parse_apply(root["apply"], cfg.apply); !s) return std::move(s).error();
    if (auto s = parse_journal(root["journal"], cfg.journal); !s) return std::move(s).error();
    if (auto s = parse_reconnect(root["reconnect"], cfg.reconnect); !s) return std::move(s).error();
    if (auto s = parse_connection(root["connection"], cfg.connection); !s) return std::move(s).error();
    if (auto s = parse_guard(root["guard"], cfg.guard); !s) return std::move(s).error();
    if (auto s = parse_verify(root["verify"], cfg.verify); !s) return std::move(s).error();
    if (auto s = parse_doorbell(root["doorbell"], cfg.doorbell); !s) return std::move(s).error();
    if (root["poll_interval"].IsDefined()) {
      auto d = duration_value(root["poll_interval"], "poll_interval");
      if (!d) return std::move(d).error();
      if (*d < milliseconds(10)) {
        return error(root["poll_interval"], "poll_interval",
                     fmt::format("{} is shorter than 10ms", format_duration(*d)),
                     "use at least 10ms (default 1s); the doorbell, not the poll, keeps latency low");
      }
      cfg.poll_interval = *d;
    }
    if (root["shutdown_timeout"].IsDefined()) {
      auto d = duration_value(root["shutdown_timeout"], "shutdown_timeout");
      if (!d) return std::move(d).error();
      cfg.shutdown_timeout = *d;
    }
    if (auto s = parse_http(root["http"], cfg.http); !s) return std::move(s).error();
    if (auto s = parse_health(root["health"], cfg.health); !s) return std::move(s).error();
    if (auto s = parse_log(root["log"], cfg.log); !s) return std::move(s).error();
    cfg.warnings = std::move(warnings_);
    return cfg;
  }

 private:
  // Where a node is, for messages: "pgferry.yaml:12" or "environment variable PGFERRY_SOURCE".
  std::string where(const YAML::Node& node, const std::string& key) const {
    if (auto it = env_keys_.find(key); it != env_keys_.end()) return "environment variable " + it->second;
    // Keys inside a list that came from PGFERRY_TABLES: "environment variable PGFERRY_TABLES: tables[0].name".
    if (key.rfind("tables[", 0) == 0) {
      if (auto it = env_keys_.find("tables"); it != env_keys_.end())
        return "environment variable " + it->second + ": " + key;
    }
    std::string out = origin_;
    if (node.IsDefined() && node.Mark().line >= 0) out += fmt::format(":{}", node.Mark().line + 1);
    if (!key.empty()) out += ": " + key;
    return out;
  }

  Error error(const YAML::Node& node, const std::string& key, std::string message, std::string fix = {}) const {
    return config_error(where(node, key), std::move(message), std::move(fix));
  }

  static std::string describe(const YAML::Node& node) {
    if (node.IsScalar()) return fmt::format("'{}'", node.Scalar());
    if (node.IsSequence()) return "a list";
    if (node.IsMap()) return "a mapping";
    return "nothing";
  }

  // The environment overrides every key: PGFERRY_SOURCE, PGFERRY_SWEEP_INTERVAL, PGFERRY_TABLES
  // (a YAML list), ... They are applied to the document before validation, so they are checked
  // exactly like file values.
  Status apply_env_overrides(YAML::Node& root, Config& cfg) {
    static const std::vector<std::pair<std::string, std::string>> kScalars = {
        {"PGFERRY_SOURCE", "source"},
        {"PGFERRY_TARGET", "target"},
        {"PGFERRY_SWEEP_INTERVAL", "sweep.interval"},
        {"PGFERRY_SWEEP_LOOKBACK_MULTIPLIER", "sweep.lookback_multiplier"},
        {"PGFERRY_BATCH_MAX_ROWS", "batch.max_rows"},
        {"PGFERRY_BATCH_MAX_BYTES", "batch.max_bytes"},
        {"PGFERRY_APPLY_REPLICA_ROLE", "apply.replica_role"},
        {"PGFERRY_APPLY_SYNCHRONOUS_COMMIT", "apply.synchronous_commit"},
        {"PGFERRY_JOURNAL_VACUUM_AFTER_ROWS", "journal.vacuum_after_rows"},
        {"PGFERRY_RECONNECT_INITIAL_DELAY", "reconnect.initial_delay"},
        {"PGFERRY_RECONNECT_MAX_DELAY", "reconnect.max_delay"},
        {"PGFERRY_RECONNECT_MAX_ATTEMPTS", "reconnect.max_attempts"},
        {"PGFERRY_RECONNECT_HEALTHY_AFTER", "reconnect.healthy_after"},
        {"PGFERRY_CONNECTION_KEEPALIVES_IDLE", "connection.keepalives_idle"},
        {"PGFERRY_CONNECTION_TCP_USER_TIMEOUT", "connection.tcp_user_timeout"},
        {"PGFERRY_CONNECTION_HEARTBEAT_INTERVAL", "connection.heartbeat_interval"},
        {"PGFERRY_CONNECTION_CONNECT_TIMEOUT", "connection.connect_timeout"},
        {"PGFERRY_GUARD_MAX_DELETE_FRACTION", "guard.max_delete_fraction"},
        {"PGFERRY_GUARD_MIN_ROWS", "guard.min_rows"},
        {"PGFERRY_VERIFY_EVERY", "verify.every"},
        {"PGFERRY_DOORBELL_OFF_ABOVE", "doorbell.off_above"},
        {"PGFERRY_DOORBELL_BUSY_INTERVAL", "doorbell.busy_interval"},
        {"PGFERRY_POLL_INTERVAL", "poll_interval"},
        {"PGFERRY_SHUTDOWN_TIMEOUT", "shutdown_timeout"},
        {"PGFERRY_HTTP_LISTEN", "http.listen"},
        {"PGFERRY_HEALTH_MAX_LAG", "health.max_lag"},
        {"PGFERRY_HEALTH_CHECK_INTERVAL", "health.check_interval"},
        {"PGFERRY_LOG_LEVEL", "log.level"},
        {"PGFERRY_LOG_FORMAT", "log.format"},
    };
    std::set<std::string, std::less<>> known = {"PGFERRY_CONFIG", "PGFERRY_TABLES"};
    for (const auto& [var, key] : kScalars) {
      known.insert(var);
      auto it = env_.find(var);
      if (it == env_.end()) continue;
      env_keys_[key] = var;
      const auto dot = key.find('.');
      if (dot == std::string::npos) {
        root[key] = it->second;
      } else {
        const auto section = key.substr(0, dot);
        if (root[section].IsDefined() && !root[section].IsMap()) continue;  // Reported by the section parser.
        root[section][key.substr(dot + 1)] = it->second;
      }
    }
    if (auto it = env_.find("PGFERRY_TABLES"); it != env_.end()) {
      env_keys_["tables"] = "PGFERRY_TABLES";
      try {
        root["tables"] = YAML::Load(it->second);
      } catch (const YAML::Exception& e) {
        return config_error("environment variable PGFERRY_TABLES", fmt::format("is not valid YAML: {}", e.msg),
                            "set it to a YAML list, e.g. '[public.users, {name: public.orders}]'");
      }
    }
    for (const auto& [name, value] : env_) {
      if (name.rfind("PGFERRY_", 0) == 0 && !known.contains(name) && name.rfind("PGFERRY_TEST", 0) != 0 &&
          name.rfind("PGFERRY_QUICKSTART", 0) != 0 && name.rfind("PGFERRY_PG_", 0) != 0 &&
          name != "PGFERRY_SKIP_DEPS") {
        cfg.warnings.push_back(fmt::format("environment variable {} is not a pgferry setting and is ignored", name));
      }
    }
    warnings_ = cfg.warnings;
    return Ok{};
  }

  Status known_keys(const YAML::Node& map, const std::string& prefix, const std::vector<std::string>& keys) const {
    std::set<std::string, std::less<>> seen;
    for (const auto& kv : map) {
      const auto key = kv.first.as<std::string>("");
      // yaml-cpp keeps both copies of a repeated key and lookups return the first: a silent trap.
      if (!seen.insert(key).second) {
        return error(kv.first, prefix + key, fmt::format("'{}{}' is given twice", prefix, key),
                     "keep one of them (the first one would win silently)");
      }
      if (std::find(keys.begin(), keys.end(), key) != keys.end()) continue;
      std::string fix = "allowed keys here: " + join(keys);
      for (const auto& k : keys) {
        if (edit_distance(key, k) <= 2) {
          fix = fmt::format("did you mean '{}{}'? (allowed keys here: {})", prefix, k, join(keys));
          break;
        }
      }
      return error(kv.first, prefix + key, fmt::format("unknown key '{}{}'", prefix, key), fix);
    }
    return Ok{};
  }

  // A scalar string with ${ENV} substituted.
  Result<std::string> string_value(const YAML::Node& node, const std::string& key) const {
    if (!node.IsScalar()) {
      return error(node, key, fmt::format("must be a string, not {}", describe(node)),
                   "write a single value; quote it if it contains ':' or '#'");
    }
    auto s = substitute_env(node.Scalar(), env_);
    if (!s) {
      auto e = std::move(s).error();
      e.where = where(node, key);
      return e;
    }
    return s;
  }

  Result<std::string> required_string(const YAML::Node& root, const std::string& key, const std::string& example) {
    const auto node = root[key];
    if (!node.IsDefined() || node.IsNull()) {
      return config_error(origin_, fmt::format("'{}' is missing", key),
                          fmt::format("set '{}:' to {} (or the environment variable PGFERRY_{})", key, example,
                                      key == "source" ? "SOURCE" : "TARGET"));
    }
    auto s = string_value(node, key);
    if (!s) return s;
    if (s->empty()) return error(node, key, "is empty", fmt::format("set it to {}", example));
    return s;
  }

  Result<bool> bool_value(const YAML::Node& node, const std::string& key) const {
    bool b = false;
    if (!node.IsScalar() || !YAML::convert<bool>::decode(node, b)) {
      return error(node, key, fmt::format("must be true or false, not {}", describe(node)), "write true or false");
    }
    return b;
  }

  Result<milliseconds> duration_value(const YAML::Node& node, const std::string& key) const {
    auto s = string_value(node, key);
    if (!s) return std::move(s).error();
    auto d = parse_duration(*s);
    if (!d) {
      auto e = std::move(d).error();
      e.where = where(node, key);
      return e;
    }
    return d;
  }

  Status parse_tables(const YAML::Node& node, Config& cfg) {
    if (!node.IsDefined() || node.IsNull()) {
      return config_error(origin_, "'tables' is missing: pgferry needs at least one table to replicate",
                          "add e.g.\n  tables:\n    - name: public.users");
    }
    if (!node.IsSequence() || node.size() == 0) {
      return error(node, "tables", fmt::format("must be a non-empty list of tables, not {}", describe(node)),
                   "write one '- name: schema.table' entry per table");
    }
    std::map<sql::QualifiedName, std::string> seen_source, seen_target;
    for (size_t i = 0; i < node.size(); ++i) {
      const auto key = fmt::format("tables[{}]", i);
      auto t = parse_table(node[i], key);
      if (!t) return std::move(t).error();
      if (auto it = seen_source.find(t->source); it != seen_source.end()) {
        return error(node[i], key,
                     fmt::format("table {} is configured twice (also at {})", t->source.display(), it->second),
                     "keep one entry per source table");
      }
      if (auto it = seen_target.find(t->target); it != seen_target.end()) {
        return error(node[i], key,
                     fmt::format("target table {} is written by two source tables (also at {})", t->target.display(),
                                 it->second),
                     "give each source table its own target table");
      }
      seen_source[t->source] = key;
      seen_target[t->target] = key;
      cfg.tables.push_back(std::move(*t));
    }
    return Ok{};
  }

  Result<TableConfig> parse_table(const YAML::Node& node, const std::string& key) {
    TableConfig t;
    t.origin = where(node, key);
    // Shorthand: "- public.users". (A fresh node: assigning to a yaml-cpp Node that aliases
    // another would overwrite the original too.)
    YAML::Node map = node.IsScalar() ? YAML::Node(YAML::NodeType::Map) : node;
    if (node.IsScalar()) map["name"] = node.Scalar();
    if (!map.IsMap()) {
      return error(node, key, fmt::format("must be a table name or a mapping with 'name:', not {}", describe(node)),
                   "write '- schema.table' or '- name: schema.table'");
    }
    if (auto s = known_keys(map, key + ".",
                            {"name", "target", "columns", "where", "updated_at", "truncate", "insert_capture"});
        !s) {
      return std::move(s).error();
    }
    if (!map["name"].IsDefined()) {
      return error(node, key, "has no 'name'", "add 'name: schema.table' naming the source table");
    }
    auto name = string_value(map["name"], key + ".name");
    if (!name) return std::move(name).error();
    auto source = sql::parse_qualified_name(*name);
    if (!source) return located(std::move(source).error(), map["name"], key + ".name");
    t.source = std::move(*source);
    t.target = t.source;
    if (map["target"].IsDefined()) {
      auto tn = string_value(map["target"], key + ".target");
      if (!tn) return std::move(tn).error();
      auto target = sql::parse_qualified_name(*tn);
      if (!target) return located(std::move(target).error(), map["target"], key + ".target");
      t.target = std::move(*target);
    }
    if (const auto cols = map["columns"]; cols.IsDefined() && !cols.IsNull()) {
      if (auto s = parse_columns(cols, key + ".columns", t); !s) return std::move(s).error();
    }
    if (const auto w = map["where"]; w.IsDefined() && !w.IsNull()) {
      auto s = string_value(w, key + ".where");
      if (!s) return std::move(s).error();
      if (auto ok = check_filter_syntax(*s); !ok) return located(std::move(ok).error(), w, key + ".where");
      t.where = std::move(*s);
    }
    if (const auto u = map["updated_at"]; u.IsDefined() && !u.IsNull()) {
      auto s = string_value(u, key + ".updated_at");
      if (!s) return std::move(s).error();
      auto col = sql::parse_identifier(*s);
      if (!col) return located(std::move(col).error(), u, key + ".updated_at");
      t.updated_at = std::move(*col);
    }
    if (const auto tr = map["truncate"]; tr.IsDefined() && !tr.IsNull()) {
      auto b = bool_value(tr, key + ".truncate");
      if (!b) return std::move(b).error();
      t.truncate = *b;
    }
    if (const auto ic = map["insert_capture"]; ic.IsDefined() && !ic.IsNull()) {
      auto v = string_value(ic, key + ".insert_capture");
      if (!v) return std::move(v).error();
      if (*v != "statement" && *v != "row") {
        return error(ic, key + ".insert_capture", fmt::format("must be 'statement' or 'row', not '{}'", *v),
                     "write 'insert_capture: statement' (the default) or 'insert_capture: row'");
      }
      t.statement_inserts = *v == "statement";
    }
    return t;
  }

  Error located(Error e, const YAML::Node& node, const std::string& key) const {
    e.where = where(node, key);
    return e;
  }

  Status parse_columns(const YAML::Node& cols, const std::string& key, TableConfig& t) {
    auto add = [&](const YAML::Node& src_node, const YAML::Node& dst_node) -> Status {
      auto src_text = string_value(src_node, key);
      if (!src_text) return std::move(src_text).error();
      auto dst_text = string_value(dst_node, key);
      if (!dst_text) return std::move(dst_text).error();
      auto src = sql::parse_identifier(*src_text);
      if (!src) return located(std::move(src).error(), src_node, key);
      auto dst = sql::parse_identifier(*dst_text);
      if (!dst) return located(std::move(dst).error(), dst_node, key);
      for (const auto& m : t.columns) {
        if (m.source == *src) {
          return error(src_node, key, fmt::format("source column '{}' is listed twice", *src), "list each column once");
        }
        if (m.target == *dst) {
          return error(dst_node, key,
                       fmt::format("target column '{}' is written by both '{}' and '{}'", *dst, m.source, *src),
                       "map each source column to a different target column");
        }
      }
      t.columns.push_back({std::move(*src), std::move(*dst)});
      return Ok{};
    };
    if (cols.IsMap()) {
      for (const auto& kv : cols) {
        if (auto s = add(kv.first, kv.second); !s) return s;
      }
    } else if (cols.IsSequence()) {
      for (const auto& c : cols) {
        if (auto s = add(c, c); !s) return s;
      }
    } else {
      return error(cols, key,
                   fmt::format("must be a list of columns or a mapping source: target, not {}", describe(cols)),
                   "e.g. columns: {id: id, first_name: name} or columns: [id, name]");
    }
    if (t.columns.empty()) {
      return error(cols, key, "is empty", "list the columns to replicate, or omit 'columns' to replicate all");
    }
    return Ok{};
  }

  Status parse_sweep(const YAML::Node& node, SweepConfig& sweep) {
    if (!node.IsDefined() || node.IsNull()) return Ok{};
    if (!node.IsMap())
      return error(node, "sweep", fmt::format("must be a mapping, not {}", describe(node)),
                   "write it as sweep: {interval: 60s, lookback_multiplier: 3}");
    if (auto s = known_keys(node, "sweep.", {"interval", "lookback_multiplier"}); !s) return s;
    if (node["interval"].IsDefined()) {
      auto d = duration_value(node["interval"], "sweep.interval");
      if (!d) return std::move(d).error();
      if (*d < std::chrono::seconds(1)) {
        return error(node["interval"], "sweep.interval", fmt::format("{} is shorter than 1s", format_duration(*d)),
                     "use at least 1s; the doorbell, not the sweep, keeps latency low");
      }
      sweep.interval = *d;
    }
    if (const auto m = node["lookback_multiplier"]; m.IsDefined()) {
      double v = 0;
      auto s = string_value(m, "sweep.lookback_multiplier");
      if (!s) return std::move(s).error();
      try {
        size_t used = 0;
        v = std::stod(*s, &used);
        if (used != s->size()) throw std::invalid_argument("trailing text");
      } catch (const std::exception&) {
        return error(m, "sweep.lookback_multiplier", fmt::format("'{}' is not a number", *s), "use a number such as 3");
      }
      if (!std::isfinite(v) || v < 1.0 || v > 1000.0) {
        return error(m, "sweep.lookback_multiplier", fmt::format("{} is out of range", *s),
                     "use a number from 1 to 1000 (default 3): the lookback must cover at least one interval");
      }
      sweep.lookback_multiplier = v;
    }
    return Ok{};
  }

  Status parse_batch(const YAML::Node& node, BatchConfig& batch) {
    if (!node.IsDefined() || node.IsNull()) return Ok{};
    if (!node.IsMap())
      return error(node, "batch", fmt::format("must be a mapping, not {}", describe(node)),
                   "write it as batch: {max_rows: 10000, max_bytes: 64MB}");
    if (auto s = known_keys(node, "batch.", {"max_rows", "max_bytes"}); !s) return s;
    if (const auto n = node["max_rows"]; n.IsDefined()) {
      auto s = string_value(n, "batch.max_rows");
      if (!s) return std::move(s).error();
      std::int64_t v = 0;
      const auto [end, ec] = std::from_chars(s->data(), s->data() + s->size(), v);
      if (ec != std::errc() || end != s->data() + s->size() || v < 1 || v > 10'000'000) {
        return error(n, "batch.max_rows", fmt::format("'{}' is not a whole number from 1 to 10000000", *s),
                     "use e.g. 10000 (the default)");
      }
      batch.max_rows = v;
    }
    if (const auto n = node["max_bytes"]; n.IsDefined()) {
      auto s = string_value(n, "batch.max_bytes");
      if (!s) return std::move(s).error();
      auto b = parse_bytes(*s);
      if (!b) return located(std::move(b).error(), n, "batch.max_bytes");
      if (*b < std::int64_t{64} * 1024 || *b > (std::int64_t{1} << 40)) {
        return error(n, "batch.max_bytes", fmt::format("'{}' is out of range", *s),
                     "use from 64kB to 1TB, e.g. 64MB (the default)");
      }
      batch.max_bytes = *b;
    }
    return Ok{};
  }

  Status parse_journal(const YAML::Node& node, JournalConfig& journal) {
    if (!node.IsDefined() || node.IsNull()) return Ok{};
    if (!node.IsMap())
      return error(node, "journal", fmt::format("must be a mapping, not {}", describe(node)),
                   "write it as journal: {vacuum_after_rows: 50000}");
    if (auto s = known_keys(node, "journal.", {"vacuum_after_rows"}); !s) return s;
    if (const auto n = node["vacuum_after_rows"]; n.IsDefined()) {
      auto s = string_value(n, "journal.vacuum_after_rows");
      if (!s) return std::move(s).error();
      std::int64_t v = 0;
      const auto [end, ec] = std::from_chars(s->data(), s->data() + s->size(), v);
      if (ec != std::errc() || end != s->data() + s->size() || v < 0 || v > 1'000'000'000) {
        return error(n, "journal.vacuum_after_rows", fmt::format("'{}' is not a whole number from 0 to 1000000000", *s),
                     "use e.g. 50000 (the default), or 0 to leave the journal to autovacuum");
      }
      journal.vacuum_after_rows = v;
    }
    return Ok{};
  }

  // --- small typed readers for the sections below -------------------------------------------

  /// A mapping section, or nothing: `example` shows how to write it.
  Result<bool> section(const YAML::Node& node, const std::string& name, const std::vector<std::string>& keys,
                       const std::string& example) const {
    if (!node.IsDefined() || node.IsNull()) return false;
    if (!node.IsMap())
      return error(node, name, fmt::format("must be a mapping, not {}", describe(node)), "write it as " + example);
    if (auto s = known_keys(node, name + ".", keys); !s) return std::move(s).error();
    return true;
  }

  Status duration_key(const YAML::Node& map, const std::string& section, const std::string& key, milliseconds min,
                      milliseconds max, milliseconds& out, const std::string& fix) const {
    const auto n = map[key];
    if (!n.IsDefined()) return Ok{};
    const auto name = section + "." + key;
    auto d = duration_value(n, name);
    if (!d) return std::move(d).error();
    if (*d < min || *d > max) {
      return error(
          n, name,
          fmt::format("{} is out of range ({} to {})", format_duration(*d), format_duration(min), format_duration(max)),
          fix);
    }
    out = *d;
    return Ok{};
  }

  Status int_key(const YAML::Node& map, const std::string& section, const std::string& key, std::int64_t min,
                 std::int64_t max, std::int64_t& out, const std::string& fix) const {
    const auto n = map[key];
    if (!n.IsDefined()) return Ok{};
    const auto name = section + "." + key;
    auto s = string_value(n, name);
    if (!s) return std::move(s).error();
    std::int64_t v = 0;
    const auto [end, ec] = std::from_chars(s->data(), s->data() + s->size(), v);
    if (ec != std::errc() || end != s->data() + s->size() || v < min || v > max) {
      return error(n, name, fmt::format("'{}' is not a whole number from {} to {}", *s, min, max), fix);
    }
    out = v;
    return Ok{};
  }

  Status parse_reconnect(const YAML::Node& node, ReconnectConfig& r) {
    auto has = section(node, "reconnect", {"initial_delay", "max_delay", "max_attempts", "healthy_after"},
                       "reconnect: {initial_delay: 100ms, max_delay: 30s, max_attempts: 0, healthy_after: 10s}");
    if (!has) return std::move(has).error();
    if (!*has) return Ok{};
    const milliseconds day = std::chrono::hours(24);
    if (auto s = duration_key(node, "reconnect", "initial_delay", milliseconds(1), day, r.initial_delay,
                              "use e.g. 100ms (the default)");
        !s) {
      return s;
    }
    if (auto s = duration_key(node, "reconnect", "max_delay", milliseconds(1), day, r.max_delay,
                              "use e.g. 30s (the default)");
        !s) {
      return s;
    }
    if (r.max_delay < r.initial_delay) {
      return error(node["max_delay"].IsDefined() ? node["max_delay"] : node, "reconnect.max_delay",
                   fmt::format("{} is shorter than reconnect.initial_delay ({})", format_duration(r.max_delay),
                               format_duration(r.initial_delay)),
                   "make max_delay at least initial_delay");
    }
    if (auto s = int_key(node, "reconnect", "max_attempts", 0, 1'000'000'000, r.max_attempts,
                         "use 0 (the default) to retry forever, or the number of failures after which run exits 1");
        !s) {
      return s;
    }
    return duration_key(node, "reconnect", "healthy_after", milliseconds(0), day, r.healthy_after,
                        "use e.g. 10s (the default)");
  }

  Status parse_connection(const YAML::Node& node, ConnectionConfig& c) {
    auto has =
        section(node, "connection", {"keepalives_idle", "tcp_user_timeout", "heartbeat_interval", "connect_timeout"},
                "connection: {keepalives_idle: 10s, tcp_user_timeout: 30s, heartbeat_interval: 10s}");
    if (!has) return std::move(has).error();
    if (!*has) return Ok{};
    const milliseconds hour = std::chrono::hours(1);
    if (auto s = duration_key(node, "connection", "keepalives_idle", std::chrono::seconds(1), hour, c.keepalives_idle,
                              "use whole seconds, e.g. 10s (the default)");
        !s) {
      return s;
    }
    if (auto s = duration_key(node, "connection", "tcp_user_timeout", milliseconds(0), hour, c.tcp_user_timeout,
                              "use e.g. 30s (the default), or 0s for the operating system's default");
        !s) {
      return s;
    }
    if (auto s = duration_key(node, "connection", "heartbeat_interval", milliseconds(0), hour, c.heartbeat_interval,
                              "use e.g. 10s (the default), or 0s to turn the heartbeat off");
        !s) {
      return s;
    }
    return duration_key(node, "connection", "connect_timeout", std::chrono::seconds(1), hour, c.connect_timeout,
                        "use whole seconds, e.g. 10s (the default)");
  }

  Status parse_guard(const YAML::Node& node, GuardConfig& g) {
    auto has = section(node, "guard", {"max_delete_fraction", "min_rows"},
                       "guard: {max_delete_fraction: 0.5, min_rows: 1000}");
    if (!has) return std::move(has).error();
    if (!*has) return Ok{};
    if (const auto m = node["max_delete_fraction"]; m.IsDefined()) {
      auto s = string_value(m, "guard.max_delete_fraction");
      if (!s) return std::move(s).error();
      double v = -1;
      try {
        size_t used = 0;
        v = std::stod(*s, &used);
        if (used != s->size()) v = -1;
      } catch (const std::exception&) {
        v = -1;
      }
      if (!std::isfinite(v) || v <= 0.0 || v > 1.0) {
        return error(m, "guard.max_delete_fraction", fmt::format("'{}' is not a number above 0 and at most 1", *s),
                     "use e.g. 0.5 (the default), or 1 to turn the guard off");
      }
      g.max_delete_fraction = v;
    }
    return int_key(node, "guard", "min_rows", 0, std::int64_t{1} << 50, g.min_rows,
                   "use e.g. 1000 (the default): smaller tables are never guarded");
  }

  Status parse_verify(const YAML::Node& node, VerifyConfig& v) {
    auto has = section(node, "verify", {"every"}, "verify: {every: 24h}");
    if (!has) return std::move(has).error();
    if (!*has) return Ok{};
    if (auto s = duration_key(node, "verify", "every", milliseconds(0), std::chrono::hours(24 * 366), v.every,
                              "use e.g. 24h, or 0s (the default) to never verify inside run");
        !s) {
      return s;
    }
    if (v.every > milliseconds(0) && v.every < std::chrono::minutes(1)) {
      return error(node["every"], "verify.every", fmt::format("{} is shorter than 1m", format_duration(v.every)),
                   "use at least 1m (e.g. 24h): a verify reads every row of every table");
    }
    return Ok{};
  }

  Status parse_doorbell(const YAML::Node& node, DoorbellConfig& d) {
    auto has =
        section(node, "doorbell", {"off_above", "busy_interval"}, "doorbell: {off_above: 1000, busy_interval: 2ms}");
    if (!has) return std::move(has).error();
    if (!*has) return Ok{};
    if (auto s = int_key(node, "doorbell", "off_above", 0, 1'000'000'000, d.off_above,
                         "use e.g. 1000 (the default: source transactions per second), or 0 to turn the doorbell off "
                         "whenever run applies anything");
        !s) {
      return s;
    }
    return duration_key(node, "doorbell", "busy_interval", milliseconds(1), milliseconds(1000), d.busy_interval,
                        "use e.g. 2ms (the default): longer saves CPU on both databases while writers are busy, "
                        "and adds up to that much latency then");
  }

  Status parse_apply(const YAML::Node& node, ApplyConfig& apply) {
    if (!node.IsDefined() || node.IsNull()) return Ok{};
    if (!node.IsMap())
      return error(node, "apply", fmt::format("must be a mapping, not {}", describe(node)),
                   "write it as apply: {replica_role: false}");
    if (auto s = known_keys(node, "apply.", {"replica_role", "synchronous_commit"}); !s) return s;
    if (node["replica_role"].IsDefined()) {
      auto b = bool_value(node["replica_role"], "apply.replica_role");
      if (!b) return std::move(b).error();
      apply.replica_role = *b;
    }
    if (const auto sc = node["synchronous_commit"]; sc.IsDefined()) {
      auto v = string_value(sc, "apply.synchronous_commit");
      if (!v) return std::move(v).error();
      // YAML 1.1 reads off/on as booleans; written either way they mean PostgreSQL's off/on.
      static const std::map<std::string, std::string> kLevels = {{"off", "off"},
                                                                 {"false", "off"},
                                                                 {"local", "local"},
                                                                 {"remote_write", "remote_write"},
                                                                 {"on", "on"},
                                                                 {"true", "on"},
                                                                 {"remote_apply", "remote_apply"}};
      auto it = kLevels.find(*v);
      if (it == kLevels.end()) {
        return error(sc, "apply.synchronous_commit", fmt::format("'{}' is not a synchronous_commit level", *v),
                     "use off (the default: acknowledge after the target's WAL flush), local, remote_write, on or "
                     "remote_apply");
      }
      apply.synchronous_commit = it->second;
    }
    return Ok{};
  }

  Status parse_http(const YAML::Node& node, HttpConfig& http) {
    if (!node.IsDefined() || node.IsNull()) return Ok{};
    if (!node.IsMap())
      return error(node, "http", fmt::format("must be a mapping, not {}", describe(node)),
                   "write it as http: {listen: \"127.0.0.1:9187\"}");
    if (auto s = known_keys(node, "http.", {"listen"}); !s) return s;
    if (node["listen"].IsDefined()) {
      auto s = string_value(node["listen"], "http.listen");
      if (!s) return std::move(s).error();
      const auto colon = s->rfind(':');
      const std::string port = colon == std::string::npos ? "" : s->substr(colon + 1);
      const bool digits = !port.empty() && port.size() <= 5 &&
                          std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; });
      if (colon == std::string::npos || colon == 0 || !digits || std::stoi(port) > 65535) {
        return error(node["listen"], "http.listen", fmt::format("'{}' is not host:port", *s),
                     "e.g. 127.0.0.1:9187, 0.0.0.0:9187 or [::1]:9187");
      }
      http.listen = std::move(*s);
    }
    return Ok{};
  }

  Status parse_health(const YAML::Node& node, HealthConfig& h) {
    auto has = section(node, "health", {"max_lag", "check_interval"}, "health: {max_lag: 30s, check_interval: 5s}");
    if (!has) return std::move(has).error();
    if (!*has) return Ok{};
    if (auto s = duration_key(node, "health", "max_lag", std::chrono::seconds(1), std::chrono::hours(24 * 7), h.max_lag,
                              "use e.g. 30s (the default)");
        !s) {
      return s;
    }
    return duration_key(node, "health", "check_interval", milliseconds(100), std::chrono::hours(1), h.check_interval,
                        "use e.g. 5s (the default)");
  }

  Status parse_log(const YAML::Node& node, LogConfig& log) {
    if (!node.IsDefined() || node.IsNull()) return Ok{};
    if (!node.IsMap())
      return error(node, "log", fmt::format("must be a mapping, not {}", describe(node)),
                   "write it as log: {level: info, format: auto}");
    if (auto s = known_keys(node, "log.", {"level", "format"}); !s) return s;
    auto one_of = [&](const char* key, const std::vector<std::string>& allowed, std::string& out) -> Status {
      const auto full = std::string("log.") + key;
      if (!node[key].IsDefined()) return Ok{};
      auto s = string_value(node[key], full);
      if (!s) return std::move(s).error();
      if (std::find(allowed.begin(), allowed.end(), *s) == allowed.end()) {
        return error(node[key], full, fmt::format("'{}' is not one of {}", *s, join(allowed)),
                     fmt::format("use one of {}", join(allowed)));
      }
      out = std::move(*s);
      return Ok{};
    };
    if (auto s = one_of("level", {"trace", "debug", "info", "warn", "error", "off"}, log.level); !s) return s;
    return one_of("format", {"auto", "text", "json"}, log.format);
  }

  std::string origin_;
  const Env& env_;
  std::map<std::string, std::string> env_keys_;  // config key -> environment variable that set it
  std::vector<std::string> warnings_;
};

}  // namespace

Env process_environment() {
  Env env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view kv(*e);
    const auto eq = kv.find('=');
    if (eq == std::string_view::npos) continue;
    env.emplace(std::string(kv.substr(0, eq)), std::string(kv.substr(eq + 1)));
  }
  return env;
}

const TableConfig* Config::find_table(const sql::QualifiedName& source_name) const {
  for (const auto& t : tables) {
    if (t.source == source_name) return &t;
  }
  return nullptr;
}

Result<Config> parse_config(std::string_view yaml_text, std::string_view origin, const Env& env) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml_text));
  } catch (const YAML::ParserException& e) {
    return config_error(fmt::format("{}:{}:{}", origin, e.mark.line + 1, e.mark.column + 1),
                        fmt::format("not valid YAML: {}", e.msg),
                        "check indentation and quoting near that line (quote values containing ': ' or '#')");
  } catch (const YAML::Exception& e) {
    return config_error(std::string(origin), fmt::format("not valid YAML: {}", e.msg));
  }
  try {
    return Parser(origin, env).parse(root);
  } catch (const YAML::Exception& e) {
    // yaml-cpp throws on unexpected node shapes (e.g. a mapping used as a key).
    return config_error(fmt::format("{}:{}", origin, e.mark.line + 1), fmt::format("unexpected structure: {}", e.msg));
  }
}

Result<Config> load_config(const std::string& path, const Env& env) {
  std::string file = path;
  if (file.empty()) {
    if (auto it = env.find("PGFERRY_CONFIG"); it != env.end()) file = it->second;
  }
  if (file.empty()) {
    if (!env.contains("PGFERRY_SOURCE") && !env.contains("PGFERRY_TARGET")) {
      return config_error("", "no configuration given",
                          "pass --config pgferry.yaml, set PGFERRY_CONFIG, or set PGFERRY_SOURCE, PGFERRY_TARGET and "
                          "PGFERRY_TABLES");
    }
    return parse_config("", "environment", env);
  }
  std::ifstream in(file);
  if (!in) {
    return config_error(file, fmt::format("cannot read the configuration file: {}", std::strerror(errno)),
                        "check the path given with --config or PGFERRY_CONFIG");
  }
  std::stringstream buf;
  buf << in.rdbuf();
  return parse_config(buf.str(), file, env);
}

Result<std::int64_t> parse_bytes(std::string_view text) {
  const auto bad = [&](const std::string& why) {
    return config_error({}, fmt::format("'{}' is not a size: {}", text, why),
                        "write a whole number of bytes or use a unit: kB, MB, GB, TB (e.g. 64MB)");
  };
  std::size_t i = 0;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') ++i;
  if (i == 0) return bad("expected a whole number");
  std::int64_t n = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + i, n);
  if (ec != std::errc() || end != text.data() + i) return bad("the number is too large");
  std::string unit(text.substr(i));
  if (!unit.empty() && unit.front() == ' ') unit.erase(0, 1);
  std::transform(unit.begin(), unit.end(), unit.begin(), [](unsigned char c) { return std::tolower(c); });
  int shift = 0;
  if (unit.empty() || unit == "b") {
    shift = 0;
  } else if (unit == "kb" || unit == "k" || unit == "kib") {
    shift = 10;
  } else if (unit == "mb" || unit == "m" || unit == "mib") {
    shift = 20;
  } else if (unit == "gb" || unit == "g" || unit == "gib") {
    shift = 30;
  } else if (unit == "tb" || unit == "t" || unit == "tib") {
    shift = 40;
  } else {
    return bad(fmt::format("unknown unit '{}'", text.substr(i)));
  }
  if (n > (INT64_MAX >> shift)) return bad("it is too large");
  return n << shift;
}

Result<milliseconds> parse_duration(std::string_view text) {
  const auto bad = [&](std::string why) {
    return config_error({}, fmt::format("'{}' is not a duration: {}", text, why),
                        "write a number with a unit: ms, s, m, h or d (e.g. 250ms, 60s, 1m30s)");
  };
  if (text.empty()) return bad("it is empty");
  long double total = 0;
  size_t i = 0;
  bool any = false;
  while (i < text.size()) {
    size_t start = i;
    while (i < text.size() && ((text[i] >= '0' && text[i] <= '9') || text[i] == '.')) ++i;
    if (start == i) return bad(fmt::format("expected a number at '{}'", text.substr(start)));
    long double n = 0;
    const std::string number(text.substr(start, i - start));
    try {
      std::size_t used = 0;
      n = std::stold(number, &used);
      if (used != number.size()) return bad(fmt::format("'{}' is not a number", number));
    } catch (const std::exception&) {
      return bad(fmt::format("'{}' is not a number", number));
    }
    size_t ustart = i;
    while (i < text.size() && ((text[i] >= 'a' && text[i] <= 'z') || (text[i] >= 'A' && text[i] <= 'Z'))) ++i;
    const auto unit = text.substr(ustart, i - ustart);
    long double scale = 0;
    if (unit == "ms")
      scale = 1;
    else if (unit == "s")
      scale = 1000;
    else if (unit == "m" || unit == "min")
      scale = 60'000;
    else if (unit == "h")
      scale = 3'600'000;
    else if (unit == "d")
      scale = 86'400'000;
    else if (unit.empty())
      return bad("the unit is missing");
    else
      return bad(fmt::format("unknown unit '{}'", unit));
    total += n * scale;
    any = true;
  }
  if (!any) return bad("no value");
  if (total > 365.0L * 86'400'000) return bad("it is longer than a year");
  return milliseconds(static_cast<long long>(std::llround(total)));
}

std::string format_duration(milliseconds d) {
  auto ms = d.count();
  if (ms == 0) return "0s";
  std::string out;
  const std::pair<long long, const char*> units[] = {
      {86'400'000, "d"}, {3'600'000, "h"}, {60'000, "m"}, {1000, "s"}, {1, "ms"}};
  for (const auto& [size, name] : units) {
    if (ms >= size) {
      out += fmt::format("{}{}", ms / size, name);
      ms %= size;
    }
  }
  return out;
}

Result<std::string> substitute_env(std::string_view text, const Env& env) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '$') {
      out.push_back(text[i]);
      continue;
    }
    if (i + 1 < text.size() && text[i + 1] == '$') {
      out.push_back('$');
      ++i;
      continue;
    }
    if (i + 1 >= text.size() || text[i + 1] != '{') {
      out.push_back('$');
      continue;
    }
    const auto close = text.find('}', i + 2);
    if (close == std::string_view::npos) {
      return config_error({}, "has '${' without a closing '}'", "write ${NAME}, or $$ for a literal $");
    }
    const auto inner = text.substr(i + 2, close - i - 2);
    const auto sep = inner.find(":-");
    const auto name = inner.substr(0, sep);
    if (name.empty() || !std::all_of(name.begin(), name.end(), [](char c) {
          return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
        })) {
      return config_error({}, fmt::format("'${{{}}}' is not a valid environment variable reference", inner),
                          "write ${NAME} with letters, digits and _ only, or $$ for a literal $");
    }
    if (auto it = env.find(name); it != env.end()) {
      out += it->second;
    } else if (sep != std::string_view::npos) {
      out += inner.substr(sep + 2);
    } else {
      return config_error({}, fmt::format("refers to environment variable {} which is not set", name),
                          fmt::format("set {} or write ${{{}:-default}}", name, name));
    }
    i = close;
  }
  return out;
}

namespace {
// Whether PostgreSQL's lexer would read `c` as part of an identifier (or the end of a quoted one):
// ASCII letters, digits, '_', '$', every byte of a multi-byte UTF-8 character, and '"'.
bool is_identifier_byte(char c) {
  const auto u = static_cast<unsigned char>(c);
  return std::isalnum(u) != 0 || c == '_' || c == '$' || c == '"' || u >= 0x80;
}
}  // namespace

Status check_filter_syntax(std::string_view filter) {
  const auto bad = [&](std::string why) {
    return config_error({}, fmt::format("the row filter \"{}\" does not parse: {}", filter, why),
                        "write one SQL boolean expression over the source table's columns, e.g. status = 'active'");
  };
  int depth = 0;
  bool only_space = true;
  for (size_t i = 0; i < filter.size(); ++i) {
    const char c = filter[i];
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r') only_space = false;
    // E'...' strings take backslash escapes: E'\'' is one quote, not the end of the string.
    const bool escape_string = c == '\'' && i > 0 && (filter[i - 1] == 'E' || filter[i - 1] == 'e') &&
                               (i == 1 || !is_identifier_byte(filter[i - 2]));
    if (escape_string) {
      size_t j = i + 1;
      while (j < filter.size() && filter[j] != '\'') j += filter[j] == '\\' ? 2 : 1;
      if (j >= filter.size()) return bad("unterminated single quote");
      i = j;
      continue;
    }
    if (c == '\'' || c == '"') {
      const auto end = filter.find(c, i + 1);
      if (end == std::string_view::npos)
        return bad(fmt::format("unterminated {} quote", c == '\'' ? "single" : "double"));
      i = end;  // A doubled quote ('') reads as two adjacent quoted strings, which is fine here.
      continue;
    }
    if (c == '-' && i + 1 < filter.size() && filter[i + 1] == '-') return bad("it contains a -- comment");
    if (c == '/' && i + 1 < filter.size() && filter[i + 1] == '*') return bad("it contains a /* comment");
    if (c == '$') return bad("dollar quoting and parameters are not allowed");
    if (c == ';') return bad("it contains ';' — a filter is one expression, not statements");
    if (c == '(') ++depth;
    if (c == ')' && --depth < 0) return bad("a ')' has no matching '('");
  }
  if (only_space) return bad("it is empty");
  if (depth != 0) return bad("a '(' is not closed");
  return Ok{};
}

}  // namespace pgferry
