// --auth-file: PgBouncer's userlist.txt format (quotes, "" escapes, comments, the three kinds
// of secret, duplicates), broken lines refused with their number and without the secret, and
// the private-key permission rule on the file.
#include "gateway/auth/auth_file.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "gateway/auth/base64.hpp"
#include "gateway/auth/scram_client.hpp"
#include "gateway/auth/scram_server.hpp"
#include "tests/unit/auth/crypto_backends.hpp"

namespace pggw::auth {
namespace {

const std::string kSecret =
    "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
    "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=";

class AuthFileTest : public ::testing::TestWithParam<std::string> {
  protected:
    const tls::Crypto& crypto = testing::crypto_of(GetParam());

    std::optional<AuthTable> parse(std::string_view text, std::string& error) {
        return parse_auth_file(text, crypto, error);
    }
    std::string refused(std::string_view text) {
        std::string error;
        EXPECT_FALSE(parse(text, error).has_value()) << text;
        return error;
    }
};

TEST_P(AuthFileTest, ParsesKindsQuotesAndComments) {
    const std::string text =
        "; PgBouncer comment\n"
        "# hash comment\n"
        "\n"
        "   \t\n"
        "\"alice\" \"" +
        kSecret +
        "\"\n"
        "  \"bob\"\t\"md5" +
        std::string(32, 'a') +
        "\"\r\n"
        "\"carol\" \"pencil\" \"\"\n"  // old mkauth.py's third field: ignored
        "\"d\"\"q\" \"pa\"\"ss\"\n"    // "" is one quote, in both fields
        "\"md5user\" \"md5notahash\"\n"
        "\"last\" \"no newline\"";
    std::string error;
    auto t = parse(text, error);
    ASSERT_TRUE(t.has_value()) << error;
    EXPECT_EQ(t->size(), 6u);

    const AuthEntry* a = t->find("alice");
    ASSERT_NE(a, nullptr);
    EXPECT_EQ(a->kind, AuthEntry::scram);
    ASSERT_TRUE(a->secret.has_value());
    EXPECT_EQ(format_scram_secret(*a->secret), kSecret);

    const AuthEntry* b = t->find("bob");
    ASSERT_NE(b, nullptr);
    EXPECT_EQ(b->kind, AuthEntry::md5);
    EXPECT_EQ(b->md5_secret, "md5" + std::string(32, 'a'));
    EXPECT_FALSE(b->secret.has_value());

    const AuthEntry* c = t->find("carol");
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(c->kind, AuthEntry::plaintext);
    EXPECT_EQ(c->password, "pencil");
    ASSERT_TRUE(c->secret.has_value());
    EXPECT_EQ(c->secret->iterations, kDefaultIterations);
    EXPECT_EQ(c->secret->salt.size(), kDefaultSaltLength);
    // pggw's own secret for carol verifies her password.
    EXPECT_EQ(format_scram_secret(*c->secret),
              format_scram_secret(scram_secret_from_password(crypto, "pencil", c->secret->salt,
                                                             kDefaultIterations)));

    const AuthEntry* d = t->find("d\"q");
    ASSERT_NE(d, nullptr);
    EXPECT_EQ(d->password, "pa\"ss");
    EXPECT_EQ(t->find("md5user")->kind, AuthEntry::plaintext);  // not a valid md5 hash
    EXPECT_EQ(t->find("last")->password, "no newline");
    EXPECT_EQ(t->find("nobody"), nullptr);
    EXPECT_EQ(t->find("ALICE"), nullptr);  // user names are case-sensitive
}

TEST_P(AuthFileTest, LaterDuplicateWins) {
    std::string error;
    auto t = parse("\"u\" \"first\"\n\"u\" \"" + kSecret + "\"\n", error);
    ASSERT_TRUE(t.has_value()) << error;
    EXPECT_EQ(t->size(), 1u);
    EXPECT_EQ(t->find("u")->kind, AuthEntry::scram);
    EXPECT_TRUE(t->find("u")->password.empty());
}

TEST_P(AuthFileTest, EmptyFileIsEmptyTable) {
    std::string error;
    auto t = parse("", error);
    ASSERT_TRUE(t.has_value());
    EXPECT_EQ(t->size(), 0u);
}

TEST_P(AuthFileTest, BrokenLinesNamedAndSecretsNeverEchoed) {
    const std::string ok = "\"ok\" \"fine\"\n";
    EXPECT_EQ(refused(ok + "alice \"x\"\n"), "line 2: expected a quoted user name");
    EXPECT_EQ(refused(ok + ok + "\"alice\n"), "line 3: unterminated quoted user name");
    EXPECT_EQ(refused("\"alice\"\n"),
              "line 1: expected blanks and a quoted secret after the user name");
    EXPECT_EQ(refused("\"alice\"\"x\"\n").substr(0, 7), "line 1:");  // "alice""x" is one field
    EXPECT_EQ(refused("\"alice\" x \"s3cret\"\n"),
              "line 1: expected a quoted secret after the user name");
    EXPECT_EQ(refused("\"alice\" \"s3cret\n\"\n"), "line 1: unterminated quoted secret");
    EXPECT_EQ(refused("\"\" \"s3cret\"\n"), "line 1: empty user name");
    EXPECT_EQ(refused("\"alice\" \"\"\n"), "line 1: empty secret for user \"alice\"");
    EXPECT_EQ(refused("\"" + std::string(kMaxAuthUser + 1, 'u') + "\" \"x\"\n").substr(0, 30),
              "line 1: user name too long (at");
    std::string e = refused("\"alice\" \"" + std::string(kMaxAuthSecret + 1, 's') + "\"\n");
    EXPECT_NE(e.find("secret too long for user \"alice\""), std::string::npos) << e;
    e = refused("\"alice\" \"" + std::string(kMaxPlaintextPassword + 1, 's') + "\"\n");
    EXPECT_NE(e.find("password too long for user \"alice\""), std::string::npos) << e;
    // A malformed SCRAM secret is refused, not taken as a password; its text is not echoed.
    const std::string broken = "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$c2VjcmV0:c2VjcmV0";
    e = refused(ok + "\"alice\" \"" + broken + "\"\n");
    EXPECT_EQ(e.substr(0, 46), "line 2: malformed SCRAM secret for user \"alice");
    EXPECT_EQ(e.find("c2VjcmV0"), std::string::npos) << e;
    EXPECT_EQ(e.find("W22ZaJ0SNY7soEsUEjb6gQ"), std::string::npos) << e;
    // No error text contains the secret.
    for (const std::string& text :
         {std::string("\"alice\" \"s3cret\n"), std::string("\"alice\" \"s3cret\"\"\n"),
          std::string("\"alice\" \"s3cret")}) {
        e = refused(text);
        EXPECT_EQ(e.find("s3cret"), std::string::npos) << e;
    }
    // A NUL cannot be part of a PostgreSQL user name or password.
    EXPECT_EQ(refused(std::string("\"al\0ce\" \"x\"\n", 12)),
              "line 1: NUL byte in user name or secret");
}

class TempFile {
  public:
    explicit TempFile(const std::string& text) {
        std::string tmpl = (std::filesystem::temp_directory_path() / "pggw-auth-XXXXXX").string();
        int fd = ::mkstemp(tmpl.data());
        EXPECT_GE(fd, 0);
        path_ = tmpl;
        EXPECT_EQ(::write(fd, text.data(), text.size()), ssize_t(text.size()));
        ::close(fd);
    }
    ~TempFile() { std::filesystem::remove(path_); }
    const std::string& path() const { return path_; }

