"""TLS toward clients, for every TLS library pggw was built with (--tls-library).

Server certificates come from `pggw gen-cert`; client certificates, rogue CAs and an expired
certificate are made here with the openssl CLI (OpenSSL in the test process only).
Clients: psql/libpq 15, psycopg2, pgbench, openssl s_client, Python ssl for raw bytes.
"""
import os
import re
import socket
import ssl
import struct
import subprocess
import threading
import time
from pathlib import Path

import psycopg2
import psycopg2.errors
import pytest

from conftest import (check_no_crash, ALICE_PASSWORD, BioTls, PGBENCH, PGGW_BIN, PSQL, Pggw, TERMINATE, assert_ready,
                      clean_client_env, client_context, connect, conninfo, describe,
                      error_fields, gen_cert, make_ca, make_leaf, parse_messages,
                      psql, query_message, read_until, recv_all_until_close, recv_exact, run,
                      simple_query, ssl_request, startup_message, starttls, threads_run,
                      tls_backends, trust_session, cancel_request, gssenc_request,
                      read_message, rss_bytes)
from helpers_assert import local_port, session_line

LIBS = tls_backends()
MODES = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]
TLS13 = "SSL connection (protocol: TLSv1.3"


# --------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------
class Certs:
    pass


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("certs")
    c = Certs()
    c.dir = d
    gw = gen_cert(d / "gw")  # CA + server cert for localhost / 127.0.0.1
    c.ca, c.server_crt, c.server_key = gw["ca.crt"], gw["server.crt"], gw["server.key"]
    other = gen_cert(d / "other", "db.example.invalid")  # a cert for another name only
    c.other_ca, c.other_crt, c.other_key = other["ca.crt"], other["server.crt"], other["server.key"]
    c.client_ca = make_ca(d, "client-ca")
    c.rogue_ca = make_ca(d, "rogue-ca")
    c.bob = make_leaf(d, "bob", "bob", c.client_ca)
    c.alice = make_leaf(d, "alice", "alice", c.client_ca)
    c.rogue_bob = make_leaf(d, "rogue-bob", "bob", c.rogue_ca)
    c.expired_bob = make_leaf(d, "expired-bob", "bob", c.client_ca, days=-1)
    # A server certificate for localhost signed by a CA the client does not trust.
    c.rogue_server = make_leaf(d, "rogue-server", "localhost", c.rogue_ca, client=False,
                               sans=["DNS:localhost", "IP:127.0.0.1"])
    return c


@pytest.fixture(scope="module")
def gateways(cluster, certs):
    """gateways(lib, mode, *extra) -> a running pggw, started once per distinct argument set."""
    cache = {}

    def get(lib, mode, *extra, cert=None, key=None, host="127.0.0.1"):
        k = (lib, mode, extra, cert, key, host)
        p = cache.get(k)
        if p is None or not p.alive():
            args = ["--tls-library", lib, "--client-tls", mode,
                    "--cert", str(cert or certs.server_crt), "--key", str(key or certs.server_key),
                    "--client-ca", str(certs.client_ca[0]), "--workers", "1", *extra]
            p = Pggw(*args, backend=cluster.addr, host=host)
            cache[k] = p
        return p

    yield get
    for p in cache.values():
        p.stop()
    check_no_crash(list(cache.values()))


@pytest.fixture(scope="module", params=LIBS)
def lib(request):
    return request.param


def dsn(gw, user="bob", sslmode="require", host=None, **kw):
    return conninfo(host=host or gw.host, port=gw.port, user=user, dbname="appdb",
                    sslmode=sslmode, **kw)


def psql_conninfo(dsn_, env=None):
    return psql(dsn_, "select 1", r"\conninfo", env=env)


# --------------------------------------------------------------------------------------
# The sslmode matrix: libpq client sslmode x pggw --client-tls
# --------------------------------------------------------------------------------------
def expected_outcome(server: str, client: str) -> str:
    """'plain', 'tls' or 'fail' (libpq sslmode semantics x PgBouncer client_tls_sslmode)."""
    if server == "disable":  # pggw answers SSLRequest with 'N'
        return "plain" if client in ("disable", "allow", "prefer") else "fail"
    if server in ("allow", "prefer"):  # TLS when the client asks; libpq 'allow' asks last
        return "plain" if client in ("disable", "allow") else "tls"
    # require / verify-ca / verify-full: plaintext startup is refused (28000); libpq 'allow'
    # retries with TLS after that error.
    return "fail" if client == "disable" else "tls"


