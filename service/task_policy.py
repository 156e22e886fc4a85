"""A task's routing policy and teacher calibration, fitted on its uniform human reviews. The one place the labeling
job, the bulk path and GET /quality get them from, so all three apply the same rule."""

from __future__ import annotations

import numpy as np
from sqlalchemy.orm import Session

from service.pipeline.calibration import Calibration, fit_calibration
from service.pipeline.policy import Policy, fit_policy
from service.store import history, tasks
from service.tables import Task


def fit_task_policy(session: Session, task: Task, *, min_reviews: int) -> Policy:
    """The task's routing policy, certified on its unbiased human reviews so far."""
    outcomes = history.reviewed_outcomes(session, task_id=task.id)
    return fit_policy(
        confidences=[o.confidence for o in outcomes],
        correct=[o.correct for o in outcomes],
        vetoed=[o.vetoed for o in outcomes],
        sampled_above=[o.sampled_above for o in outcomes],
        epsilon=task.epsilon,
        delta=task.delta,
        audit_share=task.audit_share,
        min_reviews=min_reviews,
    )


def fit_task_calibration(session: Session, task: Task, *, min_reviews: int) -> Calibration | None:
    """The teacher's calibration fitted on the task's uniform reviews; None until there are ``min_reviews``."""
    raw, reviewed = history.calibration_data(session, task_id=task.id, labels=tuple(tasks.label_names(task)))
    if len(reviewed) < min_reviews:
        return None
    return fit_calibration(logits_or_logprobs=np.log(np.clip(raw, 1e-300, None)), labels=reviewed)
