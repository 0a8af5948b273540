"""Export members of a run (or one evo checkpoint file) with the ``export`` library.

Why this module exists: ``export/`` knows nothing of runs, so something must pick each member's
weights (its newest retrain, or the one named, else the search's: :mod:`evo.post.export_weights`),
load the run's own dataset with the run's split seed (training samples calibrate INT8, the test
split measures accuracy, validation drives accuracy-controlled INT8), say in every manifest
where the model came from, and record every artifact in ``run.db``. The CLI (``evo export``)
and the step after ``evo search`` both call :func:`export_run`, so they cannot disagree.
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from evo.arch.mcu import measured_text
from evo.config import SearchConfig
from evo.errors import EvoError
from evo.post.export_weights import MemberWeights, choose_members, member_weights
from evo.post.mcu_export import measure_export
from evo.run.layout import export_dir, export_member_dir, stored_path
from evo.run.store import RunStore

if TYPE_CHECKING:
    from evo.data.dataset import Dataset
    from export.request import ExportOptions
    from export.results import ArtifactResult, ExportReport

Say = Callable[[str], None]


@dataclass(frozen=True)
class ExportData:
    """Samples an export uses, already in the normalisation the model was trained with."""

    calibration: np.ndarray | None
    evaluation: tuple[np.ndarray, np.ndarray] | None
    validation: tuple[np.ndarray, np.ndarray] | None


# ---------------------------------------------------------------- data


def run_dataset(store: RunStore, config: SearchConfig) -> Dataset:
    """The run's dataset with the run's split seed, refused if it is not the data searched on."""
    from evo.nas.problem import run_dataset as stored_run_dataset

    return stored_run_dataset(store.run_dir, (store.meta("problem") or {}).get("dataset"),
                              config, "export")


def export_data(dataset: Dataset, mean: Sequence[float], std: Sequence[float],
                calibration_size: int, seed: int) -> ExportData:
    """Calibration (a seeded sample of the training split), validation and test, renormalised
    to ``mean``/``std`` when the model was trained with other statistics (a checkpoint used
    with a dataset loaded under another split seed)."""
    def convert(x: np.ndarray) -> np.ndarray:
        if tuple(mean) == tuple(dataset.mean) and tuple(std) == tuple(dataset.std):
            return x
        shape = (1, -1, 1, 1)
        raw = (x * np.asarray(dataset.std, np.float32).reshape(shape)
               + np.asarray(dataset.mean, np.float32).reshape(shape))
        return ((raw - np.asarray(mean, np.float32).reshape(shape))
                / np.asarray(std, np.float32).reshape(shape)).astype(np.float32)

    rng = np.random.default_rng(seed)
    picked = np.sort(rng.permutation(len(dataset.train))[:calibration_size])
    return ExportData(
        calibration=convert(dataset.train.x[picked]),
        evaluation=(convert(dataset.test.x), dataset.test.y),
        validation=(convert(dataset.val.x), dataset.val.y),
    )


# ---------------------------------------------------------------- recording


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _parity_value(row: ArtifactResult) -> float | None:
    """The ``exports.parity`` column: the largest |artifact - torch| over all parity inputs."""
    if row.parity is None:
        return None
    diffs = [row.parity.max_abs_diff_random, row.parity.max_abs_diff_samples]
    present = [d for d in diffs if d is not None]
    return _finite(max(present)) if present else None


def record_report(store: RunStore, member: int, report: ExportReport,
                  source: dict[str, Any], staging: Path | None = None,
                  extra: dict[str, dict[str, Any]] | None = None) -> list[int]:
    """One ``exports`` row per artifact, in one transaction; ``details`` holds the full row,
    ``extra`` of its format (microcontroller figures) and the staging folder the files wait
    in until they are swapped in (evo.run.exports)."""
    ids = []
    data = report.to_dict()
    with store.transaction() as conn:
        for row, row_dict in zip(report.rows, data["rows"], strict=True):
            details = {**row_dict, **(extra or {}).get(row.format, {}),
                       "torch_accuracy": report.torch_accuracy,
                       "evaluation_samples": report.evaluation_samples, "source": source}
            if staging is not None:
                details["staging"] = stored_path(store.run_dir, staging)
            ids.append(store.add_export(
                conn, individual_id=member, format=row.format, status=row.status,
                reason=row.reason, path=stored_path(store.run_dir, row.directory),
                bytes=row.size_bytes if row.files else None,
                accuracy=None if row.accuracy is None else row.accuracy.accuracy,
                parity=_parity_value(row), details=details))
    return ids


# ---------------------------------------------------------------- exporting


def _say_report(say: Say, label: str, report: ExportReport, seconds: float) -> None:
    parts = []
    for row in report.rows:
        if row.ok:
            parts.append(f"{row.format} ok {row.size_bytes:,} bytes")
        else:
            parts.append(f"{row.format} FAILED ({row.reason})")
    say(f"  {label}: {'; '.join(parts)} ({seconds:.1f} s) -> {report.out_dir}")


@dataclass(frozen=True)
class MemberExport:
    """One member's export: which weights, the manifest's ``source`` and the report."""

    member: int
    weights: MemberWeights
    source: dict[str, Any]
    report: ExportReport
    microcontroller: dict[str, dict[str, Any]] = field(default_factory=dict)  # by format

    def to_dict(self) -> dict[str, Any]:
        retrain = self.weights.retrain
        data = self.report.to_dict()
        data["rows"] = [{**row, **self.microcontroller.get(row["format"], {})}
                        for row in data["rows"]]
        return {"member": self.member, "weights": self.weights.kind,
                "retrain": None if retrain is None else retrain.number,
                "checkpoint": self.source.get("checkpoint"), "source": self.source, **data}


def export_members(
    run_dir: Path,
    members: Sequence[int] | None = None,
    formats: str | Sequence[str] = ("onnx", "ir-fp32"),
    out_dir: Path | None = None,
    options: ExportOptions | None = None,
    *,
    front: bool = False,
    say: Say | None = None,
) -> list[tuple[int, ExportReport]]:
    """Export ``members`` (default: the front) and return ``(member, report)`` pairs; see
    :func:`export_run`, which also returns each member's weights and manifest source."""
    exported = export_run(run_dir, members, formats, out_dir, options, front=front, say=say)
    return [(item.member, item.report) for item in exported]


