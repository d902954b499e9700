"""Hostile soak (issue 12): while a legitimate loop logs in through pggw over TLS on both legs
(~20 sessions a second, each a query), hostile connections arrive from other addresses: random
bytes, bad length words, an SSLRequest then silence, 'S' answered in plaintext, plaintext in
the SSLRequest's write, truncated ClientHellos, direct TLS without ALPN, hundreds of idle
connects from one address, a ClientHello flood beyond --max-handshakes-per-worker and a
CancelRequest flood beyond --cancel-rate-per-source. Asserted: no legitimate login or query
fails; every hostile connection is closed within its deadline (at once, or at
--handshake-timeout); each kind moves its counter (exactly where the count is deterministic);
RSS stays bounded and does not grow between two identical rounds; pggw does not crash
(conftest's crash detection).

Every cap is set on the command line, so the counts do not depend on pggw's defaults. One
worker: the handshake gate is per worker, so its cap is exact. One TLS library (the first of
tls_backends(), boringssl by default): the soak is about pggw's own code, and test_client_tls.py
covers each library's handshake failures.

Sources: legitimate clients from 127.0.0.1, each hostile kind from an address of its own in
127/8 (all local on Linux), so that the per-source cap falls on the idle flood only."""
import random
import selectors
import socket
import ssl
import struct
import threading
import time
import urllib.request
from dataclasses import dataclass

import pytest

from conftest import (PROTOCOL_30, SANITIZER, BioTls, Cluster, Pggw, assert_ready, cancel_request,
                      check_no_crash, client_context, make_ca, make_leaf, query_message,
                      read_until, recv_all_until_close, recv_exact, rss_bytes, ssl_request,
                      startup_message, starttls, threads_run, tls_backends, trust_session,
                      TERMINATE)

LIB = tls_backends()[0]

HANDSHAKE_TIMEOUT = 3  # --handshake-timeout: the deadline of every negotiating connection
PER_SOURCE = 24  # --max-negotiating-per-source (the idle flood's cap)
HANDSHAKES = 4  # --max-handshakes-per-worker (one worker)
CANCEL_RATE = 5  # --cancel-rate-per-source: burst of 2 * CANCEL_RATE, then CANCEL_RATE/s
QUEUE_WAIT = 1.0  # how long a handshake waits for a place (README: 1 s)

# Deadlines as seen from the test process, measured from its connect, generous for a loaded
# 2-CPU machine running `ctest -j2`: "at once" is well under the handshake timeout, "at the
# deadline" no sooner than it (pggw's timer starts at its accept, after the connect; less a
# little for timer slack) and not much later.
AT_ONCE = 2.0
DEADLINE_MIN = HANDSHAKE_TIMEOUT - 0.1
DEADLINE_MAX = HANDSHAKE_TIMEOUT + 5.0

# Legitimate clients connect from 127.0.0.1.
IDLE_SOURCE = "127.0.0.2"
FLOOD_SOURCE = "127.0.0.3"
CANCEL_SOURCE = "127.0.0.4"
QUEUE_SOURCE = "127.0.0.5"
PROBE_SOURCE = "127.0.0.6"

LEGIT_RATE = 20  # logins per second
LEGIT_SECONDS = 10  # per round; two rounds: ~20 s of legitimate traffic
LEGIT_THREADS = 4
IDLE_CONNECTS = 300
FLOOD_CONNECTS = 120
FLOOD_PARALLEL = 8  # > HANDSHAKES: the flood is beyond the cap
CANCELS = 60
QUEUE_WAITERS = 3

RSS_GROWTH_MAX = 50 << 20  # over the whole run
RSS_ROUND_TOLERANCE = 2 << 20  # round 2 against round 1: glibc reuses the heap round 1 freed
if SANITIZER == "asan":
    # ASan keeps freed memory in quarantine (quarantine_size_mb, 256 MiB by default) instead of
    # reusing it, and adds shadow memory: growth there says nothing about pggw's own. The bounds
    # still catch a runaway; the Release run holds pggw to the figures above.
    RSS_GROWTH_MAX = 400 << 20
    RSS_ROUND_TOLERANCE = 300 << 20


