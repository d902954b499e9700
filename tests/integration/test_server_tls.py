"""TLS toward PostgreSQL (the server leg): --server-tls with libpq's sslmode semantics, for
every TLS library pggw was built with.

Two real PostgreSQL 15 clusters, shared by the whole module: the conftest `cluster` (ssl = off:
it answers 'N') and one with ssl = on, a certificate from a test CA, and pg_hba lines that
need TLS (hostssl / hostnossl reject) or pggw's client certificate (clientcert=verify-ca).
A tiny Python server stands in for a PostgreSQL that answers an SSLRequest with 'E', with
unencrypted bytes behind its 'S', or with nonsense. Certificates: openssl CLI (test process).
"""
import contextlib
import re
import shutil
import signal
import socket
import ssl
import struct
import threading
import time

import psycopg2
import psycopg2.errors
import pytest

from conftest import (scrape, ALICE_PASSWORD, Cluster, Pggw, cancel_request, check_no_crash,
                      clean_client_env, client_context, conninfo, connect, error_fields, make_ca,
                      make_leaf, psql,
                      query_message, read_message, read_until, recv_exact, ssl_request, starttls,
                      startup_message, tls_backends, trust_session, assert_ready)

LIBS = tls_backends()
MODES = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]
CERT_PASSWORD = "cert-s3cret"
SSL_QUERY = "select ssl from pg_stat_ssl where pid = pg_backend_pid()"
TLS_REFUSAL = "pggw could not establish a verified TLS connection to the PostgreSQL server"


# --------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------
class Pki:
    pass


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("server-tls-pki")
    k = Pki()
    k.ca = make_ca(d, "ca")
    k.rogue_ca = make_ca(d, "rogue-ca")
    # PostgreSQL's certificate: localhost and 127.0.0.1.
    k.pg = make_leaf(d, "pg", "localhost", k.ca, client=False,
                     sans=["DNS:localhost", "IP:127.0.0.1"])
    # pggw's own certificate toward clients: same names, another key (channel binding breaks).
    k.gw = make_leaf(d, "gw", "localhost", k.ca, client=False,
                     sans=["DNS:localhost", "IP:127.0.0.1"])
    # pggw's client certificate toward PostgreSQL (clientcert=verify-ca), and a rogue one.
    k.gw_client = make_leaf(d, "gw-client", "pggw", k.ca)
    k.rogue_client = make_leaf(d, "rogue-client", "pggw", k.rogue_ca)
    return k


@pytest.fixture(scope="module")
def ssl_cluster(pki):
    """PostgreSQL 15 with ssl = on. Roles: alice (SCRAM), bob (trust), tlsonly (hostssl only),
    certuser (password + pggw's certificate: hostssl ... scram-sha-256 clientcert=verify-ca)."""
    c = Cluster(
        hba_prefix=("hostssl all certuser 127.0.0.1/32 scram-sha-256 clientcert=verify-ca\n"
                    "host all certuser 127.0.0.1/32 reject\n"
                    "hostnossl all tlsonly 127.0.0.1/32 reject\n"),
        conf_extra=("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n"
                    "ssl_ca_file = 'root.crt'\n"),
        files={"server.crt": pki.pg[0], "server.key": pki.pg[1], "root.crt": pki.ca[0]})
    c.init()
    try:
        c.sql("CREATE ROLE tlsonly LOGIN")
        c.sql(f"CREATE ROLE certuser LOGIN PASSWORD '{CERT_PASSWORD}'")
        yield c
    finally:
        c.destroy()


@pytest.fixture(scope="module")
def gateways(pki):
    """gateways(backend, lib, mode, *extra) -> a running pggw, one per distinct argument set."""
    cache = {}

    def get(backend, lib, mode, *extra):
        key = (backend, lib, mode, extra)
        p = cache.get(key)
        if p is None or not p.alive():
            args = ["--tls-library", lib, "--server-tls", mode, "--workers", "1",
                    "--server-connect-timeout", "5", *extra]
            if mode in ("verify-ca", "verify-full") and "--server-ca" not in extra:
                args += ["--server-ca", str(pki.ca[0])]
            p = Pggw(*args, backend=backend)
            cache[key] = p
        return p

    yield get
    for p in cache.values():
        p.stop()
    check_no_crash(list(cache.values()))


