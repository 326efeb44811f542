#include "run.hpp"

#include <fmt/format.h>
#include <libpq-fe.h>
#include <spdlog/spdlog.h>
#include <uv.h>

#include <atomic>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "backoff.hpp"
#include "capture_sql.hpp"
#include "http.hpp"
#include "migrate.hpp"
#include "monitor.hpp"
#include "reconnect.hpp"
#include "setup.hpp"
#include "stream.hpp"
#include "sweep.hpp"
#include "verify.hpp"

namespace pgferry {
namespace {

using std::chrono::milliseconds;

/// The LISTEN connection, driven by the event loop: nonblocking connect, LISTEN, then wait for
/// notifications; on any failure, back off and start again. It holds the listener advisory lock
/// for its whole session, which tells the capture triggers that someone is listening.
class Listener {
 public:
  Listener(uv_loop_t* loop, const Config& config, Control& control)
      : loop_(loop),
        conninfo_(config.source),
        heartbeat_interval_(config.connection.heartbeat_interval),
        max_attempts_(config.reconnect.max_attempts),
        control_(control),
        rc_(config.reconnect),
        rng_(std::random_device{}()) {
    uv_timer_init(loop_, &retry_);
    retry_.data = this;
    uv_timer_init(loop_, &heartbeat_);
    heartbeat_.data = this;
  }

  void start() { connect(); }

  /// Closes the connection and every handle; `done` runs once they are closed.
  void close() {
    closing_ = true;
    uv_timer_stop(&retry_);
    uv_close(reinterpret_cast<uv_handle_t*>(&retry_), nullptr);
    uv_timer_stop(&heartbeat_);
    uv_close(reinterpret_cast<uv_handle_t*>(&heartbeat_), nullptr);
    drop();
  }

 private:
  enum class Phase : unsigned char { Idle, Connecting, Subscribing, Listening };

  void connect() {
    if (closing_) return;
    const ConnectParams params(conninfo_, "pgferry listener");
    conn_ = PQconnectStartParams(params.keys(), params.values(), 1);
    if (conn_ == nullptr || PQstatus(conn_) == CONNECTION_BAD) {
      failed("cannot start connecting");
      return;
    }
    phase_ = Phase::Connecting;
    poll_for(PGRES_POLLING_WRITING);
  }

  /// Watches the connection's socket for `want`. libpq may switch sockets while connecting
  /// (several hosts, or SSL then plain): re-read PQsocket() every time.
  void poll_for(PostgresPollingStatusType want) {
    const int fd = PQsocket(conn_);
    if (fd < 0) {
      failed("connection has no socket");
      return;
    }
    if (poll_ != nullptr && fd != fd_) stop_poll();
    if (poll_ == nullptr) {
      poll_ = new uv_poll_t;
      uv_poll_init(loop_, poll_, fd);
      poll_->data = this;
      fd_ = fd;
    }
    const int events = want == PGRES_POLLING_WRITING ? UV_WRITABLE : UV_READABLE;
    uv_poll_start(poll_, events, [](uv_poll_t* h, int status, int) {
      auto* self = static_cast<Listener*>(h->data);
      if (status < 0) {
        self->failed(uv_strerror(status));
        return;
      }
      self->on_ready();
    });
  }

  void stop_poll() {
    if (poll_ == nullptr) return;
    // Stop watching before libpq can close the descriptor; the handle is freed once closed.
    uv_poll_stop(poll_);
    uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
    poll_ = nullptr;
    fd_ = -1;
  }

