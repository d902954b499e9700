"""pggw's admin endpoint (--metrics-listen): /metrics values after a known mix of connections,
the handshake timeout, `promtool check metrics`, a real Prometheus server scraping pggw,
/healthz and /readyz through a drain, and the certificate expiry gauge across a SIGHUP reload.

Every count below is exact. The one connection pggw sees that the test does not make itself is
the readiness probe of conftest's Pggw (wait_port: one TCP connect, closed at once, no packet),
so each test first checks that the baseline is that one accepted connection and nothing else.

Real peers only: psql (libpq 15), raw sockets, Python ssl, openssl, promtool, prometheus.
"""
import calendar
import http.client
import json
import re
import signal
import struct
import subprocess
import time
import urllib.parse
from pathlib import Path

import pytest

from conftest import (PGGW_BIN, TERMINATE, assert_ready, backends_from_binary,
                      client_context, connect, conninfo, gen_cert,
                      gssenc_request, psql, recv_all_until_close, recv_exact, reserve_port, run,
                      simple_query, ssl_request, starttls, tls_backends, trust_session,
                      wait_port)

LIBS = tls_backends()
PROMETHEUS = "/usr/bin/prometheus"
PROMTOOL = "/usr/bin/promtool"


# --------------------------------------------------------------------------------------
# Helpers: HTTP to the admin endpoint, a parser for the text exposition
# --------------------------------------------------------------------------------------
def http_get(port: int, path: str, timeout: float = 5) -> tuple[int, str, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read().decode(errors="replace"), dict(r.getheaders())
    finally:
        conn.close()


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$')
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?')


def _unescape(v: str) -> str:
    return re.sub(r'\\(.)', lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), v)


def parse_exposition(text: str) -> dict:
    """{name: {frozenset(labels.items()): value}}; fails on a line it cannot read or a sample
    that appears twice."""
    out: dict = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        assert m, f"unparseable exposition line: {line!r}"
        name, labels_s, value = m.groups()
        labels = {}
        if labels_s:
            pos = 0
            while pos < len(labels_s):
                lm = _LABEL.match(labels_s, pos)
                assert lm and lm.end() > pos, f"bad labels in {line!r}"
                labels[lm.group(1)] = _unescape(lm.group(2))
                pos = lm.end()
        key = frozenset(labels.items())
        series = out.setdefault(name, {})
        assert key not in series, f"duplicate sample {line!r}"
        series[key] = float(value)
    return out


class Metrics:
    def __init__(self, text: str):
        self.text = text
        self.m = parse_exposition(text)

    def series(self, name: str, **match) -> dict:
        """{frozenset(labels): value} of name's samples whose labels include match."""
        want = set((k, str(v)) for k, v in match.items())
        return {k: v for k, v in self.m.get(name, {}).items() if want <= k}

    def get(self, name: str, **labels):
        """The value of the sample with exactly these labels (None if absent)."""
        return self.m.get(name, {}).get(frozenset((k, str(v)) for k, v in labels.items()))

    def total(self, name: str, **match) -> float:
        return sum(self.series(name, **match).values())

    def nonzero(self, name: str, **match) -> dict:
        return {tuple(sorted(k)): v for k, v in self.series(name, **match).items() if v != 0}


def scrape(gw) -> Metrics:
    status, body, headers = http_get(gw.metrics_port, "/metrics")
    assert status == 200, (status, body[:200])
    ctype = {k.lower(): v for k, v in headers.items()}.get("content-type", "")
    assert ctype.startswith("text/plain"), ctype
    return Metrics(body)


def wait_metric(gw, pred, timeout: float = 15, what: str = "") -> Metrics:
    """Scrape until pred(metrics) is true (sessions end asynchronously after a client closes)."""
    deadline = time.monotonic() + timeout
    while True:
        m = scrape(gw)
        if pred(m):
            return m
        if time.monotonic() > deadline:
            raise AssertionError(f"metrics never satisfied {what or pred} in {timeout}s:\n"
                                 + "\n".join(l for l in m.text.splitlines()
                                             if l.startswith("pggw_")))
        time.sleep(0.05)


