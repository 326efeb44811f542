// Tests that try to break order and atomicity: transactions that commit in a different order
// than they drew journal ids, many concurrent clients fighting over the same rows, and a checker
// that reads an invariant on the target the whole time.
#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "support/ferry.hpp"

namespace pgferry::test {
namespace {

class Ordering : public ReplicationTest {};

TEST_F(Ordering, ATransactionThatCommitsLateStillArrives) {
  on_both("CREATE TABLE public.t (id int PRIMARY KEY, v text)");
  source().exec("INSERT INTO t VALUES (100, 'x')");
  const auto config = configure("  - public.t\n");
  start(config);
  ASSERT_TRUE(same_tables({"public.t"}));

  PgClient a = source();
  PgClient b = source();
  a.exec("BEGIN; INSERT INTO t VALUES (1, 'from A')");  // draws the lower journal id, stays open
  b.exec("BEGIN; INSERT INTO t VALUES (2, 'from B'), (3, 'from B'); COMMIT");
  ASSERT_TRUE(eventually([&] { return target().scalar("SELECT count(*) FROM t WHERE id IN (2, 3)") == "2"; }, 30000));
  EXPECT_EQ(target().scalar("SELECT count(*) FROM t WHERE id = 1"), "0");  // not committed yet
  a.exec("COMMIT");
  ASSERT_TRUE(same_tables({"public.t"}));

  // The same row: A updates and stays open, B's update of that row waits for A; B must win.
  a.exec("BEGIN; UPDATE t SET v = 'A' WHERE id = 100");
  std::thread tb([&] { b.exec("UPDATE t SET v = 'B' WHERE id = 100"); });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // let B queue behind A's row lock
  a.exec("COMMIT");
  tb.join();
  ASSERT_TRUE(same_tables({"public.t"}));
  EXPECT_EQ(target().scalar("SELECT v FROM t WHERE id = 100"), "B");
}

TEST_F(Ordering, SmallTransactionsInterleavedWithALargeOnePassItInOrder) {
  // A large transaction B draws journal ids before and after fifty small ones that commit while
  // it is open; one of them (T) updates a row that B then updates again. The reader's head fills
  // with B's first rows, so it must order by commit: T and the others first (one batch, not one
  // chunked "large transaction" each), then B in chunks, so B's image of row 1 wins.
  on_both("CREATE TABLE public.t (id int PRIMARY KEY, v text)");
  source().exec("INSERT INTO t VALUES (1, 'seed')");
  const auto config = configure("  - public.t\n", "batch: {max_rows: 100}\n");
  start(config);
  ASSERT_TRUE(same_tables({"public.t"}));
  ASSERT_EQ(ferry().stop(), 0);

  PgClient b = source();
  PgClient small = source();
  b.exec("BEGIN; INSERT INTO t SELECT g, 'B' FROM generate_series(1000, 1299) g");
  small.exec("UPDATE t SET v = 'T' WHERE id = 1");
  for (int i = 0; i < 50; ++i) small.exec("INSERT INTO t VALUES (" + std::to_string(2000 + i) + ", 'small')");
  b.exec("UPDATE t SET v = 'B' WHERE id = 1; INSERT INTO t SELECT g, 'B' FROM generate_series(1300, 1599) g; COMMIT");

  start(config);
  ASSERT_TRUE(same_tables({"public.t"}));
  EXPECT_EQ(target().scalar("SELECT v FROM t WHERE id = 1"), "B");
  const std::string log = ferry().log();
  std::size_t chunked = 0;
  for (auto at = log.find("larger than one batch"); at != std::string::npos;
       at = log.find("larger than one batch", at + 1)) {
    ++chunked;
  }
  EXPECT_EQ(chunked, 1U) << "only B is larger than a batch\n" << log;
}

// What the reader costs, counted by the journal's own statistics (not timed): its statements must
// stay linear in the rows whatever the planner believes about the journal.
class ReaderCost : public ReplicationTest {
 protected:
  // Table t on both sides, replicated once, then the replicator stopped; returns the config.
  // (The health monitor's backlog query would read the journal too: once an hour here.)
  std::string stopped_replicator() {
    on_both("CREATE TABLE public.t (id int PRIMARY KEY, v int)");
    auto config = configure("  - public.t\n", "batch: {max_rows: 1000}\nhealth: {check_interval: 1h}\n");
    start(config);
    EXPECT_TRUE(same_tables({"public.t"}));
    EXPECT_EQ(ferry().stop(), 0);
    return config;
  }
  // Runs the replicator until the target holds `rows` rows (waiting on the target only: the test
  // must not read the journal itself), then stops it so its sessions report their counters.
  bool replicate(const std::string& config, int rows) {
    start(config);
    const bool done =
        eventually([&] { return target().scalar("SELECT count(*) FROM t") == std::to_string(rows); }, 120000);
    EXPECT_EQ(ferry().stop(), 0);
    return done;
  }
  // Zeroes the statistics of the journal's indexes.
  void reset_index_counters() const {
    for (const char* index : {"pgferry.journal_pkey", "pgferry.journal_xid_id_idx"}) {
      source().exec(std::string("SELECT pg_stat_reset_single_table_counters('") + index + "'::regclass)");
    }
  }
  // The sum of `column` of `view` over the journal's indexes, once the stopped replicator's
  // sessions reported at least `at_least` (see counter).
  long long index_counter(const std::string& view, const std::string& column, long long at_least) const {
    return counter("SELECT sum(" + column + ") FROM " + view + " WHERE relid = 'pgferry.journal'::regclass", at_least);
  }
  // A statistics counter once the stopped replicator's sessions have reported it (they do as they
  // end, a moment after the process exits): at least `at_least`, then settled.
  long long counter(const std::string& sql, long long at_least) const {
    const auto value = [&] { return std::stoll(source().scalar(sql)); };
    EXPECT_TRUE(eventually([&] { return value() >= at_least; }, 10000)) << sql;
    std::this_thread::sleep_for(std::chrono::seconds(2));
    return value();
  }
};

// A transaction larger than a batch is read in chunks, each from where the last ended. Under
// journal statistics taken while it held many small transactions (the planner then expects a few
// rows per transaction), a chunk read became "fetch every remaining row of the transaction, sort,
// keep the first max_rows": quadratic in its size (0.6 s per chunk, 60 s for 1,000,000 rows in
// bench/bulk). Every journal row must be fetched a few times at most.
TEST_F(ReaderCost, AChunkedTransactionIsReadOnceUnderStaleStatistics) {
  const auto config = stopped_replicator();
  PgClient s = source();
  constexpr int kRows = 50000;  // 50 chunks: about 1.3 million rows fetched if each reads the rest
  s.exec("INSERT INTO t SELECT g, g FROM generate_series(1, " + std::to_string(kRows) + ") g");
  // Statistics that know nothing of xid: the planner then expects 1/200 of the journal per
  // transaction, a few hundred rows, fewer than a batch (stale statistics do the same in real
  // life, taken while the journal held other transactions), and a server that prices random
  // reads high: fetching them all with a bitmap scan and sorting them looks cheapest.
  s.exec("ALTER TABLE pgferry.journal ALTER COLUMN xid SET STATISTICS 0");
  s.exec("ANALYZE pgferry.journal");
  s.exec("ALTER DATABASE " + db_ + " SET random_page_cost = 40");
  s.exec("SELECT pg_stat_reset_single_table_counters('pgferry.journal'::regclass)");
  ASSERT_TRUE(replicate(config, kRows)) << log();
  // Reading, acknowledging and finding the transaction's place in commit order take each row a
  // few times; the quadratic read took each ~25 times.
  const long long fetched = counter(
      "SELECT coalesce(idx_tup_fetch, 0) FROM pg_stat_user_tables WHERE relid = 'pgferry.journal'::regclass", kRows);
  EXPECT_LT(fetched, 5LL * kRows) << "journal rows fetched to replicate " << kRows << " rows\n" << log();
}

// The batch read takes a transaction when it has no row after the cut. After a vacuum of the
// empty journal (that could not truncate it) the planner believes any journal holds one row, and
// answered that check by scanning the whole rest of the journal once per row of the cut (98 s for
// one batch in bench/e2e). The index entries read must stay linear in the rows.
TEST_F(ReaderCost, ABatchReadStaysLinearWhenTheJournalLooksEmptyToThePlanner) {
  const auto config = stopped_replicator();
  PgClient s = source();
  // Pages but no live rows in the statistics: a journal emptied and vacuumed without truncation.
  s.exec("INSERT INTO t SELECT g, g FROM generate_series(1, 30000) g");
  s.exec("DELETE FROM t");
  s.exec("DELETE FROM pgferry.journal");
  s.exec("VACUUM (TRUNCATE false) pgferry.journal");
  constexpr int kRows = 30000;  // in 10,000 small transactions
  s.exec(
      "DO $$ BEGIN FOR i IN 0..9999 LOOP INSERT INTO t SELECT g, g FROM generate_series(i * 3 + 1, i * 3 + 3) g; "
      "COMMIT; END LOOP; END $$");
  reset_index_counters();
  ASSERT_TRUE(replicate(config, kRows)) << log();
  const long long read = index_counter("pg_stat_user_indexes", "idx_tup_read", kRows);
  EXPECT_LT(read, 10LL * kRows) << "entries of the journal's indexes read to replicate " << kRows << " rows\n" << log();
}

// The ack deletes a batch's journal rows. With statistics that say the journal is empty (what a
// vacuum of the emptied journal leaves: the normal state of a replicator that keeps up; set here
// directly — column statistics from an ANALYZE, then pages but no rows) while a backlog builds,
// `DELETE … WHERE id = ANY ($ids)` was planned on journal_xid_id_idx with the ids as a condition on
// its second column, which PostgreSQL 15 answers with a scan of the whole index per id: quadratic
// (10.9 s for one ack in bench/e2e; here 420,233 index pages visited against 40,295). Entries such
// a scan passes over are not "read" (idx_tup_read counts the entries returned), so the measure is
// the index pages visited: a few per row when every row is found by a descent.
TEST_F(ReaderCost, TheAckStaysLinearWhenTheStatisticsSayTheJournalIsEmpty) {
  const auto config = stopped_replicator();
  PgClient s = source();
  s.exec("ALTER TABLE pgferry.journal SET (autovacuum_enabled = false)");  // keep the statistics below
  constexpr int kRows = 10000;  // single-row transactions: 1,000-row batches, 1,000 ids per ack
  s.exec("DO $$ BEGIN FOR i IN 1.." + std::to_string(kRows) +
         " LOOP INSERT INTO t VALUES (i, i); COMMIT; END LOOP; END $$");
  s.exec("ANALYZE pgferry.journal");
  s.exec(
      "UPDATE pg_class SET reltuples = 0, relpages = pg_relation_size(oid) / 8192 WHERE oid IN "
      "('pgferry.journal'::regclass, 'pgferry.journal_pkey'::regclass, 'pgferry.journal_xid_id_idx'::regclass)");
  reset_index_counters();
  ASSERT_TRUE(replicate(config, kRows)) << log();
  const long long pages = index_counter("pg_statio_user_indexes", "idx_blks_hit + idx_blks_read", kRows);
  EXPECT_LT(pages, 20LL * kRows) << "index pages of the journal visited to replicate " << kRows << " rows\n" << log();
}

// While the target applies a batch, the reader reads the next one past that batch's ids (they
// are acknowledged only after the target commits). Every journal row must still be applied
// exactly once — a batch read again after it was read ahead would count twice — and in an order
// the source's row locks allow, with transactions committing out of id order throughout: writers
// queue on a few hot rows, some pausing after they took their journal id. A transaction eight
// batches long is applied chunk by chunk, each next chunk read while one is applied.
TEST_F(Ordering, EveryJournalRowIsAppliedOnceWhileTheNextBatchIsReadAhead) {
  on_both("CREATE TABLE public.hot (id int PRIMARY KEY, v int NOT NULL)");
  on_both("CREATE TABLE public.ins (id int PRIMARY KEY, writer int NOT NULL)");
  on_both("INSERT INTO hot SELECT g, 0 FROM generate_series(1, 8) g");
  const auto config = configure("  - public.hot\n  - public.ins\n", "batch: {max_rows: 50}\n");
  start(config);
  ASSERT_TRUE(same_tables({"public.hot", "public.ins"}));
  ASSERT_EQ(ferry().stop(), 0);
  const auto applied = [&] { return std::stoll(target().scalar("SELECT sum(rows_applied) FROM pgferry.table_state")); };
  const auto journaled = [&] {
    return std::stoll(
        source().scalar("SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM pgferry.journal_id_seq"));
  };
  const long long applied_before = applied();
  const long long journaled_before = journaled();

  constexpr int kWriters = 4;
  constexpr int kTransactions = 500;  // per writer, two journal rows each, no rollbacks
  std::atomic<int> done{0};
  const auto write = [&](int w, int from, int to) {
    std::mt19937 rng(static_cast<unsigned>(w));
    PgClient db = source();
    for (int i = from; i < to; ++i) {
      const auto k = std::to_string(std::uniform_int_distribution<int>(1, 8)(rng));
      std::string sql = "BEGIN; UPDATE hot SET v = v + 1 WHERE id = " + k + ";";
      if (std::uniform_int_distribution<int>(0, 9)(rng) == 0) sql += "SELECT pg_sleep(0.002);";
      sql += "INSERT INTO ins VALUES (" + std::to_string(w * 100000 + i) + ", " + std::to_string(w) + "); COMMIT";
      db.exec(sql);
      ++done;
    }
  };
  const auto all_write = [&](int from, int to) {
    std::vector<std::thread> writers;
    writers.reserve(kWriters);
    for (int w = 0; w < kWriters; ++w) writers.emplace_back(write, w, from, to);
    for (auto& t : writers) t.join();
  };
  // Half as a backlog (a drain in 50-row batches), half while the replicator catches up.
  constexpr int kLarge = 400;
  PgClient large = source();
  large.exec("BEGIN; INSERT INTO ins SELECT g, -1 FROM generate_series(1000000, " + std::to_string(999999 + kLarge) +
             ") g");
  all_write(0, kTransactions / 2);
  large.exec("UPDATE hot SET v = v + 1000; COMMIT");  // its first rows precede every writer's
  start(config);
  all_write(kTransactions / 2, kTransactions);
  ASSERT_EQ(done.load(), kWriters * kTransactions);
  ASSERT_TRUE(same_tables({"public.hot", "public.ins"}, "id", 120000)) << log();
  ASSERT_EQ(ferry().stop(), 0);
  EXPECT_EQ(journaled() - journaled_before, 2LL * kWriters * kTransactions + kLarge + 8);
  EXPECT_EQ(applied() - applied_before, journaled() - journaled_before) << "journal rows applied more than once\n"
                                                                        << log();
  // The read ahead really happened: batches read while the one before was applied.
  const std::string log_text = ferry().log();
  EXPECT_GT(ferry().stop_counts().second, 10) << log_text;
  EXPECT_NE(log_text.find("applied in 9 chunk(s)"), std::string::npos) << log_text;
}

TEST_F(Ordering, SixteenClientsOnOverlappingRowsEndEqual) {
  on_both("CREATE TABLE public.hot (id int PRIMARY KEY, v int NOT NULL, tag text)");
  // Small batches make many batch boundaries fall between concurrent transactions.
  const auto config = configure("  - public.hot\n", "batch: {max_rows: 50}\n");
  start(config);
  constexpr int kClients = 16;
  constexpr int kTransactions = 5000;
  constexpr int kKeys = 200;
  std::atomic<int> next{0};
  std::atomic<int> failures{0};
  std::vector<std::thread> clients;
  clients.reserve(kClients);
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      std::mt19937 rng(static_cast<unsigned>(1000 + c));  // fixed seeds: a failure reproduces
      auto key = [&] { return std::to_string(std::uniform_int_distribution<int>(1, kKeys)(rng)); };
      PgClient db = source();
      while (next.fetch_add(1) < kTransactions) {
        const int kind = std::uniform_int_distribution<int>(0, 9)(rng);
        std::string sql = "BEGIN;";
        const int statements = 1 + std::uniform_int_distribution<int>(0, 2)(rng);
        for (int s = 0; s < statements; ++s) {
          const std::string k = key();
          switch ((kind + s) % 5) {
            case 0:
            case 1:
              sql += "INSERT INTO hot VALUES (" + k + ", 1, 'i') ON CONFLICT (id) DO UPDATE SET v = hot.v + 1;";
              break;
            case 2:
              sql += "UPDATE hot SET v = v * 2 % 1000003, tag = 'u" + std::to_string(c) + "' WHERE id = " + k + ";";
              break;
            case 3:
              sql += "DELETE FROM hot WHERE id = " + k + ";";
              break;
            default:
              // A key change to a free key (the high range is never written otherwise).
              sql += "UPDATE hot SET id = id + 100000 WHERE id = " + k +
                     " AND NOT EXISTS (SELECT 1 FROM hot WHERE id = " + k + " + 100000);";
          }
        }
        if (std::uniform_int_distribution<int>(0, 3)(rng) == 0) sql += "SELECT pg_sleep(0.001);";
        sql += "COMMIT";
        // Deadlocks and unique violations between clients are the source's business: retry.
        if (!db.try_exec(sql).empty()) {
          db.try_exec("ROLLBACK");
          ++failures;
        }
        if (std::uniform_int_distribution<int>(0, 4)(rng) == 0) {
          std::this_thread::sleep_for(std::chrono::microseconds(std::uniform_int_distribution<int>(0, 2000)(rng)));
        }
      }
    });
  }
  for (auto& t : clients) t.join();
  ASSERT_TRUE(same_tables({"public.hot"}, "id", 120000)) << failures << " client transactions failed on the source";
  // The workload must really have happened: few failures (deadlocks, unique races), many changes.
  EXPECT_LT(failures.load(), kTransactions / 10);
  // Journal rows written (the sequence, not rows_applied: a slower replicator coalesces more).
  EXPECT_GT(std::stol(source().scalar("SELECT last_value FROM pgferry.journal_id_seq")), kTransactions);
  EXPECT_GT(std::stol(target().scalar("SELECT count(*) FROM hot")), 20);
}