@pytest.mark.parametrize("client", MODES)
@pytest.mark.parametrize("server", MODES)
def test_sslmode_matrix(lib, gateways, certs, server, client):
    gw = gateways(lib, server)
    opts = {}
    if client in ("verify-ca", "verify-full"):
        opts["sslrootcert"] = str(certs.ca)
    if server in ("verify-ca", "verify-full"):
        opts["sslcert"], opts["sslkey"] = str(certs.bob[0]), str(certs.bob[1])
    r = psql_conninfo(dsn(gw, "bob", client, **opts))
    want = expected_outcome(server, client)
    ctx = f"--client-tls {server}, sslmode={client}: rc={r.returncode}\n{r.stdout}\n{r.stderr}"
    if want == "fail":
        assert r.returncode != 0, ctx
        if server == "disable":
            assert "server does not support SSL" in r.stderr, ctx
        else:
            assert re.search(r"SSL|TLS", r.stderr), ctx
    else:
        assert r.returncode == 0, ctx
        assert r.stdout.startswith("1\n"), ctx
        if want == "tls":
            assert TLS13 in r.stdout, ctx
        else:
            assert "SSL connection" not in r.stdout, ctx


@pytest.mark.parametrize("server", ["require", "verify-ca", "verify-full"])
def test_plaintext_startup_refused_with_28000(lib, gateways, server):
    gw = gateways(lib, server)
    mark = gw.log_mark()
    with connect(gw.addr) as s:
        port = local_port(s)
        s.sendall(startup_message("bob", "appdb"))
        data = recv_all_until_close(s, 10)
    msgs = parse_messages(data)
    assert msgs and msgs[0][0] == b"E", data[:80]
    f = error_fields(msgs[0][1])
    assert f["C"] == "28000", f
    assert re.search(r"(SSL|TLS).*requir|requir.*(SSL|TLS)", f["M"], re.I), f
    assert not any(k == b"R" for k, _ in msgs)
    # The refusal of this client (its port), with the SQLSTATE, and its session line.
    refused = gw.wait_log(rf"refused client: peer=127\.0\.0\.1:{port} user=bob database=appdb "
                          rf"sqlstate=28000: TLS required", timeout=10, since=mark)
    assert len(refused) == 1, gw.log_text()[mark:]
    line = session_line(gw, port, since=mark)
    assert (line["tls"], line["reason"]) == ("off", "refused: tls_required"), line
    assert (line["bytes_in"], line["bytes_out"]) == (0, 0), line


# --------------------------------------------------------------------------------------
# Users over TLS
# --------------------------------------------------------------------------------------
def test_scram_and_trust_users_over_tls(lib, gateways, certs):
    gw = gateways(lib, "require")
    r = psql_conninfo(dsn(gw, "alice", "verify-full", sslrootcert=certs.ca),
                      env=clean_client_env(PGPASSWORD=ALICE_PASSWORD))
    assert r.returncode == 0, r.stderr
    assert TLS13 in r.stdout and 'as user "alice"' in r.stdout, r.stdout
    r = psql(dsn(gw, "alice", "verify-full", sslrootcert=certs.ca), "select 1",
             env=clean_client_env(PGPASSWORD="wrong"))
    assert r.returncode != 0 and 'password authentication failed for user "alice"' in r.stderr
    r = psql_conninfo(dsn(gw, "bob", "verify-full", sslrootcert=certs.ca))
    assert r.returncode == 0, r.stderr
    assert TLS13 in r.stdout and 'as user "bob"' in r.stdout, r.stdout


def test_channel_binding_require_fails_cleanly(lib, gateways, certs):
    """The server leg is plaintext, so PostgreSQL never offers SCRAM-SHA-256-PLUS: libpq with
    channel_binding=require must fail with a clear message, and promptly."""
    gw = gateways(lib, "require")
    t0 = time.monotonic()
    r = psql(dsn(gw, "alice", "verify-full", sslrootcert=certs.ca, channel_binding="require"),
             "select 1", env=clean_client_env(PGPASSWORD=ALICE_PASSWORD), timeout=20)
    assert r.returncode == 2
    # libpq's words when the offer lacks SCRAM-SHA-256-PLUS.
    assert ("channel binding is required, but server did not offer an authentication method "
            "that supports channel binding") in r.stderr, r.stderr
    assert time.monotonic() - t0 < 15  # not a hang until psql's timeout (20 s)


