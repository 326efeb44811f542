#include "journal.hpp"

#include <fmt/format.h>
#include <simdjson.h>

#include <algorithm>
#include <iterator>

namespace pgferry {
namespace {

/// The length of the well-formed UTF-8 sequence at the start of `s` (0 when it is not one).
std::size_t utf8_sequence(std::string_view s) {
  const auto b = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
  const auto cont = [&](std::size_t i) { return i < s.size() && (b(i) & 0xC0) == 0x80; };
  const unsigned char c = b(0);
  if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (!cont(1) || !cont(2)) return 0;
    if (c == 0xE0 && b(1) < 0xA0) return 0;   // overlong
    if (c == 0xED && b(1) >= 0xA0) return 0;  // a UTF-16 surrogate
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    if (c == 0xF0 && b(1) < 0x90) return 0;   // overlong
    if (c == 0xF4 && b(1) >= 0x90) return 0;  // beyond U+10FFFF
    return 4;
  }
  return 0;
}

void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char ch = s[i];
    const auto c = static_cast<unsigned char>(ch);
    if (c >= 0x80) {
      // JSON is UTF-8: a byte that does not start a well-formed sequence (a server message in
      // LATIN1, a cut-off name) becomes U+FFFD instead of making the whole document unreadable.
      const std::size_t n = utf8_sequence(s.substr(i));
      if (n == 0) {
        out += "\xEF\xBF\xBD";  // U+FFFD
      } else {
        out.append(s.substr(i, n));
        i += n - 1;
      }
      continue;
    }
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          out += fmt::format("\\u{:04x}", c);
        } else {
          out += ch;
        }
    }
  }
  out += '"';
}

/// JSON text kept in a buffer with the padding simdjson's On-Demand parser reads past the end.
/// On-Demand rather than DOM: values are sliced out as the source wrote them, never re-serialized,
/// so numerics keep every digit and their scale (1.50 stays 1.50) and integers wider than 64 bits
/// or doubles beyond 1e308 are not even parsed.
class Document {
 public:
  Result<simdjson::ondemand::document*> parse(std::string_view json, std::string_view what) {
    buffer_.assign(json);
    buffer_.resize(json.size() + simdjson::SIMDJSON_PADDING, '\0');
    if (const auto err = parser_.iterate(buffer_.data(), json.size(), buffer_.size()).get(doc_); err) {
      return invalid(what, err);
    }
    return &doc_;
  }

  /// Fails when text other than whitespace follows the top-level value just walked to its end.
  Result<Ok> finish(std::string_view what) {
    const char* rest = nullptr;
    if (doc_.current_location().get(rest) == simdjson::SUCCESS) {
      return runtime_error(std::string(what), "is not valid JSON: text follows the top-level value");
    }
    return Ok{};
  }

  static Error invalid(std::string_view what, simdjson::error_code err) {
    return runtime_error(std::string(what), fmt::format("is not valid JSON: {}", simdjson::error_message(err)));
  }

 private:
  simdjson::ondemand::parser parser_;
  simdjson::ondemand::document doc_;
  std::string buffer_;
};