@pytest.fixture(scope="module", params=LIBS)
def lib(request):
    return request.param


def dsn(gw, user="bob", sslmode="disable", **kw):
    return conninfo(host=gw.host, port=gw.port, user=user, dbname="appdb", sslmode=sslmode,
                    **kw)


def ssl_of(gw, user="bob", env=None, **kw):
    """(returncode, 't'/'f' of the server leg's pg_stat_ssl, stderr)."""
    r = psql(dsn(gw, user, **kw), SSL_QUERY, env=env)
    return r.returncode, r.stdout.strip(), r.stderr


def metric(text: str, name: str, **labels) -> float:
    """Sum of the samples of name whose labels include the given ones."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        m = re.match(r"^(\w+)(?:\{(.*)\})?\s+(\S+)$", line)
        if not m or m.group(1) != name:
            continue
        have = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            total += float(m.group(3))
    return total


def wait_metric(gw, name, minimum=1, timeout=5, **labels) -> float:
    deadline = time.monotonic() + timeout
    while True:
        v = metric(scrape(gw), name, **labels)
        if v >= minimum or time.monotonic() > deadline:
            return v
        time.sleep(0.1)


# --------------------------------------------------------------------------------------
# The six modes against ssl = on and ssl = off
# --------------------------------------------------------------------------------------
EXPECT_SSL_ON = {"disable": "f", "allow": "f", "prefer": "t", "require": "t", "verify-ca": "t",
                 "verify-full": "t"}


@pytest.mark.parametrize("mode", MODES)
def test_modes_against_ssl_on(lib, gateways, ssl_cluster, mode):
    gw = gateways(ssl_cluster.addr, lib, mode)
    rc, ssl, err = ssl_of(gw)
    assert rc == 0, err
    assert ssl == EXPECT_SSL_ON[mode]
    if ssl == "t":
        text = scrape(gw)
        assert metric(text, "pggw_tls_handshakes_total", leg="server", library=lib,
                      result="ok") >= 1, text
        assert metric(text, "pggw_tls_sessions_total", leg="server") >= 1
        assert metric(text, "pggw_tls_handshake_duration_seconds_count", leg="server") >= 1


@pytest.mark.parametrize("mode", MODES)
def test_modes_against_ssl_off(lib, gateways, cluster, mode):
    """ssl = off: PostgreSQL answers 'N'. allow/prefer go on in plaintext; the others refuse
    the client with libpq's reason and never with the server's address."""
    gw = gateways(cluster.addr, lib, mode)
    mark = gw.log_mark()
    rc, ssl, err = ssl_of(gw)
    if mode in ("disable", "allow", "prefer"):
        assert rc == 0, err
        assert ssl == "f"
    else:
        assert rc == 2
        assert "the PostgreSQL server does not support SSL, but pggw requires it" in err, err
        assert str(cluster.port) not in err and "127.0.0.1:" not in err, err
        # This session's failure (the module's pggw may have logged others), with the mode.
        lines = gw.wait_log(rf"server connection failed for peer=127\.0\.0\.1:\d+ user=bob "
                            rf"database=appdb: server {re.escape(cluster.addr)} does not support "
                            rf"SSL, but --server-tls {mode} requires it", since=mark)
        assert len(lines) == 1, gw.log_text()[mark:]


def test_allow_retries_with_tls_after_an_error(lib, gateways, ssl_cluster):
    """allow: plaintext first; the server refuses it (hostnossl ... reject), nothing has been
    relayed yet, so pggw retries on a fresh connection with TLS, as libpq does."""
    gw = gateways(ssl_cluster.addr, lib, "allow")
    rc, ssl, err = ssl_of(gw, "tlsonly")
    assert rc == 0, err
    assert ssl == "t"
    # disable never retries: the server's own refusal reaches the client.
    gw = gateways(ssl_cluster.addr, lib, "disable")
    rc, ssl, err = ssl_of(gw, "tlsonly")
    assert rc == 2
    assert "no encryption" in err, err


def test_allow_without_tls_relays_the_first_error(lib, gateways, cluster):
    """allow against ssl = off: the retry gets 'N', so the server's own first error (here: an
    unknown role) is what the client sees."""
    gw = gateways(cluster.addr, lib, "allow")
    rc, ssl, err = ssl_of(gw, "nosuchrole")
    assert rc == 2
    assert 'role "nosuchrole" does not exist' in err, err


# --------------------------------------------------------------------------------------
# Verification
# --------------------------------------------------------------------------------------
def test_verify_full_host_names(lib, gateways, ssl_cluster):
    # The IP literal (IP SAN), the DNS name from --server, and an explicit --server-sni.
    for backend, extra in ((ssl_cluster.addr, ()), (f"localhost:{ssl_cluster.port}", ()),
                           (ssl_cluster.addr, ("--server-sni", "localhost"))):
        gw = gateways(backend, lib, "verify-full", *extra)
        rc, ssl, err = ssl_of(gw)
        assert (rc, ssl) == (0, "t"), (backend, extra, err)

    gw = gateways(ssl_cluster.addr, lib, "verify-full", "--server-sni", "wrong.example.com")
    mark = gw.log_mark()
    rc, ssl, err = ssl_of(gw)
    assert rc == 2
    assert TLS_REFUSAL in err and "hostname_mismatch" in err, err
    assert str(ssl_cluster.port) not in err, err
    lines = gw.wait_log(r"TLS handshake with PostgreSQL server .*hostname_mismatch", since=mark)
    # This session's one failure; the log names the expected and the presented names.
    assert len(lines) == 1 and "wrong.example.com" in lines[0], gw.log_text()[mark:]
    assert "the certificate is for DNS:localhost, IP:127.0.0.1 (CN=localhost)" in lines[0], lines
    assert wait_metric(gw, "pggw_tls_handshake_errors_total", leg="server", library=lib,
                       reason="hostname_mismatch") >= 1
    # verify-ca does not check the name.
    gw = gateways(ssl_cluster.addr, lib, "verify-ca", "--server-sni", "wrong.example.com")
    assert ssl_of(gw)[:2] == (0, "t")


@pytest.mark.parametrize("mode", ["verify-ca", "verify-full", "require"])
def test_rogue_ca_refused(lib, gateways, ssl_cluster, pki, mode):
    """A server certificate that does not chain to --server-ca. require with a CA verifies the
    chain too (libpq does so when a root certificate exists)."""
    gw = gateways(ssl_cluster.addr, lib, mode, "--server-ca", str(pki.rogue_ca[0]))
    rc, ssl, err = ssl_of(gw)
    assert rc == 2
    assert TLS_REFUSAL in err, err
    assert wait_metric(gw, "pggw_tls_handshake_errors_total", leg="server", library=lib,
                       reason="unknown_ca") >= 1
    assert wait_metric(gw, "pggw_tls_handshakes_total", leg="server", result="error") >= 1


def test_server_requires_client_certificate(lib, gateways, ssl_cluster, pki):
    """hostssl ... scram-sha-256 clientcert=verify-ca: pggw's certificate AND the password."""
    env_ok = clean_client_env(PGPASSWORD=CERT_PASSWORD)
    env_bad = clean_client_env(PGPASSWORD="wrong")
    # No certificate from pggw: PostgreSQL refuses (its own message is relayed).
    gw = gateways(ssl_cluster.addr, lib, "verify-full")
    rc, _, err = ssl_of(gw, "certuser", env=env_ok)
    assert rc == 2 and "connection requires a valid client certificate" in err, err
    # A certificate from a CA PostgreSQL does not trust.
    gw = gateways(ssl_cluster.addr, lib, "verify-full", "--server-cert", str(pki.rogue_client[0]),
                  "--server-key", str(pki.rogue_client[1]))
    mark = gw.log_mark()
    rc, _, err = ssl_of(gw, "certuser", env=env_ok)
    # TLS 1.3: PostgreSQL's unknown_ca alert comes after pggw's side of the handshake ended:
    # pggw learns of it either when sending the StartupMessage (reset) or when reading the
    # reply (the alert). Either way the client gets 08006 (it was once closed without a word
    # in the second case, and the test expected that; the first made it flaky).
    assert rc == 2 and "pggw could not connect to the PostgreSQL server" in err, err
    lines = gw.wait_log(r"session closed: .* user=certuser database=appdb .*"
                        r'reason="refused: server_unreachable"', since=mark)
    assert len(lines) == 1, gw.log_text()[mark:]
    # The right certificate: the password is still required.
    gw = gateways(ssl_cluster.addr, lib, "verify-full", "--server-cert", str(pki.gw_client[0]),
                  "--server-key", str(pki.gw_client[1]))
    rc, ssl, err = ssl_of(gw, "certuser", env=env_ok)
    assert (rc, ssl) == (0, "t"), err
    rc, _, err = ssl_of(gw, "certuser", env=env_bad)
    assert rc == 2 and "password authentication failed" in err, err
    # Other users are unaffected by pggw's certificate.
    assert ssl_of(gw, "bob")[:2] == (0, "t")


