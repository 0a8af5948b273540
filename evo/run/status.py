"""The status words of a run, as one enum: what an evaluation came to, and where a member stands.

Why an enum of strings: the words are stored in run.db (``evaluations.status``) and printed in
progress lines, so a member must be the very string it always was (``Status.OK == "ok"``, and
``json``, SQLite and f-strings see ``"ok"``), while code that compares or assigns a status uses a
name that a typo cannot slip past. Runs written before the enum existed read back unchanged.

It lives with the run because the run format is what fixes the words; the search's contract
(:mod:`evo.search.contract`) re-exports it for everything above.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """Every status word evo uses, grouped by where it appears."""

    # What an evaluation came to, stored in run.db (``evaluations.status``).
    OK = "ok"
    FAILED = "failed"  # training, export or measurement failed: final, the candidate's own
    SKIPPED = "skipped"  # a hard limit known before training (params, MACs, memory)
    STOPPED = "stopped"  # trained to a rung of successive halving, not promoted (or aborted)
    # Where a member stands in survival (never stored as an evaluation's status).
    INVALID = "invalid"  # its genome gave no network
    INFEASIBLE = "infeasible"  # evaluated, but it misses a constraint
    # A result that is not the candidate's (never stored; see evo.search.failures).
    RETRY = "retry"  # the machine failed (disk full, I/O error)
    LOST = "lost"  # the process evaluating it died
