// The SQL compiled into the binary.
#include "assets.hpp"

#include <gtest/gtest.h>

#include <algorithm>
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

}  // namespace
}  // namespace pgferry
