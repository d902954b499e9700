"""TLS toward PostgreSQL (--server-tls), against a real PostgreSQL 15 with ssl=on, and the
plaintext cluster (ssl=off) for the modes that must fall back or refuse.

PostgreSQL's certificate is the one `pggw gen-cert` made; pggw presents to clients either that
very certificate (SCRAM channel binding can then succeed end to end) or another one (channel
binding must then fail cleanly, not hang).
"""
import threading
import time

import psycopg2
import psycopg2.errors
import pytest

from conftest import (ALICE_PASSWORD, Cluster, Pggw, assert_ready, check_no_crash,
                      clean_client_env, connect, conninfo, error_fields, gen_cert, make_ca,
                      make_leaf, parse_messages, psql, read_until, recv_all_until_close,
                      startup_message, tls_backends)

LIBS = tls_backends()
SSL_QUERY = "select ssl from pg_stat_ssl where pid = pg_backend_pid()"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    k = type("Pki", (), {})()
    k.dir = d
    k.pg = gen_cert(d / "pg")          # PostgreSQL's certificate (localhost, 127.0.0.1)
    k.gw = gen_cert(d / "gw")          # another certificate for pggw's client side
    k.rogue_ca = make_ca(d, "rogue-ca")
    k.pggw_client = make_leaf(d, "pggw-client", "bob", (k.pg["ca.crt"], k.pg["ca.key"]))
    return k


@pytest.fixture(scope="module")
def ssl_cluster(pki):
    c = Cluster(
        hba_prefix=("hostssl certdb all 127.0.0.1/32 trust clientcert=verify-ca\n"
                    "host certdb all 127.0.0.1/32 reject\n"),
        conf_extra=("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n"
                    "ssl_ca_file = 'root.crt'\n"),
        files={"server.crt": pki.pg["server.crt"], "server.key": pki.pg["server.key"],
               "root.crt": pki.pg["ca.crt"]})
    c.init()
    c.sql("CREATE DATABASE certdb OWNER bob")
    try:
        yield c
    finally:
        c.destroy()


@pytest.fixture(scope="module")
def gateways():
    cache = {}

    def get(backend, *args):
        k = (backend, args)
        if k not in cache or not cache[k].alive():
            cache[k] = Pggw(*args, backend=backend)
        return cache[k]

    yield get
    for p in cache.values():
        p.stop()
    check_no_crash(list(cache.values()))


def plain_dsn(gw, user="bob", dbname="appdb"):
    return conninfo(host=gw.host, port=gw.port, user=user, dbname=dbname, sslmode="disable")


MODES = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]


@pytest.mark.parametrize("mode", MODES)
def test_server_tls_modes_against_ssl_server(gateways, ssl_cluster, pki, mode):
    gw = gateways(ssl_cluster.addr, "--client-tls", "disable", "--server-tls", mode,
                  "--server-ca", str(pki.pg["ca.crt"]))
    r = psql(plain_dsn(gw), SSL_QUERY)
    assert r.returncode == 0, r.stderr + gw.log_text()
    encrypted = mode not in ("disable", "allow")  # libpq 'allow' tries plaintext first
    assert r.stdout.strip() == ("t" if encrypted else "f"), r.stdout


@pytest.mark.parametrize("mode", MODES)
def test_server_tls_modes_against_plaintext_server(gateways, cluster, pki, mode):
    gw = gateways(cluster.addr, "--client-tls", "disable", "--server-tls", mode,
                  "--server-ca", str(pki.pg["ca.crt"]), "--server-connect-timeout", "2")
    t0 = time.monotonic()
    with connect(gw.addr) as s:
        s.sendall(startup_message("bob", "appdb"))
        data = recv_all_until_close(s, 5) if mode in ("require", "verify-ca", "verify-full") \
            else None
        if data is None:
            assert_ready(read_until(s, b"Z", 5))
            return
    msgs = parse_messages(data)
    assert msgs and msgs[0][0] == b"E", data[:80]
    assert error_fields(msgs[0][1])["C"] == "08006", error_fields(msgs[0][1])
    assert time.monotonic() - t0 < 3


@pytest.mark.parametrize("case", ["rogue-ca", "wrong-name"])
def test_server_identity_checked(gateways, ssl_cluster, pki, case):
    if case == "rogue-ca":
        args = ("--server-tls", "verify-ca", "--server-ca", str(pki.rogue_ca[0]))
    else:
        args = ("--server-tls", "verify-full", "--server-ca", str(pki.pg["ca.crt"]),
                "--server-sni", "db.example.invalid")
    gw = gateways(ssl_cluster.addr, "--client-tls", "disable", *args)
    t0 = time.monotonic()
    with connect(gw.addr) as s:
        s.sendall(startup_message("bob", "appdb"))
        data = recv_all_until_close(s, 5)
    msgs = parse_messages(data)
    assert msgs and msgs[0][0] == b"E", data[:80]
    assert error_fields(msgs[0][1])["C"] == "08006", error_fields(msgs[0][1])
    assert not any(k == b"R" for k, _ in msgs)
    assert time.monotonic() - t0 < 3
    # The same gateway config with the right CA / name works (the failure was the identity).
    ok = gateways(ssl_cluster.addr, "--client-tls", "disable", "--server-tls", "verify-full",
                  "--server-ca", str(pki.pg["ca.crt"]))
    assert psql(plain_dsn(ok), "select 1").returncode == 0