def idle(m: Metrics) -> bool:
    return m.get("pggw_sessions_active") == 0


def cert_not_after(path: Path) -> int:
    """notAfter of a PEM certificate as unix seconds (openssl x509 -enddate -noout)."""
    r = run(["openssl", "x509", "-enddate", "-noout", "-in", str(path)], check=True)
    s = r.stdout.strip().split("=", 1)[1]  # e.g. "Mar  1 10:59:19 2029 GMT"
    return calendar.timegm(time.strptime(s, "%b %d %H:%M:%S %Y %Z"))


def cert_subject(path: Path) -> str:
    r = run(["openssl", "x509", "-subject", "-noout", "-nameopt", "RFC2253", "-in", str(path)],
            check=True)
    return r.stdout.strip().split("=", 1)[1]


def assert_baseline(gw, lib):
    """Right after start: the readiness probe's connection (accepted, no packet) and nothing
    else, every pre-created series at 0."""
    m = wait_metric(gw, lambda m: idle(m) and m.get("pggw_connections_accepted_total") == 1,
                    what="baseline: probe connection accepted and closed")
    for kind in ("ssl", "gssenc", "cancel", "startup", "direct_tls", "invalid"):
        assert m.get("pggw_startup_requests_total", kind=kind) == 0, kind
    for reply in ("S", "N"):
        assert m.get("pggw_negotiation_replies_total", reply=reply) == 0, reply
    for leg in ("client", "server"):
        for res in ("ok", "error", "timeout"):
            assert m.get("pggw_tls_handshakes_total", leg=leg, library=lib, result=res) == 0
    assert m.nonzero("pggw_tls_handshake_errors_total") == {}
    assert m.nonzero("pggw_tls_sessions_total") == {}
    return m


def dsn(gw, sslmode, **kw):
    return conninfo(host="127.0.0.1", port=gw.port, user="bob", dbname="appdb",
                    sslmode=sslmode, **kw)


# --------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("certs")
    gw = gen_cert(d / "gw")  # CN=localhost, SANs localhost / 127.0.0.1
    rogue = gen_cert(d / "rogue")  # another CA: the client's wrong sslrootcert
    return {"ca": gw["ca.crt"], "crt": gw["server.crt"], "key": gw["server.key"],
            "rogue_ca": rogue["ca.crt"]}


@pytest.fixture(params=LIBS)
def lib(request):
    return request.param


def admin_up(gw):
    """The admin port accepts (it is open before pggw's start line, which Pggw waited for)."""
    wait_port("127.0.0.1", gw.metrics_port, 5, gw.proc)
    return gw


def start_gw(pggw, cluster, certs, lib, *extra, cert=None, key=None):
    # Two workers: every value below is a sum over per-worker shards.
    return admin_up(pggw("--tls-library", lib, "--client-tls", "prefer",
                         "--cert", str(cert or certs["crt"]), "--key", str(key or certs["key"]),
                         "--workers", "2", *extra, backend=cluster.addr))