  void on_ready() {
    if (phase_ == Phase::Connecting) {
      switch (PQconnectPoll(conn_)) {
        case PGRES_POLLING_READING:
          poll_for(PGRES_POLLING_READING);
          return;
        case PGRES_POLLING_WRITING:
          poll_for(PGRES_POLLING_WRITING);
          return;
        case PGRES_POLLING_FAILED:
          failed(PQerrorMessage(conn_));
          return;
        default:
          break;
      }
      // Connected: take the listener lock and LISTEN, outside any transaction. Both take effect
      // at once (autocommit), so the catch-up read that follows cannot miss a bell.
      PQsetnonblocking(conn_, 1);
      const auto sql = fmt::format("SELECT pg_try_advisory_lock({}, {}); LISTEN {}", capture::kLockClass,
                                   capture::kListenLock, capture::kChannel);
      if (PQsendQuery(conn_, sql.c_str()) != 1) {
        failed(PQerrorMessage(conn_));
        return;
      }
      phase_ = Phase::Subscribing;
      flush();
      return;
    }
    if (PQconsumeInput(conn_) != 1) {
      failed(PQerrorMessage(conn_));
      return;
    }
    // Every result, then every notification: libpq queues both as it reads.
    while (PQisBusy(conn_) == 0) {
      PGresult* r = PQgetResult(conn_);
      if (r == nullptr) {
        if (phase_ == Phase::Subscribing) subscribed();
        awaiting_heartbeat_ = false;
        break;
      }
      const auto st = PQresultStatus(r);
      if (st == PGRES_TUPLES_OK && PQntuples(r) == 1 && PQgetvalue(r, 0, 0)[0] == 'f') {
        spdlog::warn(
            "another session holds the pgferry listener lock: is a second pgferry running against this "
            "source? Triggers ring for either of them");
      }
      if (st == PGRES_FATAL_ERROR) {
        const std::string msg = PQresultErrorMessage(r);
        PQclear(r);
        failed(msg);
        return;
      }
      PQclear(r);
    }
    int bells = 0;
    while (PGnotify* n = PQnotifies(conn_)) {
      ++bells;
      PQfreemem(n);
    }
    if (bells > 0) {
      doorbells_ += static_cast<std::uint64_t>(bells);
      control_.telemetry.doorbells.Increment(bells);
      control_.wake();
    }
    if (PQstatus(conn_) == CONNECTION_BAD) failed("connection lost");
  }

  void flush() {
    const int f = PQflush(conn_);
    if (f < 0) {
      failed(PQerrorMessage(conn_));
      return;
    }
    poll_for(f == 1 ? PGRES_POLLING_WRITING : PGRES_POLLING_READING);
    if (f == 1) {
      // Wait for writability, then flush again and go back to reading.
      uv_poll_start(poll_, UV_WRITABLE | UV_READABLE, [](uv_poll_t* h, int status, int events) {
        auto* self = static_cast<Listener*>(h->data);
        if (status < 0) {
          self->failed(uv_strerror(status));
          return;
        }
        if ((events & UV_WRITABLE) != 0) {
          self->flush();
          return;
        }
        self->on_ready();
      });
    }
  }

  void subscribed() {
    phase_ = Phase::Listening;
    control_.telemetry.connection_up(Conn::Listener);
    if (rc_.up(std::chrono::steady_clock::now())) {
      spdlog::info("listener connection re-established after {:.1f} s; listening for the doorbell on channel '{}'",
                   std::chrono::duration<double>(rc_.last_outage()).count(), capture::kChannel);
    } else {
      spdlog::info("listening for the doorbell on channel '{}'", capture::kChannel);
    }
    awaiting_heartbeat_ = false;
    if (heartbeat_interval_.count() > 0) {
      const auto ms = static_cast<std::uint64_t>(heartbeat_interval_.count());
      uv_timer_start(
          &heartbeat_, [](uv_timer_t* t) { static_cast<Listener*>(t->data)->beat(); }, ms, ms);
    }
    // LISTEN, then catch up from the journal, then trust the bell.
    control_.wake();
  }

  /// The LISTEN connection is otherwise silent: a half-open TCP connection (a failed-over or
  /// unplugged server) would leave it waiting forever. Every heartbeat_interval it asks the
  /// server something; no answer by the next beat means the connection is dead.
  void beat() {
    if (phase_ != Phase::Listening) return;
    if (awaiting_heartbeat_) {
      heartbeat_missed_ = true;
      failed(fmt::format("no answer to the heartbeat within {}", format_duration(heartbeat_interval_)));
      return;
    }
    if (PQsendQuery(conn_, "SELECT 1") != 1) {
      failed(PQerrorMessage(conn_));
      return;
    }
    awaiting_heartbeat_ = true;
    flush();
  }

