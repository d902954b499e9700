"""--auth-user/--auth-query (issue 11, "Auth sources"): users not in --auth-file have their
SCRAM secret looked up in PostgreSQL 15 (ssl = on, SCRAM passwords) at login, as PgBouncer's
auth_query does, and are then served exactly like auth-file users: SCRAM in the gateway with
channel binding on each leg (--client-tls require, --server-tls verify-full).

The auth user pggw_auth is no superuser: it may only run the SECURITY DEFINER function
pgbouncer.get_auth(text) (owned by the superuser postgres, EXECUTE revoked from PUBLIC) in the
database the clients use (appdb), the setup README shows. Its plaintext password is in pggw's
auth file (a SCRAM secret could not log in: pggw would lack the ClientKey).

  hank, ivy, judy, kate  SCRAM users found by the query (one test each: the cache is per
                         gateway)
  bob        exists without a password (NULL secret): not found, relayed (trust)
  ghost      no such role: not found, relayed (PostgreSQL refuses) or refused by pggw

PostgreSQL runs with log_statement = all, so a test can count the lookups that reached it and
see that the user name arrived as the bound parameter $1.
"""
import re
import time
from pathlib import Path

import pytest

from conftest import (scrape, Cluster, Pggw, check_no_crash, clean_client_env, conninfo, make_ca,
                      make_leaf, psql, tls_backends)

LIBS = tls_backends()
SSL_QUERY = "select ssl from pg_stat_ssl where pid = pg_backend_pid()"
PLUS = "SCRAM-SHA-256-PLUS"
AUTH_USER, AUTH_PASSWORD = "pggw_auth", "auth-pw"
PASSWORDS = {"hank": "hank-pw", "ivy": "ivy-pw", "judy": "judy-pw", "kate": "kate-pw",
             "ghost": "ghost-pw", "bob": "unused"}
SCRAM_USERS = ("hank", "ivy", "judy", "kate")
GET_AUTH = "SELECT * FROM pgbouncer.get_auth($1)"
SETUP_SQL = f"""
CREATE SCHEMA pgbouncer;
CREATE FUNCTION pgbouncer.get_auth(p_usename text)
RETURNS TABLE(username text, password text) AS $$
  SELECT rolname::text,
         CASE WHEN rolvaliduntil IS NULL OR rolvaliduntil > now() THEN rolpassword END
    FROM pg_catalog.pg_authid WHERE rolname = p_usename AND rolcanlogin
$$ LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog;
REVOKE ALL ON FUNCTION pgbouncer.get_auth(text) FROM PUBLIC;
GRANT USAGE ON SCHEMA pgbouncer TO {AUTH_USER};
GRANT EXECUTE ON FUNCTION pgbouncer.get_auth(text) TO {AUTH_USER};
"""
LOOKUP_FAILED = 'pggw could not look up the password of user "{}" in the PostgreSQL server'


class Pki:
    pass


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("aq-pki")
    k = Pki()
    k.ca = make_ca(d, "ca")
    k.pg = make_leaf(d, "pg", "localhost", k.ca, client=False,
                     sans=["DNS:localhost", "IP:127.0.0.1"])
    k.gw = make_leaf(d, "gw", "localhost", k.ca, client=False,
                     sans=["DNS:localhost", "IP:127.0.0.1"])
    return k


def write_auth_file(path: Path, entries: dict[str, str]) -> Path:
    path.write_text("".join(f'"{u}" "{s}"\n' for u, s in entries.items()))
    path.chmod(0o600)
    return path


class Db:
    pass


@pytest.fixture(scope="module")
def db(pki, tmp_path_factory):
    users = ",".join((AUTH_USER, *SCRAM_USERS))
    c = Cluster(
        hba_prefix=(f"hostssl all {users} 127.0.0.1/32 scram-sha-256\n"
                    f"hostnossl all {users} 127.0.0.1/32 reject\n"),
        conf_extra=("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n"
                    "log_connections = on\nlog_statement = 'all'\n"),
        files={"server.crt": pki.pg[0], "server.key": pki.pg[1]})
    c.init()
    try:
        c.sql(f"CREATE ROLE {AUTH_USER} LOGIN PASSWORD '{AUTH_PASSWORD}'")
        for u in SCRAM_USERS:
            c.sql(f"CREATE ROLE {u} LOGIN PASSWORD '{PASSWORDS[u]}'")
        c.sql(SETUP_SQL, db="appdb")
        assert c.sql(f"SELECT rolsuper FROM pg_roles WHERE rolname = '{AUTH_USER}'") == "f"
        d = Db()
        d.cluster = c
        d.secret = {u: c.sql(f"SELECT rolpassword FROM pg_authid WHERE rolname = '{u}'")
                    for u in SCRAM_USERS}
        adir = tmp_path_factory.mktemp("aq-auth")
        d.auth_file = write_auth_file(adir / "userlist.txt", {AUTH_USER: AUTH_PASSWORD})
        d.wrong_auth_file = write_auth_file(adir / "wrong.txt", {AUTH_USER: "not-the-password"})
        yield d
    finally:
        c.destroy()


