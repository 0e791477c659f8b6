#!/usr/bin/env python3
"""Run a command with a real Qdrant server on 127.0.0.1, started here and stopped afterwards;
its gRPC URL is in QDRANT_URL. No registry ships a Qdrant server, so it comes from
`../shared/tools/qdrant-1.19.0-x86_64-linux.xz` beside the repository (built from Qdrant's
source at v1.19.0), checked by sha256 before and after unpacking, and cached under
~/.cache/quarry/. Storage is a scratch folder, removed afterwards.

Usage: scripts/with-qdrant.py -- COMMAND ARGS...
"""
import hashlib
import lzma
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARCHIVE = os.environ.get("QUARRY_QDRANT_XZ",
                         os.path.join(ROOT, "..", "shared", "tools", "qdrant-1.19.0-x86_64-linux.xz"))
ARCHIVE_SHA256 = "a709c4bc553facb75607d1a1a4788ee535e564f95f51de6148d370b1f835172b"
BINARY_SHA256 = "88e1ee91017340859739c3768d08e39f414b1f3c5fbb602b1190fbc45655f6c3"
BINARY = os.path.join(os.path.expanduser("~"), ".cache", "quarry", "qdrant-1.19.0", "qdrant")


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def install():
    if os.path.exists(BINARY) and sha256(BINARY) == BINARY_SHA256:
        return
    if not os.path.exists(ARCHIVE):
        sys.exit(f"qdrant: {ARCHIVE} is missing (the Qdrant server comes from shared/tools/)")
    if sha256(ARCHIVE) != ARCHIVE_SHA256:
        sys.exit(f"qdrant: {ARCHIVE} has sha256 {sha256(ARCHIVE)}, expected {ARCHIVE_SHA256}")
    print(f"qdrant: unpacking {os.path.basename(ARCHIVE)} ...", file=sys.stderr, flush=True)
    os.makedirs(os.path.dirname(BINARY), exist_ok=True)
    staging = BINARY + ".part"
    with lzma.open(ARCHIVE) as src, open(staging, "wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)
    if sha256(staging) != BINARY_SHA256:
        os.remove(staging)
        sys.exit(f"qdrant: the unpacked server does not have sha256 {BINARY_SHA256}")
    os.chmod(staging, 0o755)
    os.rename(staging, BINARY)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    args = sys.argv[1:]
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        sys.exit(__doc__)
    install()
    storage = tempfile.mkdtemp(prefix="quarry-qdrant-")
    http_port, grpc_port = free_port(), free_port()
    env = dict(os.environ,
               QDRANT__SERVICE__HOST="127.0.0.1",
               QDRANT__SERVICE__HTTP_PORT=str(http_port),
               QDRANT__SERVICE__GRPC_PORT=str(grpc_port),
               QDRANT__STORAGE__STORAGE_PATH=os.path.join(storage, "storage"),
               QDRANT__STORAGE__SNAPSHOTS_PATH=os.path.join(storage, "snapshots"),
               QDRANT__TELEMETRY_DISABLED="true",
               QDRANT__LOG_LEVEL="WARN")
    log = open(os.path.join(storage, "qdrant.log"), "wb")
    server = subprocess.Popen([BINARY], env=env, cwd=storage, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/readyz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.time() > deadline:
                log.close()
                with open(os.path.join(storage, "qdrant.log"), "rb") as f:
                    sys.stderr.write(f.read()[-4000:].decode(errors="replace"))
                sys.exit("qdrant: the server did not start")
            time.sleep(0.2)
        url = f"http://127.0.0.1:{grpc_port}"
        print(f"qdrant: Qdrant 1.19.0 on {url} (gRPC)", file=sys.stderr, flush=True)
        code = subprocess.run(args, env=dict(os.environ, QDRANT_URL=url)).returncode
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
        shutil.rmtree(storage, ignore_errors=True)
    sys.exit(code)


if __name__ == "__main__":
    main()