def test_sighup_reloads_the_server_leg(lib, ssl_cluster, pki, tmp_path):
    """SIGHUP rebuilds the server leg's context too: a CA file fixed on disk takes effect."""
    ca = tmp_path / "server-ca.crt"
    shutil.copy(pki.rogue_ca[0], ca)
    with Pggw("--tls-library", lib, "--server-tls", "verify-full", "--server-ca", str(ca),
              "--workers", "1", backend=ssl_cluster.addr) as gw:
        rc, _, err = ssl_of(gw)
        assert rc == 2 and TLS_REFUSAL in err, err
        shutil.copy(pki.ca[0], ca)
        gw.proc.send_signal(signal.SIGHUP)
        assert gw.wait_log(r"SIGHUP: TLS certificates reloaded"), gw.log_text()
        assert ssl_of(gw)[:2] == (0, "t")


def test_settings_checked_at_start(pki):
    for args, text in ((["--server-tls", "verify-ca"], "--server-ca"),
                       (["--server-tls", "require", "--server-cert", str(pki.gw_client[0])],
                        "--server-key"),
                       (["--server-tls", "require", "--server-cert", str(pki.gw_client[0]),
                         "--server-key", str(pki.gw[1])], "server TLS")):
        p = Pggw(*args, backend="127.0.0.1:1", wait=False)
        try:
            p.proc.wait(10)
        finally:
            p.stop()
        assert p.proc.returncode != 0
        assert text in p.log_text(), p.log_text()


