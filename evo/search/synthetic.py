"""A synthetic search problem: ZDT1 over features of the phenotype, no training.

It exists so the search loop, the store, resume and the executors can be exercised in
milliseconds with the same code path real searches take (and successive halving, with
:class:`CurveProblem`'s learning curves) (a legitimate test problem, the way
pymoo and Optuna test their loops on ZDT functions). Objectives are named ``error`` and
``params`` so that every command (front, show, reports) treats a synthetic run like a real one.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evo.run.layout import candidate_state_path, candidate_weights_path, relative_name
from evo.search.contract import Job, Result, Status
from evo.search.rungs import scaled_epochs

N_VARIABLES = 8


def _features(text: str) -> list[float]:
    """Decision variables in [0, 1]: x1 from the phenotype's shape (so evolution can climb it),
    the rest from its hash (stable everywhere)."""
    tokens = text.split()
    x1 = (len(tokens) % 17) / 16
    digest = hashlib.sha256(" ".join(tokens).encode()).digest()
    rest = [digest[i] / 255 for i in range(N_VARIABLES - 1)]
    return [x1, *rest]


def zdt1(x: list[float]) -> tuple[float, float]:
    g = 1 + 9 * sum(x[1:]) / (len(x) - 1)
    f1 = x[0]
    return f1, g * (1 - math.sqrt(f1 / g))


@dataclass(frozen=True)
class SyntheticEvaluator:
    """Evaluates jobs of :class:`SyntheticProblem`; ``delay`` simulates training time and
    phenotypes containing ``fail_token`` fail, to exercise failure handling."""

    delay: float = 0.0
    fail_token: str | None = None

    def __call__(self, job: Job) -> Result:
        if self.delay:
            time.sleep(self.delay)
        if self.fail_token and self.fail_token in job.text:
            return Result(job.key, job.individual_id, Status.FAILED, "synthetic failure",
                          seconds=self.delay)
        f1, f2 = zdt1(_features(job.text))
        params = 10 ** (2 + 6 * min(f2, 10.0) / 10.0)
        return Result(job.key, job.individual_id, Status.OK, None,
                      {"error": f1, "params": params, "macs": params * 10},
                      {"val_accuracy": 1 - f1}, device="cpu", threads=1, seconds=self.delay)


@dataclass(frozen=True)
class SyntheticProblem:
    delay: float = 0.0
    fail_token: str | None = None

    def describe(self) -> dict[str, Any]:
        return {"problem": "synthetic-zdt1", "variables": N_VARIABLES}

    def candidate(self, phenotype: str) -> tuple[str, str] | str:
        canonical = " ".join(phenotype.split())
        if not canonical:
            return "empty phenotype"
        return hashlib.sha256(canonical.encode()).hexdigest(), canonical

    def evaluator(self) -> SyntheticEvaluator:
        return SyntheticEvaluator(self.delay, self.fail_token)


# ---------------------------------------------------------------- learning curves


@dataclass(frozen=True)
class CurveEvaluator:
    """Evaluates jobs of :class:`CurveProblem`: a candidate's error after ``k`` of its
    ``epochs`` follows a learning curve that ends at its ZDT1 error, slower for some networks
    than for others (so an early rung's order is not the final order). Training state is the
    epoch count, so a candidate continued from a rung equals one trained straight through;
    phenotypes containing ``fail_token`` fail, and ``stop_token`` ones are stopped after
    their first epoch (an early abort)."""

    epochs: int = 5
    images: int = 100  # training images per epoch
    fail_token: str | None = None
    stop_token: str | None = None
    delay: float = 0.0  # seconds per epoch trained (a kill in a test lands mid-rung)

    def curve(self, text: str, k: int) -> float:
        """Error after ``k`` epochs: from near 1 down to the final error, at the network's
        own pace (its 8th hash byte)."""
        x = _features(text)
        final = x[0]
        pace = 0.3 + 2.0 * x[-1]
        return final + (1.0 - final) * math.exp(-k / pace) * (1 - 1 / (1 + self.epochs))

    def __call__(self, job: Job) -> Result:
        done = int(json.loads(job.resume)["epochs"]) if job.resume else 0
        target = scaled_epochs(job.epochs, self.epochs, self.epochs)
        if self.delay:
            time.sleep(self.delay * (target - done))
        if self.fail_token and self.fail_token in job.text:
            return Result(job.key, job.individual_id, Status.FAILED, "synthetic failure",
                          metrics={"epochs_trained": 0, "images_seen": 0})
        if self.stop_token and self.stop_token in job.text and done == 0:
            target = 1
        _f1, f2 = zdt1(_features(job.text))
        params = 10 ** (2 + 6 * min(f2, 10.0) / 10.0)
        error = self.curve(job.text, target)
        metrics: dict[str, Any] = {
            "val_accuracy": 1 - error, "epochs_run": target, "epochs_planned": self.epochs,
            "epochs_trained": target - done, "images_seen": (target - done) * self.images}
        files: dict[str, bytes] = {}
        status, reason, weights = Status.OK, None, None
        run = Path("run")
        if self.stop_token and self.stop_token in job.text and done == 0:
            status, reason = Status.STOPPED, "no better than chance (synthetic)"
        elif target < self.epochs:
            name = relative_name(run, candidate_state_path(run, job.key, target))
            files[name] = json.dumps({"epochs": target}).encode()
            metrics["state"] = name
        else:  # trained to the end: "weights", as a real evaluation keeps them
            weights = relative_name(run, candidate_weights_path(run, job.key))
            files[weights] = json.dumps({"error": error}).encode()
        return Result(job.key, job.individual_id, status, reason,
                      {"error": error, "params": params, "macs": params * 10}, metrics,
                      device="cpu", threads=1, weights=weights, files=files)


@dataclass(frozen=True)
class CurveProblem(SyntheticProblem):
    """:class:`SyntheticProblem` whose candidates learn over ``epochs`` (for successive
    halving: rungs, promotion, resume from a rung's state, the compute spent)."""

    epochs: int = 5
    images: int = 100
    stop_token: str | None = None

    def describe(self) -> dict[str, Any]:
        return {"problem": "synthetic-curves", "variables": N_VARIABLES, "epochs": self.epochs}

    def evaluator(self) -> CurveEvaluator:  # type: ignore[override]
        return CurveEvaluator(self.epochs, self.images, self.fail_token, self.stop_token,
                              self.delay)
