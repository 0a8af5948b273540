"""A synthetic search problem: ZDT1 over features of the phenotype, no training.

It exists so the search loop, the store, resume and the executors can be exercised in
milliseconds with the same code path real searches take (a legitimate test problem, the way
pymoo and Optuna test their loops on ZDT functions). Objectives are named ``error`` and
``params`` so that every command (front, show, reports) treats a synthetic run like a real one.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass
from typing import Any

from evo.search.contract import Job, Result, Status

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