def test_bulk_over_tls_server_leg(lib, gateways, ssl_cluster):
    gw = gateways(ssl_cluster.addr, lib, "require")
    r = psql(dsn(gw), "select repeat('s', 1000) from generate_series(1, 5000)")
    assert r.returncode == 0, r.stderr
    assert sum(1 for l in r.stdout.split("\n") if l == "s" * 1000) == 5000


# --------------------------------------------------------------------------------------
# Cancel requests go through the same negotiation
# --------------------------------------------------------------------------------------
def test_cancel_through_tls_server_leg(lib, gateways, ssl_cluster):
    gw = gateways(ssl_cluster.addr, lib, "verify-full")
    before = metric(scrape(gw), "pggw_tls_handshakes_total", leg="server", result="ok")
    conn = psycopg2.connect(dsn(gw, "bob"), connect_timeout=5)
    try:
        cur = conn.cursor()
        cur.execute(SSL_QUERY)
        assert cur.fetchone()[0] is True
        timer = threading.Timer(0.5, conn.cancel)
        timer.start()
        t0 = time.monotonic()
        with pytest.raises(psycopg2.errors.QueryCanceled):
            cur.execute("select pg_sleep(30)")
        timer.join()
        assert time.monotonic() - t0 < 15  # far from pg_sleep(30)
    finally:
        conn.close()
    # The session and the cancel: two server-leg handshakes.
    assert wait_metric(gw, "pggw_tls_handshakes_total", minimum=before + 2, leg="server",
                       result="ok") >= before + 2
    assert wait_metric(gw, "pggw_cancel_requests_total", result="forwarded") >= 1


# --------------------------------------------------------------------------------------
# SCRAM channel binding (libpq channel_binding=disable|prefer|require)
# --------------------------------------------------------------------------------------
def alice(gw, channel_binding, pki):
    t0 = time.monotonic()
    r = psql(dsn(gw, "alice", "verify-full", sslrootcert=pki.ca[0],
                 channel_binding=channel_binding), SSL_QUERY,
             env=clean_client_env(PGPASSWORD=ALICE_PASSWORD), timeout=20)
    return r.returncode, r.stdout.strip(), r.stderr, time.monotonic() - t0


