#include "gateway/session/client_auth.hpp"

#include <spdlog/spdlog.h>

#include <array>
#include <mutex>

#include "gateway/auth/scram_server.hpp"
#include "gateway/pg/auth_messages.hpp"
#include "gateway/pg/protocol.hpp"
#include "gateway/session/clock.hpp"

namespace pggw {
namespace {

using metrics::AuthMechanism;
using metrics::AuthResult;
using metrics::Leg;

AuthMechanism mechanism_label(std::string_view m) {
    return m == "SCRAM-SHA-256-PLUS" ? AuthMechanism::scram_sha_256_plus
                                     : AuthMechanism::scram_sha_256;
}

// One client message of the exchange ('p'), or nothing when the client closed or sent
// something else (then `why` says what, for the log and, when not empty, the client).
struct ClientMessage {
    std::optional<pg::Message> msg;
    bool closed = false;
};

awaitable<ClientMessage> read_client_message(Stream& client, pg::MessageReader& reader) {
    std::array<std::uint8_t, 2048> chunk;
    pg::Message m;
    for (;;) {
        switch (reader.next(m)) {
            case pg::MessageReader::message:
                co_return ClientMessage{std::move(m), false};
            case pg::MessageReader::invalid:
                co_return ClientMessage{std::nullopt, false};
            case pg::MessageReader::need_more:
                break;
        }
        auto [ec, n] = co_await client.read_some(chunk);
        if (ec) co_return ClientMessage{std::nullopt, true};
        reader.feed(std::span(chunk).first(n));
    }
}

class Exchange {
  public:
    Exchange(SessionEnv& env, SessionRecord& rec, Stream& client, std::string_view user)
        : env_(env), rec_(rec), client_(client), user_(user) {}

    awaitable<ClientAuthOutcome> run(const auth::ScramSecret& secret) {
        std::vector<std::uint8_t> binding;
        if (client_.encrypted()) binding = client_.engine()->info().server_end_point;
        auth::ScramServer scram(*env_.crypto, secret, std::move(binding));
        const auto mechanisms = scram.mechanisms();
        if (auto ec = co_await client_.write_all(pg::authentication_sasl(mechanisms))) {
            rec_.end("client gone");
            co_return ClientAuthOutcome{};
        }

        // SASLInitialResponse
        ClientMessage first = co_await read_client_message(client_, reader_);
        if (!first.msg) co_return co_await lost(first.closed);
        if (first.msg->type != 'p') co_return co_await unexpected(first.msg->type);
        auto initial = pg::parse_sasl_initial_response(first.msg->body);
        if (!initial) {
            co_return co_await invalid(pg::sqlstate::protocol_violation,
                                       "malformed SASL initial response", "",
                                       auth::ScramStep::invalid);
        }
        mechanism_ =
            initial->mechanism == "SCRAM-SHA-256-PLUS" ? "SCRAM-SHA-256-PLUS" : "SCRAM-SHA-256";
        rec_.client_auth = mechanism_;
        std::optional<std::span<const std::uint8_t>> data;
        if (initial->data) data = std::span<const std::uint8_t>(*initial->data);
        auth::ScramStep step = scram.initial(initial->mechanism, data);
        // SASLContinue / SASLResponse until the exchange ends (two rounds; three when the
        // initial response carried no data).
        while (step.kind == auth::ScramStep::reply) {
            if (auto ec = co_await client_.write_all(pg::authentication_sasl_continue(step.data))) {
                rec_.end("client gone");
                co_return ClientAuthOutcome{};
            }
            ClientMessage next = co_await read_client_message(client_, reader_);
            if (!next.msg) co_return co_await lost(next.closed);
            if (next.msg->type != 'p') co_return co_await unexpected(next.msg->type);
            step = scram.response(next.msg->body);
        }
        if (step.kind != auth::ScramStep::done)
            co_return co_await invalid(step.sqlstate, step.message, step.detail, step.kind);

        ClientAuthOutcome out;
        out.ok = true;
        out.server_final = std::move(step.data);
        out.client_key = scram.client_key();
        out.mechanism = mechanism_;
        env_.metrics.auth(Leg::client, mechanism_label(mechanism_), AuthResult::ok,
                          seconds_since(started_));
        co_return out;
    }

  private:
    void count_error() {
        env_.metrics.auth(Leg::client, mechanism_label(mechanism_), AuthResult::error,
                          seconds_since(started_));
    }

    // The client closed (libpq does when it has no password to answer with: psql then asks
    // for one and connects again) or sent an oversized message.
    awaitable<ClientAuthOutcome> lost(bool closed) {
        count_error();
        if (closed) {
            rec_.end("client closed during authentication");
            co_return ClientAuthOutcome{};
        }
        co_return co_await refuse(pg::sqlstate::protocol_violation, "invalid message length", "",
                                  Refusal::protocol_violation);
    }

    awaitable<ClientAuthOutcome> unexpected(char type) {
        count_error();
        co_return co_await refuse(
            pg::sqlstate::protocol_violation,
            "expected SASL response, got message type " + std::to_string(int(std::uint8_t(type))),
            "", Refusal::protocol_violation);
    }

    awaitable<ClientAuthOutcome> invalid(std::string_view sqlstate, std::string message,
                                         std::string detail, auth::ScramStep::Kind kind) {
        count_error();
        if (kind == auth::ScramStep::wrong_password) {
            // PostgreSQL's words; the reason goes to the log only, as PostgreSQL's DETAIL does.
            spdlog::warn("password authentication failed for user {}: peer={} mechanism={}",
                         rec_.user, rec_.peer, mechanism_);
            auto msg = pg::error_response(pg::sqlstate::invalid_password,
                                          auth::password_authentication_failed(user_));
            co_await send_refusal(client_, rec_, env_.metrics, msg, Refusal::auth_failed);
            co_return ClientAuthOutcome{};
        }
        co_return co_await refuse(sqlstate, message, detail, Refusal::protocol_violation);
    }

    awaitable<ClientAuthOutcome> refuse(std::string_view sqlstate, std::string message,
                                        std::string detail, Refusal why) {
        co_await refuse_client(client_, rec_, env_.metrics, sqlstate, message, why, detail);
        co_return ClientAuthOutcome{};
    }

    SessionEnv& env_;
    SessionRecord& rec_;
    Stream& client_;
    std::string_view user_;
    pg::MessageReader reader_{pg::kMaxAuthMessageBody};
    std::string_view mechanism_ = "SCRAM-SHA-256";
    Clock::time_point started_ = Clock::now();
};

}  // namespace

awaitable<ClientAuthOutcome> authenticate_client(SessionEnv& env, SessionRecord& rec,
                                                 Stream& client, const auth::ScramSecret& secret,
                                                 std::string_view user) {
    Exchange x(env, rec, client, user);
    co_return co_await x.run(secret);
}

auth::ScramSecret mock_secret(const tls::Crypto& crypto, std::string_view user) {
    static std::once_flag once;
    static std::array<std::uint8_t, 32> nonce{};
    std::call_once(once, [&] { crypto.random_bytes(nonce); });
    std::vector<std::uint8_t> input(nonce.begin(), nonce.end());
    input.insert(input.end(), user.begin(), user.end());
    const tls::Sha256Digest salt = crypto.sha256(input);
    auth::ScramSecret s;
    s.iterations = auth::kDefaultIterations;
    s.salt.assign(salt.begin(), salt.begin() + auth::kDefaultSaltLength);
    // Keys no ClientKey hashes to (a fresh random StoredKey per attempt).
    crypto.random_bytes(s.stored_key);
    crypto.random_bytes(s.server_key);
    return s;
}

}  // namespace pggw
