#!/usr/bin/env bash
# Builds the wheel, installs it with [embedded] into a clean venv (versions from requirements.lock), checks that the
# Lua scripts and type stubs are inside, starts ojs-server from that venv and waits for its health route.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
work="$(mktemp -d)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

"$PY" -m pip wheel --quiet --no-deps --no-build-isolation -w "$work/dist" .
wheel="$(ls "$work"/dist/ojs_server-*.whl)"
# The lock as constraints: exact versions, without the hashes a constraints file cannot carry.
grep -E '^[A-Za-z0-9]' requirements.lock | sed 's/ *\\$//' >"$work/constraints.txt"
"$PY" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet -c "$work/constraints.txt" "$wheel[embedded]"

"$work/venv/bin/python" - <<'PY'
import importlib.resources as r
lua = [p.name for p in r.files("server.store").joinpath("lua").iterdir() if p.name.endswith(".lua")]
includes = [p.name for p in r.files("server.store").joinpath("lua/include").iterdir() if p.name.endswith(".lua")]
stubs = [p.name for p in r.files("ojs.v1").iterdir() if p.name.endswith(".pyi")]
assert lua, "no Lua scripts in the wheel"
assert includes, "no Lua includes in the wheel"
from server.store.scripts import SCRIPT_NAMES, program
for name in SCRIPT_NAMES:
    program(name)  # every script assembles from what the wheel ships
assert stubs and r.files("ojs").joinpath("py.typed").is_file(), "no type stubs in the wheel"
dashboard = [p.name for p in r.files("gateway.admin").joinpath("static").iterdir()]
assert {"index.html", "core.js", "views.js", "charts.js", "app.css"} <= set(dashboard), "dashboard files missing"
print(f"wheel-check: {len(lua)} Lua scripts, {len(includes)} includes, {len(stubs)} stub files, {len(dashboard)} dashboard files shipped")
PY

read -r http_port grpc_port < <("$work/venv/bin/python" -c '
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')
(cd "$work" && exec env -u REDIS_URL OJS_PORT="$http_port" OJS_GRPC_PORT="$grpc_port" OJS_DATA_DIR="$work/data" \
  "$work/venv/bin/ojs-server" >"$work/server.log" 2>&1) &
server_pid=$!
for _ in $(seq 1 100); do
  if body="$("$work/venv/bin/python" -c 'import sys, urllib.request
print(urllib.request.urlopen(sys.argv[1], timeout=2).read().decode())' "http://127.0.0.1:$http_port/ojs/v1/health" 2>/dev/null)"; then
    echo "wheel-check: ojs-server from the wheel answers health: $body"
    exit 0
  fi
  sleep 0.2
done
echo "wheel-check: ojs-server from the wheel did not become healthy; its log:" >&2
cat "$work/server.log" >&2
exit 1
