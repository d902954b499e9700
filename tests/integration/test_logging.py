"""--log-format text|json: JSON is one object per line with stable keys; client-chosen strings
(user, database) are escaped in both formats, so a newline or an escape sequence in them cannot
forge or garble a log line."""
import json

import pytest

from conftest import (Pggw, TERMINATE, assert_ready, check_no_crash, connect, error_fields,
                      recv_all_until_close, trust_session)
from helpers_assert import session_line

EVIL_USER = "evil\n2026-11-30 00:00:00.000 UTC [1] info: session closed: peer=6.6.6.6:1"
EVIL_DB = "db\x1b[31mred\"q"


@pytest.fixture(params=["text", "json"])
def gw(request, cluster):
    p = Pggw("--client-tls", "disable", "--log-format", request.param, backend=cluster.addr)
    p.format = request.param
    yield p
    p.stop()
    check_no_crash([p])


def sessions(gw) -> tuple[int, int, int]:
    """A good session and one with hostile strings: their client ports (bob, evil), and the
    bytes bob received after its StartupMessage."""
    with connect(gw.addr) as s:
        bob = s.getsockname()[1]
        msgs, _ = trust_session(s, "bob", "appdb")
        assert_ready(msgs)
        bob_received = sum(5 + len(p) for _, p in msgs)
        s.sendall(TERMINATE)
        recv_all_until_close(s, 10)
    with connect(gw.addr) as s:
        evil = s.getsockname()[1]
        msgs, _ = trust_session(s, EVIL_USER, EVIL_DB)  # PostgreSQL refuses the role
        assert msgs[-1][0] == b"E"
        assert error_fields(msgs[-1][1])["C"] == "28000", msgs  # role does not exist
    return bob, evil, bob_received


def test_client_strings_cannot_forge_lines(gw):
    mark = gw.log_mark()
    _, evil, _ = sessions(gw)
    assert gw.wait_log(r"session closed", count=2, since=mark)
    log = gw.log_text()
    # Whatever the format, the forged line never stands on its own.
    assert not any("6.6.6.6" in l and not ("evil" in l) for l in log.splitlines()), log
    assert "\x1b" not in log
    if gw.format == "text":
        line = session_line(gw, evil, since=mark)
        assert line["line"].count('user="evil\\n2026-11-30') == 1, line
        assert 'database="db\\x1b[31mred\\"q"' in line["line"], line
        assert (line["user"], line["database"]) == (EVIL_USER, EVIL_DB), line
    else:
        evil_lines = [json.loads(l) for l in log[mark:].splitlines()
                      if f'127.0.0.1:{evil}"' in l]
        assert len(evil_lines) == 1, log[mark:]
        assert (evil_lines[0]["user"], evil_lines[0]["database"]) == (EVIL_USER, EVIL_DB)


def test_json_is_one_object_per_line_with_stable_keys(cluster, pggw):
    gw = pggw("--client-tls", "disable", "--log-format", "json", backend=cluster.addr)
    mark = gw.log_mark()
    bob_port, evil_port, bob_received = sessions(gw)
    assert gw.wait_log(r"session closed", count=2, since=mark)
    objs = [json.loads(l) for l in gw.log_text().splitlines() if l.strip()]
    for o in objs:
        assert {"time", "level", "pid", "msg"} <= o.keys(), o
    closed = [o for o in objs if o["msg"].startswith("session closed")]
    bob = [o for o in closed if o.get("peer") == f"127.0.0.1:{bob_port}"]
    assert len(bob) == 1, closed
    assert (bob[0]["user"], bob[0]["database"], bob[0]["tls"]) == ("bob", "appdb", "off"), bob
    assert {"worker", "duration", "bytes_in", "bytes_out", "tls", "reason"} <= bob[0].keys()
    # After its StartupMessage the client sent only Terminate; out: the startup's answer.
    assert int(bob[0]["bytes_in"]) == len(TERMINATE), bob[0]
    assert int(bob[0]["bytes_out"]) == bob_received, bob[0]
    assert bob[0]["reason"] == "server closed the connection", bob[0]
    evil = [o for o in closed if o.get("peer") == f"127.0.0.1:{evil_port}"]
    assert len(evil) == 1 and evil[0]["user"] == EVIL_USER, closed
    assert evil[0]["database"] == EVIL_DB, evil
