#!/usr/bin/env python3
"""A stand-in PostgreSQL for memory benchmarks with more sessions than this machine's
PostgreSQL can hold: answers SSLRequest/GSSENCRequest with 'N', answers a StartupMessage with
AuthenticationOk, a few ParameterStatus, BackendKeyData and ReadyForQuery (idle), answers a
simple Query with an empty result (EmptyQueryResponse, ReadyForQuery), and closes on Terminate.
One asyncio loop; a few KiB per connection.

usage: pg_stub.py PORT
"""
import asyncio
import struct
import sys

SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104


def msg(kind, payload=b""):
    return kind + struct.pack("!I", len(payload) + 4) + payload


def param(k, v):
    return msg(b"S", k.encode() + b"\0" + v.encode() + b"\0")


READY = msg(b"Z", b"I")
LOGIN = (msg(b"R", struct.pack("!I", 0)) + param("server_version", "15.0") +
         param("server_encoding", "UTF8") + param("client_encoding", "UTF8") +
         param("DateStyle", "ISO, MDY") + param("integer_datetimes", "on") +
         param("standard_conforming_strings", "on") + msg(b"K", struct.pack("!II", 1, 2)) + READY)


async def serve(reader, writer):
    try:
        while True:  # the startup phase: length-prefixed, no type byte
            n = struct.unpack("!I", await reader.readexactly(4))[0]
            body = await reader.readexactly(n - 4)
            code = struct.unpack("!I", body[:4])[0]
            if code in (SSL_REQUEST, GSSENC_REQUEST):
                writer.write(b"N")
                continue
            writer.write(LOGIN)
            break
        while True:
            kind = await reader.readexactly(1)
            n = struct.unpack("!I", await reader.readexactly(4))[0]
            await reader.readexactly(n - 4)
            if kind == b"X":
                break
            if kind == b"Q":
                writer.write(msg(b"I") + READY)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    writer.close()


async def main(port):
    server = await asyncio.start_server(serve, "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


asyncio.run(main(int(sys.argv[1])))
