"""The vLLM client against a fake vLLM: every scoring mode gives the same exact sums; retries and failures."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from service.backends.teacher_vllm_server import ScoringMode, TeacherRequestError, VLLMServerTeacher
from service.ports import ScoreRequest, TeacherUnavailable

WORDS = ["[UNK]", "Label", ":", "spam", "ham", "not", "very", "hello", "world", "Text"]
REQUESTS = [
    ScoreRequest("Text: hello world\nLabel:", (" ham", " spam", " not spam", " very not spam")),
    ScoreRequest("Text: world\nLabel:", (" ham", " spam", " not spam", " very not spam")),
    ScoreRequest("Text: hello hello\nLabel:", (" ham", " spam", " not spam", " very not spam")),
]


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    folder = tmp_path_factory.mktemp("tokenizer")
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]")  # type: ignore[no-untyped-call]
    fast.save_pretrained(folder)
    return folder


def logprob(context: list[int], token: int) -> float:
    """A deterministic stand-in for the model: log p(token | context)."""
    return -(1 + (sum((i + 1) * c for i, c in enumerate(context)) * 7 + token * 13) % 11) / 4


class FakeVLLM:
    """Answers /v1/completions the way vLLM does for token-id prompts, and counts the requests."""

    def __init__(self) -> None:
        self.completions = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/models":
            return httpx.Response(200, json={"data": [{"id": "m", "max_model_len": 2048}]})
        body = json.loads(request.content)
        self.completions += 1
        choices = []
        for index, prompt in enumerate(body["prompt"]):
            choice: dict[str, object] = {"index": index, "text": "x"}
            if body.get("prompt_logprobs") is not None:
                choice["prompt_logprobs"] = [None] + [
                    {str(tok): {"logprob": logprob(prompt[:t], tok), "rank": 1}} for t, tok in enumerate(prompt) if t
                ]
            else:
                top = {f"token_id:{tok}": logprob(prompt, tok) for tok in body["logprob_token_ids"]}
                choice["logprobs"] = {"top_logprobs": [top], "tokens": ["token_id:1"], "token_logprobs": [-1.0]}
            choices.append(choice)
        return httpx.Response(200, json={"choices": choices})


def expected(teacher: VLLMServerTeacher) -> list[list[float]]:
    out = []
    for request in REQUESTS:
        prompt = teacher._tokens.encode(request.prompt)
        row = []
        for label in request.continuations:
            ids = teacher._tokens.encode(label)
            row.append(sum(logprob(prompt + ids[:t], tok) for t, tok in enumerate(ids)))
        out.append(row)
    return out


@pytest.mark.parametrize("mode", ["prefix", "echo", "naive"])
def test_every_mode_sums_the_whole_label_exactly(tokenizer_dir: Path, mode: ScoringMode) -> None:
    fake = FakeVLLM()
    teacher = VLLMServerTeacher(
        "http://vllm",
        "m",
        tokenizer_dir=tokenizer_dir,
        mode=mode,
        items_per_request=2,
        transport=httpx.MockTransport(fake),
    )
    scores = teacher.score(REQUESTS)
    np.testing.assert_allclose(scores, expected(teacher))
    # prefix: per group of 2 items, one call for the prompts and one for the later label tokens.
    assert fake.completions == {"prefix": 4, "echo": 2, "naive": 12}[mode]
    assert teacher.max_prompt_tokens == 2048 - 32


def test_a_server_that_comes_back_is_waited_for(tokenizer_dir: Path) -> None:
    fake = FakeVLLM()
    failures = {"left": 3}

    def flaky(request: httpx.Request) -> httpx.Response:
        if failures["left"]:
            failures["left"] -= 1
            if failures["left"] == 1:
                return httpx.Response(503, text="loading")
            raise httpx.ConnectError("refused", request=request)
        return fake(request)

    teacher = VLLMServerTeacher(
        "http://vllm", "m", tokenizer_dir=tokenizer_dir, backoff_base_s=0.01, transport=httpx.MockTransport(flaky)
    )
    np.testing.assert_allclose(teacher.score(REQUESTS[:1]), expected(teacher)[:1])
    assert failures["left"] == 0


def test_a_server_down_too_long_raises_teacher_unavailable(tokenizer_dir: Path) -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    teacher = VLLMServerTeacher(
        "http://vllm",
        "m",
        tokenizer_dir=tokenizer_dir,
        max_wait_s=0.3,
        backoff_base_s=0.02,
        transport=httpx.MockTransport(down),
    )
    started = time.monotonic()
    with pytest.raises(TeacherUnavailable, match="unavailable after"):
        teacher.score(REQUESTS[:1])
    assert 0.3 <= time.monotonic() - started < 2.0


def test_a_rejected_request_fails_at_once_with_the_raw_answer(tokenizer_dir: Path) -> None:
    calls = {"n": 0}

    def reject(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        return httpx.Response(400, json={"error": {"message": "prompt too long"}})

    teacher = VLLMServerTeacher("http://vllm", "m", tokenizer_dir=tokenizer_dir, transport=httpx.MockTransport(reject))
    with pytest.raises(TeacherRequestError, match="HTTP 400") as caught:
        teacher.score(REQUESTS[:1])
    assert "prompt too long" in caught.value.raw
    assert calls["n"] == 1
