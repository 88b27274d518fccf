#!/usr/bin/env bash
# Regenerates gen/ from proto/. The only way gen/ is produced; CI runs it and
# fails when the checked-in files differ.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"

rm -rf gen
mkdir -p gen
"$PY" -m grpc_tools.protoc \
  -I proto \
  --python_out=gen \
  --grpc_python_out=gen \
  --mypy_out=gen \
  --mypy_grpc_out=gen \
  proto/ojs/v1/*.proto

# Package markers so `import ojs.v1.job_pb2` resolves from gen/ on sys.path.
touch gen/ojs/__init__.py gen/ojs/v1/__init__.py gen/ojs/py.typed
