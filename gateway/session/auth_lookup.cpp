#include "gateway/session/auth_lookup.hpp"

#include <spdlog/spdlog.h>

#include <array>

#include "gateway/auth/auth_query.hpp"
#include "gateway/pg/auth_messages.hpp"
#include "gateway/pg/startup_decoder.hpp"
#include "gateway/session/clock.hpp"
#include "gateway/session/log_value.hpp"
#include "gateway/session/server_auth.hpp"
#include "gateway/session/server_connection.hpp"

namespace pggw {
namespace {

using metrics::AuthQueryResult;

// How often a login waiting for a lookup slot looks again.
constexpr auto kGatePoll = std::chrono::milliseconds(10);
// Largest message pggw reads on the lookup connection (a DataRow holds one short secret).
constexpr std::uint32_t kMaxLookupMessageBody = 1 << 20;

AuthLookupOutcome failure(std::string client_detail, std::string log_error) {
    AuthLookupOutcome out;
    out.client_detail = std::move(client_detail);
    out.log_error = std::move(log_error);
    return out;
}

// Holds one of the worker's lookup slots for as long as it lives (a timeout that destroys the
// lookup's coroutine frame gives it back too).
class GateSlot {
  public:
    explicit GateSlot(auth::AuthLookupGate& g) : g_(g) {}
    GateSlot(const GateSlot&) = delete;
    GateSlot& operator=(const GateSlot&) = delete;
    ~GateSlot() { g_.leave(); }

