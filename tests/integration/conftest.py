"""Shared helpers for pggw's integration tests.

Every test_*.py file is run by CTest as its own pytest process, so the session-scoped
fixtures below (the PostgreSQL cluster above all) are per file: each file starts its own
throwaway PostgreSQL 15 cluster and stops it at the end. CTest runs the files in parallel, so
no process here is started on a port found free and released (see free_port): pggw takes port 0
and tells its ports in its start line (Pggw), a server that needs its port up front gets one
held by reserve_port().

Real peers only: PostgreSQL 15 (initdb/pg_ctl), psql, pgbench, openssl s_client, psycopg2,
Python's ssl/socket for raw protocol bytes. Nothing here mocks PostgreSQL.

Environment (set by tests/CMakeLists.txt; defaults for a manual run in brackets):
  PGGW_BUILD_DIR   directory with ./pggw and the TLS modules   [<source>/build]
  PGGW_SOURCE_DIR  the source tree                             [../..]
  PGGW_BACKENDS    ";"-separated TLS libraries compiled in     [modules found in the build dir]

Sanitizer builds (PGGW_BUILD_DIR pointing at a PGGW_SANITIZE or PGGW_TSAN build; see
scripts/sanitize.sh): every pggw these tests run, whether through Pggw, run() or a script,
writes its sanitizer reports to a file of its own in SANITIZER_DIR (log_path, one file per pid),
and any such file fails a test: the one that started that pggw, or the one running when a pggw
started otherwise wrote it (see "Sanitizer reports" below).
"""
from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import pytest

# ---------------------------------------------------------------------------------------
# Locations
# ---------------------------------------------------------------------------------------
HERE = Path(__file__).resolve().parent
SOURCE_DIR = Path(os.environ.get("PGGW_SOURCE_DIR") or HERE.parent.parent).resolve()
BUILD_DIR = Path(os.environ.get("PGGW_BUILD_DIR") or SOURCE_DIR / "build").resolve()
PGGW_BIN = BUILD_DIR / "pggw"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
PSQL = shutil.which("psql") or str(PG_BIN / "psql")
PGBENCH = shutil.which("pgbench") or str(PG_BIN / "pgbench")

ALICE_PASSWORD = "alice-s3cret"  # SCRAM user
IS_ROOT = os.geteuid() == 0

# ---------------------------------------------------------------------------------------
# Sanitizer reports
# ---------------------------------------------------------------------------------------
# Set here, in this process's environment, so that every pggw the tests start inherits them:
# Pggw, run([PGGW_BIN, ...]) and scripts/demo.sh alike. A build without sanitizers ignores
# them; so do PostgreSQL, psql and the other peers (not instrumented). Each report goes to
# SANITIZER_DIR/report.<pid> (log_path), not to stderr: a file cannot be forged by a client
# string in pggw's log, and it names the process that wrote it. Options already in the
# environment come after ours, so a manual run can override any of them.
#   ASan/UBSan: the first error aborts pggw (SIGABRT, a crash), and its report file is kept.
#   LeakSanitizer (part of ASan): at pggw's exit; a clean SIGTERM shutdown must leak nothing.
#   TSan: every race is reported (halt_on_error=0, so one run shows them all); any report
#   fails the test.
SANITIZER_DIR = Path(tempfile.mkdtemp(prefix="pggw-it-san-"))
SUPPRESSIONS_DIR = SOURCE_DIR / "tests" / "sanitizers"
_report = f"log_path={SANITIZER_DIR}/report"
SANITIZER_ENV = {
    "ASAN_OPTIONS": f"abort_on_error=1:halt_on_error=1:detect_leaks=1:"
                    f"detect_stack_use_after_return=1:{_report}",
    "LSAN_OPTIONS": f"suppressions={SUPPRESSIONS_DIR}/lsan.supp:print_suppressions=0",
    "UBSAN_OPTIONS": f"abort_on_error=1:halt_on_error=1:print_stacktrace=1:{_report}",
    "TSAN_OPTIONS": f"halt_on_error=0:second_deadlock_stack=1:"
                    f"suppressions={SUPPRESSIONS_DIR}/tsan.supp:{_report}",
}
for _name, _value in SANITIZER_ENV.items():
    os.environ[_name] = _value + (":" + os.environ[_name] if os.environ.get(_name) else "")
# The header line of a report, should one reach stderr after all (log_path unusable).
SANITIZER_HEADER = re.compile(r"^==\d+==(ERROR|WARNING): \w+Sanitizer|^\S+:\d+:\d+: runtime "
                              r"error: ", re.M)
_reports_claimed: set[Path] = set()  # report files already charged to a test


def _sanitizer_of_build() -> str | None:
    """"asan" (ASan+UBSan), "tsan" or None: how the pggw under test was built. For tests whose
    bounds a sanitizer changes: ASan's quarantine holds freed memory (RSS grows by up to
    256 MiB), TSan runs several times slower."""
    try:
        cache = (BUILD_DIR / "CMakeCache.txt").read_text(errors="replace")
    except OSError:
        return None
    for option, name in (("PGGW_SANITIZE", "asan"), ("PGGW_TSAN", "tsan")):
        if re.search(rf"^{option}:BOOL=ON$", cache, re.M):
            return name
    return None


