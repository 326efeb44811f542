// The sweep against two real servers: writes that bypass the capture triggers
// (session_replication_role = replica) reach the target within a few sweep intervals for tables
// with `updated_at`, and only within the lookback window; sweeps never overlap; and a sweep never
// writes an older image over a newer change the replicator applied.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "apply_sql.hpp"
#include "support/ferry.hpp"
#include "support/fixture.hpp"

namespace pgferry::test {
namespace {

constexpr const char* kItems =
    "CREATE TABLE public.items (id int PRIMARY KEY, name text, qty int, updated_at timestamptz NOT NULL DEFAULT "
    "now())";
constexpr const char* kItemsSwept = "  - name: public.items\n    updated_at: updated_at\n";
constexpr const char* kEverySecond = "sweep: {interval: 1s}\n";
/// The per-table lock batches hold shared and the sweep exclusively.
const std::string kTableLockClass = std::to_string(apply::kTableLockClass);

/// A sweep's start or end as the log records it.
struct SweepEvent {
  bool started = false;
  long number = 0;
};

std::vector<SweepEvent> sweep_events(const std::string& log) {
  static const std::regex re(R"(sweep (\d+) (started|finished in))");
  std::vector<SweepEvent> out;
  for (auto it = std::sregex_iterator(log.begin(), log.end(), re); it != std::sregex_iterator(); ++it) {
    out.push_back({(*it)[2] == "started", std::stol((*it)[1])});
  }
  return out;
}

/// Every key the log says the sweep repaired in `label`.
std::set<std::string> repaired_keys(const std::string& log, const std::string& label) {
  const std::regex re("sweep: " + label + R"(: \d+ row\(s\) repaired: keys ([^\n]*))");
  std::set<std::string> out;
  for (auto it = std::sregex_iterator(log.begin(), log.end(), re); it != std::sregex_iterator(); ++it) {
    const std::string keys = (*it)[1];
    std::size_t pos = 0;
    while (pos <= keys.size()) {
      auto comma = keys.find(", ", pos);
      if (comma == std::string::npos) comma = keys.size();
      out.insert(keys.substr(pos, comma - pos));
      pos = comma + 2;
    }
  }
  return out;
}

class Sweep : public ReplicationTest {
 protected:
  /// How many sweeps have finished so far.
  [[nodiscard]] long sweeps_finished() const {
    long n = 0;
    for (const auto& e : sweep_events(ferry_ ? ferry_->log() : "")) {
      if (!e.started) n = std::max(n, e.number);
    }
    return n;
  }
  /// Waits (bounded) until `count` more sweeps have finished.
  bool more_sweeps(long count) {
    const long target_count = sweeps_finished() + count;
    return eventually([&] { return sweeps_finished() >= target_count; }, 30000);
  }
  /// Runs `sql` on the source with the capture triggers bypassed.
  void bypassed(const std::string& sql) const {
    PgClient s = source();
    s.exec("SET session_replication_role = replica");
    s.exec(sql);
  }
  [[nodiscard]] std::string journal_rows() const { return source().scalar("SELECT count(*) FROM pgferry.journal"); }
};

// ---------------------------------------------------------------------------------------------
// 1. Writes that bypass the triggers, and rows that were never copied, are repaired.

TEST_F(Sweep, RepairsWritesThatBypassedTheTriggers) {
  on_both(kItems);
  // Rows 11..20 exist identically on both sides before setup (updated_at included); rows 1..10
  // only on the source.
  PgClient s = source();
  s.exec("INSERT INTO items (id, name, qty) SELECT g, 'same', g FROM generate_series(11, 20) g");
  target().exec("INSERT INTO items VALUES " +
                s.scalar("SELECT string_agg(format('(%s, %L, %s, %L)', id, name, qty, updated_at), ', ') FROM items"));
  s.exec("INSERT INTO items (id, name, qty) SELECT g, 'never copied', g FROM generate_series(1, 10) g");
  const auto config = configure(kItemsSwept, kEverySecond);
  // Mark the table streaming without an initial copy: only the sweep can bring rows 1..10.
  target().exec("UPDATE pgferry.table_state SET status = 'streaming'");
  start(config);
  ASSERT_TRUE(eventually([&] { return caught_up(); }, 30000)) << log();
  ASSERT_TRUE(same_tables({"public.items"}));
  ASSERT_TRUE(more_sweeps(1)) << log();

  bypassed("UPDATE items SET name = 'bypassed', qty = qty + 100, updated_at = now() WHERE id IN (11, 12)");
  bypassed("INSERT INTO items (id, name, qty) VALUES (100, 'new', 1), (101, 'new', 2), (102, 'new', 3)");
  EXPECT_EQ(journal_rows(), "0") << "the writes were meant to bypass the triggers";

  ASSERT_TRUE(same_tables({"public.items"}));
  EXPECT_EQ(target().scalar("SELECT name FROM items WHERE id = 12"), "bypassed");
  // The log names every repaired key; rows 13..20 never differed and are not named.
  const auto keys = repaired_keys(ferry().log(), "public.items");
  for (const char* k : {"1", "5", "10", "11", "12", "100", "101", "102"}) {
    EXPECT_TRUE(keys.count(k) == 1) << "key " << k << " not named as repaired" << log();
  }
  EXPECT_EQ(keys.count("13"), 0U) << log();
  EXPECT_NE(target().scalar("SELECT last_sweep_started FROM pgferry.table_state"), "") << log();
  EXPECT_EQ(ferry().stop(), 0) << log();
}

// ---------------------------------------------------------------------------------------------
// 2. Only tables with updated_at are swept.

TEST_F(Sweep, TableWithoutUpdatedAtIsNotSwept) {
  on_both(kItems);
  on_both("CREATE TABLE public.plain (id int PRIMARY KEY, name text, updated_at timestamptz DEFAULT now())");
  const auto config = configure(std::string(kItemsSwept) + "  - public.plain\n", kEverySecond);
  start(config);
  ASSERT_TRUE(eventually([&] { return caught_up(); }, 30000)) << log();
  source().exec("INSERT INTO items (id, name) VALUES (1, 'old'); INSERT INTO plain (id, name) VALUES (1, 'old')");
  ASSERT_TRUE(same_tables({"public.items", "public.plain"}));

  bypassed(
      "UPDATE items SET name = 'bypassed', updated_at = now(); UPDATE plain SET name = 'bypassed', updated_at = now()");
  ASSERT_TRUE(same_tables({"public.items"}));
  ASSERT_TRUE(more_sweeps(3)) << log();
  EXPECT_EQ(target().scalar("SELECT name FROM plain WHERE id = 1"), "old")
      << "a table without updated_at was swept" << log();
  EXPECT_FALSE(logged("sweep: public.plain")) << log();
  EXPECT_EQ(ferry().stop(), 0) << log();
}

// ---------------------------------------------------------------------------------------------
// 2b. Only streaming tables are swept: a stopped table waits for an operator.

TEST_F(Sweep, StoppedTableIsNotSwept) {
  on_both(kItems);
  const auto config = configure(kItemsSwept, kEverySecond);
  start(config);
  ASSERT_TRUE(eventually([&] { return caught_up(); }, 30000)) << log();
  source().exec("INSERT INTO items (id, name) VALUES (1, 'old')");
  ASSERT_TRUE(same_tables({"public.items"}));

  // Swept once before it stops: the window of the sweep after it resumes reaches back to then.
  ASSERT_TRUE(eventually(
      [&] { return target().scalar("SELECT count(last_sweep_started) FROM pgferry.table_state") == "1"; }, 30000))
      << log();
  target().exec("UPDATE pgferry.table_state SET status = 'stopped', stop_reason = 'test'");
  ASSERT_TRUE(more_sweeps(1)) << log();
  bypassed("UPDATE items SET name = 'bypassed', updated_at = now()");
  ASSERT_TRUE(more_sweeps(3)) << log();
  EXPECT_EQ(target().scalar("SELECT name FROM items WHERE id = 1"), "old") << "a stopped table was swept" << log();

  target().exec("UPDATE pgferry.table_state SET status = 'streaming', stop_reason = NULL");
  EXPECT_TRUE(eventually([&] { return target().scalar("SELECT name FROM items WHERE id = 1") == "bypassed"; }, 30000))
      << log();
  EXPECT_EQ(ferry().stop(), 0) << log();
}

// ---------------------------------------------------------------------------------------------
// 2c. A sweep that fails (its connection killed) is logged; the next one reconnects.

TEST_F(Sweep, LostConnectionIsLoggedAndTheNextSweepReconnects) {
  on_both(kItems);
  const auto config = configure(kItemsSwept, kEverySecond);
  start(config);
  ASSERT_TRUE(eventually([&] { return caught_up(); }, 30000)) << log();
  source().exec("INSERT INTO items (id, name) VALUES (1, 'old')");
  ASSERT_TRUE(same_tables({"public.items"}));
  ASSERT_TRUE(more_sweeps(1)) << log();

  ASSERT_EQ(target().scalar("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = "
                            "'pgferry sweep'"),
            "1")
      << log();
  bypassed("UPDATE items SET name = 'bypassed', updated_at = now()");
  ASSERT_TRUE(eventually([&] { return target().scalar("SELECT name FROM items WHERE id = 1") == "bypassed"; }, 30000))
      << log();
  EXPECT_TRUE(logged("reconnecting at the next sweep")) << log();
  EXPECT_TRUE(ferry().running()) << log();
  EXPECT_EQ(ferry().stop(), 0) << log();
}

// ---------------------------------------------------------------------------------------------
// 3. A sweep slower than the interval delays the next one; sweeps never overlap.

TEST_F(Sweep, SlowSweepDelaysTheNextOneAndWarns) {
  on_both(kItems);
  const auto config = configure(kItemsSwept, kEverySecond);
  start(config);
  ASSERT_TRUE(eventually([&] { return caught_up(); }, 30000)) << log();
  source().exec("INSERT INTO items (id, name) SELECT g, 'old' FROM generate_series(1, 5) g");
  ASSERT_TRUE(same_tables({"public.items"}));
  const std::string table_id =
      source().scalar("SELECT id FROM pgferry.captured_table WHERE source_table = '\"public\".\"items\"'");

  // Hold the table's lock the way a batch in flight would, for about three intervals: the sweep
  // that wants it waits, and the sweeps due meanwhile wait for it.
  PgClient holder = target();
  holder.exec("SELECT pg_advisory_lock(" + kTableLockClass + ", " + table_id + ")");
  bypassed("UPDATE items SET name = 'bypassed', updated_at = now() WHERE id = 3");
  const long before = sweeps_finished();
  std::this_thread::sleep_for(std::chrono::milliseconds(3500));
  EXPECT_EQ(target().scalar("SELECT name FROM items WHERE id = 3"), "old") << "the sweep wrote without the lock";
  holder.exec("SELECT pg_advisory_unlock(" + kTableLockClass + ", " + table_id + ")");
  ASSERT_TRUE(same_tables({"public.items"}));
  ASSERT_TRUE(more_sweeps(2)) << log();

  EXPECT_TRUE(logged("more than 80% of sweep.interval")) << log();
  // While the lock was held no more than one sweep ended (the one blocked on it ends after).
  const auto events = sweep_events(ferry().log());
  ASSERT_FALSE(events.empty()) << log();
  long expected = events.front().number;
  bool open = false;
  for (const auto& e : events) {
    if (e.started) {
      ASSERT_FALSE(open) << "sweep " << e.number << " started while sweep " << expected << " ran" << log();
      ASSERT_EQ(e.number, expected) << log();
      open = true;
    } else {
      ASSERT_TRUE(open && e.number == expected) << "sweep " << e.number << " finished out of order" << log();
      open = false;
      ++expected;
    }
  }
  EXPECT_GT(sweeps_finished(), before) << log();
  EXPECT_EQ(ferry().stop(), 0) << log();
}

// ---------------------------------------------------------------------------------------------
// 3b. Shutdown does not wait for a sweep blocked on a table's lock: its statement is cancelled.

TEST_F(Sweep, ShutdownCancelsASweepWaitingForTheTableLock) {
  on_both(kItems);
  const auto config = configure(kItemsSwept, kEverySecond);
  start(config);
  ASSERT_TRUE(eventually([&] { return caught_up(); }, 30000)) << log();
  source().exec("INSERT INTO items (id, name) VALUES (1, 'old')");
  ASSERT_TRUE(same_tables({"public.items"}));
  const std::string table_id =
      source().scalar("SELECT id FROM pgferry.captured_table WHERE source_table = '\"public\".\"items\"'");
  PgClient holder = target();
  holder.exec("SELECT pg_advisory_lock(" + kTableLockClass + ", " + table_id + ")");
  // The sweep waits for the lock (its backend shows it), and no sweep finishes meanwhile.
  ASSERT_TRUE(eventually(
      [&] {
        return target().scalar(
                   "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgferry sweep' AND "
                   "wait_event_type = 'Lock'") == "1";
      },
      30000))
      << log();
  // SIGKILL after 20 s: a stop that waited for the lock would not exit 0.
  EXPECT_EQ(ferry().stop(20000), 0) << log();
  EXPECT_TRUE(logged("sweep ")) << log();
}

// ---------------------------------------------------------------------------------------------
// 4. The lookback window: a bypassed write older than it is not repaired (verify finds those).

TEST_F(Sweep, RepairsOnlyWithinTheLookbackWindow) {
  on_both(kItems);
  // Interval 1s x 60: the window reaches 60 s before the start of the last sweep.
  const auto config = configure(kItemsSwept, "sweep: {interval: 1s, lookback_multiplier: 60}\n");
  start(config);
  ASSERT_TRUE(eventually([&] { return caught_up(); }, 30000)) << log();
  source().exec("INSERT INTO items (id, name) VALUES (1, 'old'), (2, 'old')");
  ASSERT_TRUE(same_tables({"public.items"}));
  ASSERT_TRUE(more_sweeps(1)) << log();
  ASSERT_TRUE(eventually(
      [&] { return target().scalar("SELECT count(last_sweep_started) FROM pgferry.table_state") == "1"; }, 30000))
      << log();

  bypassed("UPDATE items SET name = 'outside', updated_at = now() - interval '1 hour' WHERE id = 1");
  bypassed("UPDATE items SET name = 'inside', updated_at = now() - interval '20 seconds' WHERE id = 2");
  ASSERT_TRUE(eventually([&] { return target().scalar("SELECT name FROM items WHERE id = 2") == "inside"; }, 30000))
      << log();
  ASSERT_TRUE(more_sweeps(3)) << log();
  EXPECT_EQ(target().scalar("SELECT name FROM items WHERE id = 1"), "old")
      << "a write older than the lookback window was repaired" << log();
  const auto keys = repaired_keys(ferry().log(), "public.items");
  EXPECT_EQ(keys.count("1"), 0U) << log();
  EXPECT_EQ(keys.count("2"), 1U) << log();
  EXPECT_EQ(ferry().stop(), 0) << log();
}

// ---------------------------------------------------------------------------------------------
// 5. The sweep never writes an older image over a newer one, with triggered and bypassed writes
//    of the same rows flowing during the sweeps.

TEST_F(Sweep, NeverRegressesRowsUnderConcurrentWrites) {
  on_both(kItems);
  // On the target only: every write by the sweep is recorded, with the quantity it replaced.
  // Every writer only ever increases qty, so a sweep write that lowers it put an older image
  // over a newer one.
  target().exec(R"sql(
    CREATE TABLE public.sweep_writes (id int, old_qty int, new_qty int);
    CREATE FUNCTION public.note_sweep_write() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF current_setting('application_name') = 'pgferry sweep' THEN
        INSERT INTO public.sweep_writes VALUES (NEW.id, OLD.qty, NEW.qty);
      END IF;
      RETURN NEW;
    END $$;
    CREATE TRIGGER note_sweep_write BEFORE UPDATE ON public.items
      FOR EACH ROW EXECUTE FUNCTION public.note_sweep_write();
  )sql");
  source().exec("INSERT INTO items (id, name, qty) SELECT g, 'row', 0 FROM generate_series(1, 20) g");
  const auto config = configure(kItemsSwept, kEverySecond);
  // Small chunks: each sweep takes many lock/read/write rounds while the writers run.
  // A pause between each chunk's read and its write: with the table's lock taken before the
  // read, batches wait it out; were the read taken first, batches would land in it.
  setenv("PGFERRY_TEST_SWEEP_CHUNK_ROWS", "3", 1);
  setenv("PGFERRY_TEST_SWEEP_WRITE_DELAY_MS", "30", 1);
  start(config);
  unsetenv("PGFERRY_TEST_SWEEP_CHUNK_ROWS");
  unsetenv("PGFERRY_TEST_SWEEP_WRITE_DELAY_MS");
  ASSERT_TRUE(same_tables({"public.items"}));

  std::atomic<bool> stop{false};
  std::atomic<int> errors{0};
  auto writer = [&](bool bypass, int stride) {
    try {
      PgClient s = source();
      if (bypass) s.exec("SET session_replication_role = replica");
      for (int i = 0; !stop; ++i) {
        const int id = (i * stride) % 20 + 1;
        s.exec("UPDATE items SET qty = qty + 1, updated_at = now() WHERE id = " + std::to_string(id));
      }
    } catch (const std::exception& e) {
      ADD_FAILURE() << e.what();
      ++errors;
    }
  };
  std::thread triggered_a(writer, false, 7);
  std::thread triggered_b(writer, false, 11);
  std::thread bypassing(writer, true, 13);
  const long before = sweeps_finished();
  eventually([&] { return sweeps_finished() >= before + 6; }, 30000);
  stop = true;
  triggered_a.join();
  triggered_b.join();
  bypassing.join();
  ASSERT_EQ(errors.load(), 0);

  ASSERT_TRUE(same_tables({"public.items"}));
  PgClient t = target();
  EXPECT_NE(t.scalar("SELECT count(*) FROM public.sweep_writes"), "0") << "the sweep never wrote" << log();
  EXPECT_EQ(t.scalar("SELECT count(*) FROM public.sweep_writes WHERE new_qty < old_qty"), "0")
      << "the sweep wrote an older image over a newer one: "
      << t.scalar(
             "SELECT string_agg(format('id %s: %s -> %s', id, old_qty, new_qty), '; ') FROM public.sweep_writes "
             "WHERE new_qty < old_qty")
      << log();
  EXPECT_EQ(ferry().stop(), 0) << log();
}

}  // namespace
}  // namespace pgferry::test
