"""The client-library peer: a relay of about 150 lines on franz-go (benchmarks/peers/franz-relay/).

It shows the engine against what a user could write themselves on a good client library: no
consumer group, every partition from its start, acks=all, idempotent, linger 5 ms, 1 MB batches, a
copy keeps its partition, key, value, headers and timestamp. The harness builds it with the Go
toolchain found on the machine into the project's cache (`franz-relay/`, with Go's module and
build caches beside it, so nothing lands in the user's home), again only when its sources change,
and runs it on the same topic, window and CPU accounting as every other row. Without Go the row is
left out with one line saying so.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

from engine.bench.launch import Launched, launch
from engine.sandbox.distribution import cache_root

SOURCE_DIR = Path(__file__).resolve().parents[2] / "benchmarks" / "peers" / "franz-relay"
SOURCES = ("main.go", "go.mod", "go.sum")
# where Go's own installer puts it, for a machine whose PATH does not name it
GO_FALLBACK = Path("/usr/local/go/bin/go")
BUILD_TIMEOUT_S = 900.0


class RelayUnavailable(RuntimeError):
    """The relay cannot run here (no Go, or its build failed); the message says why in one line."""


def find_go() -> str | None:
    found = shutil.which("go")
    if found:
        return found
    return str(GO_FALLBACK) if os.access(GO_FALLBACK, os.X_OK) else None


def sources_digest(source_dir: Path = SOURCE_DIR) -> str:
    digest = hashlib.sha256()
    for name in SOURCES:
        digest.update(name.encode() + b"\0" + (source_dir / name).read_bytes() + b"\0")
    return digest.hexdigest()


def go_environment(cache: Path) -> dict[str, str]:
    """Go's module and build caches inside the project's cache; the module cache stays deletable."""
    return {"GOPATH": str(cache / "go"), "GOCACHE": str(cache / "go" / "build-cache"),
            "GOFLAGS": "-mod=readonly -modcacherw -buildvcs=false"}


def relay_binary(cache: Path | None = None, source_dir: Path = SOURCE_DIR, go: str | None = None) -> Path:
    """The built relay, built first if it is missing or its sources changed since it was built."""
    cache = cache or cache_root()
    go = go or find_go()
    if go is None:
        raise RelayUnavailable("no Go toolchain found (`go` on PATH): the franz-go relay row is left out")
    folder = cache / "franz-relay"
    binary, stamp = folder / "franz-relay", folder / "franz-relay.sources"
    digest = sources_digest(source_dir)
    if binary.exists() and stamp.exists() and stamp.read_text() == digest:
        return binary
    folder.mkdir(parents=True, exist_ok=True)
    try:
        built = subprocess.run([go, "build", "-o", str(binary), "."], cwd=source_dir, capture_output=True,
                               text=True, timeout=BUILD_TIMEOUT_S, env={**os.environ, **go_environment(cache)})
    except subprocess.TimeoutExpired:
        raise RelayUnavailable(f"building the franz-go relay took over {BUILD_TIMEOUT_S:.0f}s") from None
    if built.returncode != 0:
        last = (built.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise RelayUnavailable(f"building the franz-go relay failed (go build exit code {built.returncode}): {last}")
    stamp.write_text(digest)
    return binary


def relay_spec(source_servers: str, target_servers: str, topic: str, target_topic: str, compression: str,
               source_security: dict | None = None, target_security: dict | None = None) -> dict:
    """The relay's spec file (main.go's `spec`); security: ca, cert, key, sasl_mechanism/username/password."""
    return {"source": {"bootstrap": source_servers, "security": source_security or {}},
            "target": {"bootstrap": target_servers, "security": target_security or {}},
            "topic": topic, "target_topic": target_topic, "compression": compression}


def start_relay(binary: Path, spec: dict, folder: Path) -> Launched:
    spec_file = folder / "franz-relay.json"
    spec_file.write_text(json.dumps(spec, indent=1))
    return launch("franz-go relay", [str(binary), str(spec_file)], folder / "franz-relay.log")
