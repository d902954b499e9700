"""Smoke test of README command 1: scripts/demo.sh.

The script (nothing is built when PGGW_BUILD_DIR already has pggw) starts a throwaway
PostgreSQL 15 and pggw in the foreground, makes a snake-oil CA and certificate with
`pggw gen-cert` in PGGW_DEMO_DIR, and prints a `psql ...` line with the exact connection
string (sslmode=verify-full sslrootcert=...). We run that line, check the session is
encrypted, then send SIGINT to the script (as `kill -INT <pid>` would) and check that it
exits within 10 s and that the PostgreSQL it started is gone.
"""
import os
import re
import shlex
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

from conftest import BUILD_DIR, PSQL, SOURCE_DIR, clean_client_env, reserve_port, run

DEMO = SOURCE_DIR / "scripts" / "demo.sh"


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def processes_mentioning(text: str) -> list[str]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(
                errors="replace")
        except OSError:
            continue
        if text in cmd:
            found.append(f"{pid}: {cmd}")
    return found


def test_demo_script(tmp_path):
    assert DEMO.is_file(), f"{DEMO} is missing"
    demo_dir = tmp_path / "demo"
    demo_dir.mkdir()
    os.chmod(tmp_path, 0o755)
    os.chmod(demo_dir, 0o777)  # the script may run PostgreSQL as the postgres user in here
    # demo.sh takes its ports up front: each is reserved (conftest.reserve_port) until the
    # test ends, so no process of a test running in parallel is handed it meanwhile. pggw's
    # client listeners (SO_REUSEPORT), its metrics listener and PostgreSQL (SO_REUSEADDR) bind
    # them all the same.
    held = [reserve_port(reuseport=True), reserve_port(), reserve_port()]
    port, pg_port, metrics_port = (h.getsockname()[1] for h in held)
    env = dict(os.environ)
    env.update(PGGW_DEMO_SKIP_INSTALL="1", PGGW_DEMO_DIR=str(demo_dir),
               PGGW_DEMO_PORT=str(port), PGGW_DEMO_PG_PORT=str(pg_port),
               PGGW_DEMO_METRICS_PORT=str(metrics_port), PGGW_BUILD_DIR=str(BUILD_DIR))
    proc = subprocess.Popen(["bash", str(DEMO)], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    output: list[str] = []
    got_line = threading.Event()

    def reader():
        for raw in proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            output.append(line)
            if line.lstrip().startswith("psql "):
                got_line.set()
        got_line.set()

    t = threading.Thread(target=reader, daemon=True)
    t.start()

    def transcript():
        return "\n".join(output)

    try:
        assert got_line.wait(60), f"no psql line printed within 60 s:\n{transcript()}"
        psql_lines = [l.strip() for l in output if l.lstrip().startswith("psql ")]
        assert psql_lines, f"script ended without printing a psql line:\n{transcript()}"
        line = psql_lines[0]
        assert "sslmode=verify-full" in line, line
        assert "sslrootcert=" in line, line
        argv = shlex.split(line)
        assert argv[0] == "psql", argv
        assert proc.poll() is None, f"demo.sh exited early:\n{transcript()}"
        r = run([PSQL, *argv[1:], "-X", "-A", "-t", "-w", "-c", "select 1", "-c", r"\conninfo"],
                timeout=30, env=clean_client_env(), stdin=subprocess.DEVNULL)
        assert r.returncode == 0, f"{line}\n{r.stdout}\n{r.stderr}\n--- demo.sh ---\n{transcript()}"
        assert r.stdout.startswith("1\n"), r.stdout
        assert "SSL connection" in r.stdout, r.stdout
        assert port_open(pg_port), "the demo's PostgreSQL is not on PGGW_DEMO_PG_PORT"

        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"demo.sh still running 10 s after SIGINT:\n{transcript()}")
        assert time.monotonic() - t0 < 10
        t.join(5)
        # demo.sh ignores pggw's exit status, so its crash is told by its log (the script's
        # output): a clean stop ends with pggw's own last line, and no signal is reported.
        text = transcript()
        assert re.search(r"^\S+ \S+ UTC \[\d+\] info: pggw stopped$", text, re.M), text
        assert not re.search(r"Segmentation fault|Aborted|Bus error|core dumped", text), text
        assert "pggw demo stopped" in text, text
        # The PostgreSQL and the pggw it started are gone.
        deadline = time.monotonic() + 2
        while (port_open(pg_port) or port_open(port)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not port_open(pg_port), f"PostgreSQL still listens after demo.sh exited:\n" \
                                       f"{transcript()}"
        assert not port_open(port), "pggw still listens after demo.sh exited"
        left = processes_mentioning(str(demo_dir)) + processes_mentioning(f"-p {pg_port} ")
        assert not left, f"processes left behind: {left}"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        # Leave no PostgreSQL running even when the test failed.
        for pidfile in demo_dir.rglob("postmaster.pid"):
            try:
                os.kill(int(pidfile.read_text().split("\n")[0]), signal.SIGQUIT)
            except (OSError, ValueError):
                pass
        for h in held:
            h.close()