  private:
    auth::AuthLookupGate& g_;
};

// What pggw proves itself with as the auth user: its plaintext --auth-file password (a SCRAM
// secret cannot log in: the ClientKey is not in it), or nothing (trust or --server-cert).
auth::ScramCredentials auth_user_credentials(const SessionEnv& env) {
    const auth::AuthEntry* e = env.auth ? env.auth->find(env.cfg.auth_user) : nullptr;
    if (e && e->kind == auth::AuthEntry::plaintext)
        return auth::ScramCredentials::from_password(e->password);
    return {};
}

// One lookup on a fresh connection: connect, log in as the auth user, wait for its first
// ReadyForQuery, run the query, read the answer, Terminate.
awaitable<AuthLookupOutcome> run_lookup(SessionEnv& env, const SessionRecord& rec,
                                        std::string_view user, std::string_view database) {
    const std::string& auth_user = env.cfg.auth_user;
    const std::string who = "--auth-user " + log_value(auth_user);
    ServerConnection conn =
        co_await connect_server(env, auth::startup_message(auth_user, database, "pggw auth_query"));
    if (!conn.stream) {
        co_return failure("pggw could not connect to the PostgreSQL server.",
                          "could not connect: " + conn.log_error);
    }
    Stream& s = *conn.stream;
    SessionRecord lookup_rec;
    lookup_rec.peer = rec.peer;
    lookup_rec.user = log_value(auth_user);
    ServerAuthOutcome login = co_await authenticate_server(env, lookup_rec, s, conn.pending,
                                                           auth_user_credentials(env), auth_user);
    if (!login.ok) {
        s.close();
        co_return failure("pggw could not log in to the PostgreSQL server as --auth-user.",
                          "login as " + who + " failed: " + login.log_error);
    }

    pg::MessageReader reader(kMaxLookupMessageBody);
    reader.feed(login.pending);
    auth::AuthQueryReply reply;
    bool ready = false;  // the login's ReadyForQuery was read and the query sent
    std::array<std::uint8_t, 4096> chunk;
    pg::Message m;
    for (;;) {
        switch (reader.next(m)) {
            case pg::MessageReader::invalid:
                s.close();
                co_return failure("pggw lost the PostgreSQL server during the lookup.",
                                  "invalid message length from the server (as " + who + ")");
            case pg::MessageReader::need_more: {
                auto [ec, n] = co_await s.read_some(chunk);
                if (ec) {
                    s.close();
                    co_return failure(
                        "pggw lost the PostgreSQL server during the lookup.",
                        "the server closed the connection of " + who + ": " + ec.message());
                }
                reader.feed(std::span(chunk).first(n));
                continue;
            }
            case pg::MessageReader::message:
                break;
        }
        if (!ready) {
            // AuthenticationOk, ParameterStatus, BackendKeyData, notices: nothing to act on.
            if (m.type == 'E') {
                s.close();
                co_return failure("pggw could not log in to the PostgreSQL server as --auth-user.",
                                  "login as " + who + " failed: the server answered " +
                                      pg::error_message_field(m.body, 'C') + " " +
                                      pg::error_message_field(m.body, 'M'));
            }
            if (m.type != 'Z') continue;
            ready = true;
            if (auto ec = co_await s.write_all(auth::auth_query_messages(
                    env.cfg.auth_query.empty() ? auth::kDefaultAuthQuery : env.cfg.auth_query,
                    user))) {
                s.close();
                co_return failure("pggw lost the PostgreSQL server during the lookup.",
                                  "could not send the query: " + ec.message());
            }
            continue;
        }
        if (!reply.feed(m.type, m.body)) continue;
        co_await s.write_all(auth::terminate_message());  // best effort
        s.close();
        const auth::AuthQueryAnswer& a = reply.answer();
        AuthLookupOutcome out;
        switch (a.kind) {
            case auth::AuthQueryAnswer::found:
                out.kind = AuthLookupOutcome::found;
                out.secret = a.secret;
                break;
            case auth::AuthQueryAnswer::not_found:
                out.kind = AuthLookupOutcome::not_found;
                out.log_error = a.detail;
                break;
            case auth::AuthQueryAnswer::error:
                out = failure("The --auth-query failed.", "--auth-query failed: " + a.detail);
                break;
        }
        co_return out;
    }
}

AuthLookupOutcome from_cache(const std::optional<auth::ScramSecret>& hit) {
    AuthLookupOutcome out;
    out.kind = hit ? AuthLookupOutcome::found : AuthLookupOutcome::not_found;
    out.secret = hit;
    if (!hit) out.log_error = "not found (cached answer)";
    return out;
}

}  // namespace

bool auth_query_enabled(const SessionEnv& env) {
    return !env.cfg.auth_user.empty() && env.crypto != nullptr;
}

awaitable<AuthLookupOutcome> look_up_secret(SessionEnv& env, const SessionRecord& rec,
                                            std::string_view user,
                                            std::span<const std::uint8_t> startup_packet) {
    auth::AuthQueryState& state = env.auth_query;
    if (auto* hit = state.cache.find(user, Clock::now())) {
        env.metrics.auth_query(AuthQueryResult::cached);
        co_return from_cache(*hit);
    }
    DecodeResult d = decode_startup(startup_packet, false);
    const std::string database = d.packet.database.empty() ? std::string(user) : d.packet.database;

    const auto deadline = Clock::now() + seconds(env.cfg.server_connect_timeout);
    while (!state.gate.try_enter()) {
        if (Clock::now() + kGatePoll >= deadline) {
            env.metrics.auth_query(AuthQueryResult::error);
            co_return failure("Too many lookups are in progress.",
                              "no lookup slot within --server-connect-timeout (" +
                                  std::to_string(auth::AuthLookupGate::kMax) +
                                  " lookups in flight on this worker)");
        }
        co_await sleep_for(kGatePoll);
        // The lookup this login waited behind may have answered for the same user.
        if (auto* hit = state.cache.find(user, Clock::now())) {
            env.metrics.auth_query(AuthQueryResult::cached);
            co_return from_cache(*hit);
        }
    }
    GateSlot slot(state.gate);
    auto r = co_await (run_lookup(env, rec, user, database) || sleep_for(deadline - Clock::now()));
    AuthLookupOutcome out;
    if (r.index() == 1) {
        out = failure("The lookup got no answer within --server-connect-timeout.",
                      "no answer within --server-connect-timeout (" +
                          std::to_string(env.cfg.server_connect_timeout) + "s)");
    } else {
        out = std::move(std::get<0>(r));
    }
    switch (out.kind) {
        case AuthLookupOutcome::found:
        case AuthLookupOutcome::not_found:
            env.metrics.auth_query(out.kind == AuthLookupOutcome::found
                                       ? AuthQueryResult::found
                                       : AuthQueryResult::not_found);
            state.cache.put(user, out.secret, Clock::now(),
                            std::chrono::duration<double>(env.cfg.auth_query_cache_seconds));
            break;
        case AuthLookupOutcome::error:
            env.metrics.auth_query(AuthQueryResult::error);  // never cached
            break;
    }
    co_return out;
}

}  // namespace pggw
