"""The vLLM client against a fake vLLM: every scoring mode gives the same exact sums; retries and failures.
Also the server command and deploy configs the client relies on."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from service.backends.cpu import BF16_CPU_FLAGS, cpu_flags
from service.backends.server_pool import ServerPool
from service.backends.teacher_vllm_server import (
    MAX_LOGPROB_TOKEN_IDS,
    ScoringMode,
    TeacherRequestError,
    VLLMServerTeacher,
)
from service.backends.vllm_env import CPU_BLOCK_SIZE, ServerOptions, VLLMServer, parse_counters
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


def test_deploy_configs_let_the_client_ask_for_every_label_token() -> None:
    root = Path(__file__).resolve().parents[2]
    for config in ("deploy/compose.yaml", "deploy/k8s/understudy.yaml"):
        text = root.joinpath(config).read_text()
        found = re.findall(r'--max-logprobs"?,?\s*(?:-\s*)?"?(\d+)', text)
        assert found and all(int(n) >= MAX_LOGPROB_TOKEN_IDS for n in found), config
    command = VLLMServer(Path("python"), Path("model"), ServerOptions(), Path("log")).command()
    assert int(command[command.index("--max-logprobs") + 1]) >= MAX_LOGPROB_TOKEN_IDS


def test_cpu_servers_use_small_kv_blocks_so_the_prefix_cache_can_share() -> None:
    def block_size(options: ServerOptions, gpu: bool) -> str | None:
        command = VLLMServer(Path("python"), Path("model"), options, Path("log"), gpu=gpu).command()
        return command[command.index("--block-size") + 1] if "--block-size" in command else None

    assert block_size(ServerOptions(), gpu=False) == str(CPU_BLOCK_SIZE)
    assert block_size(ServerOptions(), gpu=True) is None
    assert block_size(ServerOptions(block_size=64), gpu=True) == "64"


def test_server_counters_are_summed_over_engines_and_other_metrics_ignored() -> None:
    page = "\n".join(
        [
            "# HELP vllm:prompt_tokens_total Number of prefill tokens processed.",
            "# TYPE vllm:prompt_tokens_total counter",
            'vllm:prompt_tokens_total{engine="0",model_name="m"} 1200.0',
            'vllm:prompt_tokens_total{engine="1",model_name="m"} 300.0',
            'vllm:prefix_cache_queries_total{engine="0",model_name="m"} 1000.0',
            'vllm:prefix_cache_hits_total{engine="0",model_name="m"} 250.0',
            'vllm:prefix_cache_hits_created{engine="0",model_name="m"} 1.7e9',
            'vllm:generation_tokens_total{engine="0",model_name="m"} 42.0',
        ]
    )
    assert parse_counters(page) == {
        "vllm:prompt_tokens_total": 1500.0,
        "vllm:prefix_cache_queries_total": 1000.0,
        "vllm:prefix_cache_hits_total": 250.0,
    }


def test_the_server_runs_in_bfloat16_where_the_hardware_computes_it(tmp_path: Path) -> None:
    with_bf16, without = tmp_path / "with", tmp_path / "without"
    with_bf16.write_text("processor : 0\nflags : fpu avx2 avx512f avx512_bf16\n")
    without.write_text("processor : 0\nflags : fpu avx2 avx512f\n")
    assert cpu_flags(with_bf16) & BF16_CPU_FLAGS and not cpu_flags(without) & BF16_CPU_FLAGS
    assert cpu_flags(tmp_path / "absent") == frozenset()
    assert VLLMServer(Path("python"), Path("model"), ServerOptions(), Path("log"), gpu=True).dtype == "bfloat16"
    assert VLLMServer(Path("python"), Path("model"), ServerOptions(dtype="float32"), Path("log")).dtype == "float32"


def test_replicas_share_the_requests_and_a_dead_one_loses_nothing(tokenizer_dir: Path) -> None:
    """Two servers: requests spread over both; once one stops answering, every request goes to the other at once
    (no backoff), with the same scores."""
    fake = FakeVLLM()
    served: dict[str, int] = {"a": 0, "b": 0}
    dead = {"a": False}

    def replicas(request: httpx.Request) -> httpx.Response:
        host = request.url.host
        if dead.get(host):
            raise httpx.ConnectError("refused", request=request)
        served[host] += 1
        return fake(request)

    teacher = VLLMServerTeacher(
        ["http://a", "http://b"],
        "m",
        tokenizer_dir=tokenizer_dir,
        items_per_request=1,
        backoff_base_s=5.0,
        transport=httpx.MockTransport(replicas),
    )
    np.testing.assert_allclose(teacher.score(REQUESTS * 4), expected(teacher) * 4)
    assert served["a"] > 0 and served["b"] > 0, served
    dead["a"] = True
    before = dict(served)
    started = time.monotonic()
    np.testing.assert_allclose(teacher.score(REQUESTS * 4), expected(teacher) * 4)
    assert time.monotonic() - started < 2.0, "no backoff while a server is left"
    assert served["a"] == before["a"] and served["b"] > before["b"]


def test_the_pool_picks_the_least_busy_reachable_server_and_retries_a_dead_one_later() -> None:
    now = {"t": 0.0}
    pool = ServerPool(["http://a/", "http://b"], down_s=30.0, clock=lambda: now["t"])
    assert pool.urls == ("http://a", "http://b")
    with pool.lease() as first, pool.lease() as second:
        assert {first, second} == {"http://a", "http://b"}, "the busy one is passed over"
    pool.mark_down("http://a")
    with pool.lease() as chosen:
        assert chosen == "http://b" and pool.up() == ["http://b"]
    now["t"] = 31.0
    assert pool.up() == ["http://a", "http://b"], "tried again once its time out is over"
    pool.mark_down("http://a")
    pool.mark_down("http://b")
    with pool.lease() as chosen:
        assert chosen == "http://a", "all down: the one back first"
    with pytest.raises(ValueError, match="at least one"):
        ServerPool([])
