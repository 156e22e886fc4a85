"""The production teacher: a client of vLLM's OpenAI-compatible server, scoring whole labels exactly.

Prompts are tokenised here (the same ids as the in-process scorer) and sent as token ids. Modes:

- "prefix" (default): vLLM skips its prefix cache for any request that asks for prompt logprobs, so
  instead each item's prompt is sent once with `logprob_token_ids` set to the labels' tokens: one
  generation step gives every label's first-token log-probability, and leaves the prompt in the prefix
  cache. Labels of several tokens then send prompt + the label's first t tokens for each later token t,
  which reuse the cached prompt. Many items go in one request (a list of prompts).
- "echo": prompt + label sequences with prompt logprobs, all labels of many items in one request.
- "naive": one request per item per label, as other labeling tools do; kept for the benchmark.

A spans task's answers are generated with vLLM's structured outputs (`structured_outputs.json`, the JSON schema
that the in-process teacher enforces with lm-format-enforcer), greedily, one request per item, with each token's
log-probability as vLLM reports it (over the tokens the schema allowed there: its mask applies first).

Requests run on a bounded thread pool with timeouts; failures are retried with exponential backoff and
jitter for as long as `max_wait_s`, then `TeacherUnavailable` tells the worker to release its job.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import httpx

from service.backends.server_pool import ServerPool
from service.backends.teacher_tokens import TeacherTokenizer, score_by_next_token
from service.ports import GenerateRequest, Generation, ScoreRequest, TeacherUnavailable

ScoringMode = Literal["prefix", "echo", "naive"]
MAX_LOGPROB_TOKEN_IDS = 128
"""vLLM's cap on logprob_token_ids; tasks whose labels use more distinct tokens fall back to "echo"."""


class TeacherRequestError(RuntimeError):
    """vLLM rejected a request or answered without the asked-for scores; the raw answer is kept."""

    def __init__(self, message: str, raw: str) -> None:
        super().__init__(f"{message}: {raw[:500]}")
        self.raw = raw


SLOW = (httpx.ReadTimeout, httpx.WriteTimeout, httpx.PoolTimeout)