# --------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------
def scrape(gw) -> dict[str, float]:
    """Every sample of /metrics: 'name{labels}' (labels as pggw writes them) -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{gw.metrics_port}/metrics", timeout=10) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def delta(before: dict, after: dict, prefix: str) -> dict[str, float]:
    """The samples whose key starts with prefix that moved: key -> after - before."""
    keys = {k for k in after if k.startswith(prefix)} | {k for k in before if k.startswith(prefix)}
    moved = {k: after.get(k, 0) - before.get(k, 0) for k in keys}
    return {k: v for k, v in moved.items() if v}


def rejected(reason: str) -> str:
    return f'pggw_connections_rejected_total{{reason="{reason}"}}'


def startups(kind: str) -> str:
    return f'pggw_startup_requests_total{{kind="{kind}"}}'


def client_tls_error(reason: str) -> str:
    return (f'pggw_tls_handshake_errors_total{{leg="client",library="{LIB}",'
            f'reason="{reason}"}}')


def gauge(gw, name: str) -> float:
    return scrape(gw)[name]


def wait_for(cond, timeout=15.0, what=""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


# --------------------------------------------------------------------------------------
# Fixtures: a test CA, PostgreSQL with ssl = on, pggw with TLS on both legs
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("soak-pki")
    ca = make_ca(d, "ca")
    pg = make_leaf(d, "pg", "localhost", ca, client=False, sans=["DNS:localhost", "IP:127.0.0.1"])
    gw = make_leaf(d, "gw", "localhost", ca, client=False, sans=["DNS:localhost", "IP:127.0.0.1"])
    return {"ca": ca, "pg": pg, "gw": gw}


@pytest.fixture(scope="module")
def ssl_cluster(pki):
    # hostssl only for bob: a plaintext server leg would be refused, so a login that works
    # proves the server leg is TLS.
    c = Cluster(hba_prefix="hostnossl all bob 127.0.0.1/32 reject\n",
                conf_extra=("ssl = on\nssl_cert_file = 'server.crt'\n"
                            "ssl_key_file = 'server.key'\n"),
                files={"server.crt": pki["pg"][0], "server.key": pki["pg"][1]})
    c.init()
    try:
        yield c
    finally:
        c.destroy()


def start_gateway(pki, cluster) -> Pggw:
    return Pggw("--tls-library", LIB, "--cert", str(pki["gw"][0]), "--key", str(pki["gw"][1]),
                "--client-tls", "require", "--server-tls", "verify-full", "--server-ca",
                str(pki["ca"][0]), "--workers", "1", "--server-connect-timeout", "5",
                "--handshake-timeout", str(HANDSHAKE_TIMEOUT), "--max-connections", "200",
                "--max-negotiating", "2000", "--max-negotiating-per-source", str(PER_SOURCE),
                "--max-handshakes-per-worker", str(HANDSHAKES), "--cancel-rate-per-source",
                str(CANCEL_RATE), backend=cluster.addr)


# --------------------------------------------------------------------------------------
# The legitimate loop
# --------------------------------------------------------------------------------------
class LegitLoop(threading.Thread):
    """LEGIT_RATE logins a second for `seconds`: SSLRequest, TLS verified against the test CA,
    StartupMessage (bob, trust), one query (which checks that the server leg is TLS too),
    Terminate. A login takes ~0.1 s end to end here (two handshakes, a PostgreSQL fork), so
    LEGIT_THREADS run side by side, each starting its logins on its own schedule. Raw sockets
    and Python's ssl: no process per login, little CPU."""

    def __init__(self, gw, ca, seconds: float):
        super().__init__(daemon=True)
        self.gw, self.ctx, self.seconds = gw, client_context(cafile=ca), seconds
        self.n = int(seconds * LEGIT_RATE)
        self.ok = 0
        self.failures: list[str] = []
        self.lock = threading.Lock()

    def one(self, i: int):
        s = starttls(self.gw.addr, self.ctx, timeout=10)
        try:
            msgs, _ = trust_session(s, "bob", "appdb", timeout=10)
            assert_ready(msgs)
            s.sendall(query_message(f"select {i}, ssl from pg_stat_ssl where pid = "
                                    f"pg_backend_pid()"))
            rows = [p for k, p in read_until(s, b"Z", 10) if k == b"D"]
            assert len(rows) == 1, rows
            assert rows[0] == struct.pack("!hi", 2, len(str(i))) + str(i).encode() + \
                struct.pack("!i", 1) + b"t", rows[0]  # the server leg is TLS
            s.sendall(TERMINATE)
        finally:
            s.close()

    def lane(self, t0: float, first: int):
        for i in range(first, self.n, LEGIT_THREADS):
            pause = t0 + i / LEGIT_RATE - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            try:
                self.one(i)
                with self.lock:
                    self.ok += 1
            except Exception as e:  # noqa: BLE001 (every failure is reported)
                with self.lock:
                    self.failures.append(f"login {i} at {time.monotonic() - t0:.2f}s: {e!r}")

    def run(self):
        t0 = time.monotonic()
        lanes = [threading.Thread(target=self.lane, args=(t0, k), daemon=True)
                 for k in range(LEGIT_THREADS)]
        for t in lanes:
            t.start()
        for t in lanes:
            t.join()


