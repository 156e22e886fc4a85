"""The Embedder port on sentence-transformers' all-MiniLM-L6-v2 (packaged weights, CPU)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from sentence_transformers import SentenceTransformer

from service.backends.minilm import BASE_MODEL_NAME, minilm_path
from service.ports import FloatArray


class SentenceEmbedder:
    """L2-normalised sentence embeddings; `embed` keeps the input order.

    sentence-transformers sorts each call's texts by length before batching and restores the order,
    so padding costs little. `quantize` applies int8 dynamic quantization to the linear layers; it costs
    fidelity (on SMS Spam: mean cosine 0.92 to the float embeddings, top-5 neighbours 66% the same), so it
    is off by default and not meant for picking few-shot neighbours.
    """

    def __init__(self, model_path: Path | None = None, *, batch_size: int = 64, quantize: bool = False) -> None:
        path = model_path or minilm_path()
        model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        model.eval()
        if quantize:
            model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)  # type: ignore[no-untyped-call]
        self._model = model
        self._batch_size = batch_size
        self._model_name = BASE_MODEL_NAME if model_path is None else str(model_path)
        self.dimension = int(model.get_embedding_dimension() or 0)

    @property
    def model_name(self) -> str:
        return self._model_name

    def embed(self, texts: Sequence[str]) -> FloatArray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float64)
        with torch.inference_mode():
            vectors = self._model.encode(
                list(texts),
                batch_size=self._batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
        # Normalised again in float64, so that norms are 1 to float64 precision, not float32's.
        embeddings = np.asarray(vectors, dtype=np.float64)
        norms: FloatArray = np.linalg.norm(embeddings, axis=1, keepdims=True)
        return embeddings / np.maximum(norms, 1e-12)
