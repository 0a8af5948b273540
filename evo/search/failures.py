"""Whose failure is it: the candidate's (final, stored as its result) or the machine's (never
stored: retried, or left unevaluated for ``--resume``).

Why this matters: a stored evaluation is a cache entry every later generation, resume and warm
start trusts. A network that produces NaN, runs out of memory on its own, passes the time limit
or cannot be built has failed for good. A full disk, an I/O error or a worker killed from
outside says nothing about the network: storing it as failed would drop a good candidate from
the search for ever (and make a resumed or repeated run differ from an uninterrupted one).
"""

from __future__ import annotations

import dataclasses
import errno
import os
from pathlib import Path

from evo.errors import EvoError
from evo.search.contract import Result, Status

# Result statuses that are not results of the candidate: Status.RETRY (the machine failed: disk
# full, I/O error; retried MAX_RETRIES times, then the run stops for --resume) and Status.LOST
# (the process or Ray worker evaluating it died; retried --task-retries times, then a final
# failure, most likely the candidate's own).
MAX_RETRIES = 2  # further attempts after the first one for a failure of the machine

# OSError numbers that describe the machine (storage, files, permissions), never a network.
MACHINE_ERRNOS = frozenset({
    errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EFBIG, errno.EROFS, errno.ENFILE,
    errno.EMFILE, errno.ESTALE, errno.EACCES, errno.EPERM,
})


def machine_failure(error: BaseException) -> str | None:
    """The reason when ``error`` (or an exception it was raised from or during) is an
    ``OSError`` of the machine, e.g. torch's opaque "unexpected pos" RuntimeError raised
    while its file write failed with ENOSPC; ``None`` when the failure may be the candidate's."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in MACHINE_ERRNOS:
            where = f" on {current.filename}" if current.filename else ""
            return (f"{os.strerror(current.errno)} (errno {errno.errorcode[current.errno]})"
                    f"{where}")
        current = current.__cause__ or current.__context__
    return None


class Retries:
    """Attempts of each evaluation key that failed for the machine, in this process (a resumed
    run starts afresh: the keys were never stored, so it evaluates them again)."""

    def __init__(self, task_retries: int = 1) -> None:
        self.reasons: dict[str, list[str]] = {}
        self.task_retries = task_retries  # further attempts of a job lost with its worker
        self.statuses: dict[str, Status] = {}  # the kind of each key's last failure

    def _allowed(self, status: Status) -> int:
        return MAX_RETRIES if status == Status.RETRY else self.task_retries

    def settle(self, result: Result) -> Result | None:
        """``None`` when ``result`` is not the candidate's (nothing is stored; the key is asked
        again until its retries run out); otherwise the result to store: a job whose worker
        died on every attempt becomes a final failure, and a result reached after retries
        carries ``retries`` and ``retried_after`` in its metrics."""
        tries = self.reasons.get(result.key, [])
        retries = len(tries)
        if result.status in (Status.RETRY, Status.LOST):
            tries = self.reasons.setdefault(result.key, [])
            tries.append(result.reason or result.status)
            self.statuses[result.key] = result.status
            if result.status == Status.RETRY or len(tries) <= self.task_retries:
                return None
            retries = len(tries) - 1
            result = dataclasses.replace(
                result, status=Status.FAILED,
                reason=f"{result.reason} on all {len(tries)} attempts (most likely its own "
                       "memory use: the kernel kills the largest process)")
        if not tries:
            return result
        metrics = {**result.metrics, "retries": retries, "retried_after": list(tries)}
        return dataclasses.replace(result, metrics=metrics)

    def note(self, result: Result) -> str:
        """The progress line for a result ``settle`` dropped."""
        tries = len(self.reasons.get(result.key, []))
        allowed = self._allowed(result.status)
        then = ("will be retried" if tries <= allowed else
                "left unevaluated (it is evaluated again by --resume)")
        return (f"  member {result.individual_id}: not evaluated, {result.reason} (attempt "
                f"{tries} of {allowed + 1}, a failure of this machine, not of the "
                f"candidate); {then}")

    def exhausted(self, key: str | None) -> bool:
        """True when ``key`` failed for the machine on every attempt: ask for it no more."""
        return key is not None and key in self.statuses and \
            len(self.reasons[key]) > self._allowed(self.statuses[key])

    def stop(self, run_dir: Path) -> EvoError:
        """Why the search cannot finish its batch: the keys the machine kept failing."""
        stuck = [reasons[-1] for key, reasons in self.reasons.items() if self.exhausted(key)]
        return EvoError(
            f"{len(stuck)} candidate(s) could not be evaluated, {MAX_RETRIES + 1} attempts each, "
            f"because this machine failed: {stuck[0]}; they stay unevaluated, nothing was "
            "recorded as their result",
            f"fix the cause (e.g. free disk space), then continue with evo search --resume "
            f"{run_dir}")


def write_files_or_retry(run_dir: Path, result: Result) -> Result:
    """Write the files ``result`` brings (the driver is the run folder's only writer); when the
    machine cannot (disk full, file too large, I/O error) the result becomes a ``retry``: the
    candidate is asked again, and after MAX_RETRIES the run stops for ``--resume``."""
    from evo.run.files import write_result_files

    try:
        write_result_files(run_dir, result.files)
    except OSError as exc:
        reason = machine_failure(exc)
        if reason is None:
            raise
        return Result(result.key, result.individual_id, Status.RETRY,
                      f"writing its files failed: {reason}")
    return result