SANITIZER = _sanitizer_of_build()


def sanitizer_reports(pid: int | None = None) -> dict[Path, str]:
    """Report files not yet charged to a test (or only pid's): path -> text."""
    out = {}
    for f in sorted(SANITIZER_DIR.glob("report.*")):
        if f in _reports_claimed or (pid is not None and f.suffix != f".{pid}"):
            continue
        out[f] = f.read_text(errors="replace")
    return out


def claim_reports(reports: dict[Path, str]) -> str:
    """Mark these reports as charged and return them as one text for a failure message."""
    _reports_claimed.update(reports)
    return "\n".join(f"--- {f.name} ---\n{text[-20000:]}" for f, text in reports.items())


def backends_from_env() -> list[str]:
    return [b for b in re.split(r"[;, ]+", os.environ.get("PGGW_BACKENDS", "")) if b]


def backends_from_binary() -> list[str]:
    """The TLS libraries `pggw --version` reports ("tls-library NAME: ..." lines)."""
    try:
        r = subprocess.run([str(PGGW_BIN), "--version"], capture_output=True, text=True,
                           timeout=10)
    except (OSError, subprocess.SubprocessError):
        return []
    return re.findall(r"tls-library (\w+)", r.stdout + r.stderr)


def tls_backends() -> list[str]:
    """Every TLS library to test: PGGW_BACKENDS, plus any other the binary reports (so that a
    mangled PGGW_BACKENDS cannot silently drop a library from the tests)."""
    out = []
    for b in backends_from_env() + backends_from_binary():
        if b not in out:
            out.append(b)
    if not out:
        out = [b for b in ("boringssl", "wolfssl") if (BUILD_DIR / f"libpggw_tls_{b}.so").exists()]
    return out or ["boringssl", "wolfssl"]


# ---------------------------------------------------------------------------------------
# Small utilities
# ---------------------------------------------------------------------------------------
def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (bind to 0 and release it).

    Only for a port nothing is meant to bind, such as a config file that check-config reads.
    Once released, the port can be handed to any other process (the test files run in
    parallel): a server started on it may fail to bind or, with SO_REUSEPORT (pggw), share it
    silently with another. Start pggw on port 0 (Pggw does), use closed_port() for an address
    that must refuse connections, reserve_port() for a server that needs its port up front."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def reserve_port(host: str = "127.0.0.1", reuseport: bool = False) -> socket.socket:
    """A socket bound to a kernel-chosen port that never listens, for a server that must be told
    its port up front (PostgreSQL, Prometheus, scripts/demo.sh): keep it open until that server
    is gone; the port is .getsockname()[1]. Connections to the port are refused until the
    server listens.

    While it is open, no other process is handed the port: Linux never gives a port in use to
    a bind to port 0 (free_port(), pggw's --listen HOST:0), whatever the options. The server
    itself can still bind it, as it sets the same option on its listener: SO_REUSEADDR
    (PostgreSQL, Prometheus, pggw's metrics listener; allowed next to a socket that does not
    listen) or, with reuseport=True, SO_REUSEPORT (pggw's client listeners; same uid needed)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuseport:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind((host, 0))
    return s


@contextlib.contextmanager
def closed_port(host: str = "127.0.0.1"):
    """A port that refuses connections for the duration of the with block: it is bound (no
    options, never listening) by this process, so nothing else can listen on it meanwhile."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        yield s.getsockname()[1]


