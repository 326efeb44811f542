// pgferry: argv and the environment -> Config -> the chosen command -> exit code.
// Exit codes: 0 ok, 1 runtime failure, 2 bad usage or configuration.

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>
#include <string>
#include <string_view>

#include "check.hpp"
#include "config.hpp"
#include "conninfo.hpp"
#include "errors_cmd.hpp"
#include "log.hpp"
#include "pg.hpp"
#include "run.hpp"
#include "setup.hpp"
#include "status_cmd.hpp"
#include "teardown.hpp"
#include "verify.hpp"

namespace {

constexpr const char* kFooter = R"(
Exit codes: 0 ok, 1 runtime failure (a database, the network, not ready), 2 bad usage or configuration.
Configuration: --config FILE or PGFERRY_CONFIG; every key can also be set by an environment
variable, e.g. PGFERRY_SOURCE, PGFERRY_TARGET, PGFERRY_TABLES, PGFERRY_SWEEP_INTERVAL.
Documentation: docs/CONFIGURATION.md, docs/OPERATIONS.md.)";

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"pgferry: change-data-capture replication between PostgreSQL databases, without replication slots",
               "pgferry"};
  app.footer(kFooter);
  app.set_version_flag("--version", fmt::format("pgferry {}", PGFERRY_VERSION));
  app.require_subcommand(1);
  app.fallthrough();

  std::string config_path;
  std::string log_level;
  std::string log_format;
  app.add_option("-c,--config", config_path, "Configuration file (YAML)")->envname("PGFERRY_CONFIG");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off (default: log.level, else info)");
  app.add_option("--log-format", log_format, "auto, text or json (default: log.format, else auto)");

  auto* check = app.add_subcommand("check",
                                   "Validate the configuration against both databases and report, per table, "
                                   "whether everything is ready (exit 0 only when it is)");
  auto* setup = app.add_subcommand("setup",
                                   "Install or upgrade pgferry's schema on both databases and the capture triggers on "
                                   "the configured source tables; remove capture from tables no longer configured");
  pgferry::SetupOptions setup_options;
  std::string lock_timeout = "10s";
  setup->add_option("--lock-timeout", lock_timeout,
                    "How long to wait for each table's lock when installing triggers (default 10s)");
  auto* teardown = app.add_subcommand("teardown",
                                      "Remove every pgferry trigger and the pgferry schema (journal included) from "
                                      "the source; application tables are not touched");
  pgferry::TeardownOptions teardown_options;
  teardown->add_flag("-y,--yes", teardown_options.yes, "Do not ask for confirmation (required without a terminal)");
  teardown->add_flag("--include-target", teardown_options.include_target,
                     "Also drop schema pgferry on the target (sync_errors history, table_state)");
  teardown->add_option("--lock-timeout", lock_timeout,
                       "How long to wait for each table's lock when dropping triggers (default 10s)");
  auto* run = app.add_subcommand("run",
                                 "Replicate: apply every change committed on the source to the target within "
                                 "milliseconds, until SIGTERM or SIGINT (a second signal exits at once)");
  auto* snapshot = app.add_subcommand("snapshot",
                                      "Copy one table again from scratch (a running `pgferry run` does the copy while "
                                      "the other tables keep streaming)");
  std::string snapshot_table;
  snapshot->add_option("TABLE", snapshot_table, "The configured source table, e.g. public.users")->required();
  auto* verify = app.add_subcommand("verify",
                                    "Compare source and target table by table (counts, missing keys, differing rows) "
                                    "and, with --repair, fix what differs; exit 0 only when they agree");
  pgferry::VerifyOptions verify_options;
  std::string verify_table;
  verify->add_option("--table", verify_table, "Only this configured source table, e.g. public.users");
  verify->add_flag("--repair", verify_options.repair,
                   "Fix what differs: upsert missing and different rows, delete rows the source no longer has");
  verify->add_flag("--json", verify_options.json, "Print the report as JSON");
  verify->add_flag("--allow-mass-delete", verify_options.allow_mass_delete,
                   "Let --repair delete more than guard.max_delete_fraction of a table");
  auto* status = app.add_subcommand("status",
                                    "Show whether replication is healthy: from the running pgferry's /status, else "
                                    "read from both databases; exit 0 only when ready (for scripts and container "
                                    "health checks)");
  pgferry::StatusOptions status_options;
  std::string status_timeout = "2s";
  status->add_flag("--json", status_options.json, "Print the status as JSON (what /status serves)");
  status->add_option("--timeout", status_timeout,
                     "How long to wait for the running pgferry's answer before reading the databases (default 2s)");
  auto* errors = app.add_subcommand("errors",
                                    "What pgferry could not apply (pgferry.sync_errors on the target): list, retry "
                                    "or resolve it");
  errors->require_subcommand(1);
  pgferry::ErrorsOptions errors_options;
  auto* errors_list = errors->add_subcommand("list", "List sync errors, newest first");
  errors_list->add_option("--table", errors_options.table, "Only errors of this configured source table");
  errors_list->add_flag("--open", errors_options.open, "Only errors not resolved yet");
  errors_list->add_flag("--json", errors_options.json, "Print JSON lines, one error per line");
  auto* errors_retry = errors->add_subcommand(
      "retry",
      "Apply the rows of these errors again from the source's current state (a stopped table: check its target "
      "schema and resume it; a mass delete: confirm it); mark them resolved when that succeeds");
  errors_retry->add_option("ID", errors_options.ids, "Error ids (see errors list)");
  errors_retry->add_flag("--all", errors_options.all, "Every open error");
  auto* errors_resolve =
      errors->add_subcommand("resolve", "Mark errors resolved without applying anything (the note says why)");
  errors_resolve->add_option("ID", errors_options.ids, "Error ids (see errors list)")->required();
  errors_resolve->add_option("--note", errors_options.note, "Why they are resolved (kept with the error)")->required();
  for (auto* sub :
       {check, setup, teardown, snapshot, run, status, verify, errors, errors_list, errors_retry, errors_resolve}) {
    sub->footer(kFooter);
    // Listed in every command's --help too; the flag works before or after the command.
    sub->add_option("-c,--config", config_path, "Configuration file (YAML)")->envname("PGFERRY_CONFIG");
  }
  run->footer(std::string(R"(
Tables never copied (table_state.status 'pending') get an initial copy first, while the others
stream. A change the target rejects goes to pgferry.sync_errors (later changes of its key wait
behind it); a table whose target broke, or a batch deleting most of a table, stops that table
only: see `pgferry errors`. Settings (pgferry.yaml): batch.max_rows (10000), batch.max_bytes
(64MB), apply.replica_role (false), apply.synchronous_commit (off: acknowledge after the target's WAL
flush), journal.vacuum_after_rows (50000; 0 leaves the journal to
autovacuum), reconnect.initial_delay (100ms), reconnect.max_delay (30s), reconnect.max_attempts
(0 = forever), connection.heartbeat_interval (10s), guard.max_delete_fraction (0.5), sweep.interval (60s),
verify.every (0s = off), poll_interval (1s, the idle safety net behind the doorbell),
doorbell.off_above (1000 source transactions a second: above it writers stop ringing),
doorbell.busy_interval (2ms: how often the journal is read at most while writers stop ringing), shutdown_timeout (30s), http.listen (127.0.0.1:9187: /metrics, /healthz, /readyz, /status; see
docs/METRICS.md), health.max_lag (30s: not ready above it), health.check_interval (5s).)") +
              kFooter);

  // CLI11 reports an unknown command as "A subcommand is required"; name it instead.
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "-c" || arg == "--config" || arg == "--log-level" || arg == "--log-format") {
      ++i;
      continue;
    }
    if (arg.starts_with("-")) continue;
    if (arg != "check" && arg != "setup" && arg != "teardown" && arg != "run" && arg != "snapshot" && arg != "verify" &&
        arg != "errors" && arg != "status") {
      pgferry::print_stderr(
          "error: unknown command '{}'\n  fix: use one of check, setup, run, status, snapshot, verify, errors, "
          "teardown (see pgferry --help)\n",
          arg);
      return 2;
    }
    break;
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }

  // Checked before the configuration is read: a bad flag is the first thing to fix.
  auto timeout = pgferry::parse_duration(lock_timeout);
  if (timeout && timeout->count() < 1) {
    timeout = pgferry::config_error({}, fmt::format("'{}' would make PostgreSQL wait for locks forever", lock_timeout),
                                    "use a positive duration, e.g. 10s");
  }
  if (!timeout) {
    auto e = std::move(timeout).error();
    e.where = "--lock-timeout";
    pgferry::print_error(e);
    return 2;
  }

  if (status->parsed()) {
    auto wait = pgferry::parse_duration(status_timeout);
    if (wait && wait->count() < 1) {
      wait = pgferry::config_error({}, fmt::format("'{}' would not wait for an answer at all", status_timeout),
                                   "use a positive duration, e.g. 2s");
    }
    if (!wait) {
      auto e = std::move(wait).error();
      e.where = "--timeout";
      pgferry::print_error(e);
      return 2;
    }
    status_options.timeout = *wait;
  }

  const auto env = pgferry::process_environment();
  auto config = pgferry::load_config(config_path, env);
  if (!config) {
    pgferry::print_error(config.error());
    return pgferry::exit_code_for(config.error());
  }
  if (auto s = pgferry::init_logging(log_level.empty() ? config->log.level : log_level,
                                     log_format.empty() ? config->log.format : log_format);
      !s) {
    pgferry::print_error(s.error());
    return 2;
  }
  for (const auto& w : config->warnings) spdlog::warn("{}", w);
  pgferry::set_connection_defaults(pgferry::connection_defaults(
      config->connection.keepalives_idle, config->connection.tcp_user_timeout, config->connection.connect_timeout));

  if (check->parsed()) return pgferry::run_check(*config);
  if (setup->parsed()) {
    setup_options.lock_timeout = *timeout;
    return pgferry::run_setup(*config, setup_options);
  }
  if (run->parsed()) return pgferry::run_replicator(*config);
  if (status->parsed()) return pgferry::run_status(*config, status_options);
  if (snapshot->parsed()) return pgferry::run_snapshot(*config, snapshot_table);
  if (verify->parsed()) {
    if (!verify_table.empty()) verify_options.table = verify_table;
    return pgferry::run_verify(*config, verify_options);
  }
  if (errors->parsed()) {
    using Action = pgferry::ErrorsOptions::Action;
    errors_options.action = errors_retry->parsed()     ? Action::Retry
                            : errors_resolve->parsed() ? Action::Resolve
                                                       : Action::List;
    if (errors_options.action == Action::Retry && errors_options.ids.empty() == !errors_options.all) {
      pgferry::print_error(pgferry::config_error("errors retry", "name error ids or --all (not both, not neither)",
                                                 "e.g. pgferry errors retry 12 13, or pgferry errors retry --all"));
      return 2;
    }
    return pgferry::run_errors(*config, errors_options);
  }
  if (teardown->parsed()) {
    teardown_options.lock_timeout = *timeout;
    return pgferry::run_teardown(*config, teardown_options);
  }
  return 2;
}
