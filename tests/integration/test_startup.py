"""Startup negotiation through pggw with --client-tls disable, raw bytes and libpq; the
command line (check-config, --version, refusing to start without a certificate)."""
import os
import re
import socket
import struct
import time

import pytest

from conftest import (check_no_crash, PGGW_BIN, backends_from_binary, backends_from_env, Pggw, TERMINATE, assert_ready, connect,
                      closed_port, conninfo, describe, error_fields, gssenc_request,
                      parse_messages, psql, read_until, recv_all_until_close, recv_exact, run,
                      ssl_request, startup_message, tls_backends, trust_session)


@pytest.fixture(scope="module")
def gw(cluster):
    p = Pggw("--client-tls", "disable", "--handshake-timeout", "1", backend=cluster.addr)
    yield p
    p.stop()
    check_no_crash([p])


def assert_closed_without_auth(sock, timeout=10, allowed_first=b""):
    """The connection closes promptly; at most `allowed_first` bytes and/or one ErrorResponse
    come first, and never an AuthenticationOk / anything from PostgreSQL."""
    t0 = time.monotonic()
    data = recv_all_until_close(sock, timeout)
    assert time.monotonic() - t0 < timeout
    if allowed_first and data[:1] in (allowed_first[i:i + 1] for i in range(len(allowed_first))):
        data = data[1:]
    msgs = parse_messages(data)
    assert not any(k == b"R" for k, _ in msgs), f"AuthenticationOk leaked: {describe(msgs)}"
    assert all(k == b"E" for k, _ in msgs), f"unexpected reply {data[:80]!r}"
    return msgs


# --------------------------------------------------------------------------------------
# GSSENCRequest / SSLRequest with --client-tls disable
# --------------------------------------------------------------------------------------
def test_gssenc_request_gets_N_then_startup_proceeds(gw):
    with connect(gw.addr) as s:
        s.sendall(gssenc_request())
        assert recv_exact(s, 1) == b"N"
        msgs, key = trust_session(s, "bob", "appdb")
        assert_ready(msgs)
        s.sendall(TERMINATE)


def test_gssenc_then_ssl_request_then_startup(gw):
    """libpq's order with gssencmode=prefer, sslmode=prefer: GSSENC 'N', SSL 'N', startup."""
    with connect(gw.addr) as s:
        s.sendall(gssenc_request())
        assert recv_exact(s, 1) == b"N"
        s.sendall(ssl_request())
        assert recv_exact(s, 1) == b"N"
        msgs, _ = trust_session(s, "bob", "appdb")
        assert_ready(msgs)


def test_ssl_request_gets_N_then_startup_proceeds(gw):
    with connect(gw.addr) as s:
        s.sendall(ssl_request())
        assert recv_exact(s, 1) == b"N"
        msgs, _ = trust_session(s, "bob", "appdb")
        assert_ready(msgs)


def test_libpq_prefer_connects_in_plaintext(gw):
    r = psql(conninfo(host=gw.host, port=gw.port, user="bob", dbname="appdb", sslmode="prefer",
                      gssencmode="prefer"), "select 1", r"\conninfo")
    assert r.returncode == 0, r.stderr
    assert "SSL connection" not in r.stdout, r.stdout


def test_libpq_require_fails(gw):
    r = psql(conninfo(host=gw.host, port=gw.port, user="bob", dbname="appdb", sslmode="require"),
             "select 1")
    assert r.returncode == 2
    assert "server does not support SSL, but SSL was required" in r.stderr, r.stderr


def test_repeated_ssl_request_after_N(gw):
    with connect(gw.addr) as s:
        s.sendall(ssl_request())
        assert recv_exact(s, 1) == b"N"
        s.sendall(ssl_request())
        data = recv_all_until_close(s, 3)
        msgs = parse_messages(data)
        assert msgs and msgs[0][0] == b"E", data
        assert error_fields(msgs[0][1])["C"] == "0A000", error_fields(msgs[0][1])


def test_repeated_gssenc_request_after_N(gw):
    with connect(gw.addr) as s:
        s.sendall(gssenc_request())
        assert recv_exact(s, 1) == b"N"
        s.sendall(gssenc_request())
        data = recv_all_until_close(s, 3)
        msgs = parse_messages(data)
        assert msgs and msgs[0][0] == b"E", data
        assert error_fields(msgs[0][1])["C"] == "0A000", error_fields(msgs[0][1])


def test_bytes_pipelined_behind_ssl_request_close(gw):
    """SSLRequest + StartupMessage in one write: closed (at most the 'N' first), never 'R'."""
    with connect(gw.addr) as s:
        s.sendall(ssl_request() + startup_message("bob", "appdb"))
        assert_closed_without_auth(s, allowed_first=b"SN")


def test_bytes_pipelined_behind_gssenc_request_close(gw):
    with connect(gw.addr) as s:
        s.sendall(gssenc_request() + startup_message("bob", "appdb"))
        assert_closed_without_auth(s, allowed_first=b"N")