@pytest.fixture(scope="module")
def gateways(pki, db):
    """gateways(lib, auth_file, *extra) -> a running pggw, one per distinct argument set."""
    cache = {}

    def get(lib, auth_file, *extra):
        key = (lib, str(auth_file), extra)
        p = cache.get(key)
        if p is None or not p.alive():
            p = Pggw("--tls-library", lib, "--client-tls", "require", "--cert", str(pki.gw[0]),
                     "--key", str(pki.gw[1]), "--server-tls", "verify-full", "--server-ca",
                     str(pki.ca[0]), "--auth-file", str(auth_file), "--auth-user", AUTH_USER,
                     "--workers", "1", "--server-connect-timeout", "5", *extra,
                     backend=db.cluster.addr)
            cache[key] = p
        return p

    yield get
    for p in cache.values():
        p.stop()
    check_no_crash(list(cache.values()))


@pytest.fixture(scope="module", params=LIBS)
def lib(request):
    return request.param


def counts(text: str, name: str, label: str) -> dict[str, float]:
    out = {}
    for m in re.finditer(rf'^{name}\{{(.*)\}}\s+(\S+)$', text, re.M):
        v = re.search(rf'{label}="([^"]*)"', m[1])
        if v:
            out[v[1]] = out.get(v[1], 0.0) + float(m[2])
    return out


def query_deltas(before: str, after: str) -> dict[str, float]:
    a = counts(before, "pggw_auth_queries_total", "result")
    b = counts(after, "pggw_auth_queries_total", "result")
    assert set(b) == {"found", "not_found", "error", "cached"}, b  # all pre-created
    return {k: v - a.get(k, 0.0) for k, v in b.items() if v - a.get(k, 0.0)}


def psql_as(gw, user, query=SSL_QUERY, password=None):
    env = clean_client_env(PGPASSWORD=password or PASSWORDS[user])
    dsn = conninfo(host=gw.host, port=gw.port, user=user, dbname="appdb")  # libpq defaults
    started = time.monotonic()
    r = psql(dsn, query, env=env, timeout=20)
    return r.returncode, r.stdout.strip(), r.stderr, time.monotonic() - started


def pg_log_mark(db) -> int:
    return db.cluster.log.stat().st_size


def pg_log_since(db, mark: int, pattern: str | None = None, timeout: float = 5) -> str:
    deadline = time.monotonic() + timeout
    while True:
        text = db.cluster.log.read_bytes()[mark:].decode(errors="replace")
        if pattern is None or re.search(pattern, text) or time.monotonic() > deadline:
            return text
        time.sleep(0.05)


def lookups_of(text: str, user: str) -> int:
    """Lookups that reached PostgreSQL for user: the query's execution with $1 bound."""
    return len(re.findall(rf"parameters: \$1 = '{user}'", text))


def session_line(gw, mark: int, user: str) -> str:
    lines = gw.wait_log(rf"session closed: peer=127\.0\.0\.1:\d+ user={user} ", since=mark)
    assert len(lines) == 1, gw.log_text()[mark:]
    return lines[0]


def assert_no_secret_logged(gw, db):
    log = gw.log_text()
    for u in SCRAM_USERS:
        assert db.secret[u] not in log
        assert db.secret[u].split("$")[2] not in log  # neither key
    assert AUTH_PASSWORD not in log


# --------------------------------------------------------------------------------------
def test_found_user_logs_in_with_psql_defaults(lib, gateways, db):
    """hank is not in the auth file: the SECURITY DEFINER function gives his secret, and he
    logs in with libpq's defaults, -PLUS on both legs."""
    gw = gateways(lib, db.auth_file, "--auth-query", GET_AUTH)
    before, mark, pg_mark = scrape(gw), gw.log_mark(), pg_log_mark(db)
    rc, out, err, _ = psql_as(gw, "hank")
    assert (rc, out, err) == (0, "t", "")
    line = session_line(gw, mark, "hank")
    assert f"auth={PLUS} server_auth={PLUS} " in line, line
    assert query_deltas(before, scrape(gw)) == {"found": 1}
    text = pg_log_since(db, pg_mark, r"connection authorized: user=hank")
    # The lookup: pggw_auth over TLS, not a superuser, the name bound as $1.
    assert re.search(rf"connection authorized: user={AUTH_USER} database=appdb "
                     r"application_name=pggw auth_query SSL enabled", text), text
    assert "execute <unnamed>: SELECT * FROM pgbouncer.get_auth($1)" in text, text
    assert lookups_of(text, "hank") == 1, text
    assert re.search(r"connection authorized: user=hank database=appdb application_name=psql "
                     r"SSL enabled", text), text
    assert_no_secret_logged(gw, db)


