"""The file layout of a run folder: every name evo writes into ``RUN_DIR``, and how to read one
back. docs/run-format.md describes the layout; this module is the only code that knows it.

Why one module: the names of a run's files used to be written in two places and parsed back in
a third (the search wrote ``models/<key>.pt``, a retrain ``models/retrained-...``, the sweep of
a resumed run guessed which file was whose by the shape of its name). A rename in one place and
not the others would delete a user's weights; here the writer and the parser sit side by side.

    RUN_DIR/
      run.db                          the run (SQLite; run.db-wal/-shm while a writer has it)
      .lock                           the run lock (flock; the pid of its holder)
      config.toml                     a readable copy of the configuration (run.db is the truth)
      models/<key[:24]>.pt            search weights of one evaluation (key = evaluation key)
      models/<key[:24]>.onnx          ONNX file a measured objective was timed on
      models/retrained-<m>-<n>.pt     weights of retrain n, asked for as member m
      models/retrained-<m>.pt         weights of a member's retrain in runs of older evo
      states/<key[:24]>-e<n>.pt       training state of evaluation key after n epochs (successive
                                      halving: where a promoted candidate continues from)
      export/<member>/<format>/       the files of one export format (model.onnx, manifest...)
      export/.staging-<pid>-<token>-<member>/   an export being built (evo.run.exports)
      report/                         the default folder of ``evo report`` (HTML and figures)

Latency measurements (``evo bench``, ``--import``) live only in run.db. Paths stored in run.db
are relative to the run folder (:func:`stored_path`), so a run folder can be moved or copied.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from pathlib import Path

DB_NAME = "run.db"
LOCK_NAME = ".lock"
CONFIG_NAME = "config.toml"
MODELS_DIR = "models"
STATES_DIR = "states"
EXPORT_DIR = "export"
REPORT_DIR = "report"
KEY_CHARS = 24  # an evaluation key's file names carry its first 24 hex digits
TEMPORARY_SUFFIX = ".tmp"  # a file being written; swept by the next writer
STAGING_PREFIX = ".staging-"  # <base>/.staging-<pid>-<token>-<member>/<format>/
MODEL_SUFFIXES = (".onnx", ".xml", ".tflite")  # the file a runtime reads in an export folder

_RETRAIN_NAME = re.compile(r"retrained-(\d+)-(\d+)\.pt")
_PENDING_RETRAIN_PREFIX = ".retrained-"
_HEX = frozenset("0123456789abcdef")


# ---------------------------------------------------------------- the run itself


def db_path(run_dir: Path) -> Path:
    """``RUN_DIR/run.db``."""
    return Path(run_dir) / DB_NAME


def new_db_path(run_dir: Path) -> Path:
    """Where a new run's database is written before it is renamed to :func:`db_path`."""
    return Path(run_dir) / f"{DB_NAME}.new"


def is_run_dir(path: Path) -> bool:
    """True when ``path`` holds a run (its database file)."""
    return db_path(path).is_file()


def holds_run(path: Path) -> bool:
    """True when something already takes a run's database name in ``path`` (a new run there
    would replace it)."""
    return db_path(path).exists()


def lock_path(run_dir: Path) -> Path:
    """``RUN_DIR/.lock``: the file a writer holds its ``flock`` on."""
    return Path(run_dir) / LOCK_NAME


def config_path(run_dir: Path) -> Path:
    """``RUN_DIR/config.toml``: the readable copy of the run's configuration."""
    return Path(run_dir) / CONFIG_NAME


def models_dir(run_dir: Path) -> Path:
    """``RUN_DIR/models``: search weights, their ONNX files and retrained weights."""
    return Path(run_dir) / MODELS_DIR


def export_dir(run_dir: Path) -> Path:
    """``RUN_DIR/export``: the default folder of ``evo export`` (one folder per member)."""
    return Path(run_dir) / EXPORT_DIR


def report_dir(run_dir: Path) -> Path:
    """``RUN_DIR/report``: the default folder of ``evo report`` (its HTML page and figures)."""
    return Path(run_dir) / REPORT_DIR


def stored_path(run_dir: Path, path: Path) -> str:
    """How run.db names ``path``: relative to the run folder when inside it, else absolute."""
    try:
        return str(Path(path).resolve().relative_to(Path(run_dir).resolve()))
    except ValueError:
        return str(Path(path).resolve())


def relative_name(run_dir: Path, path: Path) -> str:
    """The name run.db stores for a file written by this layout inside ``run_dir``."""
    return str(Path(path).relative_to(run_dir))


def resolve_stored(run_dir: Path, stored: str) -> Path:
    """The file a path stored in run.db names (relative ones are under the run folder)."""
    return Path(run_dir) / stored


def is_temporary(path: Path) -> bool:
    """A file evo was still writing (renamed into place when whole)."""
    return Path(path).name.endswith(TEMPORARY_SUFFIX)


def temporary_path(path: Path) -> Path:
    """Where ``path`` is written before it is renamed into place (same folder)."""
    path = Path(path)
    return path.with_name(path.name + TEMPORARY_SUFFIX)


# ---------------------------------------------------------------- candidates of the search


def candidate_weights_path(run_dir: Path, key: str) -> Path:
    """Search weights of the evaluation with ``key``: ``models/<key[:24]>.pt``."""
    return models_dir(run_dir) / f"{key[:KEY_CHARS]}.pt"