def test_protocol_3_2_startup_negotiated_down(gw):
    """A PostgreSQL 18 client asks for protocol 3.2; PostgreSQL 15 answers
    NegotiateProtocolVersion ('v') and carries on in 3.0. pggw stays out of the way."""
    body = struct.pack("!i", (3 << 16) | 2) + b"user\0bob\0database\0appdb\0\0"
    with connect(gw.addr) as s:
        s.sendall(struct.pack("!i", len(body) + 4) + body)
        msgs = read_until(s, b"Z", 5)
        kinds = [k for k, _ in msgs]
        assert b"v" in kinds, describe(msgs)
        assert kinds[-1] == b"Z", describe(msgs)


# --------------------------------------------------------------------------------------
# Malformed first packets
# --------------------------------------------------------------------------------------
def test_oversized_startup_packet_closed_at_once(pggw, cluster):
    """Closed on the length alone: not after waiting for the body nor for the handshake timeout
    (30 s here, so that the bound can be generous on a loaded machine and still tell them
    apart)."""
    gw30 = pggw("--client-tls", "disable", "--handshake-timeout", "30", backend=cluster.addr)
    with connect(gw30.addr, timeout=20) as s:
        s.sendall(struct.pack("!ii", 10000 + 4 + 1, 196608))  # header only, no body
        t0 = time.monotonic()
        assert_closed_without_auth(s, timeout=20)
        assert time.monotonic() - t0 < 10, "must not wait for the body or the handshake timeout"


def test_startup_packet_of_max_size_accepted(gw):
    """PostgreSQL accepts a body of exactly 10000 bytes; so does pggw."""
    base = len(startup_message("bob", "appdb", application_name=""))
    msg = startup_message("bob", "appdb", application_name="a" * (10004 - base))
    assert len(msg) == 10004
    with connect(gw.addr) as s:
        s.sendall(msg)
        msgs = read_until(s, b"Z", 5)
        assert_ready(msgs)


def test_startup_packet_too_short_closed(gw):
    with connect(gw.addr) as s:
        s.sendall(struct.pack("!i", 4))
        assert_closed_without_auth(s)


def test_garbage_first_packet_closed(gw):
    with connect(gw.addr) as s:
        s.sendall(b"GET / HTTP/1.1\r\n")
        assert_closed_without_auth(s)


def test_unknown_protocol_version_refused(gw):
    body = struct.pack("!i", (4 << 16)) + b"user\0bob\0\0"
    with connect(gw.addr) as s:
        s.sendall(struct.pack("!i", len(body) + 4) + body)
        data = recv_all_until_close(s, 3)
        msgs = parse_messages(data)
        assert not any(k == b"R" for k, _ in msgs), describe(msgs)


def test_startup_byte_by_byte(gw):
    """The decoder must not assume a packet arrives in one read."""
    with connect(gw.addr) as s:
        for b in ssl_request():
            s.sendall(bytes([b]))
            time.sleep(0.005)
        assert recv_exact(s, 1) == b"N"
        for b in startup_message("bob", "appdb"):
            s.sendall(bytes([b]))
        msgs = read_until(s, b"Z", 5)
        assert_ready(msgs)


