// The SQL compiled into the binary.
#include "assets.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

namespace pgferry {
namespace {

TEST(Assets, EmbedsMigrationsAndTriggerTemplateSortedByPath) {
  const auto& all = assets::all();
  auto has = [&](std::string_view path) {
    return std::any_of(all.begin(), all.end(), [&](const auto& a) { return a.path == path && !a.text.empty(); });
  };
  EXPECT_TRUE(has("migrations/source/0001_capture.sql"));
  EXPECT_TRUE(has("migrations/source/0002_journal_autovacuum.sql"));
  EXPECT_TRUE(has("migrations/target/0001_state.sql"));
  EXPECT_TRUE(has("triggers/capture.sql"));
  EXPECT_TRUE(std::is_sorted(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.path < b.path; }));
  for (const auto& a : all) {
    // Text survives embedding byte for byte: quotes, backslashes and non-ASCII included.
    EXPECT_EQ(a.text.find('\0'), std::string_view::npos) << a.path;
  }
  const auto it = std::find_if(all.begin(), all.end(), [](const auto& a) { return a.path == "triggers/capture.sql"; });
  ASSERT_NE(it, all.end());
  EXPECT_NE(it->text.find("$pgferry_capture$"), std::string_view::npos);
}

TEST(Assets, PathsAreUniqueSqlFilesUnderKnownFolders) {
  const auto& all = assets::all();
  ASSERT_FALSE(all.empty());
  EXPECT_EQ(&all, &assets::all());  // One table for the whole process.
  for (size_t i = 0; i < all.size(); ++i) {
    const std::string path(all[i].path);
    EXPECT_TRUE(path.ends_with(".sql")) << path;
    EXPECT_TRUE(path.starts_with("migrations/source/") || path.starts_with("migrations/target/") ||
                path.starts_with("triggers/"))
        << path;
    EXPECT_FALSE(all[i].text.empty()) << path;
    if (i > 0) {
      EXPECT_NE(all[i - 1].path, all[i].path);
    }
  }
}

TEST(Assets, TextMatchesTheFilesInTheSourceTree) {
  // This file is tests/unit/assets_test.cpp; the embedded paths are relative to the project root.
  const std::filesystem::path root = std::filesystem::path(__FILE__).parent_path().parent_path().parent_path();
  ASSERT_TRUE(std::filesystem::exists(root / "triggers" / "capture.sql"))
      << "source tree not found next to " << __FILE__;
  for (const auto& a : assets::all()) {
    std::ifstream in(root / std::string(a.path), std::ios::binary);
    ASSERT_TRUE(in) << a.path;
    const std::string on_disk((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(a.text, on_disk) << a.path;
  }
}

}  // namespace
}  // namespace pgferry