def candidate_onnx_path(run_dir: Path, key: str) -> Path:
    """The ONNX file a measured objective of evaluation ``key`` was timed on:
    ``models/<key[:24]>.onnx``."""
    return models_dir(run_dir) / f"{key[:KEY_CHARS]}.onnx"


def states_dir(run_dir: Path) -> Path:
    """``RUN_DIR/states``: training states of candidates stopped before their full budget."""
    return Path(run_dir) / STATES_DIR


def candidate_state_path(run_dir: Path, key: str, epochs: int) -> Path:
    """The training state of evaluation ``key`` after ``epochs`` epochs (successive halving):
    ``states/<key[:24]>-e<epochs>.pt``."""
    return states_dir(run_dir) / f"{key[:KEY_CHARS]}-e{int(epochs)}.pt"


def candidate_key_prefix(path: Path) -> str | None:
    """The 24-digit key prefix of a per-evaluation file (weights, ONNX, training state, or
    one being written), else ``None`` (retrained weights, anything else)."""
    stem = Path(path).name.split(".", 1)[0].split("-e", 1)[0]
    return stem if len(stem) == KEY_CHARS and set(stem) <= _HEX else None


def same_file_name(a: str | Path, b: str | Path) -> bool:
    """True when two stored paths name a file of the same name (a candidate's ONNX file,
    wherever the run folder was when it was recorded)."""
    return Path(str(a)).name == Path(str(b)).name


# ---------------------------------------------------------------- retrains


def retrain_weights_name(member: int, number: int) -> str:
    """Where retrain ``number`` (asked for as ``member``) keeps its weights, relative to the
    run folder: the string stored in the ``retrains.weights`` column."""
    return f"{MODELS_DIR}/retrained-{int(member)}-{int(number)}.pt"


def parse_retrain_weights_name(name: str) -> tuple[int, int] | None:
    """``(member, number)`` of a file name written by :func:`retrain_weights_name`, else
    ``None`` (search weights, temporaries, and the one-file-per-member name of older runs)."""
    match = _RETRAIN_NAME.fullmatch(Path(name).name)
    return (int(match.group(1)), int(match.group(2))) if match else None


def retrain_weights_stored(path: Path) -> str:
    """The ``retrains.weights`` text of a file in the models folder."""
    return f"{MODELS_DIR}/{Path(path).name}"


def pending_retrain_path(run_dir: Path, member: int) -> Path:
    """The temporary file a retrain trains its weights into until its row is committed; it
    ends in ``.tmp`` so the search's own sweep removes it too."""
    name = f"{_PENDING_RETRAIN_PREFIX}{int(member)}-{os.getpid()}.pending{TEMPORARY_SUFFIX}"
    return models_dir(run_dir) / name


def is_pending_retrain(path: Path) -> bool:
    """A file :func:`pending_retrain_path` names (a retrain still training, or killed)."""
    name = Path(path).name
    return name.startswith(_PENDING_RETRAIN_PREFIX) and name.endswith(TEMPORARY_SUFFIX)


# ---------------------------------------------------------------- exports


def export_member_dir(base: Path, member: int) -> Path:
    """One member's export folder: ``<base>/<member>`` (its formats are subfolders)."""
    return Path(base) / str(int(member))


def export_format_dir(member_dir: Path, format: str) -> Path:
    """One format's folder inside a member's export folder."""
    return Path(member_dir) / format


def staging_dir(base: Path, member: int) -> Path:
    """A fresh staging folder for one member, beside ``base/<member>``; its name carries the
    writer's pid, so a folder whose writer is gone can be told from one still being built."""
    return Path(base) / f"{STAGING_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:12]}-{int(member)}"


def is_staging_dir(path: Path) -> bool:
    """A folder :func:`staging_dir` names."""
    return Path(path).name.startswith(STAGING_PREFIX)


def staging_final_dir(staging: Path) -> Path:
    """The member folder a staging folder is swapped into."""
    staging = Path(staging)
    return staging.parent / staging.name.rsplit("-", 1)[1]


def staging_writer_pid(staging: Path) -> int | None:
    """The pid of the process that built ``staging``, ``None`` when the name carries none."""
    try:
        return int(Path(staging).name[len(STAGING_PREFIX):].split("-", 1)[0])
    except ValueError:
        return None


def model_file_name(names: list[str] | tuple[str, ...]) -> str | None:
    """The file a runtime reads among an export format's files (``.onnx``, ``.xml``, ...)."""
    return next((name for name in names if str(name).lower().endswith(MODEL_SUFFIXES)), None)


def export_hint(run_dir: Path) -> str:
    """Where a run's exported files are, for messages: ``RUN_DIR/export/<member>/<format>/``."""
    return f"{export_dir(run_dir)}/<member>/<format>/"


# ---------------------------------------------------------------- where a new run goes


def default_run_dir(grammar: str, dataset: str, seed: int) -> Path:
    """``runs/<grammar>-<dataset>-s<seed>-<YYYYmmdd-HHMMSS>`` under the working folder: the
    folder of a run started without ``--run-dir`` (grammar and dataset by their file stems)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{Path(grammar).stem}-{Path(dataset).stem}-s{seed}-{stamp}"
