"""The real search problem: phenotypes are architectures, evaluations train them.

The driver uses :class:`TrainingProblem` to turn phenotypes into evaluation keys (parse,
resolve for the dataset's input, hash with the dataset, budget and device set-up) without
touching torch's training machinery; the picklable :class:`TrainingEvaluator` runs in the driver
or in worker processes, loads the dataset once per process, and never raises for a candidate's
own failure.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from evo.arch import ArchParseError, parse_arch, resolve
from evo.arch.memory import SCORING_BATCH, memory_limit
from evo.config import SearchConfig
from evo.data.dataset import Dataset, load_dataset
from evo.errors import EvoError
from evo.moo.objectives import Constraint
from evo.nas.measured import (
    MeasuredNeeds,
    check_target_names,
    export_onnx,
    measure_evaluation,
    measurement_context,
    needs_of,
    resolve_targets,
)
from evo.net.train import (
    PROGRESS_EVERY_S,
    TrainBudget,
    evaluation_key,
    resolve_device,
    train_candidate,
)
from evo.run.layout import candidate_onnx_path, candidate_weights_path, relative_name
from evo.run.store import Evaluation
from evo.search.contract import (
    CandidateStarted,
    EpochDone,
    Job,
    Listener,
    Measured,
    ProblemFactory,
    Result,
    Status,
    TrainingProgress,
)
from evo.search.failures import machine_failure

# Names of result files are made relative to this stand-in root: the evaluator never needs to
# know where (or on which machine) the run folder is.
RUN = Path("run")

_DATASETS: dict[tuple[str, str | None, int, str | None], Dataset] = {}


def dataset_for(name: str, data_dir: str | None, seed: int,
                test_set: str | None = None) -> Dataset:
    """Load once per process: workers keep the decoded, normalised arrays between jobs."""
    key = (name, data_dir, seed, test_set)
    if key not in _DATASETS:
        _DATASETS[key] = load_dataset(name, Path(data_dir) if data_dir else None, seed,
                                      test_path=Path(test_set) if test_set else None)
    return _DATASETS[key]


def dataset_of(config: SearchConfig) -> Dataset:
    """The dataset a run trains, validates and tests on, exactly as its configuration says."""
    return dataset_for(config.dataset, config.data_dir, config.seed, config.test_set)


def run_dataset(run_dir: Path, described: dict[str, Any] | None, config: SearchConfig,
                action: str) -> Dataset:
    """A stored run's dataset, refused when it is not the data the run was searched on
    (commands that reuse a run's weights must see the same splits and normalisation)."""
    if not described:
        raise EvoError(f"{run_dir}: this run has no dataset (a synthetic test problem)",
                       f"{action} members of a run that trained networks")
    dataset = dataset_of(config)
    if dataset.fingerprint != described.get("fingerprint"):
        raise EvoError(f"{run_dir}: the dataset {config.dataset!r} differs from the one "
                       "the run was searched on (fingerprint changed)",
                       f"{action} on the machine and data the run used")
    return dataset


@dataclass(frozen=True)
class TrainingEvaluator:
    """Trains one candidate per call; hard limits on params/MACs skip training altogether."""

    dataset: str
    data_dir: str | None
    split_seed: int
    budget: TrainBudget
    device: str
    threads: int
    constraints: tuple[Constraint, ...] = ()  # SearchConfig.constraint_specs
    test_set: str | None = None
    # Set when objectives or constraints name onnx_bytes or latency:*: the trained network is
    # exported to RUN_DIR/models/<key[:24]>.onnx here, in the worker (latency is timed later,
    # by the driver, with every worker idle).
    measured: MeasuredNeeds | None = None
    # Bytes one training may use (--max-memory); a candidate estimated above it is skipped
    # before anything is built (evo.arch.memory).
    max_memory_bytes: int | None = None
    # Receives CandidateStarted, EpochDone and (within an epoch) TrainingProgress events for
    # the progress view; not pickled into workers: their executor gives each worker's copy a
    # sender to the driver (``with_progress``).
    progress: Listener | None = field(default=None, compare=False, repr=False)

    def with_progress(self, report: Listener) -> TrainingEvaluator:
        """This evaluator, reporting the progress of its trainings to ``report``."""
        return dataclasses.replace(self, progress=report)

    def for_worker(self, index: int) -> TrainingEvaluator:
        """One GPU per worker when several are present (``auto``/``cuda`` only)."""
        if self.device in ("auto", "cuda"):
            import torch

            if torch.cuda.is_available() and torch.cuda.device_count() > 1:
                return dataclasses.replace(self,
                                           device=f"cuda:{index % torch.cuda.device_count()}")
        return self

    def prepare(self) -> None:
        """Load the dataset before a job's clock starts (once per process; see
        evo.search.contract.Prepares)."""
        dataset_for(self.dataset, self.data_dir, self.split_seed, self.test_set)

    def __call__(self, job: Job) -> Result:
        started = time.perf_counter()
        dataset = dataset_for(self.dataset, self.data_dir, self.split_seed, self.test_set)
        resolved = resolve(parse_arch(job.text), dataset.input_shape, dataset.num_classes)
        skip = self._memory_refusal(resolved, dataset) or self._precheck(resolved)
        if skip is not None:
            reason, objectives = skip
            return Result(job.key, job.individual_id, Status.SKIPPED, reason, objectives, {},
                          device=None, threads=self.threads,
                          seconds=time.perf_counter() - started)
        out = train_candidate(resolved, dataset, self.budget, device=self.device,
                              threads=self.threads, seed=job.seed,
                              progress=self._epoch_listener(job, resolved),
                              progress_every_s=PROGRESS_EVERY_S)
        # The files go back to the driver inside the result (it alone writes the run folder,
        # which a worker on another node cannot see); names are relative to the run folder.
        files: dict[str, bytes] = {}
        weights = None
        if out.ok and out.state_dict is not None:
            from evo.net.checkpoint import checkpoint_bytes

            weights = relative_name(RUN, candidate_weights_path(RUN, job.key))
            files[weights] = checkpoint_bytes(
                resolved.canonical_text(), dataset.input_shape, dataset.num_classes,
                dataset.mean, dataset.std, dataset.class_names, out.state_dict)
        metrics = dict(out.metrics)
        objectives = dict(out.objectives)
        status, reason = out.status, out.reason or None
        if out.ok and out.state_dict is not None and self.measured is not None:
            failure = self._export_onnx(job, resolved, out.state_dict, objectives, metrics,
                                        files)
            if failure is not None:
                status, reason = Status.FAILED, failure
        return Result(job.key, job.individual_id, status, reason, objectives, metrics,
                      device=str(metrics.get("device", "")), threads=self.threads,
                      seconds=time.perf_counter() - started, weights=weights, files=files)

    def _export_onnx(self, job: Job, resolved: Any, state_dict: dict[str, Any],
                     objectives: dict[str, float], metrics: dict[str, Any],
                     files: dict[str, bytes]) -> str | None:
        """The stripped single-file ONNX of the trained network (into ``files``); its size is
        ``onnx_bytes``."""
        import tempfile

        from evo.net.model import build_model

        assert self.measured is not None
        exported = time.perf_counter()
        name = relative_name(RUN, candidate_onnx_path(RUN, job.key))
        try:
            model = build_model(resolved)
            model.load_state_dict(state_dict)
            with tempfile.TemporaryDirectory(prefix="evo-onnx-") as scratch:
                path = Path(scratch) / "model.onnx"
                size = export_onnx(model, resolved.input_shape, path)
                files[name] = path.read_bytes()
        except Exception as exc:  # an exporter failure is this candidate's, not the run's
            if machine_failure(exc) is not None:
                raise  # a full disk is the machine's: the job is retried (evo.search.failures)
            lines = str(exc).strip().splitlines()
            return f"ONNX export failed: {type(exc).__name__}: {lines[0] if lines else ''}"
        metrics.update({"onnx": name, "onnx_bytes": size,
                        "onnx_export_seconds": time.perf_counter() - exported})
        if self.measured.onnx_bytes:
            objectives["onnx_bytes"] = float(size)
        return None

    def _epoch_listener(self, job: Job, resolved: Any) -> Callable[[dict[str, Any]], None] | None:
        """Announce the candidate, then turn training's progress dicts (evo.net.train) into
        this member's typed events."""
        listener = self.progress
        if listener is None:
            return None
        member = job.individual_id
        listener(CandidateStarted(member=member,
                                  epochs=self.budget.epochs_for(resolved.recipe.epochs_mult)))

        def report(data: dict[str, Any]) -> None:
            if "batch" in data:  # within an epoch
                listener(TrainingProgress(
                    member=member, epoch=data["epoch"], epochs=data["epochs"],
                    batch=data["batch"], batches=data["batches"], loss=data["loss"],
                    images_per_second=data["images_per_second"], seconds=data["seconds"]))
            else:
                listener(EpochDone(member=member, epoch=data["epoch"], epochs=data["epochs"],
                                   loss=data["loss"], seconds=data["seconds"],
                                   val_accuracy=data.get("val_accuracy")))

        return report

    def _memory_refusal(self, resolved: Any, dataset: Dataset
                        ) -> tuple[str, dict[str, float]] | None:
        """The estimate from the resolved shapes alone, so a network of many gigabytes is
        refused (infeasible, with the reason) instead of getting the worker killed."""
        if self.max_memory_bytes is None:
            return None
        from evo.arch.memory import estimate_training, refusal

        estimate = estimate_training(resolved, min(resolved.recipe.batch_size, len(dataset.train)),
                                     min(SCORING_BATCH, len(dataset.val)))
        reason = refusal(estimate, self.max_memory_bytes, "the candidate")
        if reason is None:
            return None
        return f"{reason}; not trained", {"params": float(estimate.params)}

    def _precheck(self, resolved: Any) -> tuple[str, dict[str, float]] | None:
        limits = [c for c in self.constraints if c.name in ("params", "macs")]
        if not limits:
            return None
        from evo.net.model import build_model, count_macs, count_params

        model = build_model(resolved)
        values = {"params": float(count_params(model)),
                  "macs": float(count_macs(model, resolved.input_shape))}
        missed = [c.text for c in limits if c.violation(values[c.name]) > 0]
        if not missed:
            return None
        return (f"violates {', '.join(missed)} (params {values['params']:.0f}, "
                f"MACs {values['macs']:.0f}); not trained"), values


class TrainingProblem:
    """Architectures from the grammar, trained on one dataset with one budget."""

    def __init__(self, config: SearchConfig, run_dir: Path,
                 progress: Listener | None = None) -> None:
        self.config = config
        self.run_dir = run_dir
        self.progress = progress
        self.dataset = dataset_of(config)
        self.budget = TrainBudget(epochs=config.epochs, max_seconds=config.candidate_timeout)
        try:
            self.device_type = resolve_device(config.device).type
        except EvoError:
            raise
        self.threads = config.threads
        self.max_memory = memory_limit(config.max_memory, config.workers)
        # Checked before any training: a misspelt or absent target is one line, exit code 2
        # (absent targets of the default --bench list are skipped by the bench step instead).
        bench = check_target_names(config.bench, "--bench")
        if config.export and bench != check_target_names(SearchConfig().bench, "--bench"):
            resolve_targets(bench, "--bench")
        self.measured = needs_of(config.objective_specs, config.constraint_specs)
        self.targets = resolve_targets(self.measured.targets, "latency objective or constraint")
        self.measurement = measurement_context(self.targets) if self.targets else None

    def describe(self) -> dict[str, Any]:
        described = {
            "dataset": self.dataset.describe(),
            "budget": asdict(self.budget),
            "device_type": self.device_type,
            "threads": self.threads,
        }
        if self.measurement is not None:  # latencies belong to this host and these runtimes
            described["measurement"] = self.measurement
        return described

    def candidate(self, phenotype: str) -> tuple[str, str] | str:
        try:
            spec = parse_arch(phenotype)
        except ArchParseError as exc:
            return f"does not parse: {exc}"
        resolved = resolve(spec, self.dataset.input_shape, self.dataset.num_classes)
        key = evaluation_key(resolved, self.dataset.fingerprint, self.budget, self.device_type,
                             self.threads)
        if self.measurement is not None:
            payload = json.dumps({"evaluation": key, "measurement": self.measurement},
                                 sort_keys=True, separators=(",", ":"))
            key = hashlib.sha256(payload.encode()).hexdigest()
        return key, resolved.canonical_text()

    def measure(self, evaluation: Evaluation) -> Measured:
        """Latency (and any missing ONNX size) of a trained candidate, timed by the driver."""
        if not self.measured.any:
            return Measured()
        return measure_evaluation(self.run_dir, self.measured, self.targets, evaluation)

    def evaluator(self) -> TrainingEvaluator:
        return TrainingEvaluator(
            dataset=self.config.dataset, data_dir=self.config.data_dir,
            split_seed=self.config.seed, test_set=self.config.test_set, budget=self.budget,
            device=self.config.device,
            threads=self.threads,
            constraints=self.config.constraint_specs, max_memory_bytes=self.max_memory,
            measured=self.measured if self.measured.any else None,
            # In-process only: with several workers or a time limit (which runs even one
            # candidate in a worker) progress travels over the worker's pipe instead.
            progress=self.progress if self.config.workers <= 1 and
            self.config.candidate_timeout is None else None,
        )


def problem_factory(progress: Listener | None = None) -> ProblemFactory:
    """The one way evo makes the problem of a run (the CLI and the Python API pass it to
    :func:`evo.search.loop.run_search`): training on the configuration's dataset, in
    ``run_dir``; on ``--resume`` from the stored configuration. ``progress`` receives the
    events of trainings run in this process (a live view)."""

    def make(config: SearchConfig, run_dir: Path) -> TrainingProblem:
        return TrainingProblem(config, run_dir, progress=progress)

    return make
