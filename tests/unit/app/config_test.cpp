#include "gateway/app/config.hpp"

#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

namespace pggw {
namespace {

// CTest runs every test as its own process, in parallel: the name must be unique per process.
std::string write_file(const std::string& text) {
    static int n = 0;
    std::string path = ::testing::TempDir() + "pggw_config_test_" + std::to_string(getpid()) + "_" +
                       std::to_string(n++) + ".toml";
    std::ofstream(path) << text;
    return path;
}

ParsedCommand parse(std::vector<std::string> args) {
    std::vector<char*> argv;
    args.insert(args.begin(), "pggw");
    for (auto& a : args) argv.push_back(a.data());
    return parse_command_line(int(argv.size()), argv.data());
}

TEST(HostPort, Forms) {
    HostPort hp;
    std::string err;
    ASSERT_TRUE(parse_host_port("0.0.0.0:6432", hp, err));
    EXPECT_EQ(hp.host, "0.0.0.0");
    EXPECT_EQ(hp.port, 6432);
    ASSERT_TRUE(parse_host_port("[::1]:5432", hp, err));
    EXPECT_EQ(hp.host, "::1");
    EXPECT_EQ(hp.str(), "[::1]:5432");
    ASSERT_TRUE(parse_host_port("db.example.svc:5432", hp, err));
    EXPECT_EQ(hp.host, "db.example.svc");
    EXPECT_FALSE(parse_host_port("::1:5432", hp, err));
    EXPECT_FALSE(parse_host_port("host", hp, err));
    EXPECT_FALSE(parse_host_port("host:99999", hp, err));
    EXPECT_FALSE(parse_host_port(":5432", hp, err));
}

TEST(Config, Defaults) {
    auto cmd = parse({});
    ASSERT_EQ(cmd.kind, ParsedCommand::run);
    ASSERT_EQ(cmd.config.listen.size(), 1u);
    EXPECT_EQ(cmd.config.listen[0].str(), "0.0.0.0:6432");
    EXPECT_EQ(cmd.config.server.str(), "127.0.0.1:5432");
    EXPECT_EQ(cmd.config.handshake_timeout, 10);
    EXPECT_EQ(cmd.config.server_connect_timeout, 5);
    EXPECT_EQ(cmd.config.metrics_listen.str(), "0.0.0.0:9930");
    EXPECT_EQ(cmd.config.effective_client_tls(), TlsMode::disable);
}

TEST(Config, ClientTlsDefaultsToRequireWithACertificate) {
    auto cmd = parse({"--cert", "a.crt", "--key", "a.key"});
    EXPECT_EQ(cmd.config.effective_client_tls(), TlsMode::require);
}

TEST(Config, RepeatedListenAndRunSubcommand) {
    auto cmd = parse({"run", "--listen", "127.0.0.1:1", "--listen", "[::1]:2", "--workers", "3"});
    ASSERT_EQ(cmd.kind, ParsedCommand::run);
    ASSERT_EQ(cmd.config.listen.size(), 2u);
    EXPECT_EQ(cmd.config.listen[1].host, "::1");
    EXPECT_EQ(cmd.config.workers, 3u);
}

TEST(Config, FileAndFlagOverride) {
    auto path = write_file(
        "listen = [\"127.0.0.1:7000\", \"127.0.0.1:7001\"]\n"
        "backend = \"db:5432\"\n"
        "handshake-timeout = 3\n"
        "server_connect_timeout = 1.5\n"
        "client-tls = \"disable\"\n");
    auto cmd = parse({"--config", path, "--backend", "other:6000"});
    ASSERT_EQ(cmd.kind, ParsedCommand::run);
    EXPECT_EQ(cmd.config.listen.size(), 2u);
    EXPECT_EQ(cmd.config.server.str(), "other:6000");
    EXPECT_EQ(cmd.config.handshake_timeout, 3);
    EXPECT_EQ(cmd.config.server_connect_timeout, 1.5);
}

// --server is the name; --backend (flag and key) stays accepted as an alias.
TEST(Config, ServerAndItsBackendAlias) {
    EXPECT_EQ(parse({"--server", "db:6000"}).config.server.str(), "db:6000");
    EXPECT_EQ(parse({"--backend", "db:6001"}).config.server.str(), "db:6001");
    auto path = write_file("server = \"db:6002\"\n");
    EXPECT_EQ(parse({"--config", path}).config.server.str(), "db:6002");
    EXPECT_EQ(parse({"--config", path, "--server", "db:6003"}).config.server.str(), "db:6003");
}

TEST(Config, UnknownKeyNamesFileAndLine) {
    auto path = write_file("backend = \"db:5432\"\n\nbogus_key = 1\n");
    Config cfg;
    std::vector<std::string> errors;
    EXPECT_FALSE(load_config_file(path, cfg, errors));
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_NE(errors[0].find(path + ":3:"), std::string::npos) << errors[0];
    EXPECT_NE(errors[0].find("unknown key \"bogus_key\""), std::string::npos) << errors[0];
}

TEST(Config, BadValuesNameFileAndLine) {
    auto path = write_file("workers = 0\nclient-tls = \"sometimes\"\nlisten = \"nope\"\n");
    Config cfg;
    std::vector<std::string> errors;
    EXPECT_FALSE(load_config_file(path, cfg, errors));
    ASSERT_EQ(errors.size(), 3u);
    EXPECT_NE(errors[0].find(":1:"), std::string::npos) << errors[0];
    EXPECT_NE(errors[1].find(":2:"), std::string::npos) << errors[1];
    EXPECT_NE(errors[1].find("verify-full"), std::string::npos) << errors[1];
    EXPECT_NE(errors[2].find(":3:"), std::string::npos) << errors[2];
}

TEST(Config, SyntaxErrorNamesFileAndLine) {
    auto path = write_file("backend = \n");
    Config cfg;
    std::vector<std::string> errors;
    EXPECT_FALSE(load_config_file(path, cfg, errors));
    ASSERT_FALSE(errors.empty());
    EXPECT_NE(errors[0].find(path + ":1:"), std::string::npos) << errors[0];
}

TEST(Config, BadFlagExits) {
    auto cmd = parse({"--handshake-timeout", "-1"});
    EXPECT_EQ(cmd.kind, ParsedCommand::exit);
    EXPECT_NE(cmd.exit_code, 0);
}

TEST(Config, Subcommands) {
    EXPECT_EQ(parse({"--version"}).kind, ParsedCommand::version);
    auto gen = parse({"gen-cert", "--dir", "/tmp/x", "--hostname", "a", "--hostname", "b"});
    EXPECT_EQ(gen.kind, ParsedCommand::gen_cert);
    EXPECT_EQ(gen.hostnames.size(), 2u);
    EXPECT_EQ(parse({"check-config"}).kind, ParsedCommand::exit);  // --config required
}

TEST(Config, DefaultWorkersAndConnections) {
    EXPECT_GE(default_workers(), 1u);
    EXPECT_GE(default_max_connections(), 1u);
}

}  // namespace
}  // namespace pggw