def export_run(
    run_dir: Path,
    members: Sequence[int] | None = None,
    formats: str | Sequence[str] = ("onnx", "ir-fp32"),
    out_dir: Path | None = None,
    options: ExportOptions | None = None,
    *,
    front: bool = False,
    retrain: int | None = None,
    say: Say | None = None,
    max_memory: str | None = None,
) -> list[MemberExport]:
    """Export ``members`` (default: the front; ``front`` adds it to named members) of the run
    in ``run_dir`` to ``formats``, each under ``out_dir/<member>/`` (default
    ``RUN_DIR/export/<member>/``), and record every artifact in run.db's ``exports`` table.
    Each member's weights are those of its newest retrain, or of retrain number ``retrain`` (one
    named member only), else the search's; ``say`` is told which before the member is exported.

    Holds the run lock throughout, so a running search makes this raise "run in progress".
    Bad input (unknown member or format, a member without weights, an unwritable folder) raises
    ``EvoError``/``ExportError`` before anything is written; a format that fails afterwards is a
    failed row, recorded like the others. Each member is recorded as soon as it is done.
    A member estimated over ``max_memory`` (e.g. ``8GB``; default: the machine's limit) is
    refused (``MemoryLimitError``) before its network is built.
    """
    from evo.arch.memory import memory_limit
    from evo.net.checkpoint import load_checkpoint
    from evo.run.exports import relocated, repair, staging_dir, swap_in
    from export.formats import export_all, parse_formats
    from export.request import ExportOptions

    names = parse_formats(formats)
    options = options or ExportOptions()
    limit = memory_limit(max_memory)
    run_dir = Path(run_dir)
    store = RunStore.open(run_dir, write=True)
    try:
        config = SearchConfig.from_dict(store.meta("config"))
        chosen = choose_members(store, members, front)
        if retrain is not None and (front or len(chosen) != 1 or len(set(members or ())) != 1):
            raise EvoError("--retrain N names a retrain of one member",
                           "pass it with exactly one --member (and without --front)")
        weights = [member_weights(store, ind, retrain) for ind in chosen]
        base = Path(out_dir) if out_dir is not None else export_dir(run_dir)
        _check_writable(base)
        repair(store, base)  # what an earlier, killed export left half done
        dataset = run_dataset(store, config)
        if options.threads is None:
            import dataclasses

            options = dataclasses.replace(options, threads=config.threads)
        results = []
        for choice in weights:
            started = time.perf_counter()
            if say is not None:
                say(f"  {choice.describe(run_dir)}")
            checkpoint = load_checkpoint(choice.checkpoint, limit)
            if checkpoint.input_shape != dataset.input_shape:
                raise EvoError(f"{choice.checkpoint}: input {checkpoint.input_shape} differs "
                               f"from the run's dataset {dataset.input_shape}",
                               "the models/ folder was changed; retrain the member")
            data = export_data(dataset, checkpoint.mean, checkpoint.std,
                               options.calibration_size, config.seed)
            source = choice.source(run_dir, dataset)
            # Built aside, recorded, then swapped in: a kill never leaves a folder that
            # disagrees with its rows (evo.run.exports).
            staging = staging_dir(base, choice.member)
            try:
                report = relocated(export_all(
                    checkpoint.model, checkpoint.input_shape, staging, names,
                    calibration=data.calibration, evaluation=data.evaluation,
                    validation=data.validation, class_names=checkpoint.class_names,
                    mean=checkpoint.mean, std=checkpoint.std, source=source,
                    options=options), export_member_dir(base, choice.member))
                microcontroller = measure_export(report, staging, checkpoint.resolved,
                                                 options.litert_io)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)  # nothing recorded: nothing kept
                raise
            record_report(store, choice.member, report, source, staging, microcontroller)
            swap_in(staging)
            if say is not None:
                which = ("search weights" if choice.retrain is None
                         else f"retrain {choice.retrain.number} weights")
                _say_report(say, f"member {choice.member} ({which})", report,
                            time.perf_counter() - started)
                for name, figures in microcontroller.items():
                    say(f"  member {choice.member} {name}: {measured_text(figures)}")
            results.append(MemberExport(choice.member, choice, source, report,
                                        microcontroller))
        return results
    finally:
        store.close()