  private:
    std::string path_;
};

TEST_P(AuthFileTest, LoadsPrivateFileRefusesGroupOrWorldReadable) {
    TempFile f("\"alice\" \"" + kSecret + "\"\n\"bob\" \"pencil\"\n");
    ASSERT_EQ(::chmod(f.path().c_str(), 0600), 0);
    std::string error;
    auto t = load_auth_file(f.path(), crypto, error);
    ASSERT_NE(t, nullptr) << error;
    EXPECT_EQ(t->size(), 2u);
    ASSERT_NE(t->find("bob"), nullptr);

    // The file is owned by the user running the test: 0640 and 0604 are refused (as
    // PostgreSQL refuses such a private key).
    for (mode_t mode : {0640, 0604, 0660, 0644}) {
        ASSERT_EQ(::chmod(f.path().c_str(), mode), 0);
        error.clear();
        EXPECT_EQ(load_auth_file(f.path(), crypto, error), nullptr) << std::oct << mode;
        EXPECT_NE(error.find("has group or world access"), std::string::npos) << error;
        EXPECT_NE(error.find(f.path()), std::string::npos) << error;
    }
}

TEST_P(AuthFileTest, LoadErrorsNameTheFileAndLine) {
    std::string error;
    EXPECT_EQ(load_auth_file("/nonexistent/pggw/userlist.txt", crypto, error), nullptr);
    EXPECT_NE(error.find("could not open auth file \"/nonexistent/pggw/userlist.txt\""),
              std::string::npos)
        << error;

    TempFile f("\"alice\" \"pencil\"\nbroken \"topsecret\"\n");
    ASSERT_EQ(::chmod(f.path().c_str(), 0600), 0);
    EXPECT_EQ(load_auth_file(f.path(), crypto, error), nullptr);
    EXPECT_EQ(error, "auth file \"" + f.path() + "\" line 2: expected a quoted user name");

    error.clear();
    EXPECT_EQ(load_auth_file(std::filesystem::temp_directory_path().string(), crypto, error),
              nullptr);
    EXPECT_FALSE(error.empty());
}

TEST_P(AuthFileTest, PlaintextEntryServesTheClientLeg) {
    std::string error;
    auto t = parse("\"carol\" \"pencil\"\n", error);
    ASSERT_TRUE(t.has_value());
    const AuthEntry* c = t->find("carol");
    ASSERT_NE(c, nullptr);
    // A client that knows the password authenticates against pggw's own secret.
    ScramServer server(crypto, *c->secret, {});
    ScramClient client(crypto, ScramCredentials::from_password("pencil"));
    std::string err;
    auto first = client.client_first(std::vector<std::string>{"SCRAM-SHA-256"}, {}, err);
    ASSERT_TRUE(first.has_value());
    auto s = server.initial("SCRAM-SHA-256", testing::bytes(*first));
    ASSERT_EQ(s.kind, ScramStep::reply);
    auto cs = client.server_first(s.data);
    ASSERT_EQ(cs.kind, ScramStep::reply);
    EXPECT_EQ(server.response(testing::bytes(cs.data)).kind, ScramStep::done);
}

INSTANTIATE_TEST_SUITE_P(Backends, AuthFileTest, ::testing::ValuesIn(testing::backends()),
                         testing::backend_name);

}  // namespace
}  // namespace pggw::auth
