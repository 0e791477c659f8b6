"""Python packages a test needs beyond the machine's (LangChain's AWS integration), installed
from PyPI once into ~/.cache/quarry/pylib/NAME (the command is printed) and put first on
sys.path, so they do not touch the system's packages."""
import os
import subprocess
import sys

CACHE = os.path.join(os.path.expanduser("~"), ".cache", "quarry", "pylib")


def use(name, requirement, module):
    target = os.path.join(CACHE, name)
    marker = os.path.join(target, ".installed-" + requirement.replace("/", "_"))
    if not os.path.exists(marker):
        command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                   "--target", target, requirement]
        print(f"pylib: installing {requirement} from PyPI: {' '.join(command)}", file=sys.stderr, flush=True)
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"pip failed:\n{done.stdout}\n{done.stderr}")
        open(marker, "w").close()
    sys.path.insert(0, target)
    __import__(module)
