#include "gateway/session/server_auth.hpp"

#include <spdlog/spdlog.h>

#include <array>

#include "gateway/pg/auth_messages.hpp"
#include "gateway/pg/protocol.hpp"
#include "gateway/session/clock.hpp"

namespace pggw {
namespace {

using metrics::AuthMechanism;
using metrics::AuthResult;
using metrics::Leg;

class Login {
  public:
    Login(SessionEnv& env, SessionRecord& rec, Stream& server, auth::ScramCredentials creds,
          std::string_view user)
        : env_(env),
          rec_(rec),
          server_(server),
          password_(creds.password),
          scram_(*env.crypto, std::move(creds)),
          user_(user) {}

    awaitable<ServerAuthOutcome> run(std::span<const std::uint8_t> pending) {
        reader_.feed(pending);
        std::array<std::uint8_t, 4096> chunk;
        pg::Message m;
        for (;;) {
            switch (reader_.next(m)) {
                case pg::MessageReader::invalid:
                    co_return fail_internal("invalid message length from the server");
                case pg::MessageReader::need_more: {
                    auto [ec, n] = co_await server_.read_some(chunk);
                    if (ec)
                        co_return fail_internal("server closed the connection: " + ec.message());
                    reader_.feed(std::span(chunk).first(n));
                    continue;
                }
                case pg::MessageReader::message:
                    break;
            }
            switch (m.type) {
                case 'E':
                    co_return server_error(m);
                case 'N':  // a notice, or NegotiateProtocolVersion: the client gets them as sent
                case 'v': {
                    auto bytes = pg::serialize(m);
                    forward_.insert(forward_.end(), bytes.begin(), bytes.end());
                    continue;
                }
                default:
                    break;
            }
            if (m.type != 'R') {
                co_return fail_internal("unexpected message type " +
                                        std::to_string(int(std::uint8_t(m.type))) +
                                        " from the server during authentication");
            }
            auto req = pg::parse_auth_request(m.body);
            if (!req) co_return fail_internal("malformed authentication request from the server");
            std::optional<ServerAuthOutcome> done;
            error_code wec;
            switch (static_cast<pg::AuthCode>(req->code)) {
                case pg::AuthCode::ok:
                    co_return authenticated(m);
                case pg::AuthCode::sasl:
                    wec = co_await sasl_start(req->data, done);
                    break;
                case pg::AuthCode::sasl_continue:
                    wec = co_await sasl_continue(req->data, done);
                    break;
                case pg::AuthCode::sasl_final:
                    sasl_final(req->data, done);
                    break;
                case pg::AuthCode::cleartext_password:
                    if (!password_) {
                        co_return refuse_method("a cleartext password",
                                                "pggw holds only a SCRAM secret for this user");
                    }
                    wec = co_await server_.write_all(pg::password_message(*password_));
                    break;
                case pg::AuthCode::md5_password:
                    co_return refuse_method(
                        "md5",
                        "pggw authenticates with SCRAM only (set password_encryption = "
                        "'scram-sha-256' and set the password again)");
                default:
                    co_return refuse_method("authentication request " + std::to_string(req->code),
                                            "pggw does not support it");
            }
            if (done) co_return std::move(*done);
            if (wec) co_return fail_internal("could not send to the server: " + wec.message());
        }
    }

    // What a failed login got as far as: the SCRAM mechanism it chose, or "none".
    std::string_view attempted() const { return sasl_started_ ? scram_.mechanism() : "none"; }

  private:
    awaitable<error_code> sasl_start(std::span<const std::uint8_t> data,
                                     std::optional<ServerAuthOutcome>& done) {
        auto offered = pg::parse_sasl_mechanisms(data);
        if (!offered) {
            done = fail_internal("malformed AuthenticationSASL from the server");
            co_return error_code{};
        }
        std::vector<std::uint8_t> binding;
        if (server_.encrypted()) binding = server_.engine()->info().server_end_point;
        std::string error;
        auto first = scram_.client_first(*offered, std::move(binding), error);
        if (!first) {
            done = refuse_method("SASL (" + error + ")", "no SCRAM-SHA-256 mechanism offered");
            co_return error_code{};
        }
        sasl_started_ = true;
        co_return co_await server_.write_all(pg::sasl_initial_response(scram_.mechanism(), *first));
    }

    awaitable<error_code> sasl_continue(std::span<const std::uint8_t> data,
                                        std::optional<ServerAuthOutcome>& done) {
        if (!sasl_started_) {
            done = fail_internal("SASLContinue from the server before AuthenticationSASL");
            co_return error_code{};
        }
        auth::ScramStep step = scram_.server_first(text(data));
        if (step.kind == auth::ScramStep::stale) {
            done = stale("its salt or iteration count differs from the secret in --auth-file");
            co_return error_code{};
        }
        if (step.kind != auth::ScramStep::reply) {
            done = fail_internal("invalid SCRAM server-first-message: " + step.message +
                                 (step.detail.empty() ? "" : " (" + step.detail + ")"));
            co_return error_code{};
        }
        proof_sent_ = true;
        co_return co_await server_.write_all(pg::sasl_response(step.data));
    }

    void sasl_final(std::span<const std::uint8_t> data, std::optional<ServerAuthOutcome>& done) {
        if (!proof_sent_) {
            done = fail_internal("SASLFinal from the server before the client proof");
            return;
        }
        auth::ScramStep step = scram_.server_final(text(data));
        if (step.kind != auth::ScramStep::done) {
            done = impostor(step.message + (step.detail.empty() ? "" : " (" + step.detail + ")"));
            return;
        }
        verified_ = true;
    }

