// Passwords never reach a message or a log.
#include "conninfo.hpp"

#include <gtest/gtest.h>

namespace pgferry {
namespace {

TEST(Conninfo, RedactsKeyValuePasswords) {
  EXPECT_EQ(redact_conninfo("host=db password=secret dbname=app"), "host=db password=**** dbname=app");
  const std::string quoted = redact_conninfo("host=db password='se cret' user=u");
  EXPECT_EQ(quoted.find("se cret"), std::string::npos) << quoted;
  EXPECT_NE(quoted.find("user=u"), std::string::npos) << quoted;
  const std::string spaced = redact_conninfo("password = 'x\\'y' host=h");
  EXPECT_EQ(spaced.find("x\\'y"), std::string::npos) << spaced;
  EXPECT_EQ(spaced.find('y'), std::string::npos) << spaced;
  EXPECT_NE(spaced.find("host=h"), std::string::npos) << spaced;
}

TEST(Conninfo, RedactsUriPasswords) {
  EXPECT_EQ(redact_conninfo("postgres://u:secret@h:5432/db"), "postgres://u:****@h:5432/db");
  const std::string query = redact_conninfo("postgresql://u@h/db?sslmode=require&password=secret");
  EXPECT_EQ(query.find("secret"), std::string::npos) << query;
  EXPECT_NE(query.find("sslmode=require"), std::string::npos) << query;
  const std::string encoded = redact_conninfo("postgresql://u:p%40ss%3Aword@h/db");
  EXPECT_EQ(encoded.find("p%40ss"), std::string::npos) << encoded;
  EXPECT_NE(encoded.find("@h/db"), std::string::npos) << encoded;
}

TEST(Conninfo, LeavesPasswordlessStringsAlone) {
  EXPECT_EQ(redact_conninfo("host=db dbname=app user=u"), "host=db dbname=app user=u");
  EXPECT_EQ(redact_conninfo("postgresql://u@h/db"), "postgresql://u@h/db");
}

TEST(Conninfo, RedactsUnparseableInputWhole) {
  const std::string broken = redact_conninfo("host=db password='unterminated");
  EXPECT_EQ(broken.find("unterminated"), std::string::npos) << broken;
}

TEST(Conninfo, ScrubsThePasswordFromMessages) {
  EXPECT_EQ(scrub_password("auth failed for hunter2 (hunter2)", "host=h password=hunter2"),
            "auth failed for **** (****)");
  EXPECT_EQ(scrub_password("nothing to hide", "host=h"), "nothing to hide");
  EXPECT_EQ(scrub_password("uri pw s3cret", "postgresql://u:s3cret@h/db").find("s3cret"), std::string::npos);
}

}  // namespace
}  // namespace pgferry
