"""Debian packages a test needs beyond the machine's (browsers, Tesseract, poppler,
LibreOffice), installed with apt-get when their commands are missing; the command is printed.
Tests run in parallel, and apt takes one installer at a time: installs here wait for each
other on a lock file (and for any other apt run through apt's own lock timeout)."""
import fcntl
import os
import shutil
import subprocess
import sys

LOCK = "/tmp/quarry-apt-install.lock"


def ensure_packages(packages, commands, files=()):
    """Installs `packages` unless every command is on PATH and every file exists."""
    def present():
        return all(shutil.which(c) for c in commands) and all(os.path.exists(f) for f in files)

    if present():
        return
    with open(LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if present():  # another test installed them while this one waited
            return
        sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
        wait = ["-o", "DPkg::Lock::Timeout=600"]
        command = [*sudo, "apt-get", *wait, "install", "-y", "--no-install-recommends", *packages]
        print(f"debian: installing {' '.join(packages)}: {' '.join(command)}", file=sys.stderr, flush=True)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        done = subprocess.run(command, capture_output=True, text=True, env=env)
        if done.returncode != 0:
            # The package lists may be missing on a fresh machine.
            subprocess.run([*sudo, "apt-get", *wait, "update"], capture_output=True, text=True, env=env)
            done = subprocess.run(command, capture_output=True, text=True, env=env)
        if done.returncode != 0 or not present():
            raise RuntimeError(f"could not install {packages} with apt-get:\n{done.stdout}\n{done.stderr}")
