// The settings `pgferry run` reads: batch bounds, apply options, poll interval, shutdown timeout,
// and byte sizes. Every bad value is a configuration error that names the key and offers a fix.
#include <gtest/gtest.h>

#include <string>

#include "config.hpp"

namespace pgferry {
namespace {

using std::chrono::milliseconds;

Result<Config> parse(const std::string& extra, const Env& env = {}) {
  return parse_config("source: \"dbname=a\"\ntarget: \"dbname=b\"\ntables: [users]\n" + extra, "pgferry.yaml", env);
}

std::string failure(const std::string& extra, const Env& env = {}) {
  auto r = parse(extra, env);
  EXPECT_FALSE(r.ok()) << extra;
  if (r.ok()) return {};
  EXPECT_EQ(exit_code_for(r.error()), 2);
  EXPECT_FALSE(r.error().fix.empty()) << r.error().describe();
  return r.error().describe();
}

TEST(RunConfig, DefaultsSuitAFreshInstall) {
  auto r = parse("");
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ(r->batch.max_rows, 10000);
  EXPECT_EQ(r->batch.max_bytes, 64 << 20);
  EXPECT_FALSE(r->apply.replica_role);
  EXPECT_EQ(r->journal.vacuum_after_rows, 50000);
  EXPECT_EQ(r->poll_interval, milliseconds(1000));
  EXPECT_EQ(r->shutdown_timeout, milliseconds(30'000));
}

TEST(RunConfig, ReadsEverySetting) {
  auto r = parse(
      "batch: {max_rows: 500, max_bytes: 16MB}\napply: {replica_role: true}\npoll_interval: 250ms\n"
      "shutdown_timeout: 1m\njournal: {vacuum_after_rows: 0}\n");
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ(r->batch.max_rows, 500);
  EXPECT_EQ(r->batch.max_bytes, 16 << 20);
  EXPECT_TRUE(r->apply.replica_role);
  EXPECT_EQ(r->poll_interval, milliseconds(250));
  EXPECT_EQ(r->shutdown_timeout, milliseconds(60'000));
  EXPECT_EQ(r->journal.vacuum_after_rows, 0);
}

TEST(RunConfig, EnvironmentVariablesOverrideTheFile) {
  auto r = parse("batch: {max_rows: 500}\n", {{"PGFERRY_BATCH_MAX_ROWS", "42"},
                                              {"PGFERRY_BATCH_MAX_BYTES", "1GB"},
                                              {"PGFERRY_APPLY_REPLICA_ROLE", "true"},
                                              {"PGFERRY_POLL_INTERVAL", "2s"},
                                              {"PGFERRY_SHUTDOWN_TIMEOUT", "5s"},
                                              {"PGFERRY_JOURNAL_VACUUM_AFTER_ROWS", "1000"}});
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ(r->batch.max_rows, 42);
  EXPECT_EQ(r->batch.max_bytes, std::int64_t{1} << 30);
  EXPECT_TRUE(r->apply.replica_role);
  EXPECT_EQ(r->poll_interval, milliseconds(2000));
  EXPECT_EQ(r->shutdown_timeout, milliseconds(5000));
  EXPECT_EQ(r->journal.vacuum_after_rows, 1000);
  EXPECT_TRUE(r->warnings.empty());
}

TEST(RunConfig, RejectsBadBatchBounds) {
  EXPECT_NE(failure("batch: {max_rows: 0}\n").find("batch.max_rows"), std::string::npos);
  EXPECT_NE(failure("batch: {max_rows: ten}\n").find("'ten'"), std::string::npos);
  EXPECT_NE(failure("batch: {max_rows: 12x}\n").find("batch.max_rows"), std::string::npos);
  EXPECT_NE(failure("batch: {max_bytes: 1kB}\n").find("out of range"), std::string::npos);
  EXPECT_NE(failure("batch: {max_bytes: 5 parsecs}\n").find("unknown unit"), std::string::npos);
  EXPECT_NE(failure("batch: {rows: 5}\n").find("batch.rows"), std::string::npos);
  EXPECT_NE(failure("batch: 5\n").find("mapping"), std::string::npos);
  EXPECT_NE(failure("", {{"PGFERRY_BATCH_MAX_ROWS", "-1"}}).find("PGFERRY_BATCH_MAX_ROWS"), std::string::npos);
}

TEST(RunConfig, RejectsABadJournalVacuumThreshold) {
  const auto negative = failure("journal: {vacuum_after_rows: -5}\n");
  EXPECT_NE(negative.find("journal.vacuum_after_rows"), std::string::npos) << negative;
  EXPECT_NE(negative.find("'-5'"), std::string::npos) << negative;
  EXPECT_NE(negative.find("0 to leave the journal to autovacuum"), std::string::npos) << negative;
  EXPECT_NE(failure("journal: {vacuum_after_rows: lots}\n").find("'lots'"), std::string::npos);
  EXPECT_NE(failure("journal: {vacuum: 5}\n").find("journal.vacuum"), std::string::npos);
  EXPECT_NE(failure("journal: 5\n").find("mapping"), std::string::npos);
}

TEST(RunConfig, RejectsBadApplyAndDurations) {
  EXPECT_NE(failure("apply: {replica_role: maybe}\n").find("apply.replica_role"), std::string::npos);
  EXPECT_NE(failure("apply: {role: replica}\n").find("apply.role"), std::string::npos);
  EXPECT_NE(failure("poll_interval: 1ms\n").find("shorter than 10ms"), std::string::npos);
  EXPECT_NE(failure("poll_interval: 5\n").find("unit"), std::string::npos);
  EXPECT_NE(failure("shutdown_timeout: soon\n").find("shutdown_timeout"), std::string::npos);
}

TEST(ParseBytes, ReadsUnitsAsPowersOfTwo) {
  EXPECT_EQ(*parse_bytes("0"), 0);
  EXPECT_EQ(*parse_bytes("123"), 123);
  EXPECT_EQ(*parse_bytes("123B"), 123);
  EXPECT_EQ(*parse_bytes("64kB"), 64 * 1024);
  EXPECT_EQ(*parse_bytes("64MB"), 64 << 20);
  EXPECT_EQ(*parse_bytes("2 GB"), std::int64_t{2} << 30);
  EXPECT_EQ(*parse_bytes("1TiB"), std::int64_t{1} << 40);
  EXPECT_EQ(*parse_bytes("16m"), 16 << 20);
}

TEST(ParseBytes, RejectsWhatItCannotRead) {
  for (const char* bad : {"", "MB", "-5MB", "1.5MB", "12 furlongs", "99999999999999999999", "9000000000000TB"}) {
    auto r = parse_bytes(bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_FALSE(r.error().fix.empty());
    }
  }
}

}  // namespace
}  // namespace pgferry