def wait_port(host: str, port: int, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing accepts on {host}:{port} after {timeout}s")


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def clean_client_env(home: Path | str | None = None, **extra) -> dict:
    """Environment for libpq clients: no PG* variables leaking in, no ~/.postgresql files."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["HOME"] = str(home or tempfile.gettempdir())
    env["PGCONNECT_TIMEOUT"] = "10"
    env["PGGSSENCMODE"] = "disable"  # no Kerberos here; keeps libpq's first packet predictable
    env.update({k: str(v) for k, v in extra.items()})
    return env


def conninfo(**kw) -> str:
    """libpq keyword/value connection string."""
    parts = []
    for k, v in kw.items():
        v = str(v).replace("\\", "\\\\").replace("'", "\\'")
        parts.append(f"{k}='{v}'")
    return " ".join(parts)


def run(cmd, timeout=60, check=False, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=check, **kw)


def psql(dsn: str, *commands: str, env: dict | None = None, timeout: float = 30,
         extra_args=()) -> subprocess.CompletedProcess:
    """psql -X -A -t with one -c per command; returns the completed process (no check)."""
    cmd = [PSQL, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", *extra_args, dsn]
    for c in commands:
        cmd += ["-c", c]
    return run(cmd, timeout=timeout, env=env if env is not None else clean_client_env())


def as_postgres_cmd(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if IS_ROOT else cmd


# ---------------------------------------------------------------------------------------
# PostgreSQL 15 cluster
# ---------------------------------------------------------------------------------------
class Cluster:
    """A throwaway PostgreSQL 15 cluster on 127.0.0.1 and a unix socket in its temp dir.

    Its port is reserved (reserve_port) from creation until destroy(), across stop() and
    start(), so no other process of a parallel test is handed it meanwhile. Should the first
    start still fail to bind (something bound the port explicitly), init() retries on a fresh
    port (START_ATTEMPTS in all); a later start() keeps the port (clients point at it)."""

    START_ATTEMPTS = 3

    def __init__(self, max_connections: int = 300, hba_prefix: str = "", conf_extra: str = "",
                 files: dict | None = None):
        self.dir = Path(tempfile.mkdtemp(prefix="pggw-it-pg-"))
        self.data = self.dir / "data"
        self.sockdir = self.dir  # unix socket lives in the temp dir too
        self._reservation = reserve_port()
        self.port = self._reservation.getsockname()[1]
        self.host = "127.0.0.1"
        self.log = self.dir / "postgres.log"
        self.max_connections = max_connections
        self.hba_prefix, self.conf_extra = hba_prefix, conf_extra
        self.files = files or {}  # name in the data dir -> source path (copied, mode 0600)
        if IS_ROOT:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        os.chmod(self.dir, 0o755)

    @property
    def addr(self) -> str:
        return f"{self.host}:{self.port}"

    def _pg(self, *args, timeout=60, check=True):
        r = run(as_postgres_cmd([str(PG_BIN / args[0]), *args[1:]]), timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}\n"
                               + (self.log.read_text() if self.log.exists() else ""))
        return r

    def init(self):
        self._pg("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                 "--no-sync", "--locale=C")
        conf = self.data / "postgresql.conf"
        with open(conf, "a") as f:
            f.write(f"""
listen_addresses = '127.0.0.1'
port = {self.port}
unix_socket_directories = '{self.sockdir}'
password_encryption = 'scram-sha-256'
max_connections = {self.max_connections}
shared_buffers = 16MB
fsync = off
synchronous_commit = off
full_page_writes = off
log_min_messages = warning
ssl = off
# A backend notices within 200 ms that pggw closed its connection (tests of session teardown).
client_connection_check_interval = 200
""")
            f.write(self.conf_extra + "\n")
        for name, src in self.files.items():
            dst = self.data / name
            shutil.copyfile(src, dst)
            os.chmod(dst, 0o600)
            if IS_ROOT:
                pw = pwd.getpwnam("postgres")
                os.chown(dst, pw.pw_uid, pw.pw_gid)
        (self.data / "pg_hba.conf").write_text(
            self.hba_prefix +
            "local all all trust\n"
            "host all alice 127.0.0.1/32 scram-sha-256\n"
            "host all alice ::1/128 scram-sha-256\n"
            "host all all 127.0.0.1/32 trust\n"
            "host all all ::1/128 trust\n")
        self._first_start()
        self.sql(f"CREATE ROLE alice LOGIN PASSWORD '{ALICE_PASSWORD}'")
        self.sql("CREATE ROLE bob LOGIN")
        self.sql("CREATE DATABASE appdb OWNER bob")
        # The verifier must really be SCRAM (password_encryption took effect).
        v = self.sql("SELECT rolpassword FROM pg_authid WHERE rolname = 'alice'")
        assert v.startswith("SCRAM-SHA-256$"), v
        return self

    def start(self):
        self._pg("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "30", "start")

    def _first_start(self):
        """start(), on a fresh port when PostgreSQL could not bind its port."""
        for attempt in range(1, self.START_ATTEMPTS + 1):
            log_from = self.log.stat().st_size if self.log.exists() else 0
            try:
                self.start()
                return
            except RuntimeError:
                log = self.log.read_bytes()[log_from:] if self.log.exists() else b""
                if b"could not bind" not in log or attempt == self.START_ATTEMPTS:
                    raise
            old = self.port
            self._reservation.close()
            self._reservation = reserve_port()
            self.port = self._reservation.getsockname()[1]
            conf = self.data / "postgresql.conf"
            conf.write_text(re.sub(rf"^port = {old}$", f"port = {self.port}",
                                   conf.read_text(), flags=re.M))

    def stop(self, mode="fast"):
        self._pg("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop", check=False)

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split("\n")[0])
        except (OSError, ValueError):
            return None

    def sql(self, query: str, db: str = "postgres", user: str = "postgres") -> str:
        r = run([PSQL, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", str(self.sockdir),
                 "-p", str(self.port), "-U", user, "-d", db, "-c", query],
                env=clean_client_env())
        if r.returncode != 0:
            raise RuntimeError(f"psql {query!r} failed: {r.stderr}")
        return r.stdout.strip()

    def destroy(self):
        self.stop(mode="immediate")
        self._reservation.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def cluster():
    c = Cluster().init()
    try:
        yield c
    finally:
        c.destroy()


# ---------------------------------------------------------------------------------------
# pggw process
# ---------------------------------------------------------------------------------------
_current_item = None  # the running test (so pggw logs can be attached to its failure report)
_all_pggw: list["Pggw"] = []


# pggw's start line (stderr), written once every listener is bound: the addresses as bound,
# so this is where a port 0 asked for is told. For example
#   ... info: pggw 0.1.0 listening on 127.0.0.1:41235,[::1]:41236 with 4 workers; server
#   127.0.0.1:5432; client TLS require; ...; metrics on 127.0.0.1:38911
# (With --log-format json the line is a JSON object: the message ends before '"}'.)
START_LINE = re.compile(r"\bpggw \S+ listening on (\S+) with \d+ workers; .*; "
                        r"metrics on ([^\s\"]+)(?:\"\})?\s*$", re.M)


def parse_endpoint(text: str) -> tuple[str, int]:
    """"127.0.0.1:5432" or "[::1]:5432" -> (host, port)."""
    m = re.fullmatch(r"\[([^\]]+)\]:(\d+)|([^\[\]:]+):(\d+)", text)
    if not m:
        raise ValueError(f"not HOST:PORT: {text!r}")
    return (m[1], int(m[2])) if m[1] else (m[3], int(m[4]))


class Pggw:
    """One pggw process, stderr captured to a file.

    pggw chooses its own ports: unless the test gives port= / metrics_port= (or its own
    --listen / --metrics-listen), it is started with --listen HOST:0 and --metrics-listen
    127.0.0.1:0, and the ports are read from its start line (START_LINE): `listening` has every
    client address, `port` and `metrics_port` the first one's port and the admin port. (A port
    found free here and released before pggw binds it could be handed to the pggw of a test
    running in parallel, and SO_REUSEPORT would let the two share it.) After the start line,
    one TCP connect to (host, port), closed at once, checks that pggw accepts: the readiness
    probe that test_metrics.py counts."""

    def __init__(self, *args, backend: str | None = None, port: int | None = None,
                 host: str = "127.0.0.1", metrics_port: int | None = None, wait: bool = True,
                 listen: bool = True, start_timeout: float = 10):
        self.host = host
        self.port = port  # None until the start line tells it (wait_listening)
        self.metrics_port = metrics_port
        self.listening: list[tuple[str, int]] = []
        self.dir = Path(tempfile.mkdtemp(prefix="pggw-it-gw-"))
        self.log_path = self.dir / "pggw.stderr"
        cmd = [str(PGGW_BIN)]
        args = list(args)
        if listen and "--listen" not in args:
            p = port or 0
            cmd += ["--listen", f"[{host}]:{p}" if ":" in host else f"{host}:{p}"]
        # backend= is the PostgreSQL address: --server (--backend, its older name, stays
        # covered by test_startup.py, which passes it itself).
        if backend and "--server" not in args and "--backend" not in args:
            cmd += ["--server", backend]
        if "--metrics-listen" not in args:
            cmd += ["--metrics-listen", f"127.0.0.1:{metrics_port or 0}"]
        cmd += args
        self.cmd = cmd
        self._log = open(self.log_path, "wb")
        # The environment carries SANITIZER_ENV: with a sanitizer build, reports go to
        # SANITIZER_DIR/report.<pid> (checked by problem()).
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.pid = self.proc.pid
        self.exit_before_stop = None
        self.killed = False  # still running grace seconds after SIGTERM: SIGKILL, no leak check
        self.sanitizer_report = ""  # its report files, read once it has exited
        self.problem_reported = False
        self._problem, self._problem_final = None, False
        self._final_log = None
        _all_pggw.append(self)
        if _current_item is not None:
            _current_item.__dict__.setdefault("_pggw", []).append(self)
        if wait:
            try:
                self.wait_listening(start_timeout)
            except Exception as e:
                self.stop()
                raise RuntimeError(f"pggw did not start: {e}\ncommand: {' '.join(cmd)}\n"
                                   f"--- pggw stderr ---\n{self.log_text()}") from None

    def wait_listening(self, timeout: float = 10) -> list[tuple[str, int]]:
        """Wait for the start line and take the bound addresses from it (listening, port,
        metrics_port), then make the readiness probe. Raises if pggw exits first or if the line
        has not come within timeout seconds."""
        deadline = time.monotonic() + timeout
        while True:
            exited = self.proc.poll() is not None  # checked first: the log read next is whole
            m = START_LINE.search(self.log_text())
            if m:
                break
            if exited:
                raise RuntimeError(f"process exited with {self.proc.returncode} before listening")
            if time.monotonic() > deadline:
                raise TimeoutError(f"no \"listening on\" line from pggw after {timeout}s")
            time.sleep(0.02)
        self.listening = [parse_endpoint(a) for a in m[1].split(",")]
        metrics = parse_endpoint(m[2])[1]
        if self.metrics_port not in (None, metrics):
            raise RuntimeError(f"metrics on port {metrics}, not on {self.metrics_port}")
        self.metrics_port = metrics
        ports = [p for _, p in self.listening]
        if self.port is None:
            self.port = ports[0]
        elif self.port not in ports:
            raise RuntimeError(f"listening on {m[1]}, not on port {self.port}")
        wait_port(self.host, self.port, max(deadline - time.monotonic(), 1), self.proc)
        return self.listening

    @property
    def addr(self) -> tuple[str, int]:
        return (self.host, self.port)

    def log_text(self) -> str:
        if self._final_log is not None:
            return self._final_log
        try:
            self._log.flush()
        except ValueError:
            pass
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_mark(self) -> int:
        """Where the log ends now: wait_log(..., since=mark) looks only at what comes after."""
        return len(self.log_text())

    def wait_log(self, pattern: str, timeout: float = 5, count: int = 1,
                 since: int = 0) -> list[str]:
        """Lines of the log (from offset since) matching the regex pattern, once there are at
        least count. Mind the start line: it names addresses too (START_LINE)."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            lines = [l for l in self.log_text()[since:].splitlines() if rx.search(l)]
            if len(lines) >= count or time.monotonic() > deadline:
                return lines
            time.sleep(0.05)

    def alive(self) -> bool:
        return self.proc.poll() is None

    CRASH_SIGNALS = (-signal.SIGSEGV, -signal.SIGABRT, -signal.SIGBUS, -signal.SIGILL,
                     -signal.SIGFPE)

    def crashed(self) -> bool:
        """Did pggw die of a crash signal, on its own or while shutting down after SIGTERM?
        (Sanitizer builds abort on error: see SANITIZER_ENV.)"""
        rcs = (self.exit_before_stop, self.proc.poll())
        return any(rc in self.CRASH_SIGNALS for rc in rcs if rc is not None)

    def _collect_sanitizer_report(self) -> None:
        """Once pggw has exited: take its report files (SANITIZER_DIR/report.<pid>)."""
        if self.proc.poll() is None:
            return
        reports = sanitizer_reports(self.pid)
        if reports:
            self.sanitizer_report += claim_reports(reports)

    def problem(self) -> str | None:
        """Why this pggw fails the test that started it, if it does: a crash signal, or a
        sanitizer report (ASan, UBSan, LeakSanitizer at exit, TSan). None while it runs."""
        if self._problem_final:
            return self._problem
        self._collect_sanitizer_report()
        text = self._final_log if self._final_log is not None else self.log_text()
        if self.sanitizer_report or SANITIZER_HEADER.search(text):
            self._problem = "sanitizer report"
        elif self.crashed():
            self._problem = "crashed"
        else:
            self._problem = None
        self._problem_final = self._final_log is not None  # stopped: nothing more can come
        return self._problem

    def describe_problem(self) -> str:
        return (f"pggw (pid {self.pid}): {self.problem()} (status {self.exit_before_stop} "
                f"before stop, {self.proc.returncode} after):\n{' '.join(self.cmd)}\n"
                f"{self.sanitizer_report}\n--- pggw stderr ---\n{self.log_text()[-5000:]}")

    def stop(self, grace: float = 5) -> int | None:
        if self.exit_before_stop is None:
            self.exit_before_stop = self.proc.poll()
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.killed = True
                self.proc.kill()
                self.proc.wait(5)
        try:
            self._log.close()
        except Exception:
            pass
        if self._final_log is None:
            self._final_log = self.log_text()  # kept in memory for failure reports
            shutil.rmtree(self.dir, ignore_errors=True)
        return self.proc.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


