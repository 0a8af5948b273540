"""The driver writes the files an evaluation returns (weights, ONNX, training state).

Workers never write the run folder: on a Ray cluster they may run on a node that cannot see it,
and on one machine a single writer keeps a killed worker from leaving half a file behind. A
worker puts each file's bytes in its result under a run-folder-relative name (from
:mod:`evo.run.layout`); :func:`write_result_files` checks that the name stays inside the run
folder and writes it atomically (temporary name, fsync, rename), before the result is stored.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from evo.errors import EvoError
from evo.run.layout import temporary_path


def inside_run(run_dir: Path, relative: str) -> Path:
    """The path ``relative`` names inside ``run_dir``; a name that would leave the folder
    (absolute, ``..``) is refused: nothing a worker sends decides where the driver writes."""
    parts = PurePosixPath(relative).parts
    if not parts or PurePosixPath(relative).is_absolute() or ".." in parts:
        raise EvoError(f"{relative!r}: a result file must be named inside the run folder",
                       "this is a bug in the evaluator that returned it")
    return Path(run_dir).joinpath(*parts)


def write_result_files(run_dir: Path, files: Mapping[str, bytes]) -> None:
    """Write every file of a result atomically, each under its run-folder-relative name."""
    for relative, content in files.items():
        path = inside_run(run_dir, relative)
        path.parent.mkdir(parents=True, exist_ok=True)
        pending = temporary_path(path)
        try:
            with open(pending, "wb") as out:
                out.write(content)
                out.flush()
                os.fsync(out.fileno())
            os.replace(pending, path)
        except BaseException:
            pending.unlink(missing_ok=True)
            raise
