// The test harness itself: clusters start, are separate servers, survive a restart, and are
// cleaned up — even when the test process is killed.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>

#include "support/cli.hpp"
#include "support/ferry.hpp"
#include "support/pg_client.hpp"
#include "support/pg_cluster.hpp"

namespace pgferry::test {
namespace {

TEST(Harness, SourceAndTargetAreSeparateServers) {
  auto source = PgCluster::start({.settings = {}, .name = "source"});
  auto target = PgCluster::start({.settings = {{"work_mem", "8MB"}}, .name = "target"});
  ASSERT_NE(source->port(), target->port());
  source->create_database("app");
  PgClient s(source->conninfo("app"));
  PgClient t(target->conninfo("postgres"));
  EXPECT_EQ(s.scalar("SELECT current_setting('server_version_num')::int / 10000"), "15");
  EXPECT_EQ(t.scalar("SHOW work_mem"), "8MB");
  EXPECT_NE(s.scalar("SELECT system_identifier FROM pg_control_system()"),
            t.scalar("SELECT system_identifier FROM pg_control_system()"));
  EXPECT_EQ(s.scalar("SELECT current_user"), "postgres");
}

TEST(Harness, QueryErrorsCarrySqlstate) {
  auto cluster = PgCluster::start({.settings = {}, .name = "errors"});
  PgClient c(cluster->conninfo("postgres"));
  EXPECT_EQ(c.try_exec("SELECT * FROM no_such_table"), "42P01");
  EXPECT_EQ(c.try_exec("SELECT 1"), "");
  EXPECT_THROW(c.exec("SELECT 1/0"), std::runtime_error);
  const auto rows = c.query("SELECT $1::text, NULL::int", {std::string("x")});
  ASSERT_EQ(rows.size(), 1U);
  EXPECT_EQ(rows[0][0], "x");
  EXPECT_FALSE(rows[0][1].has_value());
}

TEST(Harness, NotificationsArrive) {
  auto cluster = PgCluster::start({.settings = {}, .name = "notify"});
  PgClient listener(cluster->conninfo("postgres"));
  PgClient writer(cluster->conninfo("postgres"));
  listener.exec("LISTEN bell");
  EXPECT_TRUE(listener.notifications(0).empty());
  writer.exec("NOTIFY bell");
  EXPECT_EQ(listener.notifications(5000), std::vector<std::string>{"bell"});
}

TEST(Harness, StopAndStartAgainKeepsDataAndPort) {
  auto cluster = PgCluster::start({.settings = {}, .name = "restart"});
  const int port = cluster->port();
  cluster->exec("postgres", "CREATE TABLE kept (id int); INSERT INTO kept VALUES (42)");
  cluster->stop();
  EXPECT_FALSE(cluster->running());
  EXPECT_THROW(PgClient(cluster->conninfo("postgres")), std::runtime_error);
  cluster->start_again();
  EXPECT_TRUE(cluster->running());
  EXPECT_EQ(cluster->port(), port);
  PgClient c(cluster->conninfo("postgres"));
  EXPECT_EQ(c.scalar("SELECT id FROM kept"), "42");
}

TEST(Harness, DestructorRemovesClusterAndDataDir) {
  std::string data_dir;
  int port = 0;
  {
    auto cluster = PgCluster::start({.settings = {}, .name = "teardown"});
    data_dir = cluster->data_dir();
    port = cluster->port();
    ASSERT_TRUE(std::filesystem::exists(data_dir));
  }
  EXPECT_FALSE(std::filesystem::exists(data_dir));
  EXPECT_THROW(PgClient("host=127.0.0.1 connect_timeout=2 dbname=postgres user=postgres port=" + std::to_string(port)),
               std::runtime_error);
}

using Report = std::function<void(const std::string&)>;

/// Runs `body` in a forked child and returns the `lines` lines it reports ("" or fewer when it
/// failed first). `body` starts what the test watches and calls its argument with the lines to
/// report, which never returns: the parent SIGKILLs the child once they have arrived, so none of
/// the child's destructors runs. What `body` started is then an orphan, as after a test binary
/// killed by ctest's timeout.
std::string report_then_be_killed(const std::function<void(const Report&)>& body, std::size_t lines) {
  std::array<int, 2> fds{};
  if (::pipe(fds.data()) != 0) return "";
  const pid_t child = ::fork();
  if (child < 0) return "";
  if (child == 0) {
    ::close(fds[0]);
    try {
      body([&fds](const std::string& info) {
        (void)!::write(fds[1], info.data(), info.size());
        for (;;) ::pause();
      });
    } catch (...) {
    }
    ::_exit(1);
  }
  ::close(fds[1]);
  std::string info;
  char buf[512];
  ssize_t n = 0;
  while (static_cast<std::size_t>(std::count(info.begin(), info.end(), '\n')) < lines &&
         (n = ::read(fds[0], buf, sizeof buf)) > 0) {
    info.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fds[0]);
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  return info;
}

TEST(Harness, WatchdogCleansUpWhenTestProcessIsKilled) {
  // A child process starts a cluster, reports where, and is SIGKILLed: no destructor runs.
  const std::string info = report_then_be_killed(
      [](const Report& report) {
        auto cluster = PgCluster::start({.settings = {}, .name = "orphan"});
        report(cluster->data_dir() + "\n" + std::to_string(cluster->port()) + "\n");
      },
      2);
  const auto nl = info.find('\n');
  ASSERT_NE(nl, std::string::npos) << "child did not report its cluster";
  const std::string data_dir = info.substr(0, nl);
  const std::string port = info.substr(nl + 1, info.find('\n', nl + 1) - nl - 1);
  const bool gone = eventually([&data_dir] { return !std::filesystem::exists(data_dir); }, 30000);
  EXPECT_TRUE(gone) << data_dir << " still exists 30 s after its owner was killed";
  EXPECT_THROW(PgClient("host=127.0.0.1 connect_timeout=2 dbname=postgres user=postgres port=" + port),
               std::runtime_error);
}

TEST(Harness, AFerryProcessDiesWithTheTestThatStartedIt) {
  // A child process starts `pgferry run` against a source that is not there (it would retry
  // forever), reports the pid, and is SIGKILLed: no destructor runs.
  char dir_template[] = "/tmp/pgferry-orphan-XXXXXX";
  ASSERT_NE(::mkdtemp(dir_template), nullptr);
  const std::string dir = dir_template;
  std::ofstream(dir + "/pgferry.yaml")
      << "source: \"host=127.0.0.1 port=1 dbname=app user=postgres connect_timeout=2\"\n"
      << "target: \"host=127.0.0.1 port=1 dbname=app user=postgres connect_timeout=2\"\n"
      << "tables: [public.t]\n";
  const std::string info = report_then_be_killed(
      [&dir](const Report& report) {
        FerryProcess ferry({"run", "-c", dir + "/pgferry.yaml"}, dir + "/run.log");
        report(std::to_string(ferry.pid()) + "\n");
      },
      1);
  ASSERT_NE(info.find('\n'), std::string::npos) << "the child did not report its pgferry";
  const pid_t ferry = static_cast<pid_t>(std::stol(info));
  // Gone, or a zombie waiting for whoever inherited it to reap it.
  const auto alive = [ferry] {
    std::ifstream stat("/proc/" + std::to_string(ferry) + "/stat");
    std::string line;
    if (!std::getline(stat, line)) return false;
    const auto close = line.rfind(')');
    return close != std::string::npos && close + 2 < line.size() && line[close + 2] != 'Z';
  };
  const bool gone = eventually([&alive] { return !alive(); }, 10000);
  if (!gone) ::kill(ferry, SIGKILL);  // ours, orphaned: end it before failing
  EXPECT_TRUE(gone) << "pgferry run (pid " << ferry << ") outlived the test process that started it by 10 s";
  std::filesystem::remove_all(dir);
}

TEST(Harness, RunProcessReportsExitCodeOutputAndTimeout) {
  const auto ok = run_process({"sh", "-c", "echo out; echo err >&2; exit 3"});
  EXPECT_EQ(ok.exit_code, 3);
  EXPECT_EQ(ok.out, "out\n");
  EXPECT_EQ(ok.err, "err\n");
  const auto env = run_process({"sh", "-c", "echo \"$PGFERRY_X\""}, {{"PGFERRY_X", "set"}});
  EXPECT_EQ(env.out, "set\n");
  const auto slow = run_process({"sleep", "30"}, {}, 1);
  EXPECT_EQ(slow.exit_code, 128 + SIGKILL);
  const auto version = run_pgferry({"--version"});
  EXPECT_EQ(version.exit_code, 0);
  EXPECT_NE(version.out.find("pgferry"), std::string::npos);
}

}  // namespace
}  // namespace pgferry::test
