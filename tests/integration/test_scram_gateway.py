"""SCRAM in the gateway (--auth-file, issue 11): pggw authenticates the users it knows itself,
with channel binding on each leg, toward a PostgreSQL 15 with ssl = on and SCRAM passwords.

One cluster for the module: ssl = on with a certificate from a test CA, log_connections = on
(so a test can tell that no connection reached PostgreSQL), and `hostssl ... scram-sha-256`
for the users below (their plaintext logins rejected: the server leg is TLS for them). pggw
presents its own certificate (another key than PostgreSQL's), verifies PostgreSQL's
(--server-tls verify-full) and holds the secrets in an auth file:

  alice  SCRAM secret copied from pg_authid
  carol  plaintext password (pggw computes the proof with PostgreSQL's salt)
  dave   stale SCRAM secret (the password was changed on the server after the copy)
  gina   md5 hash: not usable for SCRAM, relayed as an unknown user
  erin   not in the file: relayed (default) or refused (--auth-unknown-users refuse)
  frank  not in the module's file: added by a reload (test_reload)

Clients with their default settings: psql, pgbench and psycopg2 (libpq), JDBC (Debian's
libpostgresql-jdbc-java, run with Java's single-file source launcher) and node-postgres
(Debian's node-pg, unpacked by scripts/install-deps.sh: see NODE_PATHS).
"""
import os
import re
import signal
import struct
import time
from pathlib import Path

import psycopg2
import pytest

from conftest import (scrape, ALICE_PASSWORD, PGBENCH, TERMINATE, Cluster, Pggw, check_no_crash,
                      clean_client_env, client_context, connect, conninfo, error_fields,
                      make_ca, make_leaf, psql, read_message, run, scram_session, starttls,
                      startup_message, tls_backends)


LIBS = tls_backends()
SSL_QUERY = "select ssl from pg_stat_ssl where pid = pg_backend_pid()"
PASSWORDS = {"alice": ALICE_PASSWORD, "carol": "carol-pw", "dave": "dave-old",
             "erin": "erin-pw", "frank": "frank-pw", "gina": "gina-pw"}
DAVE_NEW_PASSWORD = "dave-new"
SCRAM_USERS = ("alice", "carol", "dave", "erin", "frank", "gina")
PLUS, SCRAM = "SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"
STALE_DETAIL = ("pggw authenticated the client, but the PostgreSQL server does not accept "
                "pggw's stored secret for this user (password changed?): pggw's --auth-file "
                "must be updated")
CB_REFUSAL = "SCRAM channel binding (SCRAM-SHA-256-PLUS) cannot pass through pggw"
PERMISSIONS = ("has group or world access; file must have permissions u=rw (0600) or less if "
               "owned by the current user, or permissions u=rw,g=r (0640) or less if owned by "
               "root")
JDBC_JAR = Path("/usr/share/java/postgresql.jar")
# Debian's node-pg: installed (a machine with Debian's nodejs), or unpacked by
# scripts/install-deps.sh next to a Node.js that is not Debian's (its dependencies want
# Debian's nodejs package).
NODE_PATHS = [os.environ.get("PGGW_NODE_PATH", ""),
              "/usr/local/lib/pggw-test/node-pg/usr/share/nodejs", "/usr/share/nodejs"]


def failed_for(user: str) -> str:
    return f'password authentication failed for user "{user}"'


# --------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------
class Pki:
    pass


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("scram-pki")
    k = Pki()
    k.ca = make_ca(d, "ca")
    k.pg = make_leaf(d, "pg", "localhost", k.ca, client=False,
                     sans=["DNS:localhost", "IP:127.0.0.1"])
    # pggw's own certificate: same names, another key, so a client's channel binding to it
    # could never pass through to PostgreSQL: pggw must terminate SCRAM to keep it.
    k.gw = make_leaf(d, "gw", "localhost", k.ca, client=False,
                     sans=["DNS:localhost", "IP:127.0.0.1"])
    return k


def quote(s: str) -> str:
    return '"' + s.replace('"', '""') + '"'


def write_auth_file(path: Path, entries: dict[str, str] | str, mode: int = 0o600) -> Path:
    """Writes the file whole, then renames it into place (pggw may watch the directory)."""
    text = entries if isinstance(entries, str) else \
        "".join(f"{quote(u)} {quote(s)}\n" for u, s in entries.items())
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
    return path


