#include "journal.hpp"

#include <fmt/format.h>
#include <simdjson.h>

namespace pgferry {
namespace {

void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
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

Result<simdjson::dom::element> parse(simdjson::dom::parser& parser, std::string_view json, std::string_view what) {
  simdjson::dom::element doc;
  if (const auto err = parser.parse(json.data(), json.size()).get(doc); err) {
    return runtime_error(std::string(what), fmt::format("is not valid JSON: {}", simdjson::error_message(err)));
  }
  return doc;
}

/// The key values of `object` in `columns` order, as a minified JSON array.
Result<std::string> key_array(const simdjson::dom::element& object, const std::vector<std::string>& columns,
                              std::string_view what) {
  simdjson::dom::object obj;
  if (object.get_object().get(obj)) return runtime_error(std::string(what), "is not a JSON object");
  std::string out = "[";
  for (std::size_t i = 0; i < columns.size(); ++i) {
    simdjson::dom::element v;
    if (obj.at_key(columns[i]).get(v)) {
      return runtime_error(std::string(what), fmt::format("has no value for key column \"{}\"", columns[i]),
                           "the capture trigger is out of date: run pgferry setup");
    }
    if (i > 0) out += ',';
    out += simdjson::minify(v);
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
  thread_local simdjson::dom::parser parser;
  switch (op) {
    case 'T':
      c.op = Op::Truncate;
      return c;
    case 'I':
    case 'U': {
      c.op = op == 'I' ? Op::Insert : Op::Update;
      if (new_row_json.empty()) return runtime_error(where, fmt::format("op {} has no row image", op));
      auto doc = parse(parser, new_row_json, where + " new_row");
      if (!doc) return std::move(doc).error();
      auto key = key_array(*doc, key_columns, where + " new_row");
      if (!key) return std::move(key).error();
      c.key = std::move(*key);
      c.image = std::string(new_row_json);
      if (c.op == Op::Update && !old_key_json.empty()) {
        auto old_doc = parse(parser, old_key_json, where + " old_key");
        if (!old_doc) return std::move(old_doc).error();
        auto old_key = key_array(*old_doc, key_columns, where + " old_key");
        if (!old_key) return std::move(old_key).error();
        if (*old_key != c.key) c.old_key = std::move(*old_key);
      }
      return c;
    }
    case 'D': {
      c.op = Op::Delete;
      if (old_key_json.empty()) return runtime_error(where, "op D has no old key");
      auto doc = parse(parser, old_key_json, where + " old_key");
      if (!doc) return std::move(doc).error();
      auto key = key_array(*doc, key_columns, where + " old_key");
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
  thread_local simdjson::dom::parser parser;
  auto doc = parse(parser, image_json, "row image");
  if (!doc) return std::move(doc).error();
  simdjson::dom::object obj;
  if (doc->get_object().get(obj)) return runtime_error("row image", "is not a JSON object");
  std::string out = "{";
  bool first = true;
  for (const auto& [source, target] : mapping) {
    simdjson::dom::element v;
    if (obj.at_key(source).get(v)) continue;
    if (!first) out += ',';
    first = false;
    append_json_string(out, target);
    out += ':';
    out += simdjson::minify(v);
  }
  out += '}';
  return out;
}

Result<std::string> key_object(std::string_view key_array_json, const std::vector<std::string>& names) {
  thread_local simdjson::dom::parser parser;
  auto doc = parse(parser, key_array_json, "key");
  if (!doc) return std::move(doc).error();
  simdjson::dom::array arr;
  if (doc->get_array().get(arr)) return runtime_error("key", "is not a JSON array");
  if (arr.size() != names.size()) {
    return runtime_error("key", fmt::format("has {} values for {} key columns", arr.size(), names.size()));
  }
  std::string out = "{";
  std::size_t i = 0;
  for (const auto v : arr) {
    if (i > 0) out += ',';
    append_json_string(out, names[i]);
    out += ':';
    out += simdjson::minify(v);
    ++i;
  }
  out += '}';
  return out;
}

}  // namespace pgferry
