// Every integration test binary ends its output with a recap of its failed assertions: where
// each was and the first lines of its message. A failing integration test prints pgferry's run
// log, often hundreds of kilobytes, and the assertion that failed sits before it. A reader of a
// CI log, or of an excerpt of its end, would otherwise have to search for it.
//
// Linked into each *_pgtest executable as a source of its own (tests/CMakeLists.txt): from the
// static support library nothing would pull it in, since nothing names it.
#include <gtest/gtest.h>

#include <iostream>
#include <sstream>
#include <string>
#include <vector>

namespace pgferry::test {
namespace {

/// How much of a failure message the recap repeats: its first lines, the log they carry left out.
constexpr int kRecapLines = 6;
constexpr std::size_t kRecapChars = 800;

std::string first_lines(const std::string& text) {
  std::istringstream in(text);
  std::string out;
  std::string line;
  for (int n = 0; n < kRecapLines && std::getline(in, line); ++n) {
    if (line.rfind("---- pgferry run log", 0) == 0) break;  // the log follows (ferry.cpp)
    out += "    " + line + "\n";
  }
  if (out.size() > kRecapChars) out = out.substr(0, kRecapChars) + " …\n";
  return out;
}

class FailureRecap : public testing::EmptyTestEventListener {
  // The test is remembered when it starts: UnitTest::current_test_info() takes the lock gtest
  // holds while it reports a result to the listeners.
  void OnTestStart(const testing::TestInfo& test) override {
    test_ = std::string(test.test_suite_name()) + "." + test.name();
  }
  void OnTestEnd(const testing::TestInfo&) override { test_ = "(outside a test)"; }

  void OnTestPartResult(const testing::TestPartResult& result) override {
    if (!result.failed()) return;
    std::ostringstream entry;
    entry << "  " << test_ << " at " << (result.file_name() != nullptr ? result.file_name() : "?") << ":"
          << result.line_number() << "\n"
          << first_lines(result.message());
    failures_.push_back(entry.str());
  }

  void OnTestProgramEnd(const testing::UnitTest&) override {
    if (failures_.empty()) return;
    std::cout << "\n==== " << failures_.size() << " failed assertion(s) in this binary (recap; the whole messages and "
              << "pgferry's run logs are above) ====\n";
    for (const auto& f : failures_) std::cout << f;
    std::cout << std::flush;
  }

  std::string test_ = "(outside a test)";
  std::vector<std::string> failures_;
};

/// Appended when the program starts: the listener list exists before main() runs.
const bool kRegistered = [] {
  testing::UnitTest::GetInstance()->listeners().Append(new FailureRecap);  // gtest owns it
  return true;
}();

}  // namespace
}  // namespace pgferry::test