@pytest.fixture
def pggw(request):
    """Factory: pggw(*args, backend=...) starts pggw; every process is stopped afterwards."""
    started: list[Pggw] = []

    def start(*args, **kw):
        p = Pggw(*args, **kw)
        started.append(p)
        return p

    yield start
    for p in started:
        p.stop()
    check_no_crash(started)


def scrape(gw) -> str:
    """pggw's /metrics, as text."""
    with urllib.request.urlopen(f"http://127.0.0.1:{gw.metrics_port}/metrics", timeout=5) as r:
        return r.read().decode()


def check_no_crash(procs):
    """Fail if any of these pggw crashed or wrote a sanitizer report (each is failed once)."""
    bad = [p for p in procs if not p.problem_reported and p.problem()]
    for p in bad:
        p.problem_reported = True
    if bad:
        raise AssertionError("\n\n".join(p.describe_problem() for p in bad))


@pytest.fixture(autouse=True)
def _no_crash_nor_sanitizer_report(request):
    """After every test: no pggw that has exited by now (one of a `with Pggw(...)` block, one
    started with wait=False, a module-scoped one that died during the test, ...) may have
    crashed or written a sanitizer report, and no other pggw (run(), scripts/demo.sh) may have
    written one meanwhile. A module-scoped pggw still running is checked when its fixture stops
    it (check_no_crash), or at the end of the session."""
    yield
    check_no_crash([p for p in _all_pggw if not p.alive()])
    ours = {f".{p.pid}" for p in _all_pggw if p.alive()}
    stray = {f: t for f, t in sanitizer_reports().items() if f.suffix not in ours}
    if stray:
        raise AssertionError(f"sanitizer report from a pggw run by this test:\n"
                             f"{claim_reports(stray)}")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    global _current_item
    _current_item = item


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        # Attach the stderr of every pggw this test started, and of those still running
        # (module-scoped ones), to the failure report.
        procs = list(item.__dict__.get("_pggw", []))
        procs += [p for p in _all_pggw if p.alive() and p not in procs]
        for p in procs:
            text = p.log_text()
            if len(text) > 20000:
                text = "...\n" + text[-20000:]
            rep.sections.append((f"pggw stderr (pid {p.pid}, {' '.join(p.cmd[1:])})", text))


