// SQLSTATE -> remedy, over the classes in PostgreSQL's Appendix A.
#include "pg_error.hpp"

#include <gtest/gtest.h>

namespace pgferry {
namespace {

TEST(PgError, ConnectionAndServerTroubleMeansReconnect) {
  for (const char* code : {"08000", "08003", "08006", "08001", "08P01", "57P01", "57P02", "57P03", "53300", "53100",
                           "53200", "58030", "25006", "25P03", "", "XX"}) {
    EXPECT_EQ(remedy_for(code), Remedy::Reconnect) << "[" << code << "]";
  }
}

TEST(PgError, TransientConflictsMeanRetryTheTransaction) {
  for (const char* code : {"40001", "40P01", "55P03", "57014", "40002", "40003"}) {
    EXPECT_EQ(remedy_for(code), Remedy::RetryTransaction) << code;
  }
}

TEST(PgError, RejectedDataMeansQuarantineTheRow) {
  for (const char* code : {"22001", "22003", "22P02", "22007", "23505", "23503", "23502", "23514", "23P01", "44000"}) {
    EXPECT_EQ(remedy_for(code), Remedy::QuarantineRow) << code;
  }
}

TEST(PgError, SchemaOrRightsProblemsStopTheTable) {
  for (const char* code : {"42703", "42P01", "42501", "42804", "42883", "42601"}) {
    EXPECT_EQ(remedy_for(code), Remedy::StopTable) << code;
  }
}

TEST(PgError, AnythingElseIsFatal) {
  for (const char* code : {"XX000", "XX001", "P0001", "0A000", "55000"}) {
    EXPECT_EQ(remedy_for(code), Remedy::Fatal) << code;
  }
}

TEST(PgError, RemediesHaveStableNames) {
  EXPECT_EQ(remedy_name(Remedy::Reconnect), "reconnect");
  EXPECT_EQ(remedy_name(Remedy::RetryTransaction), "retry_transaction");
  EXPECT_EQ(remedy_name(Remedy::QuarantineRow), "quarantine_row");
  EXPECT_EQ(remedy_name(Remedy::StopTable), "stop_table");
  EXPECT_EQ(remedy_name(Remedy::Fatal), "fatal");
}

}  // namespace
}  // namespace pgferry