TEST_F(Ordering, TheTargetNeverShowsHalfATransaction) {
  on_both("CREATE TABLE public.accounts (id int PRIMARY KEY, balance bigint NOT NULL)");
  constexpr int kAccounts = 100;
  constexpr long kTotal = kAccounts * 1000L;
  source().exec("INSERT INTO accounts SELECT g, 1000 FROM generate_series(1, " + std::to_string(kAccounts) + ") g");
  // Small batches: many target transactions, each of which must hold whole source transactions.
  const auto config = configure("  - public.accounts\n", "batch: {max_rows: 20}\n");
  start(config);
  ASSERT_TRUE(same_tables({"public.accounts"}));

  std::atomic<bool> stop{false};
  std::atomic<long> reads{0};
  std::atomic<long> violations{0};
  std::string first_violation;
  std::thread checker([&] {
    PgClient t = target();
    while (!stop) {
      const std::string got = t.scalar("SELECT sum(balance) || ' ' || count(*) FROM accounts");
      ++reads;
      if (got != std::to_string(kTotal) + " " + std::to_string(kAccounts)) {
        if (violations++ == 0) first_violation = got;
      }
    }
  });
  std::vector<std::thread> writers;
  writers.reserve(8);
  for (int w = 0; w < 8; ++w) {
    writers.emplace_back([&, w] {
      std::mt19937 rng(static_cast<unsigned>(7 + w));
      std::uniform_int_distribution<int> account(1, kAccounts);
      PgClient db = source();
      const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      while (std::chrono::steady_clock::now() < until) {
        const int a = account(rng);
        const int b = account(rng);
        const int c = account(rng);
        const int amount = std::uniform_int_distribution<int>(1, 50)(rng);
        std::string sql = "BEGIN; UPDATE accounts SET balance = balance - " + std::to_string(2 * amount) +
                          " WHERE id = " + std::to_string(a) + "; UPDATE accounts SET balance = balance + " +
                          std::to_string(amount) + " WHERE id = " + std::to_string(b) +
                          "; UPDATE accounts SET balance = balance + " + std::to_string(amount) +
                          " WHERE id = " + std::to_string(c) + "; COMMIT";
        if (!db.try_exec(sql).empty()) db.try_exec("ROLLBACK");  // deadlocks between writers
      }
    });
  }
  for (auto& w : writers) w.join();
  ASSERT_TRUE(same_tables({"public.accounts"}, "id", 120000));
  stop = true;
  checker.join();
  EXPECT_GE(reads.load(), 100);
  EXPECT_GT(std::stol(target().scalar("SELECT rows_applied FROM pgferry.table_state")), 1000);
  EXPECT_EQ(violations.load(), 0) << "the target showed a partial transaction, e.g. sum/count " << first_violation
                                  << " (want " << kTotal << " " << kAccounts << ")";
}

}  // namespace
}  // namespace pgferry::test