std::string_view trim_right(std::string_view s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\n' || s.back() == '\r' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

/// Whether `token` is a number as RFC 8259 writes it: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
/// On-Demand only classifies a scalar by its first character; slicing it unparsed means checking
/// the rest here.
bool is_json_number(std::string_view token) {
  std::size_t i = 0;
  const auto digits = [&] {
    const std::size_t start = i;
    while (i < token.size() && token[i] >= '0' && token[i] <= '9') ++i;
    return i > start;
  };
  if (i < token.size() && token[i] == '-') ++i;
  if (i < token.size() && token[i] == '0') {
    ++i;
  } else if (!digits()) {
    return false;
  }
  if (i < token.size() && token[i] == '.') {
    ++i;
    if (!digits()) return false;
  }
  if (i < token.size() && (token[i] == 'e' || token[i] == 'E')) {
    ++i;
    if (i < token.size() && (token[i] == '+' || token[i] == '-')) ++i;
    if (!digits()) return false;
  }
  return i == token.size();
}

/// Whether the scalar `token` of JSON type `type` is well formed. Strings need no check here:
/// the structural pass already matched their quotes and validated their UTF-8.
simdjson::error_code check_scalar(simdjson::ondemand::json_type type, std::string_view token) {
  switch (type) {
    case simdjson::ondemand::json_type::number:
      return is_json_number(token) ? simdjson::SUCCESS : simdjson::NUMBER_ERROR;
    case simdjson::ondemand::json_type::boolean:
      if (token == "true" || token == "false") return simdjson::SUCCESS;
      return token.starts_with('t') ? simdjson::T_ATOM_ERROR : simdjson::F_ATOM_ERROR;
    case simdjson::ondemand::json_type::null:
      return token == "null" ? simdjson::SUCCESS : simdjson::N_ATOM_ERROR;
    default:
      return simdjson::SUCCESS;
  }
}

/// The JSON text of `v` exactly as written (minus surrounding whitespace). Scalars are checked
/// (tru, 01 and 1.2.3 are errors); containers are sliced whole and their contents left to the
/// target, which parses every batch as jsonb.
simdjson::simdjson_result<std::string_view> raw_value(simdjson::ondemand::value v) {
  simdjson::ondemand::json_type type{};
  if (const auto err = v.type().get(type); err) return err;
  std::string_view raw;
  simdjson::error_code err = simdjson::SUCCESS;
  switch (type) {
    case simdjson::ondemand::json_type::object: {
      simdjson::ondemand::object o;
      err = v.get_object().get(o);
      if (!err) err = o.raw_json().get(raw);
      break;
    }
    case simdjson::ondemand::json_type::array: {
      simdjson::ondemand::array a;
      err = v.get_array().get(a);
      if (!err) err = a.raw_json().get(raw);
      break;
    }
    default:
      raw = trim_right(v.raw_json_token());
      if (const auto bad = check_scalar(type, raw); bad) return bad;
      return raw;
  }
  if (err) return err;
  return trim_right(raw);
}

/// Calls `each(key, raw value)` for every member of the JSON object in `json`. Fails when `json`
/// is not a single well-formed JSON object.
template <typename Each>
Result<Ok> for_each_member(Document& doc, std::string_view json, std::string_view what, Each&& each) {
  auto parsed = doc.parse(json, what);
  if (!parsed) return std::move(parsed).error();
  simdjson::ondemand::object obj;
  if ((*parsed)->get_object().get(obj)) return runtime_error(std::string(what), "is not a JSON object");
  for (auto field : obj) {
    std::string_view key;
    if (const auto err = field.unescaped_key().get(key); err) return Document::invalid(what, err);
    std::string_view raw;
    if (const auto err = raw_value(field.value()).get(raw); err) return Document::invalid(what, err);
    each(key, raw);
  }
  return doc.finish(what);
}

/// The key values of the JSON object `json` in `columns` order, as a JSON array ([42,"eu"]).
Result<std::string> key_array(Document& doc, std::string_view json, const std::vector<std::string>& columns,
                              std::string_view what) {
  std::vector<std::string_view> values(columns.size());
  auto walked = for_each_member(doc, json, what, [&](std::string_view key, std::string_view raw) {
    for (std::size_t i = 0; i < columns.size(); ++i) {
      if (columns[i] == key && values[i].data() == nullptr) {
        values[i] = raw;
      }
    }
  });
  if (!walked) return std::move(walked).error();
  std::string out = "[";
  for (std::size_t i = 0; i < columns.size(); ++i) {
    if (values[i].data() == nullptr) {
      return runtime_error(std::string(what), fmt::format("has no value for key column \"{}\"", columns[i]),
                           "the capture trigger is out of date: run pgferry setup");
    }
    if (i > 0) out += ',';
    out += values[i];
  }
  out += ']';
  return out;
}

}  // namespace