def test_channel_binding_plaintext_server_leg(lib, gateways, ssl_cluster, pki):
    """PostgreSQL never offers -PLUS on a plaintext connection: disable and prefer connect;
    require is refused by libpq itself, with its own clear message."""
    gw = gateways(ssl_cluster.addr, lib, "disable", "--cert", str(pki.gw[0]), "--key",
                  str(pki.gw[1]))
    for cb in ("disable", "prefer"):
        rc, ssl, err, _ = alice(gw, cb, pki)
        assert (rc, ssl) == (0, "f"), (cb, err)
    rc, _, err, secs = alice(gw, "require", pki)
    assert rc == 2
    assert "channel binding is required, but server did not offer an authentication method " \
           "that supports channel binding" in err, err
    assert secs < 15  # stopped at once, not a hang


def test_channel_binding_with_the_servers_certificate(lib, gateways, ssl_cluster, pki):
    """pggw presents PostgreSQL's own certificate and key: the binding matches, all connect."""
    gw = gateways(ssl_cluster.addr, lib, "verify-full", "--cert", str(pki.pg[0]), "--key",
                  str(pki.pg[1]))
    for cb in ("disable", "prefer", "require"):
        rc, ssl, err, _ = alice(gw, cb, pki)
        assert (rc, ssl) == (0, "t"), (cb, err)
    assert not gw.wait_log(r"channel binding cannot pass", timeout=0.2)


def test_channel_binding_with_another_certificate(lib, gateways, ssl_cluster, pki):
    """pggw presents its own certificate: disable connects; prefer and require (libpq picks
    SCRAM-SHA-256-PLUS) are stopped at once with an explanation, not a bare auth failure."""
    gw = gateways(ssl_cluster.addr, lib, "verify-full", "--cert", str(pki.gw[0]), "--key",
                  str(pki.gw[1]))
    rc, ssl, err, _ = alice(gw, "disable", pki)
    assert (rc, ssl) == (0, "t"), err
    for cb in ("prefer", "require"):
        rc, _, err, secs = alice(gw, cb, pki)
        assert rc == 2
        assert "SCRAM channel binding (SCRAM-SHA-256-PLUS) cannot pass through pggw" in err, err
        assert "channel_binding=disable" in err
        assert secs < 15  # stopped at once, not a hang
    # Warned once, at the first server-leg handshake.
    assert len(gw.wait_log(r"SCRAM channel binding cannot pass through pggw")) == 1, gw.log_text()
    assert wait_metric(gw, "pggw_client_refusals_total", minimum=2, reason="channel_binding") >= 2


@pytest.mark.parametrize("cb", ["disable", "prefer", "require"])
def test_channel_binding_plaintext_client_tls_server(lib, gateways, ssl_cluster, cb):
    """Plaintext client leg, TLS server leg: PostgreSQL offers -PLUS, which libpq refuses over
    a non-SSL connection; pggw drops it from the offer, so disable and prefer connect (gs2
    flag 'n') and require fails in libpq itself (no SSL to bind to)."""
    gw = gateways(ssl_cluster.addr, lib, "verify-full")
    t0 = time.monotonic()
    rc, ssl, err = ssl_of(gw, "alice", env=clean_client_env(PGPASSWORD=ALICE_PASSWORD),
                          channel_binding=cb)
    if cb == "require":
        # libpq refuses before any authentication: no SSL to bind to.
        assert rc == 2 and "channel binding required, but SSL not in use" in err, err
        assert time.monotonic() - t0 < 15
    else:
        assert (rc, ssl) == (0, "t"), err


# --------------------------------------------------------------------------------------
# Answers that are not 'S' or 'N': a fake server
# --------------------------------------------------------------------------------------
def backend_error(message: str) -> bytes:
    body = b"SFATAL\0VFATAL\0C08P01\0M" + message.encode() + b"\0\0"
    return b"E" + struct.pack("!i", len(body) + 4) + body


class FakeServer:
    """Accepts connections one by one; script[i](sock, log) handles the i-th."""

    def __init__(self, script):
        self.script = list(script)
        self.received = []  # bytes each connection sent first
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.addr = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        for step in self.script:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with c:
                c.settimeout(5)
                try:
                    step(c, self.received)
                except OSError:
                    pass

    def close(self):
        self.sock.close()
        self.thread.join(2)


def read_packet(c) -> bytes:
    head = recv_exact(c, 4)
    return head + recv_exact(c, struct.unpack("!i", head)[0] - 4)