    // AuthenticationOk: from here on the relay takes over.
    ServerAuthOutcome authenticated(const pg::Message& ok) {
        if (sasl_started_ && !verified_) {
            // A genuine PostgreSQL sends its signature (SASLFinal) before AuthenticationOk; a
            // server that skips it has not proven it knows the secret.
            return impostor("AuthenticationOk without a SCRAM server signature");
        }
        ServerAuthOutcome out;
        out.ok = true;
        out.mechanism = verified_ ? scram_.mechanism() : (password_sent() ? "password" : "trust");
        out.pending = std::move(forward_);
        auto bytes = pg::serialize(ok);
        out.pending.insert(out.pending.end(), bytes.begin(), bytes.end());
        auto rest = reader_.rest();
        out.pending.insert(out.pending.end(), rest.begin(), rest.end());
        if (verified_) count(AuthResult::ok);
        return out;
    }
    bool password_sent() const { return password_.has_value() && !sasl_started_; }

    // The server's own ErrorResponse reaches the client unchanged (database does not exist,
    // no pg_hba.conf entry, too many connections, ...), except a refusal of pggw's proof.
    ServerAuthOutcome server_error(const pg::Message& m) {
        const std::string sqlstate = pg::error_message_field(m.body, 'C');
        const std::string text = pg::error_message_field(m.body, 'M');
        if (proof_sent_ && sqlstate == pg::sqlstate::invalid_password)
            return stale("the server answered: " + text);
        if (sasl_started_) count(AuthResult::error);
        ServerAuthOutcome out;
        out.client_error = std::move(forward_);
        auto bytes = pg::serialize(m);
        out.client_error.insert(out.client_error.end(), bytes.begin(), bytes.end());
        out.log_error = "the server refused the login: " + sqlstate + " " + text;
        return out;
    }

    // The server does not accept what the auth file holds for this user.
    ServerAuthOutcome stale(const std::string& why) {
        count(AuthResult::error);
        ServerAuthOutcome out;
        out.client_error = pg::error_response(
            pg::sqlstate::invalid_password, auth::password_authentication_failed(user_), "FATAL",
            "pggw authenticated the client, but the PostgreSQL server does not accept pggw's "
            "stored secret for this user (password changed?): pggw's --auth-file must be "
            "updated");
        out.log_error = "--auth-file is out of date for user " + rec_.user +
                        ": the PostgreSQL server does not accept its secret (" + why + ")";
        return out;
    }

    // The server could not prove it knows the secret: not the real server.
    ServerAuthOutcome impostor(const std::string& why) {
        count(AuthResult::error);
        ServerAuthOutcome out;
        out.client_error = pg::error_response(
            pg::sqlstate::connection_failure,
            "pggw could not authenticate the PostgreSQL server (incorrect server signature)");
        out.log_error = "the server failed SCRAM server authentication: " + why +
                        " (not the server the secret belongs to, or a man in the middle)";
        return out;
    }

    ServerAuthOutcome refuse_method(const std::string& asked, const std::string& why) {
        ServerAuthOutcome out;
        out.client_error = pg::error_response(
            pg::sqlstate::invalid_authorization_specification,
            "pggw cannot log in to the PostgreSQL server for user \"" + std::string(user_) +
                "\": the server asked for " + asked + ", and " + why);
        out.log_error = "the server asked for " + asked + ": " + why;
        return out;
    }

    ServerAuthOutcome fail_internal(const std::string& why) {
        if (sasl_started_) count(AuthResult::error);
        ServerAuthOutcome out;
        out.client_error = pg::error_response(pg::sqlstate::connection_failure,
                                              "pggw lost the PostgreSQL server during login");
        out.log_error = why;
        return out;
    }

    void count(AuthResult r) {
        if (counted_) return;
        counted_ = true;
        const auto m = scram_.mechanism() == "SCRAM-SHA-256-PLUS"
                           ? AuthMechanism::scram_sha_256_plus
                           : AuthMechanism::scram_sha_256;
        env_.metrics.auth(Leg::server, m, r, seconds_since(started_));
    }

    static std::string_view text(std::span<const std::uint8_t> d) {
        return {reinterpret_cast<const char*>(d.data()), d.size()};
    }

    SessionEnv& env_;
    SessionRecord& rec_;
    Stream& server_;
    std::optional<std::string> password_;
    auth::ScramClient scram_;
    std::string_view user_;
    pg::MessageReader reader_{pg::kMaxServerAuthMessageBody};
    std::vector<std::uint8_t> forward_;  // notices and NegotiateProtocolVersion, for the client
    bool sasl_started_ = false, proof_sent_ = false, verified_ = false, counted_ = false;
    Clock::time_point started_ = Clock::now();
};

}  // namespace

awaitable<ServerAuthOutcome> authenticate_server(SessionEnv& env, SessionRecord& rec,
                                                 Stream& server,
                                                 std::span<const std::uint8_t> pending,
                                                 auth::ScramCredentials credentials,
                                                 std::string_view user) {
    Login login(env, rec, server, std::move(credentials), user);
    ServerAuthOutcome out = co_await login.run(pending);
    if (!out.ok) out.mechanism = login.attempted();
    co_return out;
}

}  // namespace pggw