# --------------------------------------------------------------------------------------
# Hostile connections
# --------------------------------------------------------------------------------------
@dataclass
class Hostile:
    kind: str
    sock: socket.socket
    expect: str  # "at_once" or "deadline": when pggw must close it
    opened: float  # time.monotonic() before the connect
    closed: float | None = None
    data: bytes = b""

    @property
    def lasted(self) -> float | None:
        return None if self.closed is None else self.closed - self.opened


def dial(source: str, gw) -> socket.socket:
    s = socket.create_connection(gw.addr, timeout=10, source_address=(source, 0))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def watch_closes(conns: list[Hostile], timeout: float):
    """Wait (one epoll, hundreds of sockets) until pggw has closed each connection, noting
    when and what it sent before; those still open after timeout keep closed = None."""
    sel = selectors.DefaultSelector()
    for c in conns:
        c.sock.setblocking(False)
        sel.register(c.sock, selectors.EVENT_READ, c)
    deadline = time.monotonic() + timeout
    try:
        while sel.get_map() and time.monotonic() < deadline:
            for key, _ in sel.select(timeout=0.2):
                c = key.data
                try:
                    chunk = c.sock.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:  # a reset is a close too
                    chunk = b""
                if chunk:
                    c.data += chunk
                    continue
                c.closed = time.monotonic()
                sel.unregister(c.sock)
    finally:
        sel.close()
        for c in conns:
            c.sock.close()


def client_hello(alpn) -> bytes:
    """A TLS ClientHello as Python's ssl writes it (not sent by BioTls itself)."""
    return BioTls(None, client_context(alpn=alpn)).client_hello()