class Db:
    pass


@pytest.fixture(scope="module")
def db(pki, tmp_path_factory):
    users = ",".join(SCRAM_USERS)
    c = Cluster(
        hba_prefix=(f"hostssl all {users} 127.0.0.1/32 scram-sha-256\n"
                    f"hostnossl all {users} 127.0.0.1/32 reject\n"),
        conf_extra=("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n"
                    "log_connections = on\n"),
        files={"server.crt": pki.pg[0], "server.key": pki.pg[1]})
    c.init()
    try:
        for u in SCRAM_USERS:
            if u != "alice":
                c.sql(f"CREATE ROLE {u} LOGIN PASSWORD '{PASSWORDS[u]}'")
        secret = {u: c.sql(f"SELECT rolpassword FROM pg_authid WHERE rolname = '{u}'")
                  for u in SCRAM_USERS}
        # dave's password changes after pggw's copy of his secret was taken.
        c.sql(f"ALTER ROLE dave PASSWORD '{DAVE_NEW_PASSWORD}'")
        # pgbench's tables, made directly on the server; read through pggw by alice.
        r = run([PGBENCH, "-i", "-q", "-h", str(c.sockdir), "-p", str(c.port), "-U", "postgres",
                 "appdb"], env=clean_client_env())
        assert r.returncode == 0, r.stderr
        c.sql("GRANT SELECT ON ALL TABLES IN SCHEMA public TO alice", db="appdb")
        d = Db()
        d.cluster, d.secret = c, secret
        d.auth_file = write_auth_file(
            tmp_path_factory.mktemp("scram-auth") / "userlist.txt",
            {"alice": secret["alice"], "carol": PASSWORDS["carol"], "dave": secret["dave"],
             "gina": "md5" + "0123456789abcdef" * 2})
        yield d
    finally:
        c.destroy()


def gateway_args(pki, lib, auth_file, client_tls="require", *extra):
    return ["--tls-library", lib, "--client-tls", client_tls, "--cert", str(pki.gw[0]),
            "--key", str(pki.gw[1]), "--server-tls", "verify-full", "--server-ca",
            str(pki.ca[0]), "--auth-file", str(auth_file), "--workers", "1",
            "--server-connect-timeout", "5", *extra]