  void failed(std::string_view why) {
    std::string msg(why);
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
    const bool was_listening = phase_ == Phase::Listening;
    drop();
    if (closing_) return;
    const auto d = rc_.failed(std::chrono::steady_clock::now(), unit_(rng_));
    const auto reason = std::exchange(heartbeat_missed_, false) ? ReconnectReason::Heartbeat
                        : was_listening                         ? ReconnectReason::Lost
                                                                : ReconnectReason::ConnectFailed;
    control_.telemetry.connection_down(Conn::Listener, msg, d.delay, d.give_up ? std::nullopt : std::optional(reason));
    if (d.give_up) {
      spdlog::critical("listener connection: giving up after {} failed attempt(s) (reconnect.max_attempts {}): {}",
                       d.attempt, max_attempts_, msg);
      control_.give_up(1);
      return;
    }
    if (d.state_change) {
      spdlog::warn(
          "listener connection to the source lost: {}; reconnecting in {} ms (meanwhile the journal is polled)", msg,
          d.delay.count());
    } else if (d.reminder) {
      spdlog::warn("listener connection still down after {} attempts: {}; next attempt in {} ms", d.attempt, msg,
                   d.delay.count());
    } else {
      spdlog::debug("listener connection attempt {} failed: {}; next in {} ms", d.attempt, msg, d.delay.count());
    }
    uv_timer_start(
        &retry_, [](uv_timer_t* t) { static_cast<Listener*>(t->data)->connect(); },
        static_cast<std::uint64_t>(d.delay.count()), 0);
  }

  void drop() {
    if (!closing_) uv_timer_stop(&heartbeat_);
    awaiting_heartbeat_ = false;
    stop_poll();
    if (conn_ != nullptr) {
      PQfinish(conn_);
      conn_ = nullptr;
    }
    phase_ = Phase::Idle;
  }

  uv_loop_t* loop_;
  std::string conninfo_;
  std::chrono::milliseconds heartbeat_interval_;
  std::int64_t max_attempts_;
  Control& control_;
  PGconn* conn_ = nullptr;
  uv_poll_t* poll_ = nullptr;
  int fd_ = -1;
  uv_timer_t retry_{};
  uv_timer_t heartbeat_{};
  bool awaiting_heartbeat_ = false;
  bool heartbeat_missed_ = false;
  Phase phase_ = Phase::Idle;
  bool closing_ = false;
  Reconnect rc_;
  std::mt19937_64 rng_;
  std::uniform_real_distribution<double> unit_{0.0, 1.0};
  std::uint64_t doorbells_ = 0;
};

/// /healthz asks the event loop itself: an HTTP thread sends a ping through uv_async and waits
/// (at most a second) for the loop to answer. Before the loop runs (start-up, waiting for the
/// databases) and after it closed the handle, the answer is given without it.
class LoopPing {
 public:
  void open(uv_loop_t* loop) {
    uv_async_init(loop, &async_, [](uv_async_t* h) {
      auto* self = static_cast<LoopPing*>(h->data);
      std::lock_guard lock(self->mu_);
      self->answered_ = self->asked_;
      self->cv_.notify_all();
    });
    async_.data = this;
    std::lock_guard lock(mu_);
    state_ = State::Open;
  }
  void close() {
    {
      std::lock_guard lock(mu_);
      state_ = State::Closed;
      cv_.notify_all();
    }
    uv_close(reinterpret_cast<uv_handle_t*>(&async_), nullptr);
  }
  bool alive() {
    std::unique_lock lock(mu_);
    if (state_ == State::NotYet) return true;  // starting: the start-up loop is what runs
    if (state_ == State::Closed) return false;
    const auto want = ++asked_;
    uv_async_send(&async_);
    return cv_.wait_for(lock, std::chrono::seconds(1), [&] { return answered_ >= want || state_ == State::Closed; }) &&
           answered_ >= want;
  }