def pytest_sessionfinish(session, exitstatus):
    """Stop what is left; any crash or sanitizer report not yet charged to a test (a pggw
    stopped here, a LeakSanitizer report at its exit) fails the session."""
    for p in _all_pggw:
        p.stop()
    bad = [p.describe_problem() for p in _all_pggw if not p.problem_reported and p.problem()]
    stray = sanitizer_reports()
    if stray:
        bad.append("sanitizer report from an unknown pggw:\n" + claim_reports(stray))
    tr = session.config.pluginmanager.get_plugin("terminalreporter")
    say = tr.write_line if tr is not None else print
    killed = [p.pid for p in _all_pggw if p.killed]
    if killed:  # not a failure (a test may leave sessions open), but no leak check for them
        say(f"pggw still running {len(killed)} time(s) 5 s after SIGTERM, killed: {killed}")
    for text in bad:
        say(f"FAILED at session end: {text}")
    if bad:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    elif not any(SANITIZER_DIR.iterdir()):
        shutil.rmtree(SANITIZER_DIR, ignore_errors=True)


# ---------------------------------------------------------------------------------------
# Raw PostgreSQL protocol
# ---------------------------------------------------------------------------------------
SSL_REQUEST_CODE = 80877103
GSSENC_REQUEST_CODE = 80877104
CANCEL_REQUEST_CODE = 80877102
PROTOCOL_30 = 196608


