"""PROXY protocol (--proxy-protocol, --proxy-trusted) with a real sender: HAProxy in TCP mode
with send-proxy and send-proxy-v2 in front of pggw, psql through it over TLS, and the client's
own address in pggw's log; headers that are missing, malformed, truncated, late or from a
source outside --proxy-trusted close the connection with a counter and a log line."""
import socket
import struct
import subprocess
import time
from pathlib import Path

import pytest

from conftest import (PGGW_BIN, Pggw, TERMINATE, assert_ready, check_no_crash, conninfo,
                      gen_cert, psql, recv_all_until_close, reserve_port, run, ssl_request,
                      trust_session)
from helpers_assert import local_port, session_line
from test_metrics import scrape, wait_metric

HAPROXY = "/usr/sbin/haproxy"
BALANCER = "127.0.0.3"  # HAProxy's source address toward pggw: the only trusted one
CLIENT = "127.0.0.2"    # a raw client's own address, which pggw must log


def v2_header(src: str, sport: int, dst: str = "127.0.0.1", dport: int = 6432,
              command: int = 1) -> bytes:
    sig = b"\r\n\r\n\x00\r\nQUIT\n"
    body = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!HH", sport, dport)
    return sig + bytes([0x20 | command, 0x11]) + struct.pack("!H", len(body)) + body


def connect_from(source: str, addr, timeout: float = 5) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.bind((source, 0))
    s.connect(addr)
    return s