 private:
  enum class State : unsigned char { NotYet, Open, Closed };
  uv_async_t async_{};
  std::mutex mu_;
  std::condition_variable cv_;
  State state_ = State::NotYet;
  std::uint64_t asked_ = 0;
  std::uint64_t answered_ = 0;
};

/// Everything the loop owns.
struct LoopState {
  uv_loop_t* loop = nullptr;
  Control* control = nullptr;
  Listener* listener = nullptr;
  LoopPing* ping = nullptr;
  uv_signal_t sigterm{};
  uv_signal_t sigint{};
  uv_timer_t shutdown_timer{};
  uv_async_t worker_done{};
  milliseconds shutdown_timeout{};
  int signals = 0;
  int exit_code = 0;
};

void on_signal(uv_signal_t* h, int signum) {
  auto* st = static_cast<LoopState*>(h->data);
  if (++st->signals > 1) {
    // A second signal: leave now. Nothing is lost: journal rows are deleted only after the
    // target committed them, so an interrupted batch is simply applied again next time.
    spdlog::warn("second signal ({}): exiting at once; the batch in flight, if any, will be applied again", signum);
    spdlog::default_logger()->flush();
    std::_Exit(128 + signum);
  }
  spdlog::info("{} received: finishing the batch in flight (at most {} ms), then stopping",
               signum == SIGINT ? "SIGINT" : "SIGTERM", st->shutdown_timeout.count());
  st->control->request_stop();
  uv_timer_start(
      &st->shutdown_timer,
      [](uv_timer_t* t) {
        auto* s = static_cast<LoopState*>(t->data);
        spdlog::warn(
            "shutdown_timeout passed: cancelling the batch in flight (it will be applied again) or the last "
            "acknowledgement (the next start makes it)");
        s->control->cancel_all();
      },
      static_cast<std::uint64_t>(st->shutdown_timeout.count()), 0);
}

/// The configured source tables for a message: "public.users, public.orders" (at most five named).
std::string table_list(const Config& config) {
  std::string out;
  for (std::size_t i = 0; i < config.tables.size(); ++i) {
    if (i == 5) return out + fmt::format(" and {} more", config.tables.size() - i);
    if (i > 0) out += ", ";
    out += config.tables[i].source.display();
  }
  return out;
}

}  // namespace

StreamTable stream_table_for(const InspectedTable& t, std::int32_t table_id) {
  StreamTable s;
  s.table_id = table_id;
  s.config = t.config;
  s.source_key = t.resolved.source_key;
  for (const auto& m : t.resolved.columns) {
    s.mapping.emplace_back(m.source, m.target);
    s.shape.columns.push_back(m.target);
    const auto* src = t.source.info.column(m.source);
    const auto* dst = t.target.info.column(m.target);
    // The capture journals these as text (the same rule setup rendered it with); a json/jsonb
    // target turns the text back, any other target type parses the string itself.
    if (src != nullptr && dst != nullptr && capture::captured_as_text(src->base_type) &&
        capture::captured_as_text(dst->base_type)) {
      s.shape.from_text.emplace(m.target, dst->type);
    }
  }
  s.shape.table = t.config->target;
  s.shape.key = t.resolved.target_key;
  s.source_name = t.config->source.quoted();
  s.capture = capture_spec_for(t, table_id);
  s.label = t.config->source == t.config->target
                ? t.config->source.display()
                : fmt::format("{} -> {}", t.config->source.display(), t.config->target.display());
  return s;
}

int load_stream_tables(const Config& config, std::vector<StreamTable>& out) {
  Connected c;
  if (const int code = connect_and_inspect(config, c, true, true); code != 0) return code;
  for (auto [db, side, name] :
       {std::tuple{&*c.source, Side::Source, "source"}, std::tuple{&*c.target, Side::Target, "target"}}) {
    auto v = installed_version(*db);
    if (!v) {
      print_error(v.error());
      return 1;
    }
    if (*v != latest_version(side)) {
      print_error(config_error(
          fmt::format("{} database", name),
          *v == 0 ? "pgferry is not set up there"
                  : fmt::format("pgferry's schema is at version {}, this binary needs {}", *v, latest_version(side)),
          fmt::format("run pgferry setup with this configuration first (it captures {})", table_list(config))));
      return 2;
    }
  }
  auto reg = c.source->exec("SELECT id, source_table FROM pgferry.captured_table");
  if (!reg) {
    print_error(reg.error());
    return 1;
  }
  std::map<std::string, std::int32_t> captured;
  for (int i = 0; i < PQntuples(reg->get()); ++i) {
    captured[value(reg->get(), i, 1)] = static_cast<std::int32_t>(std::atoi(value(reg->get(), i, 0).c_str()));
  }
  int code = 0;
  for (const auto& t : c.tables) {
    auto state = capture_state(*c.source, t);
    if (!state) {
      print_error(state.error());
      return 1;
    }
    if (!state->registered || !state->up_to_date) {
      print_error(config_error(t.config->origin,
                               fmt::format("{} is {} on the source", t.config->source.display(),
                                           state->registered ? "captured with an outdated definition" : "not captured"),
                               "run pgferry setup with this configuration, then start run again"));
      code = 2;
      continue;
    }
    captured.erase(t.config->source.quoted());
    StreamTable s = stream_table_for(t, state->table_id);
    if (!t.resolved.problems.empty()) {
      // Only the target is wrong (connect_and_inspect let nothing else through): the table
      // starts stopped, the others stream.
      const auto& p = t.resolved.problems.front();
      s.broken = p.fix.empty() ? p.message : fmt::format("{} (fix: {})", p.message, p.fix);
      spdlog::error("{}: {}; starting with this table stopped", t.config->source.display(), s.broken);
    }
    out.push_back(std::move(s));
  }
  for (const auto& [name, id] : captured) {
    print_error(config_error(
        config.origin,
        fmt::format("the source captures {} (table id {}) but the configuration does not list it", name, id),
        "add it back, or run pgferry setup to remove its capture"));
    code = 2;
  }
  return code;
}

namespace {

// SIGTERM/SIGINT before the event loop handles them (while connecting at start): remembered, and
// start-up ends with exit 0 instead of the process dying of the signal.
std::atomic<int> early_signal{0};

void on_early_signal(int signum) { early_signal = signum; }

void catch_early_signals() {
  struct sigaction sa {};
  sa.sa_handler = on_early_signal;
  sigemptyset(&sa.sa_mask);
  (void)sigaction(SIGTERM, &sa, nullptr);
  (void)sigaction(SIGINT, &sa, nullptr);
  // A log pipe whose reader went away must not end the replicator: with SIGPIPE ignored a write
  // to it fails instead, and the log writers (spdlog, print_stderr) ignore that. civetweb ignores
  // SIGPIPE once the HTTP server starts; this makes it so from the first line.
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  sigemptyset(&ignore.sa_mask);
  (void)sigaction(SIGPIPE, &ignore, nullptr);
}

}  // namespace

int run_replicator(const Config& config) {
  catch_early_signals();
  Control control;
  std::vector<std::pair<std::string, std::string>> names;
  for (const auto& t : config.tables) names.emplace_back(t.source.display(), t.target.display());
  control.telemetry.set_tables(names);
  LoopPing ping;
  const double max_lag = std::chrono::duration<double>(config.health.max_lag).count();
  const auto stale_after = 3 * config.health.check_interval + std::chrono::seconds(5);
  // Serving from the first moment: while the databases are waited for, /healthz says alive and
  // /readyz says which one is missing.
  auto http = HttpServer::start(
      config.http.listen, {.metrics = [&] { return control.telemetry.serialize(); },
                           .loop_alive = [&] { return ping.alive(); },
                           .status = [&] { return status::to_json(control.telemetry.snapshot(max_lag, stale_after)); },
                           .readiness =
                               [&] {
                                 const auto s = control.telemetry.snapshot(max_lag, stale_after);
                                 return std::pair{s.ready, status::readiness_json(s)};
                               }});
  if (!http) {
    print_error(http.error());
    return 1;
  }
  spdlog::info("serving /metrics /healthz /readyz /status on {}", (*http)->url());
  HealthMonitor monitor(config, control.telemetry);
  monitor.start();
  std::vector<StreamTable> tables;
  // A database that cannot be reached at start is waited for, like one lost later (exit 1 only
  // after reconnect.max_attempts); a configuration that cannot work is not (exit 2).
  Reconnect startup(config.reconnect);
  std::mt19937_64 rng(std::random_device{}());
  for (;;) {
    tables.clear();
    const int code = load_stream_tables(config, tables);
    if (code == 0) break;
    if (code != 1) return code;
    const auto d = startup.failed(std::chrono::steady_clock::now(), std::uniform_real_distribution<double>(0, 1)(rng));
    if (d.give_up) {
      spdlog::critical("cannot start: giving up after {} attempt(s) (reconnect.max_attempts)", d.attempt);
      return 1;
    }
    spdlog::warn("cannot start yet (see above); trying again in {} ms", d.delay.count());
    const auto until = std::chrono::steady_clock::now() + d.delay;
    while (early_signal == 0 && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (early_signal != 0) break;
  }
  if (early_signal != 0) {
    spdlog::info("{} received while starting: stopping; nothing was read yet",
                 early_signal == SIGINT ? "SIGINT" : "SIGTERM");
    return 0;
  }
  spdlog::info("pgferry {} replicating {} table(s)", PGFERRY_VERSION, tables.size());

  uv_loop_t loop;
  uv_loop_init(&loop);
  LoopState st;
  st.loop = &loop;
  st.control = &control;
  st.shutdown_timeout = config.shutdown_timeout;
  Listener listener(&loop, config, control);
  st.listener = &listener;
  ping.open(&loop);
  st.ping = &ping;

  uv_signal_init(&loop, &st.sigterm);
  uv_signal_init(&loop, &st.sigint);
  st.sigterm.data = &st;
  st.sigint.data = &st;
  uv_signal_start(&st.sigterm, on_signal, SIGTERM);
  uv_signal_start(&st.sigint, on_signal, SIGINT);
  uv_timer_init(&loop, &st.shutdown_timer);
  st.shutdown_timer.data = &st;
  uv_async_init(&loop, &st.worker_done, [](uv_async_t* h) {
    auto* s = static_cast<LoopState*>(h->data);
    // The worker is gone: close every handle so uv_run returns.
    s->listener->close();
    s->ping->close();
    uv_timer_stop(&s->shutdown_timer);
    uv_close(reinterpret_cast<uv_handle_t*>(&s->shutdown_timer), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&s->sigterm), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&s->sigint), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&s->worker_done), nullptr);
  });
  st.worker_done.data = &st;

  Sweeper sweeper(config, tables, control);
  VerifyScheduler verifier(config, tables, control);
  listener.start();
  std::thread worker([&] {
    st.exit_code = run_stream(config, std::move(tables), control);
    uv_async_send(&st.worker_done);
  });
  sweeper.start();
  verifier.start();
  if (early_signal != 0) control.request_stop();  // arrived before the loop's handlers took over
  uv_run(&loop, UV_RUN_DEFAULT);
  worker.join();
  sweeper.stop();
  verifier.stop();
  monitor.stop();
  uv_loop_close(&loop);
  return control.give_up_code() != 0 ? control.give_up_code() : st.exit_code;
}