def test_client_certificate_toward_server(gateways, ssl_cluster, pki):
    with_cert = gateways(ssl_cluster.addr, "--client-tls", "disable", "--server-tls", "verify-full",
                         "--server-ca", str(pki.pg["ca.crt"]),
                         "--server-cert", str(pki.pggw_client[0]),
                         "--server-key", str(pki.pggw_client[1]))
    r = psql(plain_dsn(with_cert, dbname="certdb"), SSL_QUERY)
    assert r.returncode == 0, r.stderr + with_cert.log_text()
    assert r.stdout.strip() == "t"
    without = gateways(ssl_cluster.addr, "--client-tls", "disable", "--server-tls", "verify-full",
                       "--server-ca", str(pki.pg["ca.crt"]))
    r = psql(plain_dsn(without, dbname="certdb"), "select 1")
    assert r.returncode != 0
    assert "certificate" in r.stderr.lower() or "pg_hba" in r.stderr, r.stderr


@pytest.mark.parametrize("lib", LIBS)
def test_channel_binding_with_the_servers_own_certificate(gateways, ssl_cluster, pki, lib):
    """pggw presents PostgreSQL's very certificate: tls-server-end-point matches end to end, so
    SCRAM-SHA-256-PLUS (channel_binding=require) succeeds."""
    gw = gateways(ssl_cluster.addr, "--tls-library", lib, "--client-tls", "require",
                  "--cert", str(pki.pg["server.crt"]), "--key", str(pki.pg["server.key"]),
                  "--server-tls", "verify-full", "--server-ca", str(pki.pg["ca.crt"]))
    r = psql(conninfo(host="127.0.0.1", port=gw.port, user="alice", dbname="appdb",
                      sslmode="verify-full", sslrootcert=pki.pg["ca.crt"],
                      channel_binding="require"), "select current_user", r"\conninfo",
             env=clean_client_env(PGPASSWORD=ALICE_PASSWORD))
    assert r.returncode == 0, r.stderr + gw.log_text()
    assert r.stdout.startswith("alice\n") and "SSL connection" in r.stdout, r.stdout


@pytest.mark.parametrize("lib", LIBS)
def test_channel_binding_with_another_certificate_fails_cleanly(gateways, ssl_cluster, pki, lib):
    gw = gateways(ssl_cluster.addr, "--tls-library", lib, "--client-tls", "require",
                  "--cert", str(pki.gw["server.crt"]), "--key", str(pki.gw["server.key"]),
                  "--server-tls", "verify-full", "--server-ca", str(pki.pg["ca.crt"]))
    dsn = conninfo(host="127.0.0.1", port=gw.port, user="alice", dbname="appdb",
                   sslmode="verify-full", sslrootcert=pki.gw["ca.crt"], channel_binding="require")
    t0 = time.monotonic()
    r = psql(dsn, "select 1", env=clean_client_env(PGPASSWORD=ALICE_PASSWORD), timeout=20)
    assert r.returncode != 0, r.stdout
    assert "channel binding" in r.stderr, r.stderr
    assert time.monotonic() - t0 < 5
    # Without channel binding the same path works.
    r = psql(dsn.replace("channel_binding='require'", "channel_binding='disable'"), "select 1",
             env=clean_client_env(PGPASSWORD=ALICE_PASSWORD))
    assert r.returncode == 0, r.stderr


def test_cancel_with_tls_server_leg(gateways, ssl_cluster, pki):
    gw = gateways(ssl_cluster.addr, "--client-tls", "disable", "--server-tls", "require")
    conn = psycopg2.connect(plain_dsn(gw), connect_timeout=5)
    try:
        cur = conn.cursor()
        timer = threading.Timer(0.5, conn.cancel)
        timer.start()
        t0 = time.monotonic()
        with pytest.raises(psycopg2.errors.QueryCanceled):
            cur.execute("select pg_sleep(30)")
        timer.join()
        assert time.monotonic() - t0 < 5
    finally:
        conn.close()


def test_server_tls_bulk(gateways, ssl_cluster):
    gw = gateways(ssl_cluster.addr, "--client-tls", "disable", "--server-tls", "require")
    r = psql(plain_dsn(gw), "select repeat('s', 1000) from generate_series(1, 5000)")
    assert r.returncode == 0, r.stderr
    assert sum(1 for l in r.stdout.split("\n") if l == "s" * 1000) == 5000
