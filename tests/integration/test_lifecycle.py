"""pggw's life in a Kubernetes pod behind a load balancer: certificates rotated on disk (the
kubelet's ..data symlink swap, no signal), the drain after SIGTERM (--drain-delay,
--drain-timeout, a second signal), and an admin port that a crowd of idle connections cannot
starve.

Real peers only: psql and psycopg2 (libpq 15), Python ssl and raw protocol bytes, HTTP from
Python sockets bound to a second loopback address (127.0.0.2) as another source.
"""
import math
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import psycopg2
import pytest

from conftest import (PGGW_BIN, PSQL, TERMINATE, BioTls, assert_ready, clean_client_env,
                      client_context, closing_all, conninfo, connect, describe, error_fields,
                      gen_cert, parse_messages, psql, recv_all_until_close, recv_exact, run,
                      simple_query, ssl_request, starttls, tls_backends, trust_session)
from helpers_assert import binary_run_under, cpus_allowed, start_line_field

LIBS = tls_backends()


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------
def http_get(port: int, path: str, source: str | None = None, timeout: float = 5):
    """GET over a fresh connection (from `source`, a local address, when given): (status, body)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.settimeout(timeout)
        if source:
            s.bind((source, 0))
        s.connect(("127.0.0.1", port))
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: pggw\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/1.") else 0
    return status, body.decode(errors="replace")


def metric(gw, series: str) -> float | None:
    """The value of one sample, written exactly as exported (name{labels})."""
    status, body = http_get(gw.metrics_port, "/metrics")
    assert status == 200, status
    for line in body.splitlines():
        name, _, value = line.rpartition(" ")
        if name == series:
            return float(value)
    return None


def wait_for(pred, timeout: float, what: str, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(step)


def dsn(gw, sslmode="disable"):
    return conninfo(host="127.0.0.1", port=gw.port, user="bob", dbname="appdb", sslmode=sslmode)


def first_cert_der(pem_file: Path) -> bytes:
    """The first certificate of a PEM file (the leaf), DER."""
    text = pem_file.read_text()
    end = "-----END CERTIFICATE-----"
    return ssl.PEM_cert_to_DER_cert(text[:text.index(end) + len(end)] + "\n")


def served_cert(gw) -> bytes:
    """The certificate pggw presents to a new TLS handshake (SSLRequest, then TLS), DER."""
    with starttls(gw.addr, client_context()) as s:
        return s.getpeercert(binary_form=True)


class SecretMount:
    """A directory laid out as the kubelet writes a mounted Secret:
        dir/..2026_NN/{tls.crt,tls.key}   the files of one version
        dir/..data -> ..2026_NN           swapped atomically (a new symlink renamed over it)
        dir/tls.crt -> ..data/tls.crt     what pggw is given
    """

    def __init__(self, path: Path):
        self.path = path
        path.mkdir(parents=True)
        self.current = None
        self.n = 0

    def _version(self, crt: Path, key: Path) -> str:
        self.n += 1
        name = f"..2026_11_30_10_00_{self.n:02d}.{os.getpid()}"
        d = self.path / name
        d.mkdir()
        shutil.copyfile(crt, d / "tls.crt")
        shutil.copyfile(key, d / "tls.key")
        os.chmod(d / "tls.key", 0o600)
        return name

    def init(self, crt: Path, key: Path):
        self.current = self._version(crt, key)
        os.symlink(self.current, self.path / "..data")
        os.symlink("..data/tls.crt", self.path / "tls.crt")
        os.symlink("..data/tls.key", self.path / "tls.key")

    def swap(self, crt: Path, key: Path):
        new = self._version(crt, key)
        os.symlink(new, self.path / "..data_tmp")
        os.rename(self.path / "..data_tmp", self.path / "..data")  # atomic
        shutil.rmtree(self.path / self.current)
        self.current = new

    @property
    def crt(self) -> Path:
        return self.path / "tls.crt"

    @property
    def key(self) -> Path:
        return self.path / "tls.key"


# --------------------------------------------------------------------------------------
# Certificates rotated on disk
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("lib", LIBS)
def test_certificate_rotated_by_symlink_swap_without_signal(pggw, cluster, lib, tmp_path):
    a = gen_cert(tmp_path / "a", "localhost")
    b = gen_cert(tmp_path / "b", "rotated.pggw.test", "localhost")
    c = gen_cert(tmp_path / "c", "third.pggw.test", "localhost")
    mount = SecretMount(tmp_path / "secret")
    mount.init(a["server.crt"], a["server.key"])
    gw = pggw("--tls-library", lib, "--client-tls", "require", "--cert", str(mount.crt),
              "--key", str(mount.key), "--workers", "2", backend=cluster.addr)
    assert gw.wait_log(r"watching .*secret.* for certificate changes", 5), gw.log_text()
    assert served_cert(gw) == first_cert_der(a["server.crt"])
    assert metric(gw, 'pggw_tls_reloads_total{result="ok"}') == 0
    assert metric(gw, 'pggw_tls_reloads_total{result="error"}') == 0

    # A session opened before any rotation, kept open across all of them.
    conn = psycopg2.connect(dsn(gw, "require"), connect_timeout=5)
    try:
        cur = conn.cursor()
        cur.execute("select 1")
        assert cur.fetchone() == (1,)

        # 1. The kubelet's swap, no signal: new handshakes get the new certificate.
        t0 = time.monotonic()
        mount.swap(b["server.crt"], b["server.key"])
        want = first_cert_der(b["server.crt"])
        wait_for(lambda: served_cert(gw) == want, 10, "the new certificate served")
        elapsed = time.monotonic() - t0
        assert elapsed < 10, f"reloaded after {elapsed:.1f}s"
        assert metric(gw, 'pggw_tls_reloads_total{result="ok"}') == 1
        assert metric(gw, 'pggw_tls_reloads_total{result="error"}') == 0
        expiry = "pggw_tls_certificate_expiry_timestamp_seconds"
        assert metric(gw, f'{expiry}{{leg="client",subject="CN=rotated.pggw.test"}}')
        assert metric(gw, f'{expiry}{{leg="client",subject="CN=localhost"}}') is None
        assert gw.wait_log(r"certificate files changed: TLS certificates reloaded", 2)
        cur.execute("select 2")
        assert cur.fetchone() == (2,)
        # A new libpq session verifies the new certificate against the new CA.
        r = psql(conninfo(host="localhost", port=gw.port, user="bob", dbname="appdb",
                          sslmode="verify-full", sslrootcert=b["ca.crt"]), "select 'new'")
        assert r.returncode == 0 and r.stdout.strip() == "new", r.stderr

        # 2. A broken replacement (c's certificate with a's key): the old one keeps serving.
        mount.swap(c["server.crt"], a["server.key"])
        wait_for(lambda: metric(gw, 'pggw_tls_reloads_total{result="error"}') == 1, 5,
                 "the failed reload counted")
        assert gw.wait_log(r"certificate files changed: TLS reload failed, keeping the current "
                           r"certificates", 2), gw.log_text()[-2000:]
        assert served_cert(gw) == want
        assert metric(gw, 'pggw_tls_reloads_total{result="ok"}') == 1
        assert metric(gw, f'{expiry}{{leg="client",subject="CN=rotated.pggw.test"}}')
        cur.execute("select 3")
        assert cur.fetchone() == (3,)
        r = psql(dsn(gw, "require"), "select 'still served'")
        assert r.returncode == 0 and r.stdout.strip() == "still served", r.stderr

        # 3. Fixed: the good pair is taken.
        mount.swap(c["server.crt"], c["server.key"])
        want = first_cert_der(c["server.crt"])
        wait_for(lambda: served_cert(gw) == want, 5, "the repaired certificate served")
        assert metric(gw, 'pggw_tls_reloads_total{result="ok"}') == 2
        assert metric(gw, 'pggw_tls_reloads_total{result="error"}') == 1

        # SIGHUP still reloads, and counts.
        gw.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: metric(gw, 'pggw_tls_reloads_total{result="ok"}') == 3, 5,
                 "the SIGHUP reload counted")

        cur.execute("select 4")
        assert cur.fetchone() == (4,)
    finally:
        conn.close()
    assert gw.alive()


# --------------------------------------------------------------------------------------
# SIGHUP
# --------------------------------------------------------------------------------------
def reloads(gw, result: str) -> float:
    return metric(gw, f'pggw_tls_reloads_total{{result="{result}"}}')


def watcher_reloads(gw, mark, what: str) -> int:
    """Reloads the file watcher logged since mark ("TLS reload failed", "TLS certificates
    reloaded")."""
    return gw.log_text()[mark:].count(f"certificate files changed: {what}")


@pytest.mark.parametrize("lib", LIBS)
def test_failed_sighup_reload_keeps_the_old_certificate(pggw, cluster, lib, tmp_path):
    """A certificate file broken on disk, then SIGHUP: the reload fails and is counted
    ({result="error"} +1, the error logged under SIGHUP), the old certificate keeps serving new
    handshakes (verified against its CA), an open session is untouched; the repaired file is
    taken at the next SIGHUP."""
    a = gen_cert(tmp_path / "a", "localhost")
    crt, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    shutil.copyfile(a["server.crt"], crt)
    shutil.copyfile(a["server.key"], key)
    os.chmod(key, 0o600)
    gw = pggw("--tls-library", lib, "--client-tls", "require", "--cert", str(crt), "--key",
              str(key), backend=cluster.addr)
    old = first_cert_der(a["server.crt"])
    assert served_cert(gw) == old
    assert (reloads(gw, "ok"), reloads(gw, "error")) == (0, 0)
    conn = psycopg2.connect(dsn(gw, "require"), connect_timeout=5)
    try:
        cur = conn.cursor()
        cur.execute("select 1")
        # Broken: the PEM cut in the middle of its base64 (a half-written file).
        text = a["server.crt"].read_text()
        crt.write_text(text[:len(text) // 2])
        # The file watcher may see the change and fail first; either way SIGHUP must fail too.
        time.sleep(0.5)
        errors_before = reloads(gw, "error")
        assert errors_before in (0, 1), errors_before
        mark = gw.log_mark()
        gw.proc.send_signal(signal.SIGHUP)
        # The watcher's own attempt can land after errors_before was read (it did under load,
        # at the same millisecond as the SIGHUP's): the count is the SIGHUP's one plus those.
        wait_for(lambda: reloads(gw, "error") ==
                 errors_before + 1 + watcher_reloads(gw, mark, "TLS reload failed"), 10,
                 "the failed SIGHUP reload counted")
        lines = gw.wait_log(r"SIGHUP: TLS reload failed, keeping the current certificates: \S",
                            5, since=mark)
        assert len(lines) == 1, gw.log_text()[mark:]
        assert reloads(gw, "ok") == 0
        assert served_cert(gw) == old
        r = psql(conninfo(host="localhost", port=gw.port, user="bob", dbname="appdb",
                          sslmode="verify-full", sslrootcert=a["ca.crt"]), "select 'old cert'")
        assert r.returncode == 0 and r.stdout.strip() == "old cert", r.stderr
        cur.execute("select 2")
        assert cur.fetchone() == (2,)

        # Repaired (a new pair): the next SIGHUP takes it.
        b = gen_cert(tmp_path / "b", "repaired.pggw.test", "localhost")
        shutil.copyfile(b["server.key"], key)
        shutil.copyfile(b["server.crt"], crt)
        time.sleep(0.5)
        ok_before = reloads(gw, "ok")
        mark = gw.log_mark()
        gw.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: reloads(gw, "ok") ==
                 ok_before + 1 + watcher_reloads(gw, mark, "TLS certificates reloaded"), 10,
                 "the SIGHUP reload counted")
        lines = gw.wait_log(r"SIGHUP: TLS certificates reloaded", 5, since=mark)
        assert len(lines) == 1, gw.log_text()[mark:]
        assert served_cert(gw) == first_cert_der(b["server.crt"])
        cur.execute("select 3")
        assert cur.fetchone() == (3,)
    finally:
        conn.close()
    assert gw.alive()


def _tls_session_query(addr, ctx, tag: int) -> str:
    with starttls(addr, ctx, timeout=20) as s:
        assert_ready(trust_session(s, timeout=20)[0])
        out = simple_query(s, f"select 'loop {tag}'", timeout=20)
        s.sendall(TERMINATE)
    rows = [p for k, p in out if k == b"D"]
    assert out[-1][0] == b"Z" and rows and f"loop {tag}".encode() in rows[0], describe(out)
    return s.version()


@pytest.mark.parametrize("lib", LIBS)
def test_sighup_with_handshakes_and_sessions_in_flight(pggw, cluster, lib, tmp_path):
    """SIGHUPs while TLS handshakes are half done (part of a ClientHello sent; a whole
    ClientHello answered, the client's Finished not yet sent), sessions are open, and new
    sessions keep coming: none fails, every reload counts as ok."""
    a = gen_cert(tmp_path / "a", "localhost")
    gw = pggw("--tls-library", lib, "--client-tls", "require", "--cert", str(a["server.crt"]),
              "--key", str(a["server.key"]), "--workers", "2", backend=cluster.addr)
    ctx = client_context(a["ca.crt"])
    socks = []
    with closing_all(socks):
        # Open sessions, idle across the reloads.
        open_sessions = []
        for _ in range(3):
            s = starttls(gw.addr, ctx, timeout=20)
            socks.append(s)
            assert_ready(trust_session(s, timeout=20)[0])
            open_sessions.append(s)
        # Handshakes in flight: half a ClientHello sent ...
        halves = []
        for _ in range(2):
            raw = connect(gw.addr, timeout=20)
            socks.append(raw)
            raw.sendall(ssl_request())
            assert recv_exact(raw, 1) == b"S"
            t = BioTls(raw, ctx)
            hello = t.client_hello()
            raw.sendall(hello[:len(hello) // 2])
            halves.append((t, hello[len(hello) // 2:]))
        # ... and a whole one, the server's flight waiting unread (client Finished not sent).
        whole = []
        for _ in range(2):
            raw = connect(gw.addr, timeout=20)
            socks.append(raw)
            raw.sendall(ssl_request())
            assert recv_exact(raw, 1) == b"S"
            t = BioTls(raw, ctx)
            raw.sendall(t.client_hello())
            whole.append(t)
        time.sleep(0.3)  # the server has read what was sent

        # New sessions all along.
        stop, done, failures = threading.Event(), [], []

        def loop():
            n = 0
            while not stop.is_set():
                n += 1
                try:
                    done.append(_tls_session_query(gw.addr, ctx, n))
                except Exception as e:  # noqa: BLE001 (every failure is reported below)
                    failures.append(f"session {n}: {e!r}")
        loopers = [threading.Thread(target=loop) for _ in range(2)]
        for t in loopers:
            t.start()
        try:
            mark = gw.log_mark()
            hups = 5
            for i in range(1, hups + 1):
                gw.proc.send_signal(signal.SIGHUP)
                # One at a time: signals sent while one is pending would be merged.
                wait_for(lambda: reloads(gw, "ok") == i, 10, f"SIGHUP reload {i} counted")
                time.sleep(0.1)
            loops_during = len(done)
        finally:
            stop.set()
            for t in loopers:
                t.join(60)
        assert not failures, failures[:5]
        assert loops_during >= 2, f"only {loops_during} sessions during the reloads"
        assert reloads(gw, "error") == 0
        assert len(gw.wait_log(r"SIGHUP: TLS certificates reloaded", 5, count=hups,
                               since=mark)) == hups

        # The interrupted handshakes complete, and their sessions work.
        for t, rest in halves:
            t.handshake(rest)
        for t in whole:
            t.handshake()
        for i, t in enumerate([t for t, _ in halves] + whole):
            assert_ready(trust_session(t, timeout=20)[0])
            out = simple_query(t, f"select 'in flight {i}'", timeout=20)
            assert out[-1][0] == b"Z" and any(f"in flight {i}".encode() in p for k, p in out
                                              if k == b"D"), describe(out)
        for i, s in enumerate(open_sessions):
            out = simple_query(s, f"select 'open {i}'", timeout=20)
            assert out[-1][0] == b"Z" and any(f"open {i}".encode() in p for k, p in out
                                              if k == b"D"), describe(out)
    assert gw.alive()


# --------------------------------------------------------------------------------------
# Defaults taken from the process's environment
# --------------------------------------------------------------------------------------
def _cgroup_cpus() -> int | None:
    """CPUs allowed by a cgroup v2 quota ("max 100000" = none), as pggw reads it."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    return max(1, math.ceil(float(quota) / float(period)))


def test_workers_default_is_the_cpus_pggw_may_use(pggw, cluster, tmp_path):
    """No --workers: one worker per CPU of the process's affinity (and cgroup quota). Under
    `taskset -c 0` (or this process's first CPU), one; without, as many as this process may
    use."""
    cpu = min(os.sched_getaffinity(0))  # CPU 0 where this process may use it
    with binary_run_under(["taskset", "-c", str(cpu)], tmp_path):
        one = pggw("--client-tls", "disable", backend=cluster.addr)
    # taskset exec'd pggw: the process watched (crash checks, stop) is pggw itself.
    assert os.readlink(f"/proc/{one.pid}/exe") == str(PGGW_BIN.resolve())
    assert os.sched_getaffinity(one.pid) == {cpu}
    assert start_line_field(one, "workers") == "1"
    with connect(one.addr) as s:
        assert_ready(trust_session(s)[0])
    want = cpus_allowed()
    if _cgroup_cpus() is not None:
        want = min(want, _cgroup_cpus())
    every = pggw("--client-tls", "disable", backend=cluster.addr)
    assert start_line_field(every, "workers") == str(want)


@pytest.mark.parametrize("nofile,want", [
    ("1000", (1000 - 64) // 2),      # soft = hard = 1000
    ("200:1000", (1000 - 64) // 2),  # the soft limit is raised to the hard one first
    ("4096", (4096 - 64) // 2),
    ("100", 32),                     # 128 or fewer: 32
])
def test_max_connections_default_follows_the_open_file_limit(pggw, cluster, tmp_path, nofile,
                                                              want):
    """No --max-connections: (open-file limit - 64) / 2, the limit taken after pggw raised its
    soft limit to the hard one (gateway/app/config.cpp default_max_connections)."""
    with binary_run_under(["prlimit", f"--nofile={nofile}", "--"], tmp_path):
        gw = pggw("--client-tls", "disable", "--workers", "1", backend=cluster.addr)
    assert os.readlink(f"/proc/{gw.pid}/exe") == str(PGGW_BIN.resolve())
    assert start_line_field(gw, "max_connections") == str(want)
    limits = Path(f"/proc/{gw.pid}/limits").read_text()
    hard = nofile.split(":")[-1]
    assert re.search(rf"Max open files\s+{hard}\s+{hard}\s", limits), limits
    with connect(gw.addr) as s:
        assert_ready(trust_session(s)[0])


# --------------------------------------------------------------------------------------
# Drain
# --------------------------------------------------------------------------------------
def fatal_57p01(data: bytes) -> dict:
    msgs = parse_messages(data)
    assert msgs and msgs[-1][0] == b"E", f"no ErrorResponse before the close: {data[:120]!r}"
    f = error_fields(msgs[-1][1])
    assert f["C"] == "57P01" and f["S"] == "FATAL", describe(msgs)
    assert f["M"] == "terminating connection due to administrator command", f
    return f


def refused(addr) -> bool:
    try:
        with socket.create_connection(addr, timeout=1):
            return False
    except ConnectionRefusedError:
        return True


def test_drain_delay_then_timeout(pggw, cluster):
    """--drain-delay 4 --drain-timeout 4: /readyz 503 at once; new sessions served for 4 s, then
    connections refused; a query running at SIGTERM completes; a transaction still open at the
    timeout (4 + 4 s) gets FATAL 57P01; pggw exits 0. (Seconds, not fractions: the checks
    inside each phase must fit in it on a loaded 2-CPU machine.)"""
    gw = pggw("--client-tls", "disable", "--drain-delay", "4", "--drain-timeout", "4",
              backend=cluster.addr)
    assert http_get(gw.metrics_port, "/readyz")[0] == 200
    in_tx = connect(gw.addr)
    with closing_all([in_tx]):
        msgs, _ = trust_session(in_tx)
        assert_ready(msgs)
        out = simple_query(in_tx, "begin")
        assert out[-1] == (b"Z", b"T"), describe(out)

        sleeper = subprocess.Popen(
            [PSQL, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", dsn(gw), "-c",
             "select 'slept' from pg_sleep(3)"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_client_env())
        wait_for(lambda: cluster.sql("select count(*) from pg_stat_activity "
                                     "where query like '%pg_sleep(3)%' and pid <> "
                                     "pg_backend_pid()") == "1", 5, "pg_sleep running")

        gw.proc.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        wait_for(lambda: http_get(gw.metrics_port, "/readyz")[0] == 503, 3, "/readyz 503")
        assert http_get(gw.metrics_port, "/healthz")[0] == 200
        assert gw.wait_log(r"SIGTERM: draining: /readyz answers 503; new sessions still served "
                           r"for 4s", 3)

        # During the delay: a new session is served.
        time.sleep(0.5)
        r = psql(dsn(gw), "select 'during the delay'")
        assert r.returncode == 0 and r.stdout.strip() == "during the delay", r.stderr
        assert time.monotonic() - t0 < 4, "the check ran after the delay"

        # After the delay: refused.
        wait_for(lambda: refused(gw.addr), 6, "connections refused after the delay")
        assert time.monotonic() - t0 >= 3.9

        # The query running at SIGTERM completes.
        out, err = sleeper.communicate(timeout=10)
        assert sleeper.returncode == 0 and out.strip() == "slept", err
        assert gw.alive(), "pggw exited before the timeout with a transaction open"

        # The open transaction: FATAL 57P01 at the timeout, then the connection is closed.
        data = recv_all_until_close(in_tx, 15)
        t_end = time.monotonic() - t0
        fatal_57p01(data)
        assert 7.5 <= t_end <= 12, f"ended {t_end:.1f}s after SIGTERM (delay 4 + timeout 4)"
    rc = gw.proc.wait(10)
    assert rc == 0, f"exit status {rc}\n{gw.log_text()[-3000:]}"
    log = gw.log_text()
    assert "drain timeout: ending 1 remaining sessions" in log, log[-3000:]
    assert re.search(r"reason=\W?drain timeout", log), log[-3000:]


def test_drain_ends_idle_sessions_and_waits_for_a_query(pggw, cluster):
    """No delay: an idle session gets 57P01 at once, a running query is answered first (then
    57P01 too), and pggw exits 0 before the timeout."""
    gw = pggw("--client-tls", "disable", "--drain-timeout", "20", backend=cluster.addr)
    idle, busy = connect(gw.addr), connect(gw.addr)
    with closing_all([idle, busy]):
        for s in (idle, busy):
            assert_ready(trust_session(s)[0])
        busy.sendall(b"Q" + (len("select pg_sleep(1.5)") + 5).to_bytes(4, "big") +
                     b"select pg_sleep(1.5)\0")
        time.sleep(0.2)
        gw.proc.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        fatal_57p01(recv_all_until_close(idle, 15))
        assert time.monotonic() - t0 < 10  # at once, not at the 20 s timeout
        data = recv_all_until_close(busy, 15)
        kinds = [k for k, _ in parse_messages(data)]
        assert kinds[:2] == [b"T", b"D"] and b"Z" in kinds, describe(parse_messages(data))
        fatal_57p01(data)
    rc = gw.proc.wait(15)
    assert rc == 0, gw.log_text()[-3000:]
    assert time.monotonic() - t0 < 15  # before the 20 s timeout


@pytest.mark.parametrize("first,second", [(signal.SIGTERM, signal.SIGTERM),
                                          (signal.SIGINT, signal.SIGTERM)])
def test_second_signal_exits_at_once(pggw, cluster, first, second):
    gw = pggw("--client-tls", "disable", "--drain-delay", "10", "--drain-timeout", "30",
              backend=cluster.addr)
    s = connect(gw.addr)
    with closing_all([s]):
        assert_ready(trust_session(s)[0])
        assert simple_query(s, "begin")[-1] == (b"Z", b"T")
        gw.proc.send_signal(first)
        assert gw.wait_log(r"draining", 5)
        time.sleep(0.3)
        assert gw.alive()
        mark = gw.log_mark()
        t0 = time.monotonic()
        gw.proc.send_signal(second)
        rc = gw.proc.wait(10)
        # At once: not after the 10 s delay nor the 30 s timeout.
        assert time.monotonic() - t0 < 8
        assert rc == 0, gw.log_text()[-2000:]
        name = "SIGTERM" if second == signal.SIGTERM else "SIGINT"
        assert gw.wait_log(rf"second signal \({name}\): stopping now", 1, since=mark), \
            gw.log_text()[mark:]


def test_drain_settings_from_the_config_file(tmp_path):
    good = tmp_path / "good.toml"
    good.write_text('drain-delay = 15\ndrain_timeout = 45.5\nlisten = ["127.0.0.1:0"]\n')
    r = run([str(PGGW_BIN), "check-config", "--config", str(good)], timeout=20)
    assert r.returncode == 0, r.stdout + r.stderr
    zero = tmp_path / "zero.toml"
    zero.write_text("drain-delay = 0\n")
    r = run([str(PGGW_BIN), "check-config", "--config", str(zero)], timeout=20)
    assert r.returncode == 0, r.stdout + r.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text("\ndrain-timeout = 0\n")
    r = run([str(PGGW_BIN), "check-config", "--config", str(bad)], timeout=20)
    assert r.returncode != 0
    assert f"{bad}:2:" in r.stdout + r.stderr and "drain-timeout" in r.stdout + r.stderr
    # Refused before anything starts (exit 2, the flag named).
    for flag, value in (("--drain-delay", "-1"), ("--drain-timeout", "0"),
                        ("--drain-delay", "soon")):
        r = run([str(PGGW_BIN), flag, value, "--listen", "127.0.0.1:0", "--metrics-listen",
                 "127.0.0.1:0"], timeout=20)
        assert r.returncode == 2 and flag in r.stderr, (flag, value, r.stdout + r.stderr)


# --------------------------------------------------------------------------------------
# Admin port under a crowd
# --------------------------------------------------------------------------------------
def test_admin_port_answers_probes_while_a_crowd_holds_connections(pggw, cluster):
    gw = pggw("--client-tls", "disable", backend=cluster.addr)
    port = gw.metrics_port
    crowd = []
    with closing_all(crowd):
        for _ in range(64):  # the 64 idle connections, from one source
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            crowd.append(s)
            s.bind(("127.0.0.1", 0))
            s.settimeout(5)
            s.connect(("127.0.0.1", port))
        # Probes from another source: answered at once.
        for path, want in (("/healthz", 200), ("/readyz", 200), ("/metrics", 200)):
            t0 = time.monotonic()
            status, body = http_get(port, path, source="127.0.0.2", timeout=10)
            assert status == want, (path, status, body[:200])
            # Not held behind the crowd (whose connections wait out a 5 s request deadline).
            assert time.monotonic() - t0 < 4, f"{path} took {time.monotonic() - t0:.2f}s"
        # Most of the crowd was turned away at once (16 per source); the rest is closed after
        # the 5 s request deadline.
        t0 = time.monotonic()
        open_after = 0
        for s in crowd:
            s.settimeout(max(0.05, 12 - (time.monotonic() - t0)))
            try:
                if s.recv(1) == b"":
                    continue
            except (ConnectionResetError, socket.timeout):
                pass
            open_after += 1
        assert open_after == 0, f"{open_after} idle connections still open after 12 s"
        assert gw.wait_log(r"admin: closed \d+ connection\(s\) over the cap .*16 per source", 2)


def test_admin_port_closes_a_connection_sending_headers_slowly(pggw, cluster):
    gw = pggw("--client-tls", "disable", backend=cluster.addr)
    s = socket.create_connection(("127.0.0.1", gw.metrics_port), timeout=10)
    with closing_all([s]):
        t0 = time.monotonic()
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: pggw\r\n")
        closed_at = None
        for i in range(20):  # one header line a second: never a whole request
            time.sleep(0.5)
            try:
                s.sendall(f"X-Slow-{i}: 1\r\n".encode())
            except (BrokenPipeError, ConnectionResetError):
                closed_at = time.monotonic() - t0
                break
            s.settimeout(0.5)
            try:
                if s.recv(1024) == b"":
                    closed_at = time.monotonic() - t0
                    break
            except socket.timeout:
                pass
            except ConnectionResetError:
                closed_at = time.monotonic() - t0
                break
        assert closed_at is not None, "the slow connection was never closed"
        assert 4.5 <= closed_at <= 10, f"closed after {closed_at:.1f}s (deadline 5 s)"
    # And a normal probe right after is fine.
    assert http_get(gw.metrics_port, "/healthz")[0] == 200
