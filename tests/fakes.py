"""Deterministic stand-ins for the models, for unit and API tests only (the integration tier uses real ones)."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence

import numpy as np

from service.ports import FloatArray, GenerateRequest, Generation, ScoreRequest

SPAM_WORDS = ("free", "win", "prize", "claim", "call now", "cash", "txt")


class KeywordTeacher:
    """Scores ' spam' high when the item text has a spam keyword; every other label gets a flat score. A multi-label
    answer line ("\n<label>: yes|no") is likely yes when the label is a word of the item text."""

    model_name = "keyword-teacher"
    max_prompt_tokens = 2000
    special_tokens = ("<|im_start|>", "<|im_end|>", "<|endoftext|>")

    def __init__(self) -> None:
        self.calls = 0

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def truncate(self, text: str, max_tokens: int) -> tuple[str, bool]:
        words = text.split()
        return (" ".join(words[:max_tokens]), True) if len(words) > max_tokens else (text, False)

    def score(self, requests: Sequence[ScoreRequest]) -> list[list[float]]:
        self.calls += 1
        scores = []
        for request in requests:
            item = request.prompt.rsplit("Text:", 1)[-1]
            spammy = any(word in item.lower() for word in SPAM_WORDS)
            scores.append([self._one(item, c, spammy) for c in request.continuations])
        return scores

    def generate(self, requests: Sequence[GenerateRequest]) -> list[Generation]:
        """A spans answer naming each capitalised word after the first of the item text with the schema's first
        label, sure (0.9) of texts that have one and unsure (0.3) of the rest; the answer is split into 4-character
        tokens."""
        self.calls += 1
        out = []
        for request in requests:
            item = request.prompt.rsplit("Text:", 1)[-1].split("<|im_end|>")[0]
            label = request.json_schema["properties"]["entities"]["items"]["properties"]["label"]["enum"][0]  # type: ignore[index]
            words = [word.strip(".,!?") for word in item.split()[1:] if word[:1].isupper()]
            text = json.dumps({"entities": [{"text": word, "label": label} for word in words]})
            ends = (*range(4, len(text), 4), len(text))
            share = math.log(0.9 if words else 0.3) / len(ends)
            out.append(Generation(text=text, token_ends=ends, token_logprobs=(share,) * len(ends), finished=True))
        return out

    @staticmethod
    def _one(item: str, continuation: str, spammy: bool) -> float:
        if continuation.startswith("\n"):
            name, answer = continuation.strip().split(": ")
            present = name in item.lower().replace(".", " ").split()
            return math.log(0.95 if (answer == "yes") == present else 0.05)
        return math.log(0.97 if (continuation.strip() == "spam") == spammy else 0.03)


class HashEmbedder:
    """Bag-of-words hashed into 64 dimensions, L2-normalised: similar texts land near each other."""

    model_name = "hash-embedder"

    def embed(self, texts: Sequence[str]) -> FloatArray:
        out = np.zeros((len(texts), 64))
        for row, text in enumerate(texts):
            for word in text.lower().split():
                out[row, int(hashlib.md5(word.encode()).hexdigest(), 16) % 64] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        result: FloatArray = out / np.where(norms > 0, norms, 1.0)
        return result


class KeywordStudent:
    """Sure (0.95) on texts with a spam keyword, unsure (0.6 ham) on the rest."""

    version = "v1"
    labels = ("ham", "spam")
    columns = labels

    def predict_proba(self, texts: Sequence[str]) -> FloatArray:
        spammy = [any(word in text.lower() for word in SPAM_WORDS) for text in texts]
        return np.asarray([[0.05, 0.95] if spam else [0.6, 0.4] for spam in spammy])