def answer(reply: bytes):
    def step(c, received):
        received.append(read_packet(c))
        c.sendall(reply)
        time.sleep(0.2)
    return step


def refuse_startup(c, received):
    received.append(read_packet(c))
    c.sendall(backend_error("fake server: startup refused"))


SECRET = "SECRET-E-TEXT click http://evil.example"


def client_error(gw) -> dict:
    with connect(gw.addr) as s:
        s.sendall(startup_message("bob", "appdb"))
        msgs = read_until(s, b"Z", timeout=10)
    assert msgs[-1][0] == b"E", msgs
    return error_fields(msgs[-1][1])


@pytest.mark.parametrize("mode", ["prefer", "require"])
def test_e_answer_never_reaches_the_client(lib, mode):
    """CVE-2024-10977: the text after an 'E' is unauthenticated. prefer retries without TLS on
    a fresh connection; require refuses. Either way the client never sees the text."""
    script = [answer(backend_error(SECRET))] + ([refuse_startup] if mode == "prefer" else [])
    fake = FakeServer(script)
    try:
        with Pggw("--tls-library", lib, "--server-tls", mode, "--workers", "1",
                  backend=fake.addr) as gw:
            f = client_error(gw)
            assert SECRET not in repr(f)
            if mode == "prefer":
                assert f["M"] == "fake server: startup refused", f
                assert fake.received[1] == startup_message("bob", "appdb")
            else:
                assert "does not support SSL" in f["M"], f
                assert len(fake.received) == 1
            assert fake.received[0] == ssl_request()
            lines = gw.wait_log(r"answered the SSLRequest with an error \(unverified")
            assert lines and "SECRET-E-TEXT" in lines[0], gw.log_text()
    finally:
        fake.close()


def test_bytes_behind_s_are_refused(lib):
    """CVE-2021-23222: bytes behind the 'S' before the handshake: fail, never a handshake."""
    fake = FakeServer([answer(b"S" + backend_error("injected"))])
    try:
        with Pggw("--tls-library", lib, "--server-tls", "require", "--workers", "1",
                  backend=fake.addr) as gw:
            f = client_error(gw)
            assert f["M"].startswith(TLS_REFUSAL) and "injected" not in f["M"], f
            assert gw.wait_log(r"unencrypted data after its SSL response"), gw.log_text()
            assert wait_metric(gw, "pggw_tls_handshake_errors_total", leg="server",
                               reason="plaintext_after_sslrequest") >= 1
    finally:
        fake.close()


def test_prefer_falls_back_when_the_handshake_fails(lib):
    """prefer, as libpq: a failed TLS handshake after 'S' means a fresh plaintext connection
    (counted as a server-leg handshake error); require refuses."""
    for mode in ("prefer", "require"):
        script = [answer(b"S")] + ([refuse_startup] if mode == "prefer" else [])
        fake = FakeServer(script)
        try:
            with Pggw("--tls-library", lib, "--server-tls", mode, "--workers", "1",
                      backend=fake.addr) as gw:
                f = client_error(gw)
                if mode == "prefer":
                    assert f["M"] == "fake server: startup refused", f
                else:
                    assert f["M"].startswith(TLS_REFUSAL), f
                    assert len(fake.received) == 1
                assert wait_metric(gw, "pggw_tls_handshake_errors_total", leg="server",
                                   library=lib, reason="eof") >= 1
        finally:
            fake.close()


def test_server_handshake_timeout(lib):
    """A server that answers 'S' and then says nothing: --server-connect-timeout ends it, and
    the server-leg handshake is counted as timed out."""
    def stall(c, received):
        received.append(read_packet(c))
        c.sendall(b"S")
        c.settimeout(30)  # silent (the ClientHello read and ignored) until pggw closes
        with contextlib.suppress(OSError):
            while c.recv(65536):
                pass

    fake = FakeServer([stall])
    try:
        with Pggw("--tls-library", lib, "--server-tls", "require", "--workers", "1",
                  "--server-connect-timeout", "1", backend=fake.addr) as gw:
            t0 = time.monotonic()
            f = client_error(gw)
            assert f["C"] == "08006" and "pggw could not connect" in f["M"], f
            # Not before the 1 s timeout; generous above it (a loaded 2-CPU machine).
            assert 0.8 < time.monotonic() - t0 < 10
            text = scrape(gw)
            assert metric(text, "pggw_tls_handshakes_total", leg="server", result="timeout") == 1
            assert metric(text, "pggw_tls_handshake_errors_total", leg="server",
                          reason="timeout") == 1
            assert metric(text, "pggw_server_connect_errors_total", reason="timeout") == 1
    finally:
        fake.close()


