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
  for (const char* code :
       {"22001", "22003", "22P02", "22007", "23505", "23503", "23502", "23514", "23P01", "44000", "21000"}) {
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

TEST(PgError, SpecificCodesOverrideTheirClass) {
  EXPECT_EQ(remedy_for("42501"), Remedy::StopTable);         // insufficient_privilege
  EXPECT_EQ(remedy_for("57014"), Remedy::RetryTransaction);  // query_canceled, not "operator intervention"
  EXPECT_EQ(remedy_for("55P03"), Remedy::RetryTransaction);  // lock_not_available, while 55000 is fatal
  EXPECT_EQ(remedy_for("25006"), Remedy::Reconnect);         // read-only: failed over to a standby
  EXPECT_EQ(remedy_for("25P02"), Remedy::Fatal);             // in_failed_sql_transaction: a bug
  EXPECT_EQ(remedy_for("57000"), Remedy::Reconnect);
}

TEST(PgError, MalformedSqlstateMeansTheConnectionIsSuspect) {
  for (const char* code : {"4", "4000", "400010", "08"}) {
    EXPECT_EQ(remedy_for(code), Remedy::Reconnect) << "[" << code << "]";
  }
}

TEST(PgError, AuthenticationAndCatalogErrorsAreFatal) {
  for (const char* code : {"28P01", "28000", "3D000", "3F000", "2D000", "XX002", "P0002", "F0000", "HV000"}) {
    EXPECT_EQ(remedy_for(code), Remedy::Fatal) << code;
  }
}

TEST(PgError, EveryRemedyHasADistinctName) {
  const Remedy all[] = {Remedy::Reconnect, Remedy::RetryTransaction, Remedy::QuarantineRow, Remedy::StopTable,
                        Remedy::Fatal};
  for (const Remedy a : all) {
    EXPECT_FALSE(remedy_name(a).empty());
    for (const Remedy b : all) {
      if (a != b) {
        EXPECT_NE(remedy_name(a), remedy_name(b));
      }
    }
  }
}

}  // namespace
}  // namespace pgferry
