"""A stand-in for vLLM's OpenAI-compatible server, for the fault benchmark: it answers the two calls the
`vllm_server` teacher makes (GET /v1/models; POST /v1/completions with `logprob_token_ids`) with log-probabilities
drawn from a hash of the prompt, after a fixed delay per prompt. It labels nothing well; it lets a benchmark kill
and restart "the teacher server" in a second, where a real one takes minutes to load.

    python -m service.bench.fake_vllm --port 8000 --model DIR --delay-ms 5
"""

from __future__ import annotations

import argparse
import hashlib
import math
import time
from typing import Any

MAX_MODEL_LEN = 2048


def create_app(model: str, delay_s: float) -> Any:
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        return {"data": [{"id": model, "max_model_len": MAX_MODEL_LEN}]}

    @app.post("/v1/completions")
    def completions(body: dict[str, Any]) -> dict[str, Any]:
        prompts: list[list[int]] = body["prompt"]
        token_ids: list[int] = body.get("logprob_token_ids") or []
        time.sleep(delay_s * len(prompts))
        choices = []
        for index, prompt in enumerate(prompts):
            seed = hashlib.sha256(str(prompt).encode()).digest()
            weights = [1 + seed[i % len(seed)] for i in range(len(token_ids))]
            total = sum(weights)
            top = {
                f"token_id:{token}": math.log(weight / total) for token, weight in zip(token_ids, weights, strict=True)
            }
            choices.append({"index": index, "text": "", "logprobs": {"top_logprobs": [top]}})
        return {"choices": choices}

    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--delay-ms", type=float, default=5.0)
    args = parser.parse_args()
    uvicorn.run(create_app(args.model, args.delay_ms / 1000), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