def _check_writable(base: Path) -> None:
    """Fail before any export when the output folder cannot be written (exit code 2)."""
    import tempfile

    try:
        base.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=base, prefix=".write-probe-"):
            pass
    except OSError as error:
        raise EvoError(f"cannot write to output directory {base}: {error.strerror or error}",
                       "choose a writable --out directory") from None


def export_checkpoint(
    checkpoint_path: Path,
    formats: str | Sequence[str] = ("onnx", "ir-fp32"),
    out_dir: Path | None = None,
    options: ExportOptions | None = None,
    *,
    input_shape: Sequence[int] | None = None,
    dataset: str | None = None,
    data_dir: Path | None = None,
    split_seed: int = 0,
    max_memory: str | None = None,
) -> tuple[ExportReport, dict[str, Any]]:
    """Export one evo checkpoint file (default out: ``<file's folder>/<stem>-export/``).

    Without ``dataset`` there is no calibration or test data: parity runs on random inputs
    only, accuracy is not measured and the INT8 formats fail with that reason. With a dataset,
    its splits (cut with ``split_seed``; use the run's seed so the test split is unseen) give
    calibration, validation and test data, renormalised to the checkpoint's statistics.
    Returns the report and the manifest's ``source``. ``max_memory`` as in :func:`export_run`.
    """
    from evo.arch.memory import memory_limit
    from evo.net.checkpoint import load_checkpoint
    from export.formats import export_all, parse_formats
    from export.request import ExportOptions

    names = parse_formats(formats)
    options = options or ExportOptions()
    path = Path(checkpoint_path)
    checkpoint = load_checkpoint(path, memory_limit(max_memory))
    shape = tuple(int(v) for v in input_shape) if input_shape else checkpoint.input_shape
    if len(shape) != 3 or shape[0] != checkpoint.input_shape[0]:
        raise EvoError(f"--input {'x'.join(map(str, shape))} does not fit {path}, which was "
                       f"trained on {'x'.join(map(str, checkpoint.input_shape))}",
                       "give CxHxW with the checkpoint's channel count")
    out = Path(out_dir) if out_dir is not None else path.parent / f"{path.stem}-export"
    _check_writable(out)
    source: dict[str, Any] = {"checkpoint": str(path.resolve()), "weights": "checkpoint file",
                              "metadata": checkpoint.metadata}
    data = ExportData(None, None, None)
    if dataset is not None:
        from evo.data.dataset import load_dataset

        loaded = load_dataset(dataset, data_dir, split_seed)
        if loaded.input_shape != tuple(shape) or loaded.num_classes != checkpoint.num_classes:
            raise EvoError(f"dataset {dataset!r} has {loaded.num_classes} classes of "
                           f"{'x'.join(map(str, loaded.input_shape))} images; {path} takes "
                           f"{'x'.join(map(str, shape))} and has {checkpoint.num_classes} "
                           "outputs", "pass the dataset the checkpoint was trained on")
        data = export_data(loaded, checkpoint.mean, checkpoint.std, options.calibration_size,
                           split_seed)
        source.update({"dataset": loaded.name, "dataset_fingerprint": loaded.fingerprint,
                       "split_seed": split_seed, "calibration_split": "train",
                       "evaluation_split": "test"})
    report = export_all(
        checkpoint.model, shape, out, names, calibration=data.calibration,
        evaluation=data.evaluation, validation=data.validation,
        class_names=checkpoint.class_names, mean=checkpoint.mean, std=checkpoint.std,
        source=source, options=options)
    return report, source
