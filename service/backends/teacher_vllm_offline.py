"""The bulk teacher: vLLM's offline engine in this process (GPU machines, where `vllm` is installed here).

It scores like the server client's "prefix" mode: each prompt once, with the labels' tokens asked for as
next-token log-probs, then the later tokens of multi-token labels on top of the prefix-cached prompt.
A spans task's answers are generated under their JSON schema with vLLM's structured outputs, as on the server.
vLLM is imported only when the teacher is built, so the rest of the service never needs it. vLLM spawns
its engine in a child process: a script that builds this teacher needs the `if __name__ == "__main__":` guard.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from service.backends.teacher_tokens import TeacherTokenizer, score_by_next_token
from service.ports import GenerateRequest, Generation, ScoreRequest

MAX_LOGPROB_TOKEN_IDS = 128


class VLLMOfflineTeacher:
    def __init__(
        self,
        model_dir: Path,
        *,
        dtype: str = "auto",
        max_model_len: int = 4096,
        gpu_memory_utilization: float = 0.5,
        max_continuation_tokens: int = 32,
        engine_options: dict[str, Any] | None = None,
    ) -> None:
        from vllm import LLM

        self._tokens = TeacherTokenizer(model_dir)
        self._llm = LLM(
            model=str(model_dir),
            dtype=dtype,
            max_model_len=max_model_len,
            gpu_memory_utilization=gpu_memory_utilization,
            enable_prefix_caching=True,
            max_logprobs=MAX_LOGPROB_TOKEN_IDS,
            **(engine_options or {}),
        )
        self._max_model_len = max_model_len
        self._max_continuation_tokens = max_continuation_tokens
        self._model_name = Path(model_dir).name

    @property
    def model_name(self) -> str:
        return self._model_name

    @property
    def max_prompt_tokens(self) -> int:
        return self._max_model_len - self._max_continuation_tokens

    @property
    def special_tokens(self) -> tuple[str, ...]:
        return self._tokens.special_tokens

    def count_tokens(self, text: str) -> int:
        return self._tokens.count_tokens(text)

    def truncate(self, text: str, max_tokens: int) -> tuple[str, bool]:
        return self._tokens.truncate(text, max_tokens)

    def score(self, requests: Sequence[ScoreRequest]) -> list[list[float]]:
        encoded = [self._tokens.encode_request(r.prompt, r.continuations) for r in requests]
        label_tokens = sorted({token for _, labels in encoded for ids in labels for token in ids})
        if len(label_tokens) > MAX_LOGPROB_TOKEN_IDS:
            return [self._score_with_prompt_logprobs(prompt, labels) for prompt, labels in encoded]
        return score_by_next_token(encoded, lambda prompts: self._next_token_logprobs(prompts, label_tokens))

    def _next_token_logprobs(self, prompts: list[list[int]], token_ids: list[int]) -> list[dict[int, float]]:
        from vllm import SamplingParams

        params = SamplingParams(max_tokens=1, temperature=0.0, logprobs=len(token_ids), logprob_token_ids=token_ids)
        outputs = self._llm.generate([{"prompt_token_ids": ids} for ids in prompts], params, use_tqdm=False)
        return [
            {token: float(logprob.logprob) for token, logprob in out.outputs[0].logprobs[0].items()} for out in outputs
        ]

    def _score_with_prompt_logprobs(self, prompt: list[int], labels: list[list[int]]) -> list[float]:
        """For label sets with too many distinct tokens: prompt logprobs of prompt + label (no prefix reuse)."""
        from vllm import SamplingParams

        params = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0)
        outputs = self._llm.generate([{"prompt_token_ids": prompt + ids} for ids in labels], params, use_tqdm=False)
        return [
            sum(float(out.prompt_logprobs[len(prompt) + t][token].logprob) for t, token in enumerate(ids))
            for out, ids in zip(outputs, labels, strict=True)
        ]

    def generate(self, requests: Sequence[GenerateRequest]) -> list[Generation]:
        from vllm import SamplingParams
        from vllm.sampling_params import StructuredOutputsParams

        params = [
            SamplingParams(
                max_tokens=r.max_tokens,
                temperature=0.0,
                logprobs=0,
                structured_outputs=StructuredOutputsParams(json=r.json_schema),
            )
            for r in requests
        ]
        prompts = [{"prompt_token_ids": self._tokens.encode(r.prompt)} for r in requests]
        generations = []
        for out in self._llm.generate(prompts, params, use_tqdm=False):
            answer = out.outputs[0]
            tokens = list(answer.token_ids)
            logprobs = [float(step[token].logprob) for step, token in zip(answer.logprobs, tokens, strict=True)]
            generations.append(self._tokens.generation(tokens, logprobs, finished=answer.finish_reason == "stop"))
        return generations
