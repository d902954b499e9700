"""Overload caps (issue 12, gateway/session/admission.hpp): connections in negotiation, in
total and per source address (the TCP peer, or the PROXY protocol's client); --max-connections
taken only at the StartupMessage; TLS handshakes per worker queued then closed, never 'N';
CancelRequests per source by token bucket; --client-idle-timeout's FATAL 57P05. Every count is
asserted exactly against pggw_connections_rejected_total, and the log is rate-limited.

The flood comes from 127.0.0.2 (any 127/8 address is local on Linux), the legitimate clients
from 127.0.0.1: two source addresses without a second machine."""
import re
import socket
import struct
import time

import pytest

from conftest import (scrape, assert_ready, cancel_request, check_no_crash, conninfo, error_fields,
                      gen_cert, psql, read_until, recv_all_until_close, recv_exact, Pggw,
                      query_message, ssl_request, startup_message, trust_session)

FLOOD_SOURCE = "127.0.0.2"
REASONS = {"negotiating_total", "negotiating_per_source", "handshake_queue_timeout",
           "cancel_rate"}


def rejected(gw) -> dict[str, float]:
    out = {}
    for m in re.finditer(r'^pggw_connections_rejected_total\{reason="([^"]*)"\} (\S+)$',
                         scrape(gw), re.M):
        out[m[1]] = float(m[2])
    assert set(out) == REASONS, out  # every reason pre-created
    return out


def gauge(gw, name: str, text: str | None = None) -> float:
    m = re.search(rf"^{name} (\S+)$", text or scrape(gw), re.M)
    assert m, name
    return float(m[1])


def counter(gw, name: str, labels: str) -> float:
    m = re.search(rf"^{name}\{{{re.escape(labels)}\}} (\S+)$", scrape(gw), re.M)
    return float(m[1]) if m else 0.0


