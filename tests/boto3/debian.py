"""Debian packages a test needs beyond the machine's (browsers, Tesseract, poppler), installed
with apt-get when their commands are missing; the command is printed."""
import os
import shutil
import subprocess
import sys


def ensure_packages(packages, commands, files=()):
    """Installs `packages` unless every command is on PATH and every file exists."""
    if all(shutil.which(c) for c in commands) and all(os.path.exists(f) for f in files):
        return
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    command = [*sudo, "apt-get", "install", "-y", "--no-install-recommends", *packages]
    print(f"debian: installing {' '.join(packages)}: {' '.join(command)}", file=sys.stderr, flush=True)
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        # The package lists may be missing on a fresh machine.
        subprocess.run([*sudo, "apt-get", "update"], capture_output=True, text=True)
        done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0 or not all(shutil.which(c) for c in commands):
        raise RuntimeError(f"could not install {packages} with apt-get:\n{done.stdout}\n{done.stderr}")