def ssl_request() -> bytes:
    return struct.pack("!ii", 8, SSL_REQUEST_CODE)


def gssenc_request() -> bytes:
    return struct.pack("!ii", 8, GSSENC_REQUEST_CODE)


def cancel_request(pid: int, key: int) -> bytes:
    return struct.pack("!iiII", 16, CANCEL_REQUEST_CODE, pid, key)


def startup_message(user: str, database: str | None = None, **params) -> bytes:
    body = struct.pack("!i", PROTOCOL_30)
    items = {"user": user}
    if database:
        items["database"] = database
    items.update(params)
    for k, v in items.items():
        body += k.encode() + b"\0" + str(v).encode() + b"\0"
    body += b"\0"
    return struct.pack("!i", len(body) + 4) + body


def message(kind: bytes, payload: bytes = b"") -> bytes:
    return kind + struct.pack("!i", len(payload) + 4) + payload


TERMINATE = message(b"X")


def query_message(sql: str) -> bytes:
    return message(b"Q", sql.encode() + b"\0")


class ConnectionClosed(Exception):
    pass


def recv_exact(sock, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionClosed(f"closed after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


def read_message(sock) -> tuple[bytes, bytes]:
    """One backend message: (type byte, payload). Raises ConnectionClosed at EOF."""
    head = recv_exact(sock, 5)
    kind, length = head[:1], struct.unpack("!i", head[1:])[0]
    if length < 4 or length > 1 << 24:
        raise AssertionError(f"bad message length {length} for type {kind!r}")
    return kind, recv_exact(sock, length - 4)


def error_fields(payload: bytes) -> dict[str, str]:
    fields = {}
    for part in payload.split(b"\0"):
        if part:
            fields[chr(part[0])] = part[1:].decode(errors="replace")
    return fields


def read_until(sock, kinds: bytes, timeout: float = 5,
               stop_on_error: bool = True) -> list[tuple[bytes, bytes]]:
    """Messages up to and including the first whose type is in kinds (or, with stop_on_error,
    an ErrorResponse: during startup nothing follows one)."""
    sock.settimeout(timeout)
    wanted = [kinds[i:i + 1] for i in range(len(kinds))]
    msgs = []
    while True:
        kind, payload = read_message(sock)
        msgs.append((kind, payload))
        if kind in wanted or (stop_on_error and kind == b"E"):
            return msgs


def recv_all_until_close(sock, timeout: float = 5) -> bytes:
    """Everything the peer sends until it closes; raises TimeoutError if it does not close."""
    sock.settimeout(timeout)
    deadline = time.monotonic() + timeout
    data = b""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"peer did not close within {timeout}s (got {data[:64]!r})")
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        except socket.timeout:
            raise TimeoutError(f"peer did not close within {timeout}s (got {data[:64]!r})")
        except ssl.SSLError:
            return data
        if not chunk:
            return data
        data += chunk


def parse_messages(data: bytes) -> list[tuple[bytes, bytes]]:
    """Split a byte string of backend messages (a trailing partial message is dropped)."""
    out = []
    i = 0
    while i + 5 <= len(data):
        kind = data[i:i + 1]
        length = struct.unpack("!i", data[i + 1:i + 5])[0]
        if length < 4 or i + 1 + length > len(data):
            break
        out.append((kind, data[i + 5:i + 1 + length]))
        i += 1 + length
    return out


def connect(addr, timeout: float = 5) -> socket.socket:
    s = socket.create_connection(addr, timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def trust_session(sock, user="bob", database="appdb", timeout: float = 5):
    """Send a StartupMessage on sock and read up to ReadyForQuery.

    Returns (messages, backend_key) where backend_key is (pid, secret) or None.
    An ErrorResponse ends the read early (look at messages[-1])."""
    sock.sendall(startup_message(user, database))
    msgs = read_until(sock, b"Z", timeout)
    key = None
    for kind, payload in msgs:
        if kind == b"K":
            key = struct.unpack("!II", payload[:8])
    return msgs, key


def assert_ready(msgs):
    kinds = [k for k, _ in msgs]
    assert kinds[-1] == b"Z", f"no ReadyForQuery: {describe(msgs)}"
    assert msgs[0][0] == b"R" and struct.unpack("!i", msgs[0][1][:4])[0] == 0, \
        f"first message is not AuthenticationOk: {describe(msgs)}"


def describe(msgs) -> str:
    out = []
    for k, p in msgs:
        if k == b"E":
            out.append(f"E{error_fields(p)}")
        else:
            out.append(k.decode(errors="replace"))
    return " ".join(out)


def simple_query(sock, sql: str, timeout: float = 5) -> list[tuple[bytes, bytes]]:
    sock.sendall(query_message(sql))
    return read_until(sock, b"Z", timeout, stop_on_error=False)


def scram_session(sock, user: str, password: str, database: str = "appdb", timeout: float = 5):
    """SCRAM-SHA-256 (no channel binding) by hand. Returns the messages after the SASL exchange
    (ending with ReadyForQuery or ErrorResponse)."""
    sock.settimeout(timeout)
    sock.sendall(startup_message(user, database))
    kind, payload = read_message(sock)
    if kind == b"E":
        return [(kind, payload)]
    assert kind == b"R" and struct.unpack("!i", payload[:4])[0] == 10, (kind, payload)
    mechs = payload[4:].split(b"\0")
    assert b"SCRAM-SHA-256" in mechs, mechs
    cnonce = base64.b64encode(secrets.token_bytes(18)).decode()
    first_bare = f"n=,r={cnonce}"
    first = ("n,," + first_bare).encode()
    sock.sendall(message(b"p", b"SCRAM-SHA-256\0" + struct.pack("!i", len(first)) + first))
    kind, payload = read_message(sock)
    if kind == b"E":
        return [(kind, payload)]
    assert kind == b"R" and struct.unpack("!i", payload[:4])[0] == 11, (kind, payload)
    server_first = payload[4:].decode()
    attrs = dict(a.split("=", 1) for a in server_first.split(","))
    salt, iters, nonce = base64.b64decode(attrs["s"]), int(attrs["i"]), attrs["r"]
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iters)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    final_wo_proof = f"c=biws,r={nonce}"
    auth_msg = f"{first_bare},{server_first},{final_wo_proof}".encode()
    sig = hmac.new(stored_key, auth_msg, hashlib.sha256).digest()
    proof = bytes(a ^ b for a, b in zip(client_key, sig))
    final = f"{final_wo_proof},p={base64.b64encode(proof).decode()}".encode()
    sock.sendall(message(b"p", final))
    return read_until(sock, b"Z", timeout)


# ---------------------------------------------------------------------------------------
# Certificates (OpenSSL CLI in the test process; pggw never uses OpenSSL)
# ---------------------------------------------------------------------------------------
def openssl(*args, cwd=None):
    r = run(["openssl", *args], cwd=cwd)
    if r.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}")
    return r