def open_probes(gw) -> list[Hostile]:
    """One of each malformed opening, from PROBE_SOURCE. Returns them with when pggw must
    close them; expected counter moves are in PROBE_COUNTS."""
    out = []
    rnd = random.Random()

    def probe(kind, payload, expect, after_s=None):
        # From the connect: pggw's deadline runs from its accept, a little later.
        opened = time.monotonic()
        s = dial(PROBE_SOURCE, gw)
        if after_s is not None:  # SSLRequest first, 'S' awaited, then payload
            s.sendall(ssl_request())
            assert recv_exact(s, 1) == b"S", kind  # never 'N': no downgrade
        if payload:
            s.sendall(payload)
        if after_s == "fin":
            s.shutdown(socket.SHUT_WR)
        out.append(Hostile(kind, s, expect, opened))

    hello = client_hello(["postgresql"])
    # Random bytes: the first byte neither 0x16 (a TLS record: direct TLS) nor 0, so the
    # length word is over 16 MiB: invalid at once, whatever follows.
    for _ in range(5):
        first = rnd.choice([b for b in range(1, 256) if b != 0x16])
        probe("random bytes", bytes([first]) + rnd.randbytes(63), "at_once")
    for length in (0, 4, 7, 2**31 - 1):
        probe(f"length {length}", struct.pack("!ii", length, PROTOCOL_30), "at_once")
    # 10001: within PostgreSQL's 10000-byte body limit, so pggw waits for the body...
    probe("length 10001, body cut", struct.pack("!ii", 10001, PROTOCOL_30) + b"user\0", "deadline")
    # ... and refuses it once whole: no terminating NUL.
    probe("length 10001, bad body", struct.pack("!ii", 10001, PROTOCOL_30) + b"u" * 9993,
          "at_once")
    probe("SSLRequest then silence", b"", "deadline", after_s="silence")
    probe("'S' answered in plaintext", startup_message("bob", "appdb"), "at_once",
          after_s="plain")
    probe("SSLRequest + plaintext, one write", ssl_request() + startup_message("bob", "appdb"),
          "at_once")
    probe("ClientHello cut, after 'S'", hello[:len(hello) // 2], "deadline", after_s="silence")
    probe("ClientHello cut, then FIN", hello[:len(hello) // 2], "at_once", after_s="fin")
    probe("direct TLS, ClientHello cut", hello[:len(hello) // 2], "deadline")
    # Direct TLS without ALPN: a real handshake, refused (no_application_protocol alert).
    # (BioTls: the socket stays ours, to see pggw close it.)
    opened = time.monotonic()
    s = dial(PROBE_SOURCE, gw)
    with pytest.raises(ssl.SSLError) as e:
        BioTls(s, client_context()).handshake()
    assert "no application protocol" in str(e.value).lower(), e.value
    out.append(Hostile("direct TLS without ALPN", s, "at_once", opened))
    return out


# What the probes above add to pggw's counters, exactly: each is decoded once and ends one way.
PROBE_COUNTS = {
    startups("invalid"): 5 + 4 + 1,  # random bytes, 0/4/7/2^31-1, the bad 10001 body
    startups("ssl"): 5,  # silence, plaintext answer, plaintext in the write, 2 cut hellos
    startups("direct_tls"): 2,  # the cut one, the one without ALPN
    client_tls_error("timeout"): 3,  # silence, the cut hellos after 'S' and direct
    client_tls_error("not_tls"): 1,  # a StartupMessage where a ClientHello belongs
    client_tls_error("plaintext_after_sslrequest"): 1,
    client_tls_error("eof"): 1,  # the cut hello, then FIN
    client_tls_error("no_alpn"): 1,
}


def idle_flood(gw) -> tuple[list[Hostile], list[threading.Thread]]:
    """IDLE_CONNECTS connections from one address that never send a byte, watched (in
    batches of 50, each from the moment it is open) by the threads returned."""
    out, watchers = [], []
    for first in range(0, IDLE_CONNECTS, 50):
        batch = []
        for _ in range(first, min(first + 50, IDLE_CONNECTS)):
            opened = time.monotonic()
            batch.append(Hostile("idle", dial(IDLE_SOURCE, gw), "deadline", opened))
        watchers.append(threading.Thread(target=watch_closes, args=(batch, DEADLINE_MAX + 2)))
        watchers[-1].start()
        out += batch
    return out, watchers


def handshake_flood(gw) -> tuple[list[bytes], float]:
    """A ClientHello loop (direct TLS, ALPN postgresql) from FLOOD_SOURCE, FLOOD_PARALLEL at a
    time against HANDSHAKES places: pggw answers with its flight (the expensive part: key
    share, signature), then the client ends with a FIN. Returns what each connection got first
    (a TLS record, or b"" when it was closed in the queue), and the most handshakes pggw had in
    progress at once (sampled)."""
    hello = client_hello(["postgresql"])
    peak = [0.0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], gauge(gw, "pggw_tls_handshakes_in_progress"))
            time.sleep(0.05)

    def one():
        s = dial(FLOOD_SOURCE, gw)
        try:
            s.sendall(hello)
            first = s.recv(65536)
            s.shutdown(socket.SHUT_WR)  # a FIN, not a reset: the failure is "eof"
            recv_all_until_close(s, 10)
            return first
        finally:
            s.close()

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        firsts = threads_run(one, [()] * FLOOD_CONNECTS, parallel=FLOOD_PARALLEL)
    finally:
        done.set()
        sampler.join()
    return firsts, peak[0]


def cancel_flood(gw, pid: int, key: int) -> float:
    """CANCELS CancelRequests (a wrong key: nothing is cancelled) from CANCEL_SOURCE, 4 at a
    time (under the per-source cap). Returns the seconds they took."""
    def one(i):
        s = dial(CANCEL_SOURCE, gw)
        try:
            s.sendall(cancel_request(pid, key ^ (i + 1)))
            assert recv_all_until_close(s, 15) == b"", "a reply to a CancelRequest"
        finally:
            s.close()

    t0 = time.monotonic()
    threads_run(one, [(i,) for i in range(CANCELS)], parallel=4)
    return time.monotonic() - t0


def queue_burst(gw) -> None:
    """HANDSHAKES connections take every place (SSLRequest, 'S', then silence); QUEUE_WAITERS
    more get their 'S' (never 'N'), wait QUEUE_WAIT in line and are closed without a byte.
    Then the holders end with a FIN (each a failed handshake: eof)."""
    holders = []
    try:
        for _ in range(HANDSHAKES):
            s = dial(QUEUE_SOURCE, gw)
            s.sendall(ssl_request())
            assert recv_exact(s, 1) == b"S"
            holders.append(s)
        wait_for(lambda: gauge(gw, "pggw_tls_handshakes_in_progress") == HANDSHAKES,
                 what=f"{HANDSHAKES} handshakes in progress")

        def wait_in_line():
            s = dial(QUEUE_SOURCE, gw)
            try:
                s.sendall(ssl_request())
                assert recv_exact(s, 1) == b"S"
                t0 = time.monotonic()
                assert recv_all_until_close(s, 10) == b""
                return time.monotonic() - t0
            finally:
                s.close()

        waits = threads_run(wait_in_line, [()] * QUEUE_WAITERS, parallel=QUEUE_WAITERS)
        # Closed after the queue wait, well before the handshake timeout.
        assert all(QUEUE_WAIT - 0.2 <= w < QUEUE_WAIT + AT_ONCE for w in waits), waits
    finally:
        for s in holders:
            s.shutdown(socket.SHUT_WR)
            recv_all_until_close(s, 10)
            s.close()


# --------------------------------------------------------------------------------------
# One round of the soak
# --------------------------------------------------------------------------------------
def soak_round(gw, pki, session_key, label: str) -> None:
    before = scrape(gw)
    mark = gw.log_mark()
    legit = LegitLoop(gw, pki["ca"][0], LEGIT_SECONDS)
    legit.start()

    # Connections that pggw closes at once or at its deadline: the probes and the idle flood,
    # each watched from the moment it is open (a close seen late would look slow).
    probes = open_probes(gw)
    watchers = [threading.Thread(target=watch_closes, args=(probes, DEADLINE_MAX + 2))]
    watchers[0].start()
    idle, idle_watchers = idle_flood(gw)
    for w in watchers + idle_watchers:
        w.join()
    conns = probes + idle
    # The ClientHello loop comes once the probes are gone: they held 3 of the 4 places for
    # the handshake timeout, and the loop is meant to contend with the legitimate logins
    # only (the queue burst below covers a worker whose places are all held).
    firsts, peak = handshake_flood(gw)
    cancel_seconds = cancel_flood(gw, *session_key)
    legit.join(LEGIT_SECONDS * 3)
    assert not legit.is_alive(), f"{label}: legitimate loop stuck"

    # A burst that holds every handshake place for longer than the queue wait: any TLS login
    # arriving on the worker meanwhile waits too and is closed after QUEUE_WAIT (the gate is
    # per worker, not per source, by design: admission.hpp), so it runs between the
    # legitimate loops, not during them.
    queue_burst(gw)
    wait_for(lambda: (g := scrape(gw))["pggw_connections_negotiating"] == 0
             and g["pggw_tls_handshakes_in_progress"] == 0, what="negotiations over")
    after = scrape(gw)

    # -- zero legitimate failures
    assert legit.failures == [], f"{label}: {len(legit.failures)} legitimate failures: " \
                                 f"{legit.failures[:10]}"
    assert legit.ok == legit.n == LEGIT_SECONDS * LEGIT_RATE

    # -- every hostile connection closed within its deadline
    late = [(c.kind, c.lasted) for c in conns if c.lasted is None]
    assert late == [], f"{label}: not closed by pggw within {DEADLINE_MAX + 2}s: {late[:10]}"
    for c in conns:
        if c.expect == "at_once":
            assert c.lasted < AT_ONCE, (label, c.kind, c.lasted)
        elif c.kind != "idle":
            assert DEADLINE_MIN <= c.lasted <= DEADLINE_MAX, (label, c.kind, c.lasted)
        else:  # at once beyond the cap, else at the deadline: within it either way
            assert c.lasted <= DEADLINE_MAX, (label, c.kind, c.lasted)
        # Nothing but TLS alerts (records of type 21) may come back before a StartupMessage.
        assert c.data == b"" or c.data[:1] == b"\x15", (label, c.kind, c.data[:32])

    # -- counters. The idle flood: each connection either takes one of the PER_SOURCE places
    # and stays till the deadline ("startup timeout" in the log, one line each), or is
    # rejected at once. How many get a place depends on how fast the kernel and pggw turn
    # places over (a connect may come after a held one timed out), so the exact count comes
    # from the log; at least IDLE_CONNECTS - 2 * PER_SOURCE were rejected, since all were
    # opened well within one handshake timeout.
    idle_held = len(gw.wait_log(rf"startup timeout: peer={IDLE_SOURCE}:\d+ after "
                                r"[\d.]+s$", since=mark, timeout=0))
    idle_rejected = after[rejected("negotiating_per_source")] - \
        before[rejected("negotiating_per_source")]
    assert idle_held + idle_rejected == IDLE_CONNECTS, (label, idle_held, idle_rejected)
    assert PER_SOURCE <= idle_held <= 2 * PER_SOURCE, (label, idle_held)
    assert sum(c.lasted >= DEADLINE_MIN for c in conns if c.kind == "idle") == idle_held

    # The ClientHello loop: each connection got pggw's flight and ended with a FIN (eof), or
    # (machine overloaded) waited out its place in line: handshake_queue_timeout. The gauge
    # never passed the cap.
    served = sum(1 for f in firsts if f[:1] == b"\x16")
    queued_out = sum(1 for f in firsts if f == b"")
    assert served + queued_out == FLOOD_CONNECTS, (label, [f[:8] for f in firsts])
    assert peak <= HANDSHAKES, (label, peak)

    # The cancel flood: a burst of 2 * CANCEL_RATE, then CANCEL_RATE a second; how many fall
    # in the refill depends on the time the flood took, the sum is exact.
    forwarded = after.get('pggw_cancel_requests_total{result="forwarded"}', 0) - \
        before.get('pggw_cancel_requests_total{result="forwarded"}', 0)
    dropped = after[rejected("cancel_rate")] - before[rejected("cancel_rate")]
    assert forwarded + dropped == CANCELS, (label, forwarded, dropped)
    assert 2 * CANCEL_RATE <= forwarded <= 2 * CANCEL_RATE + CANCEL_RATE * cancel_seconds + 1, \
        (label, forwarded, cancel_seconds)

    n_legit = LEGIT_SECONDS * LEGIT_RATE
    expected = dict(PROBE_COUNTS)
    for k, v in {startups("ssl"): n_legit + HANDSHAKES + QUEUE_WAITERS,
                 startups("direct_tls"): FLOOD_CONNECTS,
                 startups("cancel"): CANCELS,
                 startups("startup"): n_legit,
                 client_tls_error("eof"): served + HANDSHAKES,
                 rejected("negotiating_per_source"): idle_rejected,
                 rejected("handshake_queue_timeout"): queued_out + QUEUE_WAITERS,
                 rejected("cancel_rate"): dropped,
                 'pggw_cancel_requests_total{result="forwarded"}': forwarded}.items():
        expected[k] = expected.get(k, 0) + v
    moved = {k: v for k, v in delta(before, after, "pggw_startup_requests_total").items()}
    moved |= delta(before, after, "pggw_tls_handshake_errors_total{leg=\"client\"")
    moved |= delta(before, after, "pggw_connections_rejected_total")
    moved |= delta(before, after, "pggw_cancel_requests_total")
    assert moved == expected, f"{label}: counters moved {moved}, expected {expected}"
    print(f"{label}: {n_legit} logins; idle flood {idle_held} held, {idle_rejected:.0f} "
          f"rejected; ClientHello loop {served} served, {queued_out} closed in line, peak "
          f"{peak:.0f} in progress; cancels {forwarded:.0f} forwarded, {dropped:.0f} dropped in "
          f"{cancel_seconds:.1f}s; counters {sorted(moved.items())}")
    # Every legitimate client handshake succeeded, and only those (the flood's all failed).
    ok = f'pggw_tls_handshakes_total{{leg="client",library="{LIB}",result="ok"}}'
    assert after[ok] - before[ok] == n_legit
    # Never an 'N' (a downgrade) under load.
    assert after.get('pggw_negotiation_replies_total{reply="N"}', 0) == 0


def test_hostile_soak(ssl_cluster, pki):
    gw = start_gateway(pki, ssl_cluster)
    try:
        rss_start = rss_bytes(gw.pid)
        # A session whose key the cancel flood aims at (with wrong secrets).
        s = starttls(gw.addr, client_context(cafile=pki["ca"][0]), timeout=10)
        msgs, key = trust_session(s, "bob", "appdb", timeout=10)
        assert_ready(msgs)
        # Warm-up: half a second of logins, so that round 1 starts from a pggw that has
        # served (its first-use allocations are not round 1's growth).
        warm = LegitLoop(gw, pki["ca"][0], 0.5)
        warm.run()
        assert warm.failures == [] and warm.ok == warm.n, warm.failures
        rss0 = rss_bytes(gw.pid)
        soak_round(gw, pki, key, "round 1")
        rss1 = rss_bytes(gw.pid)
        soak_round(gw, pki, key, "round 2")
        rss2 = rss_bytes(gw.pid)
        assert gw.alive()
        # The session opened first is unharmed by it all.
        s.sendall(query_message("select 1"))
        assert read_until(s, b"Z", 10)[-1][0] == b"Z"
        s.close()
        rss = (rss_start, rss0, rss1, rss2)
        print(f"RSS (KiB): {rss_start >> 10} at start, {rss0 >> 10} after the warm-up, "
              f"{rss1 >> 10} after round 1, {rss2 >> 10} after round 2")
        assert rss2 - rss_start < RSS_GROWTH_MAX, rss
        assert abs(rss2 - rss1) < RSS_ROUND_TOLERANCE, rss
    finally:
        gw.stop()
        check_no_crash([gw])
