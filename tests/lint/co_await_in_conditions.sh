#!/usr/bin/env bash
# GCC 12 miscompiles a co_await that is an operand of && or || (the coroutine was resumed with
# a corrupt state: SIGILL on every relayed session, see git log for relay.cpp). Keep each
# co_await in a statement of its own. co_await (a || b) on awaitables is a different thing
# (Asio's awaitable operators) and is fine.
set -euo pipefail
cd "$(dirname "$0")/../.."
if grep -rnE '(&&|\|\|)[[:space:]]*!?[[:space:]]*co_await' gateway tls_backends metrics; then
  echo "co_await as an operand of && or ||: put it in a statement of its own" >&2
  exit 1
fi
echo "no co_await inside && or ||"