def make_ca(dir: Path, name: str) -> tuple[Path, Path]:
    crt, key = dir / f"{name}.crt", dir / f"{name}.key"
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", str(key), "-out", str(crt), "-days", "30", "-subj", f"/CN=pggw test {name}",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    os.chmod(key, 0o600)
    return crt, key


def make_leaf(dir: Path, name: str, cn: str, ca: tuple[Path, Path], days: int = 30,
              client: bool = True, sans: list[str] | None = None) -> tuple[Path, Path]:
    crt, key, csr, ext = (dir / f"{name}.crt", dir / f"{name}.key", dir / f"{name}.csr",
                          dir / f"{name}.ext")
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={cn}")
    lines = ["basicConstraints=CA:FALSE", "keyUsage=critical,digitalSignature",
             f"extendedKeyUsage={'clientAuth' if client else 'serverAuth'}"]
    if sans:
        lines.append("subjectAltName=" + ",".join(sans))
    ext.write_text("\n".join(lines) + "\n")
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]),
            "-set_serial", str(secrets.randbits(63)), "-days", str(days), "-extfile", str(ext),
            "-out", str(crt))
    os.chmod(key, 0o600)
    return crt, key


def gen_cert(dir: Path, *hostnames: str, key_type: str | None = None) -> dict[str, Path]:
    """`pggw gen-cert --dir DIR`: returns the paths of ca.crt ca.key server.crt server.key."""
    dir.mkdir(parents=True, exist_ok=True)
    cmd = [str(PGGW_BIN), "gen-cert", "--dir", str(dir)]
    for h in hostnames:
        cmd += ["--hostname", h]
    if key_type:
        cmd += ["--key-type", key_type]
    r = run(cmd, timeout=30)
    assert r.returncode == 0, f"pggw gen-cert failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    files = {n: dir / n for n in ("ca.crt", "ca.key", "server.crt", "server.key")}
    for n, p in files.items():
        assert p.is_file(), f"gen-cert did not write {n}: {sorted(os.listdir(dir))}"
    return files