def test_large_transfers_over_tls(lib, gateways, certs, cluster):
    gw = gateways(lib, "require")
    r = psql(dsn(gw, "bob", "require"),
             "select repeat('x', 1000) from generate_series(1, 5000)")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split("\n")
    assert sum(1 for l in lines if l == "x" * 1000) == 5000
    table = f"tls_copy_{lib}"
    cluster.sql(f"create table if not exists {table} (v text)", db="appdb", user="bob")
    n = 60000
    proc = subprocess.Popen([PSQL, "-X", "-q", "-v", "ON_ERROR_STOP=1", dsn(gw, "bob", "require"),
                             "-c", f"copy {table} from stdin"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_client_env())
    _, err = proc.communicate(("z" * 120 + "\n").encode() * n, timeout=60)
    assert proc.returncode == 0, err
    assert cluster.sql(f"select count(*) from {table}", db="appdb") == str(n)


# --------------------------------------------------------------------------------------
# Server identity as the client sees it
# --------------------------------------------------------------------------------------
def test_rsa_certificate(lib, gateways, certs):
    files = gen_cert(certs.dir / f"rsa-{lib}", key_type="rsa-2048")
    gw = gateways(lib, "require", cert=files["server.crt"], key=files["server.key"])
    r = psql_conninfo(dsn(gw, "bob", "verify-full", sslrootcert=files["ca.crt"]))
    assert r.returncode == 0, r.stderr
    assert TLS13 in r.stdout


def test_ed25519_certificate(lib, gateways, certs):
    """gen-cert --key-type ed25519 (RFC 8410): libpq (OpenSSL 3) verify-full and openssl s_client
    accept it, TLS 1.3 and 1.2, whichever library serves it."""
    files = gen_cert(certs.dir / f"ed25519-{lib}", key_type="ed25519")
    gw = gateways(lib, "require", cert=files["server.crt"], key=files["server.key"])
    r = psql_conninfo(dsn(gw, "bob", "verify-full", sslrootcert=files["ca.crt"]))
    assert r.returncode == 0, r.stderr
    assert TLS13 in r.stdout
    for version in ("-tls1_3", "-tls1_2"):
        r = subprocess.run(["openssl", "s_client", "-starttls", "postgres", "-connect",
                            f"127.0.0.1:{gw.port}", "-CAfile", str(files["ca.crt"]), version,
                            "-verify_return_error", "-verify_ip", "127.0.0.1", "-brief"],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=15)
        out = r.stdout + r.stderr
        assert r.returncode == 0, out
        assert "Verification: OK" in out, out
        assert "Signature type: ed25519" in out, out


def test_hostname_mismatch_fails_verify_full(lib, gateways, certs):
    gw = gateways(lib, "require", cert=certs.other_crt, key=certs.other_key)
    r = psql(dsn(gw, "bob", "verify-full", sslrootcert=certs.other_ca), "select 1")
    assert r.returncode != 0
    assert "does not match host name" in r.stderr, r.stderr
    # Same cert, same CA, without the name check: fine (so the failure above is the name).
    r = psql_conninfo(dsn(gw, "bob", "verify-ca", sslrootcert=certs.other_ca))
    assert r.returncode == 0, r.stderr
    assert TLS13 in r.stdout


def test_address_not_in_certificate_fails_verify_full(lib, gateways, certs):
    gw = gateways(lib, "require", host="127.0.0.2")
    r = psql(dsn(gw, "bob", "verify-full", sslrootcert=certs.ca), "select 1")
    assert r.returncode != 0
    assert "does not match host name" in r.stderr, r.stderr


def test_default_cert_names(lib, gateways, certs):
    """gen-cert's default certificate is valid for localhost and 127.0.0.1."""
    gw = gateways(lib, "require")
    r = psql_conninfo(dsn(gw, "bob", "verify-full", host="localhost", hostaddr="127.0.0.1",
                          sslrootcert=certs.ca))
    assert r.returncode == 0, r.stderr
    assert TLS13 in r.stdout


@pytest.mark.parametrize("sslmode", ["verify-ca", "verify-full"])
def test_rogue_ca_fails(lib, gateways, certs, sslmode):
    gw = gateways(lib, "require")
    r = psql(dsn(gw, "bob", sslmode, sslrootcert=certs.rogue_ca[0]), "select 1")
    assert r.returncode != 0
    assert "certificate verify failed" in r.stderr, r.stderr


def test_openssl_s_client_starttls(lib, gateways, certs):
    gw = gateways(lib, "require")
    r = subprocess.run(["openssl", "s_client", "-starttls", "postgres", "-connect",
                        f"127.0.0.1:{gw.port}", "-CAfile", str(certs.ca), "-verify_return_error",
                        "-verify_ip", "127.0.0.1", "-brief"], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=15)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "Protocol version: TLSv1.3" in out, out
    assert "Verification: OK" in out, out


@pytest.mark.parametrize("min_version,tls12_ok", [("1.3", False), ("1.2", True)])
def test_tls_min_version(lib, gateways, certs, min_version, tls12_ok):
    gw = gateways(lib, "require", "--tls-min-version", min_version)
    r = subprocess.run(["openssl", "s_client", "-starttls", "postgres", "-connect",
                        f"127.0.0.1:{gw.port}", "-CAfile", str(certs.ca), "-tls1_2", "-brief"],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=15)
    out = r.stdout + r.stderr
    if tls12_ok:
        assert r.returncode == 0 and "Protocol version: TLSv1.2" in out, out
    else:
        # Refused with the protocol_version alert (70), as RFC 8446 asks.
        assert r.returncode == 1 and "CONNECTION ESTABLISHED" not in out, out
        assert "alert protocol version" in out, out
    # TLS 1.3 works either way.
    r = subprocess.run(["openssl", "s_client", "-starttls", "postgres", "-connect",
                        f"127.0.0.1:{gw.port}", "-CAfile", str(certs.ca), "-tls1_3", "-brief"],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=15)
    assert r.returncode == 0 and "TLSv1.3" in r.stdout + r.stderr, r.stdout + r.stderr


# --------------------------------------------------------------------------------------
# Raw negotiation
# --------------------------------------------------------------------------------------
def test_plaintext_pipelined_behind_ssl_request_never_handshakes(lib, gateways):
    gw = gateways(lib, "require")
    with connect(gw.addr) as s:
        s.sendall(ssl_request() + startup_message("bob", "appdb"))
        data = recv_all_until_close(s, 3)
    if data[:1] == b"S":
        data = data[1:]
    msgs = parse_messages(data)
    assert not any(k == b"R" for k, _ in msgs), describe(msgs)
    assert all(k == b"E" for k, _ in msgs), data[:80]
    assert not data.startswith(b"\x16"), "a TLS ServerHello answered plaintext bytes"


def test_client_hello_pipelined_behind_ssl_request_closed(lib, gateways, certs):
    """CVE-2021-23214: SSLRequest and a ClientHello in one write. The ClientHello arrived before
    'S' was sent, so it may have been injected: close, never a ServerHello."""
    gw = gateways(lib, "require")
    with connect(gw.addr) as s:
        hello = BioTls(s, client_context(certs.ca)).client_hello()
        assert hello[:1] == b"\x16"
        s.sendall(ssl_request() + hello)
        data = recv_all_until_close(s, 3)
    if data[:1] == b"S":
        data = data[1:]
    assert b"\x16\x03" not in data[:2], "pggw answered the pipelined ClientHello"
    assert not any(k == b"R" for k, _ in parse_messages(data))


@pytest.mark.parametrize("direct", [False, True], ids=["sslrequest", "direct"])
def test_tls_bytes_dribbled_one_per_segment(lib, gateways, certs, direct):
    """Every client byte (SSLRequest, ClientHello, Finished, StartupMessage, Query) in its own
    TCP segment: the startup decoder and the TLS engine see records split everywhere."""
    gw = gateways(lib, "require")
    with connect(gw.addr, timeout=10) as s:
        alpn = ["postgresql"] if direct else None
        t = BioTls(s, client_context(certs.ca, alpn=alpn), dribble=True)
        if not direct:
            for b in ssl_request():
                s.sendall(bytes([b]))
                time.sleep(0.001)
            assert recv_exact(s, 1) == b"S"
        t.handshake()
        assert t.version() == "TLSv1.3"
        msgs, _ = trust_session(t, "bob", "appdb", timeout=10)
        assert_ready(msgs)
        out = simple_query(t, "select 'dribbled'", timeout=10)
        assert any(k == b"D" and p.endswith(b"dribbled") for k, p in out), describe(out)


def test_tls_connection_storm_with_resets(lib, gateways, certs):
    """Resets in the middle of the TLS handshake and right after it; pggw keeps serving."""
    gw = gateways(lib, "require")
    ctx = client_context(certs.ca)
    for i in range(60):
        s = connect(gw.addr)
        s.sendall(ssl_request())
        recv_exact(s, 1)
        b = BioTls(s, ctx)
        if i % 2 == 0:
            s.sendall(b.client_hello())  # ClientHello, then vanish
            time.sleep(0.002)
        else:
            b.handshake()  # full handshake, then vanish
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    for i in range(30):  # direct TLS ClientHello, then vanish
        s = connect(gw.addr)
        s.sendall(BioTls(s, client_context(certs.ca, alpn=["postgresql"])).client_hello()[:50 + i])
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    assert gw.alive()
    with starttls(gw.addr, ctx) as t:
        msgs, _ = trust_session(t, "bob", "appdb")
        assert_ready(msgs)


def test_tls12_session(lib, gateways, certs):
    gw = gateways(lib, "require")
    ctx = client_context(certs.ca, maximum=ssl.TLSVersion.TLSv1_2)
    mark = gw.log_mark()
    with starttls(gw.addr, ctx) as t:
        port = local_port(t)
        assert t.version() == "TLSv1.2"
        msgs, _ = trust_session(t, "bob", "appdb")
        assert_ready(msgs)
        query = query_message("select repeat('z', 100000)")
        t.sendall(query)
        out = read_until(t, b"Z", 5, stop_on_error=False)
        assert any(k == b"D" and p.endswith(b"z" * 100000) for k, p in out), describe(out)
        t.sendall(TERMINATE)
        recv_all_until_close(t, 10)
    line = session_line(gw, port, since=mark)
    assert line["tls"] == "TLSv1.2" and line["user"] == "bob", line
    # Bytes counted after the startup: the query and Terminate in, at least the row out.
    assert line["bytes_in"] == len(query) + len(TERMINATE), line
    assert line["bytes_out"] > 100000, line


def test_starttls_raw_session(lib, gateways, certs):
    gw = gateways(lib, "require")
    mark = gw.log_mark()
    t0 = time.monotonic()
    with starttls(gw.addr, client_context(certs.ca), server_hostname="localhost") as t:
        port = local_port(t)
        assert t.version() == "TLSv1.3"
        msgs, _ = trust_session(t, "bob", "appdb")
        assert_ready(msgs)
        out = simple_query(t, "select 5")
        assert out[-1][0] == b"Z"
        t.sendall(TERMINATE)
        recv_all_until_close(t, 10)
    elapsed = time.monotonic() - t0
    line = session_line(gw, port, since=mark)
    assert (line["user"], line["database"], line["tls"]) == ("bob", "appdb", "TLSv1.3"), line
    assert line["reason"] == "server closed the connection", line
    assert line["bytes_in"] == len(query_message("select 5")) + len(TERMINATE), line
    # What the client read after its StartupMessage: the startup answer and the query's.
    sent_back = sum(5 + len(p) for _, p in msgs + out)
    assert line["bytes_out"] == sent_back, (sent_back, line)
    assert 0 <= line["duration"] <= elapsed + 0.1, (elapsed, line)


def test_direct_tls_with_alpn(lib, gateways, certs):
    gw = gateways(lib, "require")
    ctx = client_context(certs.ca, alpn=["postgresql"])
    with connect(gw.addr) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as t:
            assert t.selected_alpn_protocol() == "postgresql"
            assert t.version() == "TLSv1.3"
            msgs, _ = trust_session(t, "bob", "appdb")
            assert_ready(msgs)
            t.sendall(TERMINATE)


def test_direct_tls_without_alpn_refused(lib, gateways, certs):
    """PostgreSQL 17 rule: a direct TLS connection must negotiate ALPN "postgresql". pggw decides
    on the ClientHello, so the handshake itself fails (an alert, before any ServerHello)."""
    gw = gateways(lib, "require")
    ctx = client_context(certs.ca)
    mark = gw.log_mark()
    with connect(gw.addr) as raw:
        port = local_port(raw)
        with pytest.raises(ssl.SSLError) as ei:
            t = ctx.wrap_socket(raw, server_hostname="localhost")
            t.sendall(startup_message("bob", "appdb"))
            t.recv(1)
    # The no_application_protocol alert (120), as PostgreSQL 17 sends it.
    assert "alert no application protocol" in str(ei.value), str(ei.value)
    lines = gw.wait_log(rf"TLS handshake failed: peer=127\.0\.0\.1:{port} reason=no_alpn: ",
                        timeout=10, since=mark)
    assert len(lines) == 1, gw.log_text()[mark:]


def test_direct_tls_wrong_alpn_alert(lib, gateways, certs):
    gw = gateways(lib, "require")
    ctx = client_context(certs.ca, alpn=["http/1.1"])
    with connect(gw.addr) as raw:
        with pytest.raises(ssl.SSLError) as ei:
            t = ctx.wrap_socket(raw, server_hostname="localhost")
            t.sendall(startup_message("bob", "appdb"))
            t.recv(1)
    assert re.search(r"no.application.protocol", str(ei.value), re.I), str(ei.value)


def test_direct_tls_refused_when_client_tls_disabled(lib, gateways, certs):
    gw = gateways(lib, "disable")
    ctx = client_context(certs.ca, alpn=["postgresql"])
    mark = gw.log_mark()
    with connect(gw.addr, timeout=10) as raw:
        port = local_port(raw)
        # Closed without a byte of TLS (no ServerHello, no alert): the handshake meets EOF
        # (a reset if the close raced the ClientHello), never a timeout.
        with pytest.raises((ssl.SSLZeroReturnError, ssl.SSLEOFError, ConnectionResetError)) as ei:
            ctx.wrap_socket(raw, server_hostname="localhost")
    assert not isinstance(ei.value, socket.timeout), ei.value
    lines = gw.wait_log(rf"direct TLS connection refused \(TLS is disabled\): "
                        rf"peer=127\.0\.0\.1:{port}$", timeout=10, since=mark)
    assert len(lines) == 1, gw.log_text()[mark:]


def test_gssenc_then_ssl_request(lib, gateways, certs):
    """libpq with gssencmode=prefer and Kerberos credentials: GSSENCRequest 'N', then SSLRequest."""
    gw = gateways(lib, "require")
    s = connect(gw.addr)
    s.sendall(gssenc_request())
    assert recv_exact(s, 1) == b"N"
    s.sendall(ssl_request())
    assert recv_exact(s, 1) == b"S"
    with client_context(certs.ca).wrap_socket(s, server_hostname="localhost") as t:
        msgs, _ = trust_session(t, "bob", "appdb")
        assert_ready(msgs)


def test_ssl_request_inside_tls_refused(lib, gateways, certs):
    gw = gateways(lib, "require")
    with starttls(gw.addr, client_context(certs.ca)) as t:
        t.sendall(ssl_request())
        data = recv_all_until_close(t, 5)
    msgs = parse_messages(data)
    assert not any(k == b"R" for k, _ in msgs), describe(msgs)
    assert msgs and msgs[0][0] == b"E", data[:80]


def test_handshake_timeout_covers_tls(lib, gateways, certs):
    """--handshake-timeout 1: a client that stalls after 'S' (no ClientHello), or after the TLS
    handshake (no StartupMessage), is closed once the timeout has passed (not before it; the
    upper bound is generous: a loaded 2-CPU machine under ctest -j2)."""
    gw = gateways(lib, "require", "--handshake-timeout", "1")
    with connect(gw.addr, timeout=20) as s:
        t0 = time.monotonic()
        s.sendall(ssl_request())
        assert recv_exact(s, 1) == b"S"
        assert recv_all_until_close(s, 15) == b""
        elapsed = time.monotonic() - t0
        assert 0.8 <= elapsed < 10, f"closed after {elapsed:.2f}s with --handshake-timeout 1"
    t0 = time.monotonic()
    with starttls(gw.addr, client_context(certs.ca), timeout=20) as t:
        data = recv_all_until_close(t, 15)
    elapsed = time.monotonic() - t0
    assert 0.8 <= elapsed < 10, f"closed after {elapsed:.2f}s with --handshake-timeout 1"
    assert not any(k == b"R" for k, _ in parse_messages(data))


def test_many_concurrent_tls_sessions(lib, gateways, certs):
    gw = gateways(lib, "require")
    ctx = client_context(certs.ca)

    def one(i):
        with starttls(gw.addr, ctx) as t:
            msgs, _ = trust_session(t, "bob", "appdb", timeout=15)
            assert_ready(msgs)
            out = simple_query(t, f"select {i}, repeat('q', 20000)", timeout=15)
            rows = [p for k, p in out if k == b"D"]
            assert rows and rows[0].endswith(b"q" * 20000), describe(out)
            t.sendall(TERMINATE)

    threads_run(one, [(i,) for i in range(60)], parallel=20)


def test_backpressure_slow_tls_reader(lib, gateways, certs):
    """Same as the plaintext test: a TLS client that stops reading does not make pggw buffer."""
    gw = gateways(lib, "require")
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    raw.settimeout(5)
    raw.connect(gw.addr)
    raw.sendall(ssl_request())
    assert recv_exact(raw, 1) == b"S"
    t = client_context(certs.ca).wrap_socket(raw, server_hostname="localhost")
    try:
        msgs, _ = trust_session(t, "bob", "appdb")
        assert_ready(msgs)
        before = rss_bytes(gw.pid)
        t.sendall(query_message("select repeat('x', 1000000) from generate_series(1, 400)"))
        time.sleep(2.5)
        grown = rss_bytes(gw.pid) - before
        assert grown < 48 << 20, f"pggw grew by {grown >> 20} MiB while the client was not reading"
        kind, _ = read_message(t)
        assert kind == b"T"
        for _ in range(3):
            kind, payload = read_message(t)
            assert kind == b"D" and payload.endswith(b"x" * 1000000)
    finally:
        t.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        t.close()


def test_failed_handshakes_release_connection_slots(lib, gateways, certs):
    """--max-connections 2: refused and failed connections of every kind give their slot back."""
    gw = gateways(lib, "require", "--max-connections", "2")
    for _ in range(4):
        with connect(gw.addr) as s:  # plaintext refused (28000)
            s.sendall(startup_message("bob", "appdb"))
            recv_all_until_close(s, 5)
        with connect(gw.addr) as raw:  # ALPN mismatch
            with pytest.raises(ssl.SSLError):
                client_context(certs.ca, alpn=["http/1.1"]).wrap_socket(
                    raw, server_hostname="localhost")
        with connect(gw.addr) as s:  # SSLRequest, then the client goes away
            s.sendall(ssl_request())
            recv_exact(s, 1)
        with connect(gw.addr) as s:  # garbage
            s.sendall(b"\x00\x00\x00\x08garbage!")
            recv_all_until_close(s, 5)
        with connect(gw.addr) as raw:  # client rejects pggw's certificate mid-handshake
            raw.sendall(ssl_request())
            recv_exact(raw, 1)
            with pytest.raises(ssl.SSLError):
                client_context(certs.rogue_ca[0]).wrap_socket(raw, server_hostname="localhost")
    time.sleep(0.3)
    socks = []
    try:
        for _ in range(2):
            deadline = time.monotonic() + 3
            while True:
                t = starttls(gw.addr, client_context(certs.ca))
                msgs, _ = trust_session(t, "bob", "appdb")
                if msgs[-1][0] == b"Z" or time.monotonic() > deadline:
                    break
                t.close()
                time.sleep(0.1)
            socks.append(t)
            assert_ready(msgs)
    finally:
        for t in socks:
            t.close()


# --------------------------------------------------------------------------------------
# Cancel and load over TLS
# --------------------------------------------------------------------------------------
def test_cancel_through_tls_session(lib, gateways):
    """libpq 15 sends the CancelRequest in plaintext: pggw accepts it under require."""
    gw = gateways(lib, "require")
    conn = psycopg2.connect(dsn(gw, "bob", "require"), connect_timeout=5)
    try:
        cur = conn.cursor()
        assert conn.info.ssl_in_use
        timer = threading.Timer(0.5, conn.cancel)
        timer.start()
        t0 = time.monotonic()
        with pytest.raises(psycopg2.errors.QueryCanceled):
            cur.execute("select pg_sleep(30)")
        timer.join()
        assert time.monotonic() - t0 < 15  # far from pg_sleep(30)
    finally:
        conn.close()


def test_cancel_request_inside_tls(lib, gateways, certs):
    """Newer clients (libpq 17) send the CancelRequest inside TLS on a fresh connection."""
    gw = gateways(lib, "require")
    ctx = client_context(certs.ca)
    with starttls(gw.addr, ctx) as t:
        msgs, key = trust_session(t, "bob", "appdb")
        assert_ready(msgs)
        t.sendall(query_message("select pg_sleep(30)"))
        time.sleep(0.3)
        t0 = time.monotonic()
        with starttls(gw.addr, ctx) as c:
            c.sendall(cancel_request(*key))
            assert recv_all_until_close(c, 10) == b""
        out = read_until(t, b"Z", 20, stop_on_error=False)
        err = [p for k, p in out if k == b"E"]
        assert err and error_fields(err[0])["C"] == "57014", describe(out)
        assert time.monotonic() - t0 < 15  # far from pg_sleep(30)


def test_pgbench_over_tls(lib, gateways, cluster):
    if cluster.sql("select to_regclass('pgbench_accounts') is not null", db="appdb") != "t":
        r = run([PGBENCH, "-i", "-q", "-s", "1", "-h", str(cluster.sockdir), "-p",
                 str(cluster.port), "-U", "bob", "appdb"], timeout=120, env=clean_client_env())
        assert r.returncode == 0, r.stderr
    gw = gateways(lib, "require")
    r = run([PGBENCH, "-S", "-T", "3", "-c", "4", "-j", "2", "-h", gw.host, "-p", str(gw.port),
             "-U", "bob", "appdb"], timeout=60, env=clean_client_env(PGSSLMODE="require"))
    assert r.returncode == 0, r.stdout + r.stderr
    m = re.search(r"number of transactions actually processed: (\d+)", r.stdout)
    assert m and int(m.group(1)) > 0, r.stdout
    m = re.search(r"number of failed transactions: (\d+)", r.stdout)
    assert m and int(m.group(1)) == 0, r.stdout


# --------------------------------------------------------------------------------------
# Client certificates
# --------------------------------------------------------------------------------------
def _client_cert_dsn(gw, certs, cert, user="bob"):
    kw = dict(sslrootcert=certs.ca)
    if cert is not None:
        kw.update(sslcert=cert[0], sslkey=cert[1])
    return dsn(gw, user, "verify-full", **kw)


def test_verify_ca_client_certificates(lib, gateways, certs):
    gw = gateways(lib, "verify-ca")
    r = psql_conninfo(_client_cert_dsn(gw, certs, certs.bob))
    assert r.returncode == 0, r.stderr
    assert TLS13 in r.stdout
    # verify-ca does not look at the name: alice's certificate is fine for bob.
    r = psql_conninfo(_client_cert_dsn(gw, certs, certs.alice))
    assert r.returncode == 0, r.stderr
    # Each refused by the TLS handshake with its own alert (libpq's words for it).
    for name, cert, alert in (("missing", None, "tlsv13 alert certificate required"),
                              ("rogue CA", certs.rogue_bob, "tlsv1 alert unknown ca"),
                              ("expired", certs.expired_bob, "sslv3 alert certificate expired")):
        r = psql(_client_cert_dsn(gw, certs, cert), "select 1")
        assert r.returncode == 2, f"{name} client certificate accepted:\n{r.stdout}"
        assert f"SSL error: {alert}" in r.stderr, (name, r.stderr)


def test_verify_ca_missing_cert_raw(lib, gateways, certs):
    """Without a certificate the TLS 1.3 handshake ends with the certificate_required alert
    (116) once the server has read the client's Finished: never a byte of PostgreSQL's."""
    gw = gateways(lib, "verify-ca")
    mark = gw.log_mark()
    # TLS 1.3: the client's side of the handshake completes before the server checks it.
    with starttls(gw.addr, client_context(certs.ca), timeout=10) as t:
        port = local_port(t)
        t.sendall(startup_message("bob", "appdb"))
        with pytest.raises(ssl.SSLError, match="alert certificate required"):
            while t.recv(65536):
                raise AssertionError("pggw sent data to a client without a certificate")
    lines = gw.wait_log(rf"TLS handshake failed: peer=127\.0\.0\.1:{port} "
                        rf"reason=bad_certificate: peer did not send a certificate",
                        timeout=10, since=mark)
    assert len(lines) == 1, gw.log_text()[mark:]


def test_verify_full_client_certificate_cn_must_match_user(lib, gateways, certs):
    gw = gateways(lib, "verify-full")
    r = psql_conninfo(_client_cert_dsn(gw, certs, certs.bob, "bob"))
    assert r.returncode == 0, r.stderr
    assert TLS13 in r.stdout
    r = psql(_client_cert_dsn(gw, certs, certs.alice, "alice"), "select 1",
             env=clean_client_env(PGPASSWORD=ALICE_PASSWORD))
    assert r.returncode == 0, r.stderr
    # CN=alice presenting as bob: PostgreSQL's own message for it.
    cn_mismatch = 'certificate validation (clientcert=verify-full) failed for user "bob": CN mismatch'
    r = psql(_client_cert_dsn(gw, certs, certs.alice, "bob"), "select 1")
    assert r.returncode == 2 and f"FATAL:  {cn_mismatch}" in r.stderr, r.stderr
    ctx = client_context(certs.ca, cert=certs.alice[0], key=certs.alice[1])
    mark = gw.log_mark()
    with starttls(gw.addr, ctx) as t:
        port = local_port(t)
        t.sendall(startup_message("bob", "appdb"))
        data = recv_all_until_close(t, 10)
    msgs = parse_messages(data)
    assert msgs and msgs[0][0] == b"E", data[:80]
    f = error_fields(msgs[0][1])
    assert (f["S"], f["C"], f["M"]) == ("FATAL", "28000", cn_mismatch), f
    assert not any(k == b"R" for k, _ in msgs)
    line = session_line(gw, port, since=mark)
    assert (line["tls"], line["reason"]) == ("TLSv1.3", "refused: certificate_cn_mismatch"), line


# --------------------------------------------------------------------------------------
# Process hygiene
# --------------------------------------------------------------------------------------
def test_openssl_never_loaded(lib, gateways, certs):
    gw = gateways(lib, "require")
    # Make sure the TLS module did real work before looking.
    r = psql(dsn(gw, "bob", "verify-full", sslrootcert=certs.ca), "select 1")
    assert r.returncode == 0, r.stderr
    maps = Path(f"/proc/{gw.pid}/maps").read_text()
    libs = {l.split()[-1] for l in maps.splitlines() if "/" in l}
    openssl_libs = [p for p in libs if re.search(r"/lib(ssl|crypto)\.so\.(3|1\.1)$", p)]
    assert not openssl_libs, f"OpenSSL mapped into pggw: {openssl_libs}"
    assert any(p.endswith(f"libpggw_tls_{lib}.so") for p in libs), \
        f"the {lib} module is not loaded: {sorted(libs)}"


def test_unknown_tls_library_refused(certs):
    r = run([str(PGGW_BIN), "--listen", "127.0.0.1:0", "--metrics-listen",
             "127.0.0.1:0", "--server", "127.0.0.1:5432", "--client-tls",
             "require", "--cert", str(certs.server_crt), "--key", str(certs.server_key),
             "--tls-library", "openssl"], timeout=10)
    assert r.returncode == 2, r.stdout + r.stderr
    assert 'pggw: --tls-library: expected one of boringssl wolfssl, got "openssl"' in r.stderr, \
        r.stdout + r.stderr


@pytest.mark.parametrize("argv", [["--version"], ["gen-cert", "--dir", "{tmp}/ld"]],
                         ids=["version", "gen-cert"])
def test_openssl_never_loaded_with_both_modules(argv, tmp_path):
    """`pggw --version` loads every compiled TLS module: the dynamic linker's own trace shows
    every library initialised in that process, and OpenSSL is not among them."""
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    env = dict(os.environ, LD_DEBUG="files")
    r = run([str(PGGW_BIN), *argv], timeout=30, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    inits = set(re.findall(r"calling init: (\S+)", r.stderr))
    assert inits, r.stderr[-3000:]
    openssl_libs = [p for p in inits if re.search(r"/lib(ssl|crypto)\.so\.(3|1\.1)$", p)]
    assert not openssl_libs, f"OpenSSL initialised in pggw {argv[0]}: {openssl_libs}"
    if argv[0] == "--version":
        for lib_name in LIBS:
            assert any(p.endswith(f"libpggw_tls_{lib_name}.so") for p in inits), \
                f"{lib_name} module not loaded by --version: {sorted(inits)}"