@pytest.fixture(scope="module")
def gateways(pki, db):
    """gateways(lib, client_tls="require", *extra) -> a running pggw with the module's auth
    file, one per distinct argument set."""
    cache = {}

    def get(lib, client_tls="require", *extra):
        key = (lib, client_tls, extra)
        p = cache.get(key)
        if p is None or not p.alive():
            p = Pggw(*gateway_args(pki, lib, db.auth_file, client_tls, *extra),
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


# --------------------------------------------------------------------------------------
# Helpers: metrics, logs, clients
# --------------------------------------------------------------------------------------
def samples(text: str, name: str) -> dict[tuple, float]:
    """name's samples: sorted label items -> value."""
    out = {}
    for line in text.splitlines():
        m = re.match(r"^(\w+)(?:\{(.*)\})?\s+(\S+)$", line)
        if m and m.group(1) == name:
            out[tuple(sorted(re.findall(r'(\w+)="([^"]*)"', m.group(2) or "")))] = float(m[3])
    return out


def deltas(before: str, after: str, name: str, *keys: str) -> dict[tuple, float]:
    """The samples of name that changed, keyed by the values of the given labels."""
    a, b = samples(before, name), samples(after, name)
    out = {}
    for labels, v in b.items():
        d = v - a.get(labels, 0.0)
        if d:
            have = dict(labels)
            k = tuple(have.get(x) for x in keys)
            out[k] = out.get(k, 0.0) + d
    return out


def auth_deltas(before: str, after: str) -> dict[tuple, float]:
    """pggw_auth_total's changes: (leg, mechanism, result) -> delta. The duration histogram
    must have counted exactly the same authentications."""
    d = deltas(before, after, "pggw_auth_total", "leg", "mechanism", "result")
    assert deltas(before, after, "pggw_auth_duration_seconds_count", "leg", "mechanism",
                  "result") == d
    return d


def refusal_deltas(before: str, after: str) -> dict[tuple, float]:
    return deltas(before, after, "pggw_client_refusals_total", "reason")


def field(v: str | re.Pattern) -> str:
    return v.pattern if isinstance(v, re.Pattern) else re.escape(v)


# A leg pggw tried and failed (or never opened) is not "relayed": that word means the server's
# own exchange passed through.
NOT_RELAYED = re.compile(r"(?!relayed )\S+")


def session_line(gw, mark: int, user: str, tls: str, auth, server_auth, reason: str,
                 peer_port: int | None = None) -> str:
    """The one "session closed" line logged since mark (of the client at peer_port, if given),
    which must be this session's. auth, server_auth: a literal, or a compiled pattern."""
    port = str(peer_port) if peer_port else r"\d+"
    lines = gw.wait_log(rf"session closed: peer=127\.0\.0\.1:{port} ", since=mark)
    assert len(lines) == 1, gw.log_text()[mark:]
    want = (rf"session closed: peer=127\.0\.0\.1:{port} user={user} database=appdb worker=0 "
            rf"duration=\d+\.\d{{3}}s bytes_in=\d+ bytes_out=\d+ tls={re.escape(tls)} "
            rf"auth={field(auth)} server_auth={field(server_auth)} reason={reason}$")
    assert re.search(want, lines[0]), (want, lines[0])
    return lines[0]


def failure_port(gw, mark: int, user: str, mechanism: str) -> int:
    """The client port of pggw's one "password authentication failed" line since mark."""
    lines = gw.wait_log(rf"password authentication failed for user {user}: "
                        rf"peer=127\.0\.0\.1:\d+ mechanism={re.escape(mechanism)}$", since=mark)
    assert len(lines) == 1, gw.log_text()[mark:]
    return int(re.search(r"peer=127\.0\.0\.1:(\d+) ", lines[0])[1])


CLIENT_CLOSED = r'("client closed"|"server closed the connection")'


def pg_log_mark(db) -> int:
    return db.cluster.log.stat().st_size


def pg_log_since(db, mark: int) -> str:
    return db.cluster.log.read_bytes()[mark:].decode(errors="replace")


def wait_pg_log(db, mark: int, pattern: str, timeout: float = 5) -> str:
    deadline = time.monotonic() + timeout
    while True:
        text = pg_log_since(db, mark)
        if re.search(pattern, text) or time.monotonic() > deadline:
            return text
        time.sleep(0.05)


def default_dsn(gw, user):
    """Only what a user must say: no sslmode, no channel_binding (libpq: prefer, prefer)."""
    return conninfo(host=gw.host, port=gw.port, user=user, dbname="appdb")


def psql_as(gw, user, password=None, query=SSL_QUERY, **kw):
    env = clean_client_env(PGPASSWORD=password or PASSWORDS[user])
    r = psql(default_dsn(gw, user) + (" " + conninfo(**kw) if kw else ""), query, env=env,
             timeout=20)
    return r.returncode, r.stdout.strip(), r.stderr


def raw_scram(gw, pki, user, password):
    """SCRAM-SHA-256 by hand (gs2 flag 'n') over TLS: (client port, messages)."""
    s = starttls(gw.addr, client_context(cafile=pki.ca[0]))
    with s:
        port = s.getsockname()[1]
        return port, scram_session(s, user, password, timeout=10)


def error_of(msgs) -> dict:
    assert msgs and msgs[-1][0] == b"E", msgs
    return error_fields(msgs[-1][1])


# --------------------------------------------------------------------------------------
# 1-6: clients with their default settings
# --------------------------------------------------------------------------------------
def test_psql_defaults_bind_both_legs(lib, gateways, db):
    gw = gateways(lib)
    before, mark = scrape(gw), gw.log_mark()
    pg_mark = pg_log_mark(db)
    assert psql_as(gw, "alice") == (0, "t", "")
    line = session_line(gw, mark, "alice", "TLSv1.3", PLUS, PLUS, CLIENT_CLOSED)
    assert auth_deltas(before, scrape(gw)) == {("client", PLUS, "ok"): 1,
                                               ("server", PLUS, "ok"): 1}, line
    # PostgreSQL saw one TLS login of alice's.
    text = wait_pg_log(db, pg_mark, r"connection authorized: user=alice")
    assert len(re.findall(r"connection authorized: user=alice database=appdb "
                          r"application_name=psql SSL enabled \(protocol=TLSv1\.3, ",
                          text)) == 1, text


def sasl_offer(sock) -> list[bytes]:
    sock.sendall(startup_message("alice", "appdb"))
    kind, payload = read_message(sock)
    assert kind == b"R" and struct.unpack("!i", payload[:4])[0] == 10, (kind, payload)
    return payload[4:].split(b"\0")


def test_sasl_offer_over_tls(lib, gateways, pki):
    """PostgreSQL's own offer over TLS: -PLUS first."""
    gw = gateways(lib)
    mark = gw.log_mark()
    with starttls(gw.addr, client_context(cafile=pki.ca[0])) as s:
        assert sasl_offer(s) == [PLUS.encode(), SCRAM.encode(), b"", b""]
    assert gw.wait_log(r"session closed: ", since=mark)  # before the next test's mark


def test_channel_binding_require(lib, gateways):
    gw = gateways(lib)
    before, mark = scrape(gw), gw.log_mark()
    assert psql_as(gw, "alice", channel_binding="require", sslmode="require") == (0, "t", "")
    session_line(gw, mark, "alice", "TLSv1.3", PLUS, PLUS, CLIENT_CLOSED)
    assert auth_deltas(before, scrape(gw)) == {("client", PLUS, "ok"): 1,
                                               ("server", PLUS, "ok"): 1}


def test_pgbench(lib, gateways):
    """pgbench -S: its setup connection and one per client, each a full SCRAM login on both
    legs (-n: no vacuum of tables alice does not own)."""
    gw = gateways(lib)
    before, mark = scrape(gw), gw.log_mark()
    r = run([PGBENCH, "-n", "-S", "-c", "2", "-t", "20", "-h", gw.host, "-p", str(gw.port),
             "-U", "alice", "appdb"], env=clean_client_env(PGPASSWORD=ALICE_PASSWORD), timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "number of transactions actually processed: 40/40" in r.stdout, r.stdout
    lines = gw.wait_log(r"session closed: .* user=alice ", since=mark, count=3)
    assert len(lines) == 3, gw.log_text()[mark:]
    for line in lines:
        assert f" tls=TLSv1.3 auth={PLUS} server_auth={PLUS} " in line, line
    assert auth_deltas(before, scrape(gw)) == {("client", PLUS, "ok"): 3,
                                               ("server", PLUS, "ok"): 3}


def test_psycopg2(lib, gateways):
    gw = gateways(lib)
    before, mark = scrape(gw), gw.log_mark()
    conn = psycopg2.connect(default_dsn(gw, "alice") + " " + conninfo(password=ALICE_PASSWORD),
                            connect_timeout=10)
    try:
        cur = conn.cursor()
        cur.execute("select ssl, current_user from pg_stat_ssl where pid = pg_backend_pid()")
        assert cur.fetchone() == (True, "alice")
    finally:
        conn.close()
    session_line(gw, mark, "alice", "TLSv1.3", PLUS, PLUS, CLIENT_CLOSED)
    assert auth_deltas(before, scrape(gw)) == {("client", PLUS, "ok"): 1,
                                               ("server", PLUS, "ok"): 1}


JDBC_MAIN = r"""
import java.sql.*;
import java.util.Properties;

public class Main {
    public static void main(String[] args) throws Exception {
        Properties p = new Properties();
        p.setProperty("user", args[1]);
        p.setProperty("password", args[2]);
        try (Connection c = DriverManager.getConnection(args[0], p);
             Statement s = c.createStatement();
             ResultSet r = s.executeQuery(
                 "select ssl, current_user from pg_stat_ssl where pid = pg_backend_pid()")) {
            r.next();
            System.out.println("ssl=" + r.getBoolean(1) + " user=" + r.getString(2));
        } catch (SQLException e) {
            System.out.println("error " + e.getSQLState() + " " + e.getMessage());
            System.exit(1);
        }
    }
}
"""


def test_jdbc(lib, gateways, tmp_path):
    """pgjdbc 42.5 with nothing but URL, user and password. Its default sslmode=prefer tries
    TLS and, like libpq's prefer, does not verify the certificate (LibPQFactory verifies only
    for verify-ca/verify-full), so no sslfactory or CA is needed. It does not implement
    channel binding (SCRAM-SHA-256, gs2 flag 'n'), so the client leg is SCRAM-SHA-256; pggw
    still binds the server leg."""
    gw = gateways(lib)
    main = tmp_path / "Main.java"
    main.write_text(JDBC_MAIN)
    before, mark = scrape(gw), gw.log_mark()
    r = run(["java", "-cp", str(JDBC_JAR), str(main), f"jdbc:postgresql://{gw.host}:{gw.port}/appdb",
             "alice", ALICE_PASSWORD], env=clean_client_env(tmp_path), timeout=60)
    assert (r.returncode, r.stdout.strip()) == (0, "ssl=true user=alice"), r.stdout + r.stderr
    session_line(gw, mark, "alice", "TLSv1.3", SCRAM, PLUS, CLIENT_CLOSED)
    assert auth_deltas(before, scrape(gw)) == {("client", SCRAM, "ok"): 1,
                                               ("server", PLUS, "ok"): 1}


NODE_CLIENT = r"""
const fs = require('fs');
const { Client } = require('pg');
const [host, port, user, password, ca] = process.argv.slice(1);
// node-postgres does not use TLS unless told to; pggw (--client-tls require) refuses
// plaintext. The least to add is `ssl`, here with the CA that signed pggw's certificate (so it
// is verified, as a client should: ssl: true would check against the system CAs, and
// rejectUnauthorized: false would skip verification).
const c = new Client({ host, port: Number(port), user, password, database: 'appdb',
                       ssl: { ca: fs.readFileSync(ca) } });
c.connect()
  .then(() => c.query('select ssl, current_user from pg_stat_ssl where pid = pg_backend_pid()'))
  .then(r => { console.log(`ssl=${r.rows[0].ssl} user=${r.rows[0].current_user}`); return c.end(); })
  .catch(e => { console.log(`error ${e.code} ${e.message}`); process.exit(1); });
"""


def test_node_postgres(lib, gateways, pki):
    """node-postgres 8.8: SCRAM-SHA-256 only (no channel binding in this version)."""
    gw = gateways(lib)
    node_path = ":".join(p for p in NODE_PATHS if p and (Path(p) / "pg").is_dir())
    assert node_path, f"node-pg not found in {NODE_PATHS} (scripts/install-deps.sh)"
    before, mark = scrape(gw), gw.log_mark()
    r = run(["node", "-e", NODE_CLIENT, gw.host, str(gw.port), "alice", ALICE_PASSWORD,
             str(pki.ca[0])], env=clean_client_env(NODE_PATH=node_path), timeout=30)
    assert (r.returncode, r.stdout.strip()) == (0, "ssl=true user=alice"), r.stdout + r.stderr
    session_line(gw, mark, "alice", "TLSv1.3", SCRAM, PLUS, CLIENT_CLOSED)
    assert auth_deltas(before, scrape(gw)) == {("client", SCRAM, "ok"): 1,
                                               ("server", PLUS, "ok"): 1}


# --------------------------------------------------------------------------------------
# 7-9: wrong password, plaintext entry, stale secret
# --------------------------------------------------------------------------------------
def test_wrong_password_never_reaches_postgresql(lib, gateways, db, pki):
    gw = gateways(lib)
    before, pg_mark = scrape(gw), pg_log_mark(db)
    # libpq (sslmode=require: prefer would retry without TLS after an error, and pggw refuses
    # plaintext, which would add a second refusal).
    mark = gw.log_mark()
    rc, _, err = psql_as(gw, "alice", "wrong-password", sslmode="require")
    assert rc != 0
    assert f'FATAL:  {failed_for("alice")}\n' in err, err
    assert "DETAIL" not in err, err
    port = failure_port(gw, mark, "alice", PLUS)
    session_line(gw, mark, "alice", "TLSv1.3", PLUS, NOT_RELAYED, '"refused: auth_failed"', port)
    # By hand, to see the SQLSTATE: SCRAM-SHA-256 (no binding) with a wrong password.
    mark = gw.log_mark()
    port, msgs = raw_scram(gw, pki, "alice", "wrong-password")
    f = error_of(msgs)
    assert (f["S"], f["V"], f["C"], f["M"]) == ("FATAL", "FATAL", "28P01", failed_for("alice"))
    assert "D" not in f, f
    assert failure_port(gw, mark, "alice", SCRAM) == port
    session_line(gw, mark, "alice", "TLSv1.3", SCRAM, NOT_RELAYED, '"refused: auth_failed"', port)
    after = scrape(gw)
    assert auth_deltas(before, after) == {("client", PLUS, "error"): 1,
                                          ("client", SCRAM, "error"): 1}
    assert refusal_deltas(before, after) == {("auth_failed",): 2}
    # Then a good login: PostgreSQL logs it, and it is the only connection it saw.
    assert psql_as(gw, "alice") == (0, "t", "")
    text = wait_pg_log(db, pg_mark, r"connection authorized: user=alice")
    assert len(re.findall(r"connection received: host=127\.0\.0\.1 port=\d+", text)) == 1, text
    assert len(re.findall(r"connection authorized: ", text)) == 1, text
    assert "password authentication failed" not in text, text


def test_plaintext_password_entry(lib, gateways):
    """carol's entry is her password: pggw proves it to PostgreSQL with PostgreSQL's salt."""
    gw = gateways(lib)
    before, mark = scrape(gw), gw.log_mark()
    assert psql_as(gw, "carol") == (0, "t", "")
    session_line(gw, mark, "carol", "TLSv1.3", PLUS, PLUS, CLIENT_CLOSED)
    assert auth_deltas(before, scrape(gw)) == {("client", PLUS, "ok"): 1,
                                               ("server", PLUS, "ok"): 1}
    rc, _, err = psql_as(gw, "carol", "not-carols", sslmode="require")
    assert rc != 0 and f'FATAL:  {failed_for("carol")}\n' in err, err


def test_stale_secret(lib, gateways, pki):
    """dave's password was changed on the server after pggw's copy: pggw accepts his old
    password, PostgreSQL refuses pggw's proof; the client is told why, and so is the log."""
    gw = gateways(lib)
    before, mark = scrape(gw), gw.log_mark()
    rc, _, err = psql_as(gw, "dave", sslmode="require")
    assert rc != 0
    assert f'FATAL:  {failed_for("dave")}\nDETAIL:  {STALE_DETAIL}\n' in err, err
    lines = gw.wait_log(r"--auth-file is out of date for user dave: the PostgreSQL server "
                        r"does not accept its secret \(", since=mark)
    assert len(lines) == 1, gw.log_text()[mark:]
    # Both legs were pggw's own SCRAM (the server leg bound to PostgreSQL's certificate).
    session_line(gw, mark, "dave", "TLSv1.3", PLUS, PLUS, '"refused: server_auth"')
    mark2 = gw.log_mark()
    port, msgs = raw_scram(gw, pki, "dave", PASSWORDS["dave"])
    f = error_of(msgs)
    assert (f["S"], f["C"], f["M"], f["D"]) == ("FATAL", "28P01", failed_for("dave"),
                                                STALE_DETAIL), f
    lines = gw.wait_log(r"--auth-file is out of date for user dave", since=mark, count=2)
    assert len(lines) == 2, gw.log_text()[mark:]
    session_line(gw, mark2, "dave", "TLSv1.3", SCRAM, PLUS, '"refused: server_auth"', port)
    after = scrape(gw)
    # The client legs passed (pggw knows the old password); the server legs did not.
    assert auth_deltas(before, after) == {("client", PLUS, "ok"): 1, ("client", SCRAM, "ok"): 1,
                                          ("server", PLUS, "error"): 2}
    assert refusal_deltas(before, after) == {("server_auth",): 2}
    # His new password is not what pggw holds: a plain wrong password, from pggw.
    rc, _, err = psql_as(gw, "dave", DAVE_NEW_PASSWORD, sslmode="require")
    assert rc != 0 and f'FATAL:  {failed_for("dave")}\n' in err and "DETAIL" not in err, err


# --------------------------------------------------------------------------------------
# 10: users the auth file does not know
# --------------------------------------------------------------------------------------
def test_unknown_user_relayed(lib, gateways):
    """erin (not in the file) and gina (an md5 entry) are authenticated by PostgreSQL through
    pggw, as before --auth-file: with channel_binding=disable they log in; with libpq's default
    (prefer), SCRAM-SHA-256-PLUS bound to pggw's certificate cannot pass, and pggw says so."""
    gw = gateways(lib)
    for user in ("erin", "gina"):
        before, mark = scrape(gw), gw.log_mark()
        assert psql_as(gw, user, channel_binding="disable") == (0, "t", ""), user
        session_line(gw, mark, user, "TLSv1.3", "relayed", "relayed", CLIENT_CLOSED)
        assert auth_deltas(before, scrape(gw)) == {("client", "relayed", "ok"): 1}, user
    before = scrape(gw)
    rc, _, err = psql_as(gw, "erin", sslmode="require")
    assert rc != 0
    assert CB_REFUSAL in err and "channel_binding=disable" in err, err
    after = scrape(gw)
    assert refusal_deltas(before, after) == {("channel_binding",): 1}


def test_unknown_user_refused(lib, gateways, db, pki):
    """--auth-unknown-users refuse: erin (SCRAM on the server) and bob (trust on the server)
    get the wrong-password answer from pggw after a mock exchange, and never reach
    PostgreSQL."""
    gw = gateways(lib, "require", "--auth-unknown-users", "refuse")
    before, pg_mark, mark = scrape(gw), pg_log_mark(db), gw.log_mark()
    port, msgs = raw_scram(gw, pki, "erin", PASSWORDS["erin"])
    f = error_of(msgs)
    assert (f["S"], f["C"], f["M"]) == ("FATAL", "28P01", failed_for("erin")), f
    assert "D" not in f, f
    # pggw's mock exchange: a client leg of pggw's own, no server leg.
    session_line(gw, mark, "erin", "TLSv1.3", SCRAM, NOT_RELAYED, '"refused: auth_failed"', port)
    rc, _, err = psql_as(gw, "bob", "anything", sslmode="require")
    assert rc != 0 and f'FATAL:  {failed_for("bob")}\n' in err, err
    assert len(gw.wait_log(r"is not in --auth-file \(--auth-unknown-users refuse\)", since=mark,
                           count=2)) == 2, gw.log_text()[mark:]
    after = scrape(gw)
    assert refusal_deltas(before, after) == {("auth_failed",): 2}
    assert set(k[0] for k in auth_deltas(before, after)) == {"client"}
    # alice still logs in, and hers is the only connection PostgreSQL saw.
    assert psql_as(gw, "alice") == (0, "t", "")
    text = wait_pg_log(db, pg_mark, r"connection authorized: user=alice")
    assert len(re.findall(r"connection received: ", text)) == 1, text


# --------------------------------------------------------------------------------------
# 11-12: the file itself
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["group-readable", "world-readable", "malformed"])
def test_auth_file_refused_at_start(pki, db, tmp_path, case):
    path = tmp_path / "userlist.txt"
    if case == "malformed":
        write_auth_file(path, f'"alice" {quote(db.secret["alice"])}\n"bob" bob-secret\n')
        want = f'--auth-file: auth file "{path}" line 2: expected a quoted secret after the ' \
               f'user name'
    else:
        write_auth_file(path, {"alice": db.secret["alice"]},
                        0o640 if case == "group-readable" else 0o604)
        want = f'--auth-file: auth file "{path}" {PERMISSIONS}'
    p = Pggw(*gateway_args(pki, LIBS[0], path), backend=db.cluster.addr, wait=False)
    try:
        p.proc.wait(10)
    finally:
        p.stop()
    assert p.proc.returncode == 2, p.log_text()
    assert want in p.log_text(), p.log_text()
    assert db.secret["alice"] not in p.log_text()


def test_reload(lib, pki, db, tmp_path):
    """The file changed on disk, then SIGHUP: frank is added; a broken file (on disk, then
    SIGHUP) keeps the users loaded before, and each failed reload is counted."""
    path = write_auth_file(tmp_path / "userlist.txt", {"alice": db.secret["alice"]})
    with Pggw(*gateway_args(pki, lib, path), backend=db.cluster.addr) as gw:
        assert re.search(rf"info: SCRAM in the gateway for 1 user of {re.escape(str(path))}; "
                         rf"other users relayed to the server$", gw.log_text(),
                         re.M), gw.log_text()
        # frank is unknown: relayed, and libpq's default binding cannot pass.
        rc, _, err = psql_as(gw, "frank", sslmode="require")
        assert rc != 0 and CB_REFUSAL in err, err

        def reloads(text):
            return deltas("", text, "pggw_auth_file_reloads_total", "result")

        assert reloads(scrape(gw)) == {}
        # Changed on disk: reloaded without a signal.
        mark = gw.log_mark()
        write_auth_file(path, {"alice": db.secret["alice"], "frank": db.secret["frank"]})
        assert gw.wait_log(r"--auth-file changed: --auth-file reloaded \(2 users\)$",
                           since=mark), gw.log_text()[mark:]
        assert reloads(scrape(gw)) == {("ok",): 1}
        mark = gw.log_mark()
        assert psql_as(gw, "frank") == (0, "t", "")
        session_line(gw, mark, "frank", "TLSv1.3", PLUS, PLUS, CLIENT_CLOSED)
        # SIGHUP reloads it too.
        mark = gw.log_mark()
        gw.proc.send_signal(signal.SIGHUP)
        assert gw.wait_log(r"SIGHUP: --auth-file reloaded \(2 users\)$", since=mark)
        assert reloads(scrape(gw)) == {("ok",): 2}
        # Broken on disk: the old users stay.
        mark = gw.log_mark()
        write_auth_file(path, '"alice" "x"\n"frank\n')
        assert gw.wait_log(r"--auth-file changed: --auth-file reload failed, keeping the users "
                           r"loaded before: auth file \".*\" line 2: unterminated quoted user "
                           r"name$", since=mark), gw.log_text()[mark:]
        assert reloads(scrape(gw)) == {("ok",): 2, ("error",): 1}
        mark = gw.log_mark()
        gw.proc.send_signal(signal.SIGHUP)
        assert gw.wait_log(r"SIGHUP: --auth-file reload failed, keeping the users loaded before",
                           since=mark)
        assert reloads(scrape(gw)) == {("ok",): 2, ("error",): 2}
        for user in ("alice", "frank"):
            assert psql_as(gw, user) == (0, "t", ""), user
        # Unreadable to others only: a reload refuses group access too.
        mark = gw.log_mark()
        write_auth_file(path, {"alice": db.secret["alice"]}, 0o640)
        assert gw.wait_log(rf"--auth-file reload failed, keeping the users loaded before: auth "
                           rf"file \".*\" {re.escape(PERMISSIONS)}$", since=mark)
        assert reloads(scrape(gw)) == {("ok",): 2, ("error",): 3}
        assert psql_as(gw, "frank") == (0, "t", "")


# --------------------------------------------------------------------------------------
# 13: a plaintext client leg
# --------------------------------------------------------------------------------------
def test_plaintext_client_leg(lib, gateways):
    """No TLS toward the client (sslmode=disable, --client-tls prefer): no -PLUS offered to it,
    SCRAM-SHA-256 on the client leg; the server leg is still bound to PostgreSQL's
    certificate."""
    gw = gateways(lib, "prefer")
    mark = gw.log_mark()
    with connect(gw.addr) as s:
        assert sasl_offer(s) == [SCRAM.encode(), b"", b""]
        s.sendall(TERMINATE)
    assert gw.wait_log(r"session closed: ", since=mark)
    before, mark = scrape(gw), gw.log_mark()
    assert psql_as(gw, "alice", sslmode="disable") == (0, "t", "")
    session_line(gw, mark, "alice", "off", SCRAM, PLUS, CLIENT_CLOSED)
    assert auth_deltas(before, scrape(gw)) == {("client", SCRAM, "ok"): 1,
                                               ("server", PLUS, "ok"): 1}
    # channel_binding=require cannot be met without TLS: libpq refuses by itself.
    rc, _, err = psql_as(gw, "alice", sslmode="disable", channel_binding="require")
    assert rc != 0 and "channel binding" in err, err
