"""llama.cpp's own server, `llama-server`, built once from the llama.cpp that lmc's pinned
llama-cpp-python vendors: a second server the benchmark can run both sides on.

    .venv/bin/python bench/llama_server.py      # build once (15 min on 2 cores); prints its path
    .venv/bin/python bench/run.py --model qwen0.5b --server llama.cpp

Why a second server: llama-cpp-python's server masks the whole vocabulary against the grammar
before every token it draws (18.5 to 21.6 ms a token on Qwen's 151,936 tokens here,
`bench/constrained_decoding.py mask`), so a program held to its output types decodes slower there
than one left free, whatever the program. llama.cpp's server draws first and masks only when the
drawn token breaks the grammar, as lmc's embedded model does. Both are built from the same
llama.cpp commit with the same portable flags (`Makefile`), so the model code is the same; the
sampler is the difference that matters here, though the two also turn a JSON Schema into a
grammar and apply a chat template each in their own way. Nothing here is a product dependency:
the source comes from PyPI's sdist of the version lmc pins.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from models import CACHE

PACKAGE = "llama-cpp-python"
# The Makefile's flags: a -march=native build crashed on CPUs with AMX.
PORTABLE = ["-DGGML_NATIVE=OFF", "-DGGML_AVX=ON", "-DGGML_AVX2=ON", "-DGGML_FMA=ON"]
PORTABLE += ["-DGGML_F16C=ON"]
ONLY_THE_SERVER = [
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=OFF",  # one file to keep
    "-DLLAMA_CURL=OFF",  # it never downloads a model here
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_SERVER=ON",
]


def server_path() -> Path:
    """Where the built server is kept, for the llama-cpp-python version lmc has installed."""
    version = importlib.metadata.version(PACKAGE)
    return CACHE / f"llama-server-{version}" / "llama-server"


def build() -> Path:
    """The server, built from the sdist the first time."""
    target = server_path()
    if target.is_file():
        return target
    version = target.parent.name.removeprefix("llama-server-")
    with tempfile.TemporaryDirectory(prefix="llama-server-") as scratch:
        work = Path(scratch)
        print(f"fetching {PACKAGE}=={version}'s source from PyPI", file=sys.stderr)
        source_only = ["--no-deps", "--no-binary", ":all:", "--dest", str(work)]
        pip = [sys.executable, "-m", "pip", "download", "--quiet", *source_only]
        subprocess.run([*pip, f"{PACKAGE}=={version}"], check=True)
        (sdist,) = work.glob("*.tar.gz")
        with tarfile.open(sdist) as archive:
            archive.extractall(work, filter="data")
        source = work / f"{sdist.name.removesuffix('.tar.gz')}" / "vendor" / "llama.cpp"
        built = work / "build"
        print(f"building llama-server from {source.name} (about 15 minutes)", file=sys.stderr)
        subprocess.run(
            ["cmake", "-S", str(source), "-B", str(built), *ONLY_THE_SERVER, *PORTABLE],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        jobs = str(os.cpu_count() or 2)
        subprocess.run(
            ["cmake", "--build", str(built), "--target", "llama-server", "-j", jobs],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".partial")
        shutil.copy2(built / "bin" / "llama-server", partial)
        partial.replace(target)  # whole or absent: a stopped build is not mistaken for a done one
    return target


if __name__ == "__main__":
    print(build())