Result<Change> decode_change(std::int64_t id, std::string xid, std::int32_t table_id, char op,
                             std::string_view old_key_json, std::string_view new_row_json,
                             const std::vector<std::string>& key_columns, std::string captured_at) {
  Change c;
  c.id = id;
  c.xid = std::move(xid);
  c.table_id = table_id;
  c.captured_at = std::move(captured_at);
  const std::string where = fmt::format("journal row {}", id);
  thread_local Document doc;
  switch (op) {
    case 'T':
      c.op = Op::Truncate;
      return c;
    case 'I':
    case 'U': {
      c.op = op == 'I' ? Op::Insert : Op::Update;
      if (new_row_json.empty()) return runtime_error(where, fmt::format("op {} has no row image", op));
      auto key = key_array(doc, new_row_json, key_columns, where + " new_row");
      if (!key) return std::move(key).error();
      c.key = std::move(*key);
      c.image = std::string(new_row_json);
      if (c.op == Op::Update && !old_key_json.empty()) {
        auto old_key = key_array(doc, old_key_json, key_columns, where + " old_key");
        if (!old_key) return std::move(old_key).error();
        if (*old_key != c.key) c.old_key = std::move(*old_key);
      }
      return c;
    }
    case 'D': {
      c.op = Op::Delete;
      if (old_key_json.empty()) return runtime_error(where, "op D has no old key");
      auto key = key_array(doc, old_key_json, key_columns, where + " old_key");
      if (!key) return std::move(key).error();
      c.key = std::move(*key);
      return c;
    }
    default:
      return runtime_error(where, fmt::format("unknown op '{}'", op), "expected one of I, U, D, T");
  }
}

Result<std::string> map_image(std::string_view image_json,
                              const std::vector<std::pair<std::string, std::string>>& mapping) {
  thread_local Document doc;
  std::vector<std::string_view> values(mapping.size());
  auto walked = for_each_member(doc, image_json, "row image", [&](std::string_view key, std::string_view raw) {
    for (std::size_t i = 0; i < mapping.size(); ++i) {
      if (mapping[i].first == key) values[i] = raw;
    }
  });
  if (!walked) return std::move(walked).error();
  std::string out = "{";
  bool first = true;
  for (std::size_t i = 0; i < mapping.size(); ++i) {
    if (values[i].data() == nullptr) continue;
    if (!first) out += ',';
    first = false;
    append_json_string(out, mapping[i].second);
    out += ':';
    out += values[i];
  }
  out += '}';
  return out;
}

Result<std::string> key_object(std::string_view key_array_json, const std::vector<std::string>& names) {
  thread_local Document doc;
  auto parsed = doc.parse(key_array_json, "key");
  if (!parsed) return std::move(parsed).error();
  simdjson::ondemand::array arr;
  if ((*parsed)->get_array().get(arr)) return runtime_error("key", "is not a JSON array");
  std::string out = "{";
  std::size_t i = 0;
  for (auto element : arr) {
    simdjson::ondemand::value v;
    if (const auto err = element.get(v); err) return Document::invalid("key", err);
    std::string_view raw;
    if (const auto err = raw_value(v).get(raw); err) return Document::invalid("key", err);
    if (i < names.size()) {
      if (i > 0) out += ',';
      append_json_string(out, names[i]);
      out += ':';
      out += raw;
    }
    ++i;
  }
  if (auto finished = doc.finish("key"); !finished) return std::move(finished).error();
  if (i != names.size()) {
    return runtime_error("key", fmt::format("has {} values for {} key columns", i, names.size()));
  }
  out += '}';
  return out;
}

std::string json_quote(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 2);
  append_json_string(out, text);
  return out;
}

std::string id_ranges(std::vector<std::int64_t> ids) {
  std::sort(ids.begin(), ids.end());
  std::string out = "{";
  for (std::size_t i = 0; i < ids.size();) {
    std::size_t last = i;
    while (last + 1 < ids.size() && ids[last + 1] <= ids[last] + 1) ++last;
    fmt::format_to(std::back_inserter(out), "{}[{},{}]", out.size() > 1 ? "," : "", ids[i], ids[last]);
    i = last + 1;
  }
  out += '}';
  return out;
}

}  // namespace pgferry
