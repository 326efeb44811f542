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

TEST(Conninfo, RedactsEveryPasswordKeyAndEmptyOnes) {
  EXPECT_EQ(redact_conninfo("password=one host=h password=two"), "password=**** host=h password=****");
  EXPECT_EQ(redact_conninfo("password='' host=h"), "password=**** host=h");
  EXPECT_EQ(redact_conninfo("host=h password="), "host=h password=****");
  EXPECT_EQ(redact_conninfo("\thost=h\n password=a=b  "), "\thost=h\n password=****  ");
  // Only the password key is secret; similar-looking keys and values are kept.
  EXPECT_EQ(redact_conninfo("application_name=password user=password"), "application_name=password user=password");
}

TEST(Conninfo, RedactsBothUriPasswordPlaces) {
  const std::string both = redact_conninfo("postgresql://u:first@h/db?password=second&sslmode=require");
  EXPECT_EQ(both, "postgresql://u:****@h/db?password=****&sslmode=require");
  EXPECT_EQ(redact_conninfo("postgres://u:secret@h"), "postgres://u:****@h");
  EXPECT_EQ(redact_conninfo("postgresql://u:secret@h1:5432,h2:5433/db"), "postgresql://u:****@h1:5432,h2:5433/db");
  EXPECT_EQ(redact_conninfo("postgresql://u:p%40ss@h/db?password=x%26y"), "postgresql://u:****@h/db?password=****");
  EXPECT_EQ(redact_conninfo("postgresql://h/db?user=password"), "postgresql://h/db?user=password");
}

TEST(Conninfo, UnparseableInputShowsNothingOfIt) {
  for (const char* garbage : {"host=db junk password=secret", "password", "=secret", "host=db password 'secret'"}) {
    const std::string out = redact_conninfo(garbage);
    EXPECT_EQ(out.find("secret"), std::string::npos) << out;
    EXPECT_EQ(out.find("db"), std::string::npos) << out;
  }
  EXPECT_EQ(redact_conninfo(""), "");
}

TEST(Conninfo, ScrubsDecodedAndEncodedUriPasswords) {
  const std::string conninfo = "postgresql://u:p%40ss%3Aword@h/db";
  const std::string out = scrub_password("raw p%40ss%3Aword, decoded p@ss:word", conninfo);
  EXPECT_EQ(out, "raw ****, decoded ****");
  EXPECT_EQ(scrub_password("quoted se cret", "password='se cret'"), "quoted ****");
  EXPECT_EQ(scrub_password("escaped x'y", "password='x\\'y'"), "escaped ****");
  EXPECT_EQ(scrub_password("aaa", "password=a"), "************");
  EXPECT_EQ(scrub_password("q second", "postgresql://h/db?password=second"), "q ****");
  EXPECT_EQ(scrub_password("empty stays", "password=''"), "empty stays");
}

TEST(Conninfo, RedactsPasswordsAfterAnyLibpqWhitespace) {
  // libpq separates keyword=value pairs at any isspace() byte, form feed and vertical tab included.
  const std::string out = redact_conninfo("host=h\fpassword=secret");
  EXPECT_EQ(out.find("secret"), std::string::npos) << out;
}

TEST(Conninfo, RedactsPercentEncodedPasswordParameter) {
  // libpq percent-decodes URI query keywords as well as values, so this sets the password.
  const std::string out = redact_conninfo("postgresql://u@h/db?pass%77ord=secret");
  EXPECT_EQ(out.find("secret"), std::string::npos) << out;
}

TEST(Conninfo, RedactsTheSslKeyPassphraseToo) {
  const std::string kv = redact_conninfo("host=h sslpassword=keypass sslkey=/k");
  EXPECT_EQ(kv.find("keypass"), std::string::npos) << kv;
  EXPECT_NE(kv.find("sslkey=/k"), std::string::npos) << kv;
  const std::string uri = redact_conninfo("postgresql://u@h/db?sslpassword=keypass");
  EXPECT_EQ(uri.find("keypass"), std::string::npos) << uri;
  EXPECT_EQ(scrub_password("bad passphrase keypass", "host=h sslpassword=keypass"), "bad passphrase ****");
}

}  // namespace
}  // namespace pgferry
