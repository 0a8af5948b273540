"""Export folders on disk that always match their rows in run.db, even when ``evo export`` is
killed: built aside, recorded, then swapped in by renames; repaired or flagged on open.

Why: re-exporting into a member's folder deleted the good files first, so an export killed
part-way left empty or partial format folders while run.db still listed them as ok (and
``evo bench`` then failed on a missing model file). Now each member is exported into a
staging folder beside its final one (same filesystem, so a rename is atomic), its rows are
committed naming that staging folder, and only then is each format folder renamed into place
(the old one renamed aside first, then deleted). The commit is the decision: a kill before it
leaves the previous export untouched and a staging folder that is deleted later; a kill after
it leaves a staging folder that the next open moves into place (rolled forward). A row whose
files are not in place is shown as ``missing``, never ``ok``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evo.errors import EvoError
from evo.run.layout import (
    STAGING_PREFIX,
    export_dir,
    export_format_dir,
    is_staging_dir,
    resolve_stored,
    staging_dir,
    staging_final_dir,
    staging_writer_pid,
)
from evo.run.lock import RunLock

if TYPE_CHECKING:
    from evo.run.store import RunStore
    from export.results import ExportReport

# Importers of this module use these names; the layout module owns them.
__all__ = ["STAGING_PREFIX", "checked_exports", "export_problem", "latest_exports", "relocated",
           "repair", "staging_dir", "swap_in"]
_OLD = ".old"  # <staging>/<format>.old: the replaced folder, on its way out


def relocated(report: ExportReport, final: Path) -> ExportReport:
    """``report`` as it reads once swapped in: every path under ``final`` instead of staging."""
    rows = tuple(dataclasses.replace(
        row, directory=export_format_dir(final, row.format),
        manifest=None if row.manifest is None
        else export_format_dir(final, row.format) / row.manifest.name)
        for row in report.rows)
    return dataclasses.replace(report, out_dir=final, rows=rows)


def swap_in(staging: Path) -> None:
    """Move every format folder of ``staging`` into its member folder by renames (replacing
    the old one), then remove ``staging``; safe to repeat after a kill at any point."""
    final = staging_final_dir(staging)
    final.mkdir(parents=True, exist_ok=True)
    for built in sorted(staging.iterdir()):
        if not built.is_dir() or built.name.endswith(_OLD):
            continue
        target = final / built.name
        if target.exists():
            old = staging / f"{built.name}{_OLD}"
            shutil.rmtree(old, ignore_errors=True)
            os.rename(target, old)
        os.rename(built, target)
    _sync(final)
    shutil.rmtree(staging, ignore_errors=True)


def _sync(folder: Path) -> None:
    """Make the renames durable before the staging folder goes (a power cut keeps either)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _writer_alive(staging: Path) -> bool:
    """True while the process that is building ``staging`` runs (this one never is: repairs
    run before it stages anything, and one process cannot hold the run lock twice)."""
    pid = staging_writer_pid(staging)
    if pid is None or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _committed(store: RunStore) -> set[Path]:
    """Staging folders named by committed rows that still exist (swaps a kill interrupted)."""
    return {resolve_stored(store.run_dir, text) for text in store.export_staging()
            if resolve_stored(store.run_dir, text).is_dir()}


def _orphans(base: Path, committed: set[Path]) -> list[Path]:
    """Staging folders in ``base`` no row names, whose writer is gone (killed before its
    commit): the previous export is intact and these are deleted."""
    if not base.is_dir():
        return []
    return [path for path in base.iterdir() if is_staging_dir(path)
            and path.resolve() not in {c.resolve() for c in committed}
            and not _writer_alive(path)]


def repair(store: RunStore, base: Path | None = None) -> None:
    """Finish the swaps a killed export committed and delete what an uncommitted one left, in
    the run's export folder and ``base``. Runs only under the run lock: a writer holds it, a
    reader takes it for the moment (and leaves things as they are while another command
    holds it: its rows then read as missing)."""
    bases = {export_dir(store.run_dir)} | ({base} if base is not None else set())

    def pending() -> tuple[set[Path], list[Path]]:
        committed = _committed(store)
        return committed, [p for b in bases for p in _orphans(b, committed)]

    if not any(pending()):
        return  # the usual case: nothing left half done, no lock taken
    with _run_lock(store) as held:
        if not held:
            return
        committed, orphans = pending()  # again, now that no other command can change them
        for staging in sorted(committed):
            swap_in(staging)
        for staging in orphans:
            shutil.rmtree(staging, ignore_errors=True)


@contextlib.contextmanager
def _run_lock(store: RunStore) -> Iterator[bool]:
    """True when ``store`` holds the run lock or it was free (held until the block ends),
    False while another process holds it."""
    if store.lock is not None:
        yield True
        return
    lock = RunLock(store.run_dir)
    try:
        lock.acquire()
    except (EvoError, OSError):
        yield False
        return
    try:
        yield True
    finally:
        lock.release()


def export_problem(run_dir: Path, path: str | None, details: dict[str, Any]) -> str | None:
    """Why an ok row's files are not usable (missing, another size, not yet swapped in), or
    ``None`` when every file it lists is in place."""
    if not path:
        return None
    staging = details.get("staging")
    if staging and resolve_stored(run_dir, staging).is_dir():
        return "its export was interrupted before the files were moved into place"
    folder = resolve_stored(run_dir, path)
    for entry in details.get("files") or ():
        file = folder / str(entry.get("name"))
        if not file.is_file():
            return f"{entry.get('name')} is missing"
        if file.stat().st_size != entry.get("bytes"):
            return f"{entry.get('name')} has {file.stat().st_size} bytes, not {entry.get('bytes')}"
    return None


def checked_exports(store: RunStore) -> list[dict[str, Any]]:
    """Every export row (oldest first, ``details`` decoded), an ok row whose files are not in
    place turned into status ``missing`` with the reason."""
    repair(store)
    rows = []
    for row in store.exports():
        if row["status"] == "ok":
            problem = export_problem(store.run_dir, row["path"], row["details"])
            if problem is not None:
                row = {**row, "status": "missing",
                       "reason": f"files not in place: {problem} (export it again)"}
        rows.append(row)
    return rows


def latest_exports(store: RunStore) -> dict[str, dict[str, dict[str, Any]]]:
    """The newest export row of each format, per network (evaluation key); a row whose files
    are not in place reads ``missing`` (:func:`checked_exports`)."""
    latest: dict[str, dict[str, dict[str, Any]]] = {}
    for row in checked_exports(store):
        if row["eval_key"] is not None:
            latest.setdefault(row["eval_key"], {})[row["format"]] = row
    return latest