MALFORMED = {
    "no user": struct.pack("!i", 196608) + b"database\0appdb\0\0",
    "no final NUL": struct.pack("!i", 196608) + b"user\0bob\0database\0appdb\0",
    "key without value": struct.pack("!i", 196608) + b"user\0bob\0database\0",
    "empty user": struct.pack("!i", 196608) + b"user\0\0\0",
    "only the code": struct.pack("!i", 196608),
    "cancel of wrong length": struct.pack("!iI", 80877102, 1),
    "ssl request of wrong length": struct.pack("!ii", 80877103, 0),
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed_startup_packets(gw, name):
    """Refused by pggw or by PostgreSQL (an ErrorResponse and/or a close); never a session."""
    body = MALFORMED[name]
    with connect(gw.addr) as s:
        s.sendall(struct.pack("!i", len(body) + 4) + body)
        assert_closed_without_auth(s, timeout=3)
    assert gw.alive()


def test_connection_storm_with_resets(gw):
    """Connections that reset at every stage of startup; pggw keeps serving."""
    stages = [b"", ssl_request(), gssenc_request(), startup_message("bob", "appdb")[:7],
              startup_message("bob", "appdb")]
    for i in range(150):
        s = connect(gw.addr)
        s.sendall(stages[i % len(stages)])
        if i % 3 == 0:
            time.sleep(0.002)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    assert gw.alive()
    with connect(gw.addr) as s:
        msgs, _ = trust_session(s, "bob", "appdb")
        assert_ready(msgs)


def test_silent_connection_closed_by_handshake_timeout(gw):
    with connect(gw.addr) as s:
        t0 = time.monotonic()
        assert recv_all_until_close(s, 15) == b""
        elapsed = time.monotonic() - t0
    # Not before the timeout; the upper bound is generous (a loaded 2-CPU machine).
    assert 0.7 < elapsed < 10, f"closed after {elapsed:.2f}s with --handshake-timeout 1"


def test_partial_startup_closed_by_handshake_timeout(gw):
    with connect(gw.addr) as s:
        s.sendall(startup_message("bob", "appdb")[:10])
        t0 = time.monotonic()
        assert_closed_without_auth(s, timeout=15)
        elapsed = time.monotonic() - t0
        assert 0.7 < elapsed < 10, f"closed after {elapsed:.2f}s with --handshake-timeout 1"


def test_handshake_timeout_does_not_apply_to_established_sessions(gw):
    with connect(gw.addr) as s:
        msgs, _ = trust_session(s, "bob", "appdb")
        assert_ready(msgs)
        time.sleep(1.8)
        s.sendall(b"Q" + struct.pack("!i", 13) + b"select 1\0")
        out = read_until(s, b"Z", 5)
        assert [k for k, _ in out] == [b"T", b"D", b"C", b"Z"], describe(out)


def test_pggw_still_serves_after_abuse(gw):
    assert gw.alive()
    with connect(gw.addr) as s:
        msgs, _ = trust_session(s, "bob", "appdb")
        assert_ready(msgs)


# --------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------
def test_version():
    r = run([str(PGGW_BIN), "--version"], timeout=10)
    assert r.returncode == 0, r.stderr
    out = r.stdout + r.stderr
    assert re.search(r"\d+\.\d+\.\d+", out), out
    for lib in tls_backends():
        assert lib.lower() in out.lower(), f"{lib} missing from --version:\n{out}"


def test_check_config_good(tmp_path, cluster):
    cfg = tmp_path / "pggw.toml"
    cfg.write_text('listen = ["127.0.0.1:0"]\n'
                   f'server = "{cluster.addr}"\n'
                   'workers = 2\n'
                   'handshake-timeout = 3\n'
                   'client-tls = "disable"\n')
    r = run([str(PGGW_BIN), "check-config", "--config", str(cfg)], timeout=10)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{cfg}: configuration OK" in r.stdout + r.stderr, r.stdout + r.stderr


def test_check_config_unknown_key(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('workers = 2\n'
                   'client-tls = "disable"\n'
                   'no-such-option = 1\n')
    r = run([str(PGGW_BIN), "check-config", "--config", str(cfg)], timeout=10)
    assert r.returncode == 2, r.stdout + r.stderr
    out = r.stdout + r.stderr
    assert f"pggw: {cfg}:3" in out, out
    assert "no-such-option" in out, out


def test_check_config_bad_value(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('client-tls = "sometimes"\n')
    r = run([str(PGGW_BIN), "check-config", "--config", str(cfg)], timeout=10)
    assert r.returncode == 2, r.stdout + r.stderr
    assert (f'pggw: {cfg}:1:14: client-tls: expected one of disable, allow, prefer, require, '
            f'verify-ca, verify-full, got "sometimes"') in r.stderr, r.stdout + r.stderr


def test_config_file_applied_and_flag_overrides(tmp_path, pggw, cluster):
    cfg = tmp_path / "pggw.toml"
    with closed_port() as dead:
        # "backend" and --backend: the older name of server / --server, still accepted (the
        # other tests use --server).
        cfg.write_text('listen = ["127.0.0.1:0"]\n'
                       f'backend = "127.0.0.1:{dead}"\n'
                       'client-tls = "disable"\n'
                       'server-connect-timeout = 1\n')
        # The file's listen address is used; --backend on the command line beats the file's.
        gwc = pggw("--config", str(cfg), "--backend", cluster.addr, listen=False)
        assert [h for h, _ in gwc.listening] == ["127.0.0.1"], gwc.listening
        r = psql(conninfo(host="127.0.0.1", port=gwc.port, user="bob", dbname="appdb",
                          sslmode="disable"), "select 1")
        assert r.returncode == 0, r.stderr + gwc.log_text()


def test_refuses_to_start_require_without_certificate(tmp_path):
    r = run([str(PGGW_BIN), "--listen", "127.0.0.1:0",
             "--metrics-listen", "127.0.0.1:0", "--server", "127.0.0.1:5432",
             "--client-tls", "require"], timeout=10)
    assert r.returncode == 2, r.stdout + r.stderr
    assert ("--client-tls require needs a certificate and key (--cert FILE --key FILE)"
            in r.stderr), r.stdout + r.stderr
    assert "pggw gen-cert" in r.stdout + r.stderr, r.stdout + r.stderr


def test_backends_env_matches_binary():
    """PGGW_BACKENDS (from CMake) must name exactly the libraries pggw was built with. A CMake
    list put into a test's ENVIRONMENT property unescaped loses all but its first element."""
    env = backends_from_env()
    if "PGGW_BACKENDS" not in os.environ:
        return
    assert sorted(env) == sorted(backends_from_binary()), \
        f"PGGW_BACKENDS={os.environ['PGGW_BACKENDS']!r} but pggw --version reports " \
        f"{backends_from_binary()}"