class HAProxy:
    """HAProxy in TCP mode: one frontend sending a v1 header, one sending v2, both from
    BALANCER. Its ports are held by reserve_port() until it stops (never found free and
    released: another test's process could be handed them meanwhile); HAProxy's SO_REUSEADDR
    listeners bind them all the same. noreuseport: a port bound explicitly by another process
    makes the start fail (and retry on fresh ports) instead of sharing it."""

    def __init__(self, tmp: Path, gw_port: int):
        self._held: list[socket.socket] = []
        for attempt in range(5):
            self._release()
            self._held = [reserve_port(), reserve_port()]
            self.v1_port, self.v2_port = (h.getsockname()[1] for h in self._held)
            cfg = tmp / "haproxy.cfg"
            cfg.write_text(f"""
global
    maxconn 200
    noreuseport
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend v1
    bind 127.0.0.1:{self.v1_port}
    default_backend pggw_v1
frontend v2
    bind 127.0.0.1:{self.v2_port}
    default_backend pggw_v2
backend pggw_v1
    server gw 127.0.0.1:{gw_port} send-proxy source {BALANCER}
backend pggw_v2
    server gw 127.0.0.1:{gw_port} send-proxy-v2 source {BALANCER}
""")
            self.proc = subprocess.Popen([HAPROXY, "-db", "-f", str(cfg)],
                                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            if self._wait():
                return
            self.stop()
        raise RuntimeError("haproxy did not start")

    def _release(self):
        for h in self._held:
            h.close()
        self._held = []

    def _wait(self) -> bool:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                for p in (self.v1_port, self.v2_port):
                    socket.create_connection(("127.0.0.1", p), timeout=0.5).close()
                return True
            except OSError:
                time.sleep(0.05)
        return False

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._release()


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return gen_cert(tmp_path_factory.mktemp("proxy-certs"), "localhost", "127.0.0.1")


@pytest.fixture(scope="module")
def gw(cluster, certs):
    # prefer: TLS through HAProxy for psql, plaintext for the raw-socket checks.
    p = Pggw("--proxy-protocol", "auto", "--proxy-trusted", f"{BALANCER}/32",
             "--proxy-trusted", "10.0.0.0/8", "--cert", str(certs["server.crt"]),
             "--key", str(certs["server.key"]), "--client-tls", "prefer",
             "--handshake-timeout", "1", "--log-level", "debug", backend=cluster.addr)
    yield p
    p.stop()
    check_no_crash([p])


@pytest.fixture(scope="module")
def haproxy(gw, tmp_path_factory):
    h = HAProxy(tmp_path_factory.mktemp("haproxy"), gw.port)
    yield h
    h.stop()


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_psql_over_tls_through_haproxy(gw, haproxy, certs, version):
    port = haproxy.v1_port if version == "v1" else haproxy.v2_port
    mark = gw.log_mark()
    dsn = conninfo(host="localhost", hostaddr="127.0.0.1", port=port, user="bob",
                   dbname="appdb", sslmode="verify-full", sslrootcert=certs["ca.crt"])
    r = psql(dsn, "select inet_client_addr() is not null, current_user")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "t|bob"
    # The session line names psql's address (from the header) and the balancer it came via.
    # (psql's port is not known here; exactly one session since the mark, this one.)
    lines = gw.wait_log(rf"session closed: peer=127\.0\.0\.1:\d+ via={BALANCER}:\d+ user=bob "
                        rf"database=appdb .* tls=TLSv1\.3 ", since=mark)
    assert len(lines) == 1, gw.log_text()[mark:]
    assert gw.wait_log(rf"PROXY v{version[1]} header from {BALANCER}:\d+: client 127\.0\.0\.1:",
                       since=mark)


def test_client_address_from_a_second_loopback_address(gw, haproxy):
    """A client on 127.0.0.2 through HAProxy: pggw logs 127.0.0.2, not HAProxy's address."""
    for port in (haproxy.v1_port, haproxy.v2_port):
        mark = gw.log_mark()
        with connect_from(CLIENT, ("127.0.0.1", port)) as s:
            client_port = s.getsockname()[1]
            msgs, _ = trust_session(s, "bob", "appdb")
            assert_ready(msgs)
            s.sendall(TERMINATE)
        line = session_line(gw, client_port, since=mark)
        assert line["peer"] == f"{CLIENT}:{client_port}", line
        assert line["via"].startswith(f"{BALANCER}:"), line
        assert (line["user"], line["database"], line["tls"]) == ("bob", "appdb", "off"), line


def test_header_and_startup_in_one_segment(gw):
    """A sender that writes the header and the client's first bytes together (the bytes behind
    the header are the startup's)."""
    with connect_from(BALANCER, gw.addr) as s:
        s.sendall(b"PROXY TCP4 192.0.2.10 127.0.0.1 51000 6432\r\n" + ssl_request())
        assert s.recv(1) == b"S"


def test_local_command_keeps_the_real_peer(gw):
    """v2 LOCAL (a balancer's health check) carries no client: the TCP peer stands."""
    mark = gw.log_mark()
    with connect_from(BALANCER, gw.addr) as s:
        port = local_port(s)
        s.sendall(v2_header("0.0.0.0", 0, command=0))
        msgs, _ = trust_session(s, "bob", "appdb")
        assert_ready(msgs)
        s.sendall(TERMINATE)
    line = session_line(gw, port, since=mark)
    assert (line["peer"], line["via"]) == (f"{BALANCER}:{port}", f"{BALANCER}:{port}"), line
    assert line["user"] == "bob", line


def test_untrusted_source_is_closed(gw):
    """Straight to pggw from an address outside --proxy-trusted: closed before a byte, even
    with a well-formed header (anyone could claim any address)."""
    before = scrape(gw).get("pggw_proxy_protocol_headers_total", result="untrusted") or 0
    mark = gw.log_mark()
    ports = []
    for payload in (ssl_request(), v2_header("192.0.2.1", 1234)):
        with connect_from("127.0.0.1", gw.addr) as s:
            ports.append(local_port(s))
            s.sendall(payload)
            assert recv_all_until_close(s, 10) == b""
    wait_metric(gw, lambda m: m.get("pggw_proxy_protocol_headers_total", result="untrusted")
                == before + 2, what="two untrusted")
    for port in ports:
        assert len(gw.wait_log(rf"outside --proxy-trusted closed: peer=127\.0\.0\.1:{port}$",
                               since=mark)) == 1, gw.log_text()[mark:]


@pytest.mark.parametrize("result,payload,close_after", [
    ("missing", ssl_request(), False),  # PostgreSQL's first packet where the header belongs
    ("malformed", b"PROXY TCP4 192.0.2.1 127.0.0.1 99999 6432\r\n", False),
    ("malformed", b"\r\n\r\n\x00\r\nQUIT\n\x31\x11\x00\x0c" + bytes(12), False),  # version 3
    ("oversized", b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\xff\xff", False),
    ("oversized", b"PROXY TCP4 " + b"1" * 120, False),
    ("truncated", b"PROXY TCP4 192.0.2.1 127.0.0.1 ", True),
])
def test_bad_headers_close_with_a_counter(gw, result, payload, close_after):
    before = scrape(gw).get("pggw_proxy_protocol_headers_total", result=result) or 0
    mark = gw.log_mark()
    with connect_from(BALANCER, gw.addr) as s:
        port = local_port(s)
        s.sendall(payload)
        if close_after:
            s.shutdown(socket.SHUT_WR)
        # Nothing of PostgreSQL's comes back: the connection just closes.
        assert recv_all_until_close(s, 10) == b""
    wait_metric(gw, lambda m: m.get("pggw_proxy_protocol_headers_total", result=result)
                == before + 1, what=f"{result} counted")
    what = "truncated" if result == "truncated" else "refused"
    assert len(gw.wait_log(rf"PROXY protocol header {what}: peer={BALANCER}:{port}\b",
                           since=mark)) == 1, gw.log_text()[mark:]


def test_header_counts_against_the_handshake_timeout(gw):
    before = scrape(gw).get("pggw_proxy_protocol_headers_total", result="timeout") or 0
    with connect_from(BALANCER, gw.addr) as s:
        s.sendall(b"PROXY TCP4 192.0.2.1")  # and nothing more: --handshake-timeout 1
        t0 = time.monotonic()
        assert recv_all_until_close(s, 15) == b""
        # Not before the 1 s timeout; the upper bound is generous (a loaded 2-CPU machine).
        assert 0.8 < time.monotonic() - t0 < 10
    wait_metric(gw, lambda m: m.get("pggw_proxy_protocol_headers_total", result="timeout")
                == before + 1, what="timeout counted")


def test_v1_only_refuses_v2(cluster, pggw):
    gw = pggw("--client-tls", "disable", "--proxy-protocol", "v1", "--proxy-trusted",
              f"{BALANCER}/32", backend=cluster.addr)
    with connect_from(BALANCER, gw.addr) as s:
        s.sendall(v2_header("192.0.2.1", 1234))
        assert recv_all_until_close(s, 3) == b""
    wait_metric(gw, lambda m: m.get("pggw_proxy_protocol_headers_total", result="missing") == 1)


def test_refuses_to_start_without_trusted_sources():
    r = run([str(PGGW_BIN), "--proxy-protocol", "v2", "--client-tls", "disable",
             "--listen", "127.0.0.1:0"], timeout=10)
    assert r.returncode == 2
    assert "--proxy-protocol v2 needs --proxy-trusted" in r.stderr
    r = run([str(PGGW_BIN), "--proxy-protocol", "v2", "--proxy-trusted", "10.0.0.1/8"],
            timeout=10)
    assert r.returncode == 2
    assert "host bits set" in r.stderr
