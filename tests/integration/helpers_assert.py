"""Assertions that pin down one session, one error, one process: shared by the integration tests
(conftest.py holds the fixtures; this module only what several test files assert alike).

- session_line(): the "session closed" line of the session under test, found by the client's
  local port (unique among live sockets), parsed into typed fields. A pattern such as
  r"127\\.0\\.0\\.1" or "reason=" alone is satisfied by pggw's start line or by any earlier
  session of a module-scoped pggw, so it cannot fail.
- binary_run_under(): every pggw started meanwhile through Pggw / the pggw fixture (so with
  its crash and sanitizer checks) runs under a command prefix such as `taskset -c 0` or
  `prlimit --nofile=N`, which exec pggw and so keep its pid.
"""
from __future__ import annotations

import contextlib
import os
import re
import stat
import time
from pathlib import Path

from conftest import Pggw

# pggw's session end (gateway/session/session.cpp), values written by log_value(): bare when
# printable without '"', '=', '\\' or space, else quoted with C escapes.
_VALUE = r'(?:"(?:[^"\\]|\\.)*"|\S+)'
SESSION_LINE = re.compile(
    rf"session closed: peer=(?P<peer>\S+)(?: via=(?P<via>\S+))? user=(?P<user>{_VALUE}) "
    rf"database=(?P<database>{_VALUE}) worker=(?P<worker>\d+) duration=(?P<duration>[\d.]+)s "
    rf"bytes_in=(?P<bytes_in>\d+) bytes_out=(?P<bytes_out>\d+) tls=(?P<tls>\S+) "
    rf"auth=(?P<auth>\S+) server_auth=(?P<server_auth>\S+) reason=(?P<reason>{_VALUE})\s*$")


def _unquote(v: str) -> str:
    if not v.startswith('"'):
        return v
    return re.sub(r'\\(x[0-9a-f]{2}|.)',
                  lambda m: (chr(int(m[1][1:], 16)) if m[1].startswith("x") else
                             {"n": "\n", "r": "\r", "t": "\t"}.get(m[1], m[1])), v[1:-1])


def parse_session_line(line: str) -> dict:
    m = SESSION_LINE.search(line)
    assert m, f"not a session line: {line!r}"
    d = {k: (_unquote(v) if v is not None else None) for k, v in m.groupdict().items()}
    d["worker"] = int(d["worker"])
    d["duration"] = float(d["duration"])
    d["bytes_in"], d["bytes_out"] = int(d["bytes_in"]), int(d["bytes_out"])
    d["line"] = line
    return d


def session_line(gw, local_port: int, timeout: float = 10, since: int = 0) -> dict:
    """The one "session closed" line whose peer is the client socket bound to local_port
    (sock.getsockname()[1] before closing it), parsed: peer, user, database, worker,
    duration (s), bytes_in (client to server), bytes_out, tls ("off" or the version), auth,
    server_auth, reason, line. Fails if there is none within timeout or more than one."""
    rx = re.compile(rf"session closed: peer=(?:127\.0\.0\.1|\[::1\]|\S+?):{local_port} ")
    lines = gw.wait_log(rx.pattern, timeout=timeout, since=since)
    assert len(lines) == 1, (f"want exactly one session line for client port {local_port}, got "
                             f"{len(lines)}:\n" + "\n".join(lines) + "\n--- log tail ---\n"
                             + gw.log_text()[-3000:])
    return parse_session_line(lines[0])


def local_port(sock) -> int:
    """The client's local port (for session_line), from a socket or an SSL socket."""
    return sock.getsockname()[1]


@contextlib.contextmanager
def binary_run_under(prefix: list[str], tmp_dir: Path):
    """Within the block, Pggw (and so the pggw fixture) starts `prefix... pggw ARGS` through a
    wrapper script that execs the prefix: the process Pggw watches is pggw itself (same pid),
    so its crash and sanitizer checks, stderr capture and stop() apply unchanged."""
    g = Pggw.__init__.__globals__  # conftest's namespace: Pggw reads PGGW_BIN at each start
    real = Path(g["PGGW_BIN"])
    wrapper = tmp_dir / "pggw-under-prefix"
    quoted = " ".join("'" + a.replace("'", "'\\''") + "'" for a in [*prefix, str(real)])
    wrapper.write_text(f'#!/bin/sh\nexec {quoted} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    g["PGGW_BIN"] = wrapper
    try:
        yield wrapper
    finally:
        g["PGGW_BIN"] = real


def start_line_field(gw, name: str) -> str:
    """A field of pggw's start line: "workers" (N from "with N workers") or
    "max_connections"."""
    rx = {"workers": r"listening on \S+ with (\d+) workers;",
          "max_connections": r"; max_connections (\d+);"}[name]
    m = re.search(rx, gw.log_text())
    assert m, f"no {name} in the start line:\n{gw.log_text()[:2000]}"
    return m[1]


def wait_until(pred, timeout: float, what: str, step: float = 0.05):
    """pred()'s first truthy value within timeout seconds, else an AssertionError naming what."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(step)


def cpus_allowed() -> int:
    return len(os.sched_getaffinity(0))