# --------------------------------------------------------------------------------------
# Exact counts after a known mix of connections
# --------------------------------------------------------------------------------------
def test_counters_after_known_connections(pggw, cluster, certs, lib):
    gw = start_gw(pggw, cluster, certs, lib)
    assert_baseline(gw, lib)
    t_start = time.time()

    # 3 TLS sessions: SSLRequest ('S'), handshake, StartupMessage inside TLS.
    ciphers = set()
    for _ in range(3):
        r = psql(dsn(gw, "require"), "select 1", r"\conninfo")
        assert r.returncode == 0, r.stderr
        m = re.search(r"SSL connection \(protocol: (\S+), cipher: ([^,]+),", r.stdout)
        assert m, r.stdout
        assert m.group(1) == "TLSv1.3", r.stdout
        ciphers.add(m.group(2))
    assert len(ciphers) == 1, ciphers
    cipher = ciphers.pop()

    # 2 plaintext sessions: a StartupMessage only.
    for _ in range(2):
        r = psql(dsn(gw, "disable"), "select 1")
        assert r.returncode == 0 and r.stdout.strip() == "1", r.stderr

    # 1 failed handshake: libpq does not trust pggw's CA and aborts with an unknown_ca alert.
    r = psql(dsn(gw, "verify-full", sslrootcert=certs["rogue_ca"]), "select 1")
    assert r.returncode == 2
    assert "certificate verify failed" in r.stderr, r.stderr

    # 1 GSSENCRequest: answered 'N'; the client then hangs up.
    with connect(gw.addr) as s:
        s.sendall(gssenc_request())
        assert recv_exact(s, 1) == b"N"

    # 1 invalid startup packet (length 4 < 8): pggw closes the connection.
    with connect(gw.addr) as s:
        s.sendall(struct.pack("!i", 4))
        recv_all_until_close(s, 5)

    m = wait_metric(gw, lambda m: idle(m) and m.get("pggw_connections_accepted_total") == 9,
                    what="9 connections accepted and all closed")
    L = dict(leg="client", library=lib)

    # 1 readiness probe + 3 TLS + 2 plaintext + 1 failed TLS + 1 GSSENC + 1 invalid
    assert m.get("pggw_connections_accepted_total") == 9
    assert m.get("pggw_sessions_active") == 0
    kinds = {k: m.get("pggw_startup_requests_total", kind=k)
             for k in ("ssl", "gssenc", "cancel", "startup", "direct_tls", "invalid")}
    assert kinds == {"ssl": 4, "gssenc": 1, "cancel": 0, "startup": 5, "direct_tls": 0,
                     "invalid": 1}, kinds
    replies = {k: m.get("pggw_negotiation_replies_total", reply=k) for k in ("S", "N")}
    assert replies == {"S": 4, "N": 1}, replies
    assert m.get("pggw_negotiation_replies_total", reply="other") in (None, 0)

    hs = {res: m.get("pggw_tls_handshakes_total", **L, result=res)
          for res in ("ok", "error", "timeout")}
    assert hs == {"ok": 3, "error": 1, "timeout": 0}, hs
    # Nothing on the server leg (--server-tls disable) nor under another library.
    assert m.nonzero("pggw_tls_handshakes_total") == {
        tuple(sorted({**L, "result": "ok"}.items())): 3,
        tuple(sorted({**L, "result": "error"}.items())): 1}
    assert m.nonzero("pggw_tls_handshake_errors_total") == {
        tuple(sorted({**L, "reason": "unknown_ca"}.items())): 1}

    # The duration histogram has exactly the counter's label sets, and _count == counter.
    counter = m.series("pggw_tls_handshakes_total")
    assert counter, "no pggw_tls_handshakes_total series"
    assert set(m.series("pggw_tls_handshake_duration_seconds_count")) == set(counter)
    for labels, v in counter.items():
        assert m.m["pggw_tls_handshake_duration_seconds_count"][labels] == v, dict(labels)
        inf = m.m["pggw_tls_handshake_duration_seconds_bucket"][labels | {("le", "+Inf")}]
        assert inf == v, dict(labels)

    assert m.nonzero("pggw_tls_sessions_total") == {
        (("cipher", cipher), ("leg", "client"), ("version", "TLSv1.3")): 3}

    assert m.get("pggw_bytes_total", direction="client_to_server") > 0
    assert m.get("pggw_bytes_total", direction="server_to_client") > 0
    # Every accepted connection is a session from accept to close (the help text).
    assert m.get("pggw_session_duration_seconds_count") == 9
    assert m.get("pggw_session_duration_seconds_bucket", le="+Inf") == 9
    # One connection to PostgreSQL per StartupMessage forwarded.
    assert m.get("pggw_server_connect_duration_seconds_count") == 5
    assert m.nonzero("pggw_server_connect_errors_total") == {}

    subject = cert_subject(certs["crt"])
    assert subject == "CN=localhost"
    assert m.get("pggw_tls_certificate_expiry_timestamp_seconds", leg="client",
                 subject="CN=localhost") == cert_not_after(certs["crt"])
    assert m.series("pggw_tls_certificate_expiry_timestamp_seconds", leg="server") == {}

    version = re.search(r"^pggw (\S+)", run([str(PGGW_BIN), "--version"]).stdout, re.M).group(1)
    bi = m.series("pggw_build_info")
    assert len(bi) == 1, bi
    (labels, value), = bi.items()
    labels = dict(labels)
    assert value == 1
    assert labels["version"] == version, labels
    assert sorted(labels["libraries"].split(",")) == sorted(backends_from_binary()), labels
    assert lib in labels["libraries"].split(",")

    assert m.get("pggw_ready") == 1
    assert m.get("pggw_draining") == 0
    assert m.get("process_resident_memory_bytes") > 0
    assert m.get("process_open_fds") > 0
    assert m.get("process_cpu_seconds_total") is not None
    assert m.get("process_cpu_seconds_total") >= 0
    assert abs(m.get("process_start_time_seconds") - t_start) < 60