def wait_for(cond, timeout=10.0, what=""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def silent(gw, source=FLOOD_SOURCE) -> socket.socket:
    """A TCP connection that says nothing."""
    s = socket.create_connection(gw.addr, timeout=5, source_address=(source, 0))
    return s


def closed_by_pggw(s, timeout=5.0) -> bool:
    """pggw closed s without a byte (nothing may precede a StartupMessage's answer)."""
    return recv_all_until_close(s, timeout) == b""


def test_silent_flood_from_one_source_leaves_logins_and_slots_alone(cluster):
    """Hundreds of silent connects from one source: beyond --max-negotiating-per-source each
    is closed at once and counted; the slots of --max-connections stay free for sessions."""
    gw = Pggw("--client-tls", "disable", "--workers", "1", "--max-connections", "4",
              "--max-negotiating", "1000", "--max-negotiating-per-source", "10",
              "--handshake-timeout", "60", backend=cluster.addr)
    held = []
    try:
        before = rejected(gw)
        mark = gw.log_mark()
        held = [silent(gw) for _ in range(10)]
        wait_for(lambda: gauge(gw, "pggw_connections_negotiating") == 10, what="10 negotiating")
        extra = [silent(gw) for _ in range(200)]
        for s in extra:
            assert closed_by_pggw(s)
            s.close()
        after = rejected(gw)
        assert after["negotiating_per_source"] - before["negotiating_per_source"] == 200
        assert {k: after[k] - before[k] for k in REASONS - {"negotiating_per_source"}} == {
            "negotiating_total": 0, "handshake_queue_timeout": 0, "cancel_rate": 0}
        assert gauge(gw, "pggw_connections_negotiating") == 10
        # One log line for the 200 (one worker, one line per reason per 10 s), naming the peer.
        lines = gw.wait_log(r"connection rejected: peer=127\.0\.0\.2:\d+ "
                            r"reason=negotiating_per_source worker=0: 10 connections in "
                            r"negotiation from one address \(--max-negotiating-per-source\)$",
                            since=mark)
        assert len(lines) == 1, lines
        assert len(gw.wait_log(r"connection rejected", since=mark, timeout=0)) == 1

        # A legitimate login from another address, while the 10 are still held.
        r = psql(conninfo(host=gw.host, port=gw.port, user="bob", dbname="appdb",
                          sslmode="disable"), "select 42")
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == "42"
        # All four --max-connections slots are for sessions: 10 negotiating take none.
        sessions = [socket.create_connection(gw.addr, timeout=5) for _ in range(5)]
        for s in sessions[:4]:
            msgs, _ = trust_session(s, "bob", "appdb")
            assert_ready(msgs)
        msgs, _ = trust_session(sessions[4], "bob", "appdb")
        assert msgs[-1][0] == b"E"
        f = error_fields(msgs[-1][1])
        assert (f["S"], f["C"], f["M"]) == ("FATAL", "53300", "sorry, too many clients already")
        for s in sessions:
            s.close()
        for s in held:
            s.close()
        held = []
        wait_for(lambda: gauge(gw, "pggw_connections_negotiating") == 0, what="0 negotiating")
        wait_for(lambda: gauge(gw, "pggw_sessions_active") == 0, what="sessions ended")
        # Freed: the source may connect again.
        s = silent(gw)
        s.sendall(startup_message("bob", "appdb"))
        assert_ready(read_until(s, b"Z"))
        s.close()
    finally:
        for s in held:
            s.close()
        gw.stop()
        check_no_crash([gw])


def test_total_cap_closes_beyond_max_negotiating(cluster):
    gw = Pggw("--client-tls", "disable", "--workers", "2", "--max-negotiating", "5",
              "--max-negotiating-per-source", "0", "--handshake-timeout", "60",
              backend=cluster.addr)
    held = []
    try:
        # The readiness probe's connection may still be counted for a moment.
        wait_for(lambda: gauge(gw, "pggw_connections_negotiating") == 0, what="probe gone")
        before = rejected(gw)
        held = [silent(gw) for _ in range(5)]
        wait_for(lambda: gauge(gw, "pggw_connections_negotiating") == 5, what="5 negotiating")
        for _ in range(20):
            s = silent(gw, "127.0.0.1")
            assert closed_by_pggw(s)
            s.close()
        after = rejected(gw)
        assert after["negotiating_total"] - before["negotiating_total"] == 20
        assert after["negotiating_per_source"] == before["negotiating_per_source"]
        held.pop().close()
        wait_for(lambda: gauge(gw, "pggw_connections_negotiating") == 4, what="4 negotiating")
        r = psql(conninfo(host=gw.host, port=gw.port, user="bob", dbname="appdb",
                          sslmode="disable"), "select 1")
        assert r.returncode == 0, r.stderr
    finally:
        for s in held:
            s.close()
        gw.stop()
        check_no_crash([gw])


def proxy_v1(client: str) -> bytes:
    return f"PROXY TCP4 {client} 127.0.0.1 40000 6432\r\n".encode()


def test_per_source_cap_counts_the_proxy_protocol_client(cluster):
    """Behind a balancer, the client named by the PROXY header is the source: one client at
    its cap does not stop another behind the same balancer."""
    gw = Pggw("--client-tls", "disable", "--workers", "1", "--proxy-protocol", "v1",
              "--proxy-trusted", "127.0.0.1/32", "--max-negotiating-per-source", "3",
              "--handshake-timeout", "60", backend=cluster.addr)
    held = []
    try:
        before = rejected(gw)
        mark = gw.log_mark()
        for _ in range(3):
            s = socket.create_connection(gw.addr, timeout=5)
            s.sendall(proxy_v1("192.0.2.1"))
            held.append(s)
        wait_for(lambda: gauge(gw, "pggw_connections_negotiating") == 3, what="3 negotiating")
        time.sleep(0.2)  # the headers read
        s = socket.create_connection(gw.addr, timeout=5)
        s.sendall(proxy_v1("192.0.2.1"))
        assert closed_by_pggw(s)
        s.close()
        assert rejected(gw)["negotiating_per_source"] - before["negotiating_per_source"] == 1
        assert gw.wait_log(r"connection rejected: peer=192\.0\.2\.1:40000 via=127\.0\.0\.1:\d+ "
                           r"reason=negotiating_per_source ", since=mark)
        # Another client behind the same balancer logs in.
        s = socket.create_connection(gw.addr, timeout=5)
        s.sendall(proxy_v1("192.0.2.2") + startup_message("bob", "appdb"))
        assert_ready(read_until(s, b"Z"))
        s.close()
        assert rejected(gw)["negotiating_per_source"] - before["negotiating_per_source"] == 1
    finally:
        for s in held:
            s.close()
        gw.stop()
        check_no_crash([gw])


def test_cancel_flood_is_dropped_beyond_the_rate(cluster):
    gw = Pggw("--client-tls", "disable", "--workers", "2", "--cancel-rate-per-source", "2",
              backend=cluster.addr)
    try:
        with socket.create_connection(gw.addr, timeout=5) as sess:
            msgs, key = trust_session(sess, "bob", "appdb")
            assert_ready(msgs)
            fwd0 = counter(gw, "pggw_cancel_requests_total", 'result="forwarded"')
            rej0 = rejected(gw)["cancel_rate"]
            mark = gw.log_mark()
            t0 = time.monotonic()
            conns = []
            for _ in range(40):
                c = silent(gw)
                c.sendall(cancel_request(key[0], key[1] ^ 1))  # a wrong key: cancels nothing
                conns.append(c)
            for c in conns:
                assert recv_all_until_close(c, 10) == b""  # never a reply to a CancelRequest
                c.close()
            elapsed = time.monotonic() - t0  # bounds the time pggw took tokens in

            def settled():
                f = counter(gw, "pggw_cancel_requests_total", 'result="forwarded"') - fwd0
                r = rejected(gw)["cancel_rate"] - rej0
                return (f, r) if f + r == 40 else None
            fwd, rej = wait_for(settled, what="40 cancels counted")
            # Burst 4 (twice the rate), then 2 per second.
            assert 4 <= fwd <= 4 + int(2 * elapsed) + 1, (fwd, elapsed)
            assert gw.wait_log(r"connection rejected: peer=127\.0\.0\.2:\d+ reason=cancel_rate "
                               r"worker=\d: over 2 cancel requests per second from one address",
                               since=mark)
            # Another source still has its own bucket; the session itself is unharmed.
            with socket.create_connection(gw.addr, timeout=5) as c:
                c.sendall(cancel_request(key[0], key[1] ^ 1))
                assert recv_all_until_close(c, 10) == b""
            assert rejected(gw)["cancel_rate"] - rej0 == rej
            sess.sendall(query_message("select 1"))
            assert read_until(sess, b"Z")[-1][0] == b"Z"
    finally:
        gw.stop()
        check_no_crash([gw])


def test_client_idle_timeout_ends_idle_sessions_with_57P05(cluster):
    gw = Pggw("--client-tls", "disable", "--client-idle-timeout", "1", backend=cluster.addr)
    try:
        with socket.create_connection(gw.addr, timeout=10) as s:
            msgs, _ = trust_session(s, "bob", "appdb")
            assert_ready(msgs)
            # In a transaction: not idle, however long nothing moves.
            s.sendall(query_message("begin"))
            assert read_until(s, b"Z")[-1] == (b"Z", b"T")
            time.sleep(2.5)
            s.sendall(query_message("commit"))
            assert read_until(s, b"Z")[-1] == (b"Z", b"I")
            t0 = time.monotonic()
            data = recv_all_until_close(s, 10)
            waited = time.monotonic() - t0
        assert 0.9 <= waited < 5, waited
        kind, length = data[:1], struct.unpack("!i", data[1:5])[0]
        assert kind == b"E" and len(data) == 1 + length
        f = error_fields(data[5:])
        assert (f["S"], f["V"], f["C"], f["M"]) == (
            "FATAL", "FATAL", "57P05", "terminating connection due to idle-session timeout")
        assert gw.wait_log(r"session closed: peer=127\.0\.0\.1:\d+ user=\S*bob\S* .* "
                           r"reason=\"idle-session timeout\"")
    finally:
        gw.stop()
        check_no_crash([gw])


def test_handshakes_beyond_the_cap_wait_then_close_never_N(cluster, tmp_path):
    files = gen_cert(tmp_path / "certs")
    gw = Pggw("--cert", str(files["server.crt"]), "--key", str(files["server.key"]),
              "--client-tls", "require", "--workers", "1", "--max-handshakes-per-worker", "1",
              "--handshake-timeout", "30", backend=cluster.addr)
    try:
        before = rejected(gw)
        # Holds the one place: 'S', then no ClientHello.
        holder = socket.create_connection(gw.addr, timeout=5)
        holder.sendall(ssl_request())
        assert recv_exact(holder, 1) == b"S"
        wait_for(lambda: gauge(gw, "pggw_tls_handshakes_in_progress") == 1, what="1 handshake")
        waiter = socket.create_connection(gw.addr, timeout=5)
        waiter.sendall(ssl_request())
        assert recv_exact(waiter, 1) == b"S"  # the answer is never 'N' under load
        t0 = time.monotonic()
        assert recv_all_until_close(waiter, 10) == b""
        assert 0.9 <= time.monotonic() - t0 < 5
        waiter.close()
        after = rejected(gw)
        assert after["handshake_queue_timeout"] - before["handshake_queue_timeout"] == 1
        holder.close()
        wait_for(lambda: gauge(gw, "pggw_tls_handshakes_in_progress") == 0, what="released")
        r = psql(conninfo(host="127.0.0.1", port=gw.port, user="bob", dbname="appdb",
                          sslmode="require"), "select 7")
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == "7"
        assert rejected(gw)["handshake_queue_timeout"] == after["handshake_queue_timeout"]
        assert counter(gw, "pggw_negotiation_replies_total", 'reply="N"') == 0
    finally:
        gw.stop()
        check_no_crash([gw])
