#include "support/fixture.hpp"

#include <cctype>
#include <mutex>

namespace pgferry::test {

ClusterPair& cluster_pair() {
  static ClusterPair pair;
  static std::once_flag started;
  std::call_once(started, [] {
    pair.source = PgCluster::start({.settings = {}, .name = "source"});
    pair.target = PgCluster::start({.settings = {}, .name = "target"});
  });
  return pair;
}

void SourceTargetTest::SetUp() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = std::string(info->test_suite_name()) + "_" + info->name();
  db_.clear();
  for (char c : name)
    db_ += std::isalnum(static_cast<unsigned char>(c)) != 0 ? static_cast<char>(std::tolower(c)) : '_';
  db_ = db_.substr(0, 60);
  auto& pair = cluster_pair();
  for (PgCluster* cluster : {pair.source.get(), pair.target.get()}) {
    cluster->exec("postgres", "DROP DATABASE IF EXISTS \"" + db_ + "\" WITH (FORCE)");
    cluster->create_database(db_);
  }
}

std::string SourceTargetTest::source_conninfo(const std::string& user) const {
  return cluster_pair().source->conninfo(db_, user);
}

std::string SourceTargetTest::target_conninfo(const std::string& user) const {
  return cluster_pair().target->conninfo(db_, user);
}

std::string SourceTargetTest::write_config(const std::string& tables_yaml, const std::string& extra_yaml) const {
  auto yaml_string = [](const std::string& s) {
    std::string out = "\"";
    for (char c : s) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    return out + "\"";
  };
  return dir_.write("pgferry.yaml", "source: " + yaml_string(source_conninfo()) + "\n" + "target: " +
                                        yaml_string(target_conninfo()) + "\n" + "tables:\n" + tables_yaml + extra_yaml);
}

void SourceTargetTest::on_both(const std::string& sql) const {
  source().exec(sql);
  target().exec(sql);
}

CliResult SourceTargetTest::pgferry(const std::string& command, const std::string& config,
                                    std::vector<std::string> extra) const {
  std::vector<std::string> args{command, "-c", config};
  args.insert(args.end(), std::make_move_iterator(extra.begin()), std::make_move_iterator(extra.end()));
  return run_pgferry(args, {{"PGFERRY_LOG_FORMAT", "text"}});
}

}  // namespace pgferry::test