# ---------------------------------------------------------------------------------------
# TLS from the test process
# ---------------------------------------------------------------------------------------
def client_context(cafile=None, alpn=None, cert=None, key=None, check_hostname=True,
                   minimum=ssl.TLSVersion.TLSv1_2, maximum=None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if cafile:
        ctx.load_verify_locations(cafile=str(cafile))
        ctx.check_hostname = check_hostname
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if alpn is not None:
        ctx.set_alpn_protocols(alpn)
    if cert:
        ctx.load_cert_chain(str(cert), str(key))
    ctx.minimum_version = minimum
    if maximum:
        ctx.maximum_version = maximum
    return ctx


def starttls(addr, ctx: ssl.SSLContext, server_hostname="localhost", timeout=5) -> ssl.SSLSocket:
    """SSLRequest, expect 'S', then the TLS handshake. Returns the TLS socket."""
    s = connect(addr, timeout)
    s.sendall(ssl_request())
    answer = recv_exact(s, 1)
    assert answer == b"S", f"SSLRequest answered {answer!r}"
    return ctx.wrap_socket(s, server_hostname=server_hostname)


@contextlib.contextmanager
def closing_all(socks):
    try:
        yield socks
    finally:
        for s in socks:
            with contextlib.suppress(Exception):
                s.close()


def threads_run(fn, args_list, parallel: int = 16):
    """Run fn(*args) for every args in args_list with up to `parallel` threads; returns results
    in order; re-raises the first exception."""
    results = [None] * len(args_list)
    errors = []
    lock = threading.Lock()
    idx = iter(range(len(args_list)))

    def worker():
        while True:
            with lock:
                i = next(idx, None)
            if i is None:
                return
            try:
                results[i] = fn(*args_list[i])
            except Exception as e:  # noqa: BLE001
                errors.append(e)

    ts = [threading.Thread(target=worker) for _ in range(min(parallel, len(args_list)))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise errors[0]
    return results


class BioTls:
    """A TLS client over ssl.MemoryBIO, so the test decides how the bytes hit the wire.

    dribble=True sends every TLS byte in its own TCP segment (1 ms apart): pggw must cope with
    records and handshake messages split anywhere. Quacks enough like a socket (sendall, recv,
    settimeout) for read_message/trust_session."""

    def __init__(self, sock, ctx: ssl.SSLContext, server_hostname="localhost", dribble=False):
        self.sock, self.dribble = sock, dribble
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.out, server_hostname=server_hostname)

    def client_hello(self) -> bytes:
        """The ClientHello bytes, produced without sending them."""
        try:
            self.obj.do_handshake()
        except ssl.SSLWantReadError:
            pass
        return self.out.read()

    def _flush(self, pending: bytes = b""):
        data = pending + self.out.read()
        if not data:
            return
        if self.dribble:
            for i in range(len(data)):
                self.sock.sendall(data[i:i + 1])
                time.sleep(0.001)
        else:
            self.sock.sendall(data)

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            self.inc.write_eof()
            raise ConnectionClosed("peer closed during TLS")
        self.inc.write(data)

    def handshake(self, pending: bytes = b""):
        self._flush(pending)
        while True:
            try:
                self.obj.do_handshake()
                self._flush()
                return
            except ssl.SSLWantReadError:
                self._flush()
                self._fill()

    def sendall(self, data: bytes):
        self.obj.write(data)
        self._flush()

    def recv(self, n: int) -> bytes:
        while True:
            try:
                return self.obj.read(n)
            except ssl.SSLWantReadError:
                try:
                    self._fill()
                except ConnectionClosed:
                    return b""
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return b""

    def settimeout(self, t):
        self.sock.settimeout(t)

    def version(self):
        return self.obj.version()

    def selected_alpn_protocol(self):
        return self.obj.selected_alpn_protocol()
