#include "support/pg_cluster.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <random>
#include <stdexcept>
#include <thread>

#include "support/cli.hpp"
#include "support/pg_client.hpp"

namespace pgferry::test {
namespace {

namespace fs = std::filesystem;

bool running_as_root() { return ::geteuid() == 0; }

/// The command line that runs a server binary: through runuser as postgres when we are root.
std::vector<std::string> server_command(const std::string& binary, std::vector<std::string> args) {
  std::vector<std::string> argv;
  if (running_as_root()) argv = {"runuser", "-u", "postgres", "--"};
  argv.push_back(pg_bindir() + "/" + binary);
  argv.insert(argv.end(), std::make_move_iterator(args.begin()), std::make_move_iterator(args.end()));
  return argv;
}

CliResult run_server_binary(const std::string& binary, std::vector<std::string> args, int timeout_s = 120) {
  // Locale variables of the test environment must not leak into initdb.
  return run_process(server_command(binary, std::move(args)), {{"LC_ALL", "C.UTF-8"}, {"LANG", ""}}, timeout_s);
}

/// Asks the kernel for a free loopback port. Another process may take it before the server
/// binds it; start() retries with a new port when that happens.
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    throw std::runtime_error(std::string("bind: ") + std::strerror(errno));
  }
  const int port = ntohs(addr.sin_port);
  ::close(fd);
  return port;
}

void give_to_postgres(const std::string& path) {
  if (!running_as_root()) return;
  const passwd* pw = ::getpwnam("postgres");
  if (pw == nullptr) throw std::runtime_error("running as root but there is no postgres user to run the server as");
  if (::chown(path.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
    throw std::runtime_error("chown " + path + ": " + std::strerror(errno));
  }
}

std::string read_tail(const std::string& path, int lines) {
  std::ifstream in(path);
  std::deque<std::string> tail;
  std::string line;
  while (std::getline(in, line)) {
    tail.push_back(line);
    if (static_cast<int>(tail.size()) > lines) tail.pop_front();
  }
  std::string out;
  for (const auto& l : tail) out += l + "\n";
  return out;
}

}  // namespace

std::string pg_bindir() {
  // Never destroyed: clusters held in function-local statics are torn down at exit, after any
  // static created later than them (this one included) would already be gone.
  static const std::string& dir = *new std::string([] {
    if (const char* env = std::getenv("PGFERRY_PG_BINDIR"); env != nullptr && *env != '\0') return std::string(env);
    const CliResult r = run_process({"pg_config", "--bindir"}, {}, 30);
    if (r.exit_code == 0) {
      std::string out = r.out;
      while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
      if (fs::exists(out + "/initdb")) return out;
    }
    return std::string("/usr/lib/postgresql/15/bin");
  }());
  return dir;
}

struct PgCluster::Impl {
  std::string name;
  std::string base_dir;  // temp dir holding data/ and server.log
  std::string data_dir;
  std::string log_file;
  int port = 0;
  pid_t watchdog_pid = -1;
  int watchdog_fd = -1;  // write end; the watchdog cleans up when it reads EOF

  bool pg_ctl_start(std::string* output) {
    const CliResult r = run_server_binary("pg_ctl", {"-D", data_dir, "-l", log_file, "-w", "-t", "60", "start"});
    if (output != nullptr) *output = r.all();
    return r.exit_code == 0;
  }
};

