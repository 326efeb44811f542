#pragma once
// SQL files embedded at build time (cmake/embed_sql.cmake), so the binary needs no files beside it.

#include <string_view>
#include <vector>

namespace pgferry::assets {

/// One embedded file: its path relative to the project root and its contents.
struct Asset {
  std::string_view path;
  std::string_view text;
};

/// Every embedded SQL file, sorted by path.
const std::vector<Asset>& all();

}  // namespace pgferry::assets
