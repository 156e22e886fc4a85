"""JSON cells are read with orjson, and rows written with NaN (which json.dumps writes and orjson refuses) still
read back on SQLite (PostgreSQL refuses NaN in JSON at write time)."""

from __future__ import annotations

import math
from pathlib import Path

from service import db
from service.config import Settings
from service.tables import Job


def test_a_nan_written_to_a_json_cell_reads_back(tmp_path: Path) -> None:
    sessions = db.open(Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'cells.db'}"))
    with db.transaction(sessions) as session:
        job = Job(kind="label_batch", payload={"margin": float("nan"), "shots": 4})
        session.add(job)
        session.flush()
        job_id = job.id
    with sessions() as session:
        payload = session.get_one(Job, job_id).payload
    assert math.isnan(payload["margin"]) and payload["shots"] == 4
    assert db.json_loads('{"raw": [0.25, 0.75]}') == {"raw": [0.25, 0.75]}
    db.engine_of(sessions).dispose()