int run_snapshot(const Config& config, const std::string& table) {
  auto name = sql::parse_qualified_name(table);
  if (!name) {
    auto e = std::move(name).error();
    e.where = "TABLE";
    print_error(e);
    return 2;
  }
  const TableConfig* t = config.find_table(*name);
  if (t == nullptr) {
    print_error(config_error("TABLE", fmt::format("{} is not a configured table", name->display()),
                             "name a source table listed under tables: in the configuration"));
    return 2;
  }
  auto target = Session::connect(config.target, "target");
  if (!target) {
    print_error(target.error());
    return 1;
  }
  auto r = target->query(
      "UPDATE pgferry.table_state SET status = 'pending', snapshot_started = NULL, snapshot_done = NULL, "
      "snapshot_rows = 0, snapshot_key = NULL, updated_at = now() WHERE source_table = $1",
      {t->source.quoted()});
  if (!r) {
    print_error(r.error());
    return 1;
  }
  if (std::string(PQcmdTuples(r->get())) != "1") {
    print_error(config_error("TABLE", fmt::format("{} has no state on the target", t->source.display()),
                             "run pgferry setup with this configuration first"));
    return 2;
  }
  // Wake a running replicator; it notices the request at its next read.
  if (auto source = Session::connect(config.source, "source")) {
    (void)source->run(fmt::format("NOTIFY {}", capture::kChannel));
  }
  fmt::print("{}: initial copy requested; a running pgferry run starts it within a second or so\n",
             t->source.display());
  return 0;
}

}  // namespace pgferry