# --------------------------------------------------------------------------------------
# Handshake timeout
# --------------------------------------------------------------------------------------
def test_handshake_timeout_counted_once(pggw, cluster, certs, lib):
    gw = start_gw(pggw, cluster, certs, lib, "--handshake-timeout", "1")
    assert_baseline(gw, lib)
    with connect(gw.addr) as s:
        s.sendall(ssl_request())
        assert recv_exact(s, 1) == b"S"
        t0 = time.monotonic()
        # No ClientHello: pggw must give up after --handshake-timeout and close.
        data = recv_all_until_close(s, 15)
        waited = time.monotonic() - t0
    assert data == b"", data[:80]
    # Not before the 1 s timeout; generous above it (a loaded 2-CPU machine).
    assert 0.8 < waited < 10, waited
    time.sleep(max(0.0, 1.5 - waited))
    m = wait_metric(gw, lambda m: idle(m) and m.get("pggw_connections_accepted_total") == 2,
                    what="the timed-out connection closed")
    L = dict(leg="client", library=lib)
    hs = {res: m.get("pggw_tls_handshakes_total", **L, result=res)
          for res in ("ok", "error", "timeout")}
    assert hs == {"ok": 0, "error": 0, "timeout": 1}, hs
    assert m.get("pggw_tls_handshake_duration_seconds_count", **L, result="timeout") == 1
    # Counted as a timeout only: no eof/other for the same connection.
    assert m.nonzero("pggw_tls_handshake_errors_total") == {
        tuple(sorted({**L, "reason": "timeout"}.items())): 1}
    assert m.get("pggw_startup_requests_total", kind="ssl") == 1
    assert m.get("pggw_startup_requests_total", kind="startup") == 0
    assert m.get("pggw_negotiation_replies_total", reply="S") == 1
    assert m.nonzero("pggw_tls_sessions_total") == {}
    assert m.get("pggw_server_connect_duration_seconds_count") == 0
    assert m.get("pggw_session_duration_seconds_count") == 2