def test_second_login_within_ttl_is_cached(lib, gateways, db):
    gw = gateways(lib, db.auth_file, "--auth-query", GET_AUTH)
    before, pg_mark = scrape(gw), pg_log_mark(db)
    assert psql_as(gw, "ivy")[:3] == (0, "t", "")
    assert psql_as(gw, "ivy")[:3] == (0, "t", "")
    assert query_deltas(before, scrape(gw)) == {"found": 1, "cached": 1}
    text = pg_log_since(db, pg_mark)
    assert lookups_of(text, "ivy") == 1, text
    assert len(re.findall(r"connection authorized: user=ivy ", text)) == 2, text


def test_failed_login_forgets_the_cached_secret(lib, gateways, db):
    """kate's password changes after her secret was cached: her first login with the new
    password meets the old secret (28P01), and drops it; the next one asks PostgreSQL again."""
    gw = gateways(lib, db.auth_file, "--auth-query", GET_AUTH)
    before = scrape(gw)
    assert psql_as(gw, "kate")[:3] == (0, "t", "")
    new = f"kate-new-{lib}"
    db.cluster.sql(f"ALTER ROLE kate PASSWORD '{new}'")
    try:
        rc, _, err, _ = psql_as(gw, "kate", password=new)
        assert rc != 0 and 'password authentication failed for user "kate"' in err, err
        assert psql_as(gw, "kate", password=new)[:3] == (0, "t", "")
        assert query_deltas(before, scrape(gw)) == {"found": 2, "cached": 1}
    finally:
        db.cluster.sql(f"ALTER ROLE kate PASSWORD '{PASSWORDS['kate']}'")


def test_cache_off_queries_every_time(lib, gateways, db):
    gw = gateways(lib, db.auth_file, "--auth-query", GET_AUTH, "--auth-query-cache-seconds", "0")
    before, pg_mark = scrape(gw), pg_log_mark(db)
    assert psql_as(gw, "judy")[:3] == (0, "t", "")
    assert psql_as(gw, "judy")[:3] == (0, "t", "")
    assert query_deltas(before, scrape(gw)) == {"found": 2}
    assert lookups_of(pg_log_since(db, pg_mark, r"(?s)(\$1 = 'judy'.*){2}"), "judy") == 2


def test_user_not_found_is_relayed(lib, gateways, db):
    """bob has no password (NULL secret) and ghost no role: both relayed to PostgreSQL, which
    trusts bob and does not know ghost."""
    gw = gateways(lib, db.auth_file, "--auth-query", GET_AUTH)
    before, mark = scrape(gw), gw.log_mark()
    assert psql_as(gw, "bob", "select current_user")[:3] == (0, "bob", "")
    assert "auth=relayed server_auth=relayed " in session_line(gw, mark, "bob")
    rc, out, err, _ = psql_as(gw, "ghost")
    assert rc != 0 and 'role "ghost" does not exist' in err, err
    assert query_deltas(before, scrape(gw)) == {"not_found": 2}


def test_user_not_found_is_refused(lib, gateways, db):
    gw = gateways(lib, db.auth_file, "--auth-query", GET_AUTH, "--auth-unknown-users", "refuse")
    before, pg_mark = scrape(gw), pg_log_mark(db)
    rc, out, err, _ = psql_as(gw, "ghost")
    assert rc != 0 and 'password authentication failed for user "ghost"' in err, err
    assert query_deltas(before, scrape(gw)) == {"not_found": 1}
    assert "user=ghost" not in pg_log_since(db, pg_mark)  # only the lookup reached PostgreSQL


def lookup_refused(gw, user):
    before, mark = scrape(gw), gw.log_mark()
    rc, out, err, took = psql_as(gw, user)
    assert rc != 0, out
    assert f"FATAL:  {LOOKUP_FAILED.format(user)}" in err, err
    assert took < 5 + 3, took  # within --server-connect-timeout, never a hang
    assert query_deltas(before, scrape(gw)) == {"error": 1}
    lines = gw.wait_log(rf"--auth-query lookup for user {user} failed: ", since=mark)
    assert len(lines) == 1
    return err, lines[0]


def test_wrong_auth_user_password_fails_clearly(lib, gateways, db):
    gw = gateways(lib, db.wrong_auth_file, "--auth-query", GET_AUTH)
    err, line = lookup_refused(gw, "hank")
    assert "DETAIL:  pggw could not log in to the PostgreSQL server as --auth-user." in err, err
    assert f"login as --auth-user {AUTH_USER} failed" in line, line
    assert "not-the-password" not in gw.log_text()
    # Errors are not cached: the next login looks up again (and fails again).
    lookup_refused(gw, "hank")


def test_missing_function_fails_clearly(lib, gateways, db):
    gw = gateways(lib, db.auth_file, "--auth-query", "SELECT * FROM nosuch.get_auth($1)")
    err, line = lookup_refused(gw, "hank")
    assert "DETAIL:  The --auth-query failed." in err, err
    assert 'schema "nosuch" does not exist' in line, line


def test_default_query_needs_more_than_the_auth_users_rights(lib, gateways, db):
    """The default query reads pg_authid, which only a superuser may: the README's function
    is what a non-superuser auth user needs."""
    gw = gateways(lib, db.auth_file)
    err, line = lookup_refused(gw, "hank")
    assert "42501" in line and "pg_authid" in line, line
