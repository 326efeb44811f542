#pragma once
// Versioned schema migrations for pgferry's own objects (migrations/source, migrations/target),
// embedded in the binary and recorded in pgferry.schema_version.

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "pg.hpp"

namespace pgferry {

/// Which database a migration belongs to.
enum class Side : unsigned char { Source, Target };

/// One embedded migration: migrations/<side>/<version>_<name>.sql.
struct Migration {
  int version = 0;
  std::string name;
  std::string_view sql;
};

/// The embedded migrations for `side`, in version order.
[[nodiscard]] const std::vector<Migration>& migrations_for(Side side);

/// The newest version this binary knows for `side`.
[[nodiscard]] int latest_version(Side side);

/// The version installed in the database (0 when pgferry was never set up there).
[[nodiscard]] Result<int> installed_version(Session& db);

/// Applies the migrations the database lacks. Must run inside the caller's transaction while it
/// holds the setup advisory lock. Fails, changing nothing, when the database is newer than this
/// binary. Returns the versions applied.
[[nodiscard]] Result<std::vector<int>> migrate(Session& db, Side side);

/// Takes the advisory lock that serialises setup/teardown/migrations, for the transaction.
[[nodiscard]] Status lock_for_setup(Session& db);

/// Opens the transaction `setup` and `teardown` work in: BEGIN, a lock_timeout for every lock it
/// takes (a DDL statement queued behind a long transaction would otherwise block every writer of
/// that table while it waits), then the setup lock. `lock_timeout` must be positive.
[[nodiscard]] Status begin_setup_transaction(Session& db, std::chrono::milliseconds lock_timeout);

/// Adds a fix an operator can act on to `e` when the statement that failed hit lock_timeout.
[[nodiscard]] Error explain_lock_timeout(Session& db, Error e, std::chrono::milliseconds lock_timeout);

}  // namespace pgferry
