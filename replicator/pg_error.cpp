#include "pg_error.hpp"

namespace pgferry {

Remedy remedy_for(std::string_view sqlstate) noexcept {
  if (sqlstate.size() != 5) return Remedy::Reconnect;
  const auto cls = sqlstate.substr(0, 2);
  // Specific codes first, where they differ from their class.
  if (sqlstate == "40001" || sqlstate == "40P01") return Remedy::RetryTransaction;  // serialization, deadlock
  if (sqlstate == "55P03") return Remedy::RetryTransaction;                         // lock_not_available
  if (sqlstate == "57014") return Remedy::RetryTransaction;  // query_canceled (statement/lock timeout)
  if (sqlstate == "25P03") return Remedy::Reconnect;         // idle_in_transaction_session_timeout
  if (sqlstate == "25006") return Remedy::Reconnect;         // read_only_sql_transaction: failed over to a standby
  if (sqlstate == "42501") return Remedy::StopTable;         // insufficient_privilege
  if (cls == "08") return Remedy::Reconnect;                 // connection exception
  if (cls == "57") return Remedy::Reconnect;  // operator intervention: admin/crash shutdown, cannot connect now
  if (cls == "53") return Remedy::Reconnect;  // insufficient resources: too many connections, disk full, out of memory
  if (cls == "58") return Remedy::Reconnect;  // system error (I/O)
  if (cls == "40") return Remedy::RetryTransaction;  // other transaction rollbacks
  if (cls == "22") return Remedy::QuarantineRow;     // data exception
  if (cls == "23") return Remedy::QuarantineRow;     // integrity constraint violation
  if (cls == "21") return Remedy::QuarantineRow;     // cardinality violation: one upsert touching a row twice
  if (cls == "42") return Remedy::StopTable;         // syntax error or access rule violation: schema drift
  if (cls == "44") return Remedy::QuarantineRow;     // WITH CHECK OPTION violation
  return Remedy::Fatal;
}

std::string_view remedy_name(Remedy r) noexcept {
  switch (r) {
    case Remedy::Reconnect:
      return "reconnect";
    case Remedy::RetryTransaction:
      return "retry_transaction";
    case Remedy::QuarantineRow:
      return "quarantine_row";
    case Remedy::StopTable:
      return "stop_table";
    case Remedy::Fatal:
      return "fatal";
  }
  return "fatal";
}

}  // namespace pgferry