class VLLMServerTeacher:
    def __init__(
        self,
        base_url: str | Sequence[str],
        model: str,
        *,
        tokenizer_dir: Path | None = None,
        mode: ScoringMode = "prefix",
        concurrency: int = 8,
        items_per_request: int = 16,
        timeout_s: float = 60.0,
        max_retries: int | None = None,
        max_wait_s: float = 600.0,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 15.0,
        max_model_len: int | None = None,
        max_continuation_tokens: int = 32,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """base_url: one server, or several serving the same model (requests go to the one with the fewest in
        flight; one that cannot be reached is set aside and its requests go to the others). model: the server's
        model name; tokenizer_dir defaults to model when that is a folder.

        max_wait_s: how long calls keep retrying an unreachable server before TeacherUnavailable.
        transport: an httpx transport to use instead of the network (tests).
        """
        folder = tokenizer_dir or Path(model)
        if not folder.is_dir():
            raise ValueError(f"no tokenizer folder for {model!r}; pass tokenizer_dir")
        self._servers = ServerPool([base_url] if isinstance(base_url, str) else base_url)
        self._model = model
        self._tokens = TeacherTokenizer(folder)
        self._mode: ScoringMode = mode
        self._items_per_request = items_per_request
        self._timeout_s = timeout_s
        self._max_retries = max_retries
        self._max_wait_s = max_wait_s
        self._backoff = (backoff_base_s, backoff_max_s)
        self._max_model_len = max_model_len
        self._max_continuation_tokens = max_continuation_tokens
        self._client = httpx.Client(
            timeout=timeout_s, limits=httpx.Limits(max_connections=concurrency), transport=transport
        )
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="vllm-teacher")

    @property
    def model_name(self) -> str:
        return self._model

    @property
    def max_prompt_tokens(self) -> int:
        if self._max_model_len is None:
            models = self._call("GET", "/v1/models", None)
            entry = next((m for m in models["data"] if m["id"] == self._model), models["data"][0])
            self._max_model_len = int(entry["max_model_len"])
        return self._max_model_len - self._max_continuation_tokens

    @property
    def special_tokens(self) -> tuple[str, ...]:
        return self._tokens.special_tokens

    def count_tokens(self, text: str) -> int:
        return self._tokens.count_tokens(text)

    def truncate(self, text: str, max_tokens: int) -> tuple[str, bool]:
        return self._tokens.truncate(text, max_tokens)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._client.close()

    def score(self, requests: Sequence[ScoreRequest]) -> list[list[float]]:
        encoded = [self._tokens.encode_request(r.prompt, r.continuations) for r in requests]
        label_tokens = sorted({token for _, labels in encoded for ids in labels for token in ids})
        mode = self._mode
        if mode == "prefix" and len(label_tokens) > MAX_LOGPROB_TOKEN_IDS:
            mode = "echo"
        if mode == "naive":
            jobs = [[(prompt, [ids])] for prompt, labels in encoded for ids in labels]
            flat = list(self._pool.map(self._score_echo, jobs))
            widths = [len(labels) for _, labels in encoded]
            starts = [sum(widths[:i]) for i in range(len(widths))]
            return [[flat[s + j][0][0] for j in range(w)] for s, w in zip(starts, widths, strict=True)]
        step = self._items_per_request
        groups = [encoded[i : i + step] for i in range(0, len(encoded), step)]
        if mode == "echo":
            results = self._pool.map(self._score_echo, groups)
        else:
            results = self._pool.map(lambda group: self._score_prefix(group, label_tokens), groups)
        return [scores for group in results for scores in group]

    def _score_prefix(
        self, group: Sequence[tuple[list[int], list[list[int]]]], label_tokens: list[int]
    ) -> list[list[float]]:
        return score_by_next_token(group, lambda prompts: self._next_token_logprobs(prompts, label_tokens))

    def _next_token_logprobs(self, prompts: list[list[int]], token_ids: list[int]) -> list[dict[int, float]]:
        body = {
            "model": self._model,
            "prompt": prompts,
            "max_tokens": 1,
            "temperature": 0.0,
            "logprobs": len(token_ids),
            "logprob_token_ids": token_ids,
            "return_tokens_as_token_ids": True,
        }
        answer = self._call("POST", "/v1/completions", body)
        out: list[dict[int, float]] = [{} for _ in prompts]
        for choice in answer["choices"]:
            top = choice["logprobs"]["top_logprobs"][0]
            out[choice["index"]] = {int(key.split(":", 1)[1]): float(value) for key, value in top.items()}
        for row in out:
            if not set(token_ids) <= row.keys():
                raise TeacherRequestError("vLLM left out label tokens", str(answer))
        return out

    def _score_echo(self, group: Sequence[tuple[list[int], list[list[int]]]]) -> list[list[float]]:
        """Log-probs of each label's tokens read from prompt logprobs of prompt + label."""
        sequences = [(prompt, ids) for prompt, labels in group for ids in labels]
        body = {
            "model": self._model,
            "prompt": [prompt + ids for prompt, ids in sequences],
            "max_tokens": 1,
            "temperature": 0.0,
            "prompt_logprobs": 0,
        }
        answer = self._call("POST", "/v1/completions", body)
        totals = [0.0] * len(sequences)
        for choice in answer["choices"]:
            prompt, ids = sequences[choice["index"]]
            positions = choice["prompt_logprobs"][len(prompt) : len(prompt) + len(ids)]
            try:
                totals[choice["index"]] = sum(
                    float(entry[str(token)]["logprob"]) for entry, token in zip(positions, ids, strict=True)
                )
            except (KeyError, TypeError, ValueError) as error:
                raise TeacherRequestError(f"unexpected prompt_logprobs ({error})", str(choice)) from error
        scores: list[list[float]] = []
        for _, labels in group:
            scores.append(totals[: len(labels)])
            totals = totals[len(labels) :]
        return scores

    def generate(self, requests: Sequence[GenerateRequest]) -> list[Generation]:
        return list(self._pool.map(self._generate_one, requests))

    def _generate_one(self, request: GenerateRequest) -> Generation:
        body = {
            "model": self._model,
            "prompt": self._tokens.encode(request.prompt),
            "max_tokens": request.max_tokens,
            "temperature": 0.0,
            "logprobs": 0,
            "return_tokens_as_token_ids": True,
            "structured_outputs": {"json": request.json_schema},
        }
        answer = self._call("POST", "/v1/completions", body)
        try:
            choice = answer["choices"][0]
            tokens = [int(token.split(":", 1)[1]) for token in choice["logprobs"]["tokens"]]
            logprobs = [float(value) for value in choice["logprobs"]["token_logprobs"]]
        except (KeyError, IndexError, TypeError, ValueError) as error:
            raise TeacherRequestError(f"unexpected completion ({error})", str(answer)) from error
        return self._tokens.generation(tokens, logprobs, finished=choice.get("finish_reason") == "stop")

    def _call(self, method: str, path: str, body: dict[str, Any] | None) -> Any:
        """One HTTP call, retried with exponential backoff and jitter while no server answers; a server that cannot
        be reached is set aside, and the call goes at once to another one when there is one."""
        attempt = 0
        first_failure: float | None = None
        while True:
            with self._servers.lease() as url:
                try:
                    response = self._client.request(method, f"{url}{path}", json=body)
                    if response.status_code == 200:
                        self._servers.mark_up(url)
                        return response.json()
                    if response.status_code not in (408, 429) and response.status_code < 500:
                        raise TeacherRequestError(f"vLLM answered HTTP {response.status_code}", response.text)
                    problem = f"{url}: HTTP {response.status_code}: {response.text[:200]}"
                except httpx.TransportError as error:
                    problem = f"{url}: {type(error).__name__}: {error}"
                    if not isinstance(error, SLOW):
                        # Unreachable, or gone mid-request (killed): set aside. A slow answer is not a dead server.
                        self._servers.mark_down(url)
                        if self._servers.up():
                            continue  # another server takes it now; no backoff while one is left
            now = time.monotonic()
            first_failure = now if first_failure is None else first_failure
            attempt += 1
            waited = now - first_failure
            if waited >= self._max_wait_s or (self._max_retries is not None and attempt > self._max_retries):
                raise TeacherUnavailable(
                    f"vLLM at {', '.join(self._servers.urls)} unavailable after {attempt} attempts over "
                    f"{waited:.0f} s: {problem}"
                )
            base, cap = self._backoff
            delay = min(cap, base * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
            time.sleep(min(delay, max(self._max_wait_s - waited, 0.0)))