# --------------------------------------------------------------------------------------
# promtool
# --------------------------------------------------------------------------------------
def test_promtool_check_metrics(pggw, cluster, certs, lib):
    gw = start_gw(pggw, cluster, certs, lib)
    # Some traffic first, so that the lazily created series (errors, sessions) exist too.
    assert psql(dsn(gw, "require"), "select 1").returncode == 0
    r = psql(dsn(gw, "verify-full", sslrootcert=certs["rogue_ca"]), "select 1")
    assert r.returncode == 2 and "certificate verify failed" in r.stderr, r.stderr
    wait_metric(gw, lambda m: idle(m) and m.get("pggw_connections_accepted_total") == 3)
    status, body, _ = http_get(gw.metrics_port, "/metrics")
    assert status == 200
    assert "pggw_tls_handshake_errors_total{" in body and "pggw_tls_sessions_total{" in body
    r = subprocess.run([PROMTOOL, "check", "metrics"], input=body, capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, f"promtool check metrics: rc={r.returncode}\n{r.stdout}\n{r.stderr}"


# --------------------------------------------------------------------------------------
# A real Prometheus server scraping pggw (one pggw per TLS library, one Prometheus)
# --------------------------------------------------------------------------------------
def prom_query(port: int, query: str) -> dict:
    status, body, _ = http_get(port, "/api/v1/query?" + urllib.parse.urlencode({"query": query}),
                               timeout=3)
    assert status == 200, (status, body[:300])
    doc = json.loads(body)
    assert doc["status"] == "success", doc
    return doc["data"]


def test_prometheus_scrapes_pggw(pggw, cluster, certs, tmp_path):
    t0 = time.monotonic()
    # A different number of handshakes per library, so that the label values are checked too.
    want = {l: 2 + i for i, l in enumerate(LIBS)}
    gws = {}
    for l in LIBS:
        gw = start_gw(pggw, cluster, certs, l)
        ctx = client_context(cafile=certs["ca"])
        for _ in range(want[l]):
            with starttls(gw.addr, ctx) as s:
                msgs, _ = trust_session(s)
                assert_ready(msgs)
                s.sendall(TERMINATE)
        gws[l] = gw

    targets = ", ".join(f"'127.0.0.1:{g.metrics_port}'" for g in gws.values())
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text(f"""global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: pggw
    metrics_path: /metrics
    static_configs:
      - targets: [{targets}]
""")
    r = run([PROMTOOL, "check", "config", str(cfg)])
    assert r.returncode == 0, r.stdout + r.stderr
    log = open(tmp_path / "prometheus.log", "wb")
    # Prometheus must be told its port: reserved (conftest.reserve_port) until it has exited, so
    # that no other process is handed it meanwhile; Prometheus binds it all the same.
    held = reserve_port()
    port = held.getsockname()[1]
    prom = subprocess.Popen([PROMETHEUS, f"--config.file={cfg}",
                             f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{port}"],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        total = sum(want.values())
        deadline = time.monotonic() + 20
        got, by_lib, last_err = None, None, None
        while time.monotonic() < deadline:
            assert prom.poll() is None, (f"prometheus exited {prom.returncode}:\n"
                                         + (tmp_path / "prometheus.log").read_text()[-3000:])
            try:
                # 503 from every endpoint until Prometheus has opened its TSDB (slow on a busy
                # machine): wait for /-/ready before asking anything.
                ready = http_get(port, "/-/ready", timeout=3)[0]
                if ready != 200:
                    last_err = f"/-/ready answered {ready}"
                    time.sleep(0.25)
                    continue
                d = prom_query(port, 'sum(pggw_tls_handshakes_total{result="ok"})')
                got = [float(x["value"][1]) for x in d["result"]]
                d = prom_query(port, 'sum by (library) '
                                     '(pggw_tls_handshakes_total{leg="client",result="ok"})')
                by_lib = {x["metric"].get("library"): float(x["value"][1]) for x in d["result"]}
                if got == [total] and by_lib == want:
                    break
            except (OSError, http.client.HTTPException) as e:
                last_err = e
            time.sleep(0.25)
        assert got == [total] and by_lib == {l: float(v) for l, v in want.items()}, (
            f"query gave {got} / {by_lib}, want {total} / {want} (last error {last_err})\n"
            + (tmp_path / "prometheus.log").read_text()[-3000:])
        up = prom_query(port, 'up{job="pggw"}')
        assert sorted(x["value"][1] for x in up["result"]) == ["1"] * len(gws), up
    finally:
        prom.send_signal(signal.SIGTERM)
        try:
            rc = prom.wait(10)
        except subprocess.TimeoutExpired:
            prom.kill()
            prom.wait(5)
            rc = None
        log.close()
        held.close()
    assert rc == 0, f"prometheus exit {rc}"
    assert time.monotonic() - t0 < 30


# --------------------------------------------------------------------------------------
# Certificate reload (SIGHUP)
# --------------------------------------------------------------------------------------
def test_certificate_expiry_follows_reload(pggw, cluster, lib, tmp_path):
    d = tmp_path / "certs"
    files = gen_cert(d)  # CN=localhost
    gw = admin_up(pggw("--tls-library", lib, "--client-tls", "prefer",
                       "--cert", str(files["server.crt"]), "--key", str(files["server.key"]),
                       "--workers", "2", backend=cluster.addr))
    old = cert_not_after(files["server.crt"])
    assert cert_subject(files["server.crt"]) == "CN=localhost"
    m = scrape(gw)
    assert m.series("pggw_tls_certificate_expiry_timestamp_seconds", leg="client") == {
        frozenset({("leg", "client"), ("subject", "CN=localhost")}): old}

    time.sleep(1.1)  # a new notAfter second as well as a new subject
    gen_cert(d, "other.example")  # new pair into the same paths; CN is the first --hostname
    assert cert_subject(files["server.crt"]) == "CN=other.example"
    new = cert_not_after(files["server.crt"])
    assert new != old
    mark = gw.log_mark()
    gw.proc.send_signal(signal.SIGHUP)
    assert len(gw.wait_log(r"SIGHUP: TLS certificates reloaded \(client leg: .*CN=other\.example",
                           10, since=mark)) == 1, gw.log_text()[mark:]
    m = wait_metric(gw, lambda m: m.get("pggw_tls_certificate_expiry_timestamp_seconds",
                                        leg="client", subject="CN=other.example") is not None,
                    what="the new certificate's series")
    # The old subject's series is gone; only the new certificate is reported.
    assert m.series("pggw_tls_certificate_expiry_timestamp_seconds", leg="client") == {
        frozenset({("leg", "client"), ("subject", "CN=other.example")}): new}

    # And the new certificate is the one served.
    ctx = client_context(cafile=d / "ca.crt")
    with starttls(gw.addr, ctx, server_hostname="other.example") as s:
        msgs, _ = trust_session(s)
        assert_ready(msgs)
        s.sendall(TERMINATE)


# --------------------------------------------------------------------------------------
# /healthz and /readyz, through a drain (last: CTest runs pytest -x)
# --------------------------------------------------------------------------------------
def test_healthz_readyz_during_drain(pggw, cluster, certs, lib):
    # Two workers, one session: the other worker has nothing to do during the drain, and its
    # event loop must still answer the /healthz probe (health.hpp: "During a drain the loops
    # keep running, so /healthz stays 200").
    gw = start_gw(pggw, cluster, certs, lib)
    assert http_get(gw.metrics_port, "/healthz")[0] == 200
    assert http_get(gw.metrics_port, "/readyz")[0] == 200
    assert http_get(gw.metrics_port, "/nope")[0] == 404

    s = starttls(gw.addr, client_context(cafile=certs["ca"]))
    try:
        msgs, _ = trust_session(s)
        assert_ready(msgs)
        r = simple_query(s, "BEGIN")
        assert r[-1][0] == b"Z" and r[-1][1] == b"T", r  # idle in transaction
        simple_query(s, "SELECT 1")

        gw.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 3
        ready = None
        while time.monotonic() < deadline:
            ready = http_get(gw.metrics_port, "/readyz")[0]
            if ready == 503:
                break
            time.sleep(0.02)
        assert ready == 503, f"/readyz answered {ready} after SIGTERM"
        health = http_get(gw.metrics_port, "/healthz")
        assert health[0] == 200, f"/healthz answered {health[0]} {health[1]!r} during the drain"
        m = scrape(gw)
        assert m.get("pggw_draining") == 1
        assert m.get("pggw_sessions_active") == 1
        # The drain waits for the transaction.
        time.sleep(0.5)
        assert gw.alive(), "pggw exited with a transaction open"
        assert http_get(gw.metrics_port, "/readyz")[0] == 503
        health = http_get(gw.metrics_port, "/healthz")
        assert health[0] == 200, f"/healthz answered {health[0]} {health[1]!r} during the drain"

        r = simple_query(s, "COMMIT")
        assert r[-1][0] == b"Z" and r[-1][1] == b"I", r
        recv_all_until_close(s, 5)  # pggw ends the session now that it is idle
    finally:
        s.close()
    rc = gw.proc.wait(10)
    assert rc == 0, f"pggw exit status {rc}\n{gw.log_text()[-3000:]}"