def tls_server_step(pki, seen):
    """A TLS-capable fake PostgreSQL: 'S', a handshake (recording the SNI), then it records the
    first packet inside TLS and answers it with an ErrorResponse."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(pki.pg[0]), str(pki.pg[1]))
    ctx.sni_callback = lambda obj, name, _ctx: seen.append(name)

    def step(c, received):
        received.append(read_packet(c))
        c.sendall(b"S")
        with ctx.wrap_socket(c, server_side=True) as t:
            received.append(read_packet(t))
            t.sendall(backend_error("fake TLS server"))
            time.sleep(0.2)
    return step


@pytest.mark.parametrize("backend_host, extra, want_sni", [
    ("localhost", (), "localhost"),
    ("127.0.0.1", (), None),  # no SNI for an IP literal
    ("127.0.0.1", ("--server-sni", "pg.example.com"), "pg.example.com"),
])
def test_sni_and_cancel_inside_tls(lib, pki, backend_host, extra, want_sni):
    """SNI defaults to the --server host when it is a name; the StartupMessage and the
    CancelRequest both travel inside TLS to a server that answered 'S'."""
    seen = []
    fake = FakeServer([tls_server_step(pki, seen), tls_server_step(pki, seen)])
    port = fake.addr.rsplit(":", 1)[1]
    try:
        with Pggw("--tls-library", lib, "--server-tls", "require", "--workers", "1", *extra,
                  backend=f"{backend_host}:{port}") as gw:
            f = client_error(gw)
            assert f["M"] == "fake TLS server", f
            with connect(gw.addr) as s:
                s.sendall(cancel_request(1234, 5678))
            assert wait_metric(gw, "pggw_cancel_requests_total", result="forwarded") == 1
            deadline = time.monotonic() + 5
            while len(fake.received) < 4 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert fake.received == [ssl_request(), startup_message("bob", "appdb"),
                                     ssl_request(), cancel_request(1234, 5678)]
            assert seen == [want_sni, want_sni]
    finally:
        fake.close()


def test_unknown_answer_refused(lib):
    fake = FakeServer([answer(b"X")])
    try:
        with Pggw("--tls-library", lib, "--server-tls", "prefer", "--workers", "1",
                  backend=fake.addr) as gw:
            f = client_error(gw)
            assert "unknown response to SSLRequest" in f["M"], f
            assert f["C"] == "08006"
            assert gw.wait_log(r"invalid response to SSL negotiation.*0x58"), gw.log_text()
    finally:
        fake.close()


def sasl_offer(*mechanisms: str) -> bytes:
    body = struct.pack("!i", 10) + b"".join(m.encode() + b"\0" for m in mechanisms) + b"\0"
    return b"R" + struct.pack("!i", len(body) + 4) + body


def test_plus_offer_over_a_plaintext_server_leg_is_stripped(lib):
    """PostgreSQL offers SCRAM-SHA-256-PLUS only over TLS: over a plaintext server leg the
    offer is not genuine (a man in the middle could use it to steer a client into binding to
    a certificate of its choosing). pggw strips it, counts it and logs it; SCRAM-SHA-256
    passes."""
    fake = FakeServer([answer(sasl_offer("SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"))])
    try:
        with Pggw("--tls-library", lib, "--client-tls", "disable", "--workers", "1",
                  backend=fake.addr) as gw:
            with connect(gw.addr) as s:
                s.sendall(startup_message("bob", "appdb"))
                kind, payload = read_message(s)
            assert kind == b"R", (kind, payload)
            assert struct.unpack("!i", payload[:4])[0] == 10
            assert payload[4:] == b"SCRAM-SHA-256\0\0", payload
            assert gw.wait_log(r"offered SCRAM-SHA-256-PLUS over a plaintext connection")
            assert wait_metric(gw, "pggw_server_connect_errors_total",
                               reason="scram_plus_over_plaintext") == 1
    finally:
        fake.close()