std::unique_ptr<PgCluster> PgCluster::start(const ClusterOptions& options) {
  std::unique_ptr<PgCluster> cluster(new PgCluster());
  cluster->impl_ = std::make_unique<Impl>();
  Impl& impl = *cluster->impl_;
  impl.name = options.name;

  std::string pattern = (fs::temp_directory_path() / ("pgferry-" + options.name + "-XXXXXX")).string();
  if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error(std::string("mkdtemp: ") + std::strerror(errno));
  impl.base_dir = pattern;
  impl.data_dir = impl.base_dir + "/data";
  impl.log_file = impl.base_dir + "/server.log";
  give_to_postgres(impl.base_dir);

  // The watchdog removes the cluster if this process dies without running destructors (a test
  // killed by ctest's timeout, a crash, SIGKILL): it sits in its own session reading a pipe whose
  // only writer is this process, and cleans up on EOF.
  std::array<int, 2> fds{};
  if (::pipe(fds.data()) != 0) throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
  const std::string pg_ctl = pg_bindir() + "/pg_ctl";
  const std::string as_postgres = running_as_root() ? "runuser -u postgres -- " : "";
  const std::string script = "read _unused; " + as_postgres + "'" + pg_ctl + "' -D '" + impl.data_dir +
                             "' -m immediate -w stop >/dev/null 2>&1; rm -rf '" + impl.base_dir + "'";
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    ::setsid();
    ::dup2(fds[0], STDIN_FILENO);
    const int devnull = ::open("/dev/null", O_WRONLY);
    ::dup2(devnull, STDOUT_FILENO);
    ::dup2(devnull, STDERR_FILENO);
    for (int fd = 3; fd < 1024; ++fd) ::close(fd);
    ::execl("/bin/sh", "sh", "-c", script.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(fds[0]);
  ::fcntl(fds[1], F_SETFD, FD_CLOEXEC);
  impl.watchdog_pid = pid;
  impl.watchdog_fd = fds[1];

  const CliResult init = run_server_binary("initdb", {"-D", impl.data_dir, "-U", "postgres", "--auth=trust",
                                                      "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync"});
  if (init.exit_code != 0) throw std::runtime_error("initdb failed for cluster " + options.name + ":\n" + init.all());

  std::string last_error;
  for (int attempt = 0; attempt < 5; ++attempt) {
    impl.port = free_port();
    {
      std::ofstream conf(impl.data_dir + "/postgresql.auto.conf", std::ios::trunc);
      conf << "# Written by the pgferry test harness.\n"
           << "port = " << impl.port << "\n"
           << "listen_addresses = '127.0.0.1'\n"
           << "unix_socket_directories = ''\n"
           << "fsync = off\n"
           << "full_page_writes = off\n"
           << "max_connections = 60\n"
           << "shared_buffers = '64MB'\n"
           << "log_min_messages = warning\n"
           << "log_line_prefix = '%m [%p] %q%u@%d '\n";
      for (const auto& [key, value] : options.settings) conf << key << " = '" << value << "'\n";
    }
    if (impl.pg_ctl_start(&last_error)) return cluster;
    last_error += read_tail(impl.log_file, 20);
    if (last_error.find("already in use") == std::string::npos &&
        last_error.find("could not bind") == std::string::npos) {
      break;
    }
  }
  throw std::runtime_error("could not start PostgreSQL cluster " + options.name + ":\n" + last_error);
}

PgCluster::~PgCluster() {
  if (!impl_) return;
  if (running()) {
    (void)run_server_binary("pg_ctl", {"-D", impl_->data_dir, "-m", "immediate", "-w", "-t", "60", "stop"});
  }
  if (std::getenv("PGFERRY_KEEP_CLUSTERS") == nullptr) {
    std::error_code ec;
    fs::remove_all(impl_->base_dir, ec);
  }
  if (impl_->watchdog_fd >= 0) {
    // With the data gone, the watchdog's own cleanup finds nothing to do.
    if (std::getenv("PGFERRY_KEEP_CLUSTERS") != nullptr) ::kill(impl_->watchdog_pid, SIGKILL);
    ::close(impl_->watchdog_fd);
    int status = 0;
    while (::waitpid(impl_->watchdog_pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
}

int PgCluster::port() const { return impl_->port; }

std::string PgCluster::conninfo(const std::string& dbname, const std::string& user) const {
  auto quote = [](const std::string& v) {
    std::string out = "'";
    for (char c : v) {
      if (c == '\'' || c == '\\') out += '\\';
      out += c;
    }
    return out + "'";
  };
  return "host=127.0.0.1 port=" + std::to_string(impl_->port) + " dbname=" + quote(dbname) + " user=" + quote(user) +
         " connect_timeout=10";
}

std::string PgCluster::create_database(const std::string& dbname, const std::string& owner) {
  std::string quoted_db = "\"";
  for (char c : dbname) quoted_db += (c == '"') ? std::string("\"\"") : std::string(1, c);
  quoted_db += "\"";
  std::string quoted_owner = "\"";
  for (char c : owner) quoted_owner += (c == '"') ? std::string("\"\"") : std::string(1, c);
  quoted_owner += "\"";
  exec("postgres", "CREATE DATABASE " + quoted_db + " OWNER " + quoted_owner);
  return dbname;
}

void PgCluster::exec(const std::string& dbname, const std::string& sql) {
  PgClient client(conninfo(dbname));
  client.exec(sql);
}

void PgCluster::stop() {
  const CliResult r = run_server_binary("pg_ctl", {"-D", impl_->data_dir, "-m", "fast", "-w", "-t", "60", "stop"});
  if (r.exit_code != 0) throw std::runtime_error("pg_ctl stop failed for " + impl_->name + ":\n" + r.all());
}

void PgCluster::crash() {
  const CliResult r = run_server_binary("pg_ctl", {"-D", impl_->data_dir, "-m", "immediate", "-w", "-t", "60", "stop"});
  if (r.exit_code != 0)
    throw std::runtime_error("pg_ctl stop -m immediate failed for " + impl_->name + ":\n" + r.all());
}

void PgCluster::start_again() {
  std::string output;
  if (!impl_->pg_ctl_start(&output)) {
    throw std::runtime_error("pg_ctl start failed for " + impl_->name + ":\n" + output + log_tail(20));
  }
}

bool PgCluster::running() const {
  return run_server_binary("pg_ctl", {"-D", impl_->data_dir, "status"}, 30).exit_code == 0;
}

const std::string& PgCluster::data_dir() const { return impl_->data_dir; }

std::string PgCluster::log_tail(int lines) const { return read_tail(impl_->log_file, lines); }

}  // namespace pgferry::test
