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
from evo.data.dataset import Dataset
from evo.errors import EvoError
from evo.moo.objectives import Constraint
from evo.nas.cost import training_cost
from evo.nas.datasets import Subsets, adopt_dataset, dataset_for, dataset_of, subsets_of
from evo.nas.datasets import run_dataset as run_dataset
from evo.nas.mcu import estimate_stored, mcu_named, mcu_refusal, mcu_values, merged
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
from evo.run.layout import (
    candidate_onnx_path,
    candidate_state_path,
    candidate_weights_path,
    relative_name,
)
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
from evo.search.rungs import scaled_epochs

# Names of result files are made relative to this stand-in root: the evaluator never needs to
# know where (or on which machine) the run folder is.
RUN = Path("run")

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
    subsets: Subsets = (None, None)  # --train-subset, --val-subset
    # Set when objectives or constraints name onnx_bytes or latency:*: the trained network is
    # exported to RUN_DIR/models/<key[:24]>.onnx here, in the worker (latency is timed later,
    # by the driver, with every worker idle).
    measured: MeasuredNeeds | None = None
    # Bytes one training may use (--max-memory); a candidate estimated above it is skipped
    # before anything is built (evo.arch.memory).
    max_memory_bytes: int | None = None
    # Objectives or constraints name arena_bytes/flash_bytes: each result carries the estimate.
    mcu: bool = False
    # --early-abort: a fresh candidate no better than chance after its first epoch is stopped.
    early_abort: bool = False
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
        dataset_for(self.dataset, self.data_dir, self.split_seed, self.test_set, self.subsets)

    def preload(self) -> tuple[str, ...]:
        """What a first job imports lazily (the MAC counter imports torch._dynamo: seconds),
        for a fork server to import once (evo.search.evaluate.Preloads)."""
        return ("torch._dynamo", "evo.net.model", "evo.net.checkpoint")

    def cost(self, job: Job) -> float:
        """The job's relative training time (evo.nas.cost), to hand out the longest first."""
        data = self.shared_data()
        resolved = resolve(parse_arch(job.text), data.input_shape, data.num_classes)
        return training_cost(resolved, self.budget.epochs_for(resolved.recipe.epochs_mult))

    def shared_data(self) -> Dataset:
        """This process's dataset, which executors hand to workers (evo.search.shared_data)."""
        return dataset_for(self.dataset, self.data_dir, self.split_seed, self.test_set,
                           self.subsets)

    def adopt_data(self, data: Dataset) -> None:
        """Use the driver's dataset (``shared_data``) in this worker process."""
        adopt_dataset(data, self.dataset, self.data_dir, self.split_seed, self.test_set,
                      self.subsets)

    def __call__(self, job: Job) -> Result:
        started = time.perf_counter()
        dataset = dataset_for(self.dataset, self.data_dir, self.split_seed, self.test_set,
                              self.subsets)
        resolved = resolve(parse_arch(job.text), dataset.input_shape, dataset.num_classes)
        skip = self._memory_refusal(resolved, dataset) or self._precheck(resolved) or \
            mcu_refusal(resolved, self.constraints)
        if skip is not None:
            reason, objectives = skip
            return Result(job.key, job.individual_id, Status.SKIPPED, reason, objectives, {},
                          device=None, threads=self.threads,
                          seconds=time.perf_counter() - started)
        full = self.budget.epochs_for(resolved.recipe.epochs_mult)
        # A rung of successive halving: train to the rung's epochs (scaled to this candidate's
        # own budget) from the previous rung's state; None: to the full budget.
        stop_after = None if job.epochs is None else \
            scaled_epochs(job.epochs, full, self.budget.epochs)
        out = train_candidate(resolved, dataset, self.budget, device=self.device,
                              threads=self.threads, seed=job.seed,
                              progress=self._epoch_listener(job, stop_after or full),
                              progress_every_s=PROGRESS_EVERY_S, stop_after=stop_after,
                              resume=job.resume, abort_below=self._abort_below(job, dataset))
        # The files go back to the driver inside the result (it alone writes the run folder,
        # which a worker on another node cannot see); names are relative to the run folder.
        files: dict[str, bytes] = {}
        weights = None
        metrics = dict(out.metrics)
        state = out.state  # set when stopped at a rung before the full budget
        if state is not None:
            name = relative_name(RUN, candidate_state_path(RUN, job.key,
                                                           int(metrics["epochs_run"])))
            files[name] = state
            metrics["state"] = name
        if out.ok and out.state_dict is not None and state is None:
            from evo.net.checkpoint import checkpoint_bytes

            weights = relative_name(RUN, candidate_weights_path(RUN, job.key))
            files[weights] = checkpoint_bytes(
                resolved.canonical_text(), dataset.input_shape, dataset.num_classes,
                dataset.mean, dataset.std, dataset.class_names, out.state_dict)
        objectives = dict(out.objectives)
        if self.mcu:  # the microcontroller budgets, estimated (evo.nas.mcu)
            estimated, raw = mcu_values(resolved)
            objectives.update(estimated)
            metrics.update(raw)
        status, reason = out.status, out.reason or None
        if out.ok and out.state_dict is not None and state is None and \
                self.measured is not None:
            failure = self._export_onnx(job, resolved, out.state_dict, objectives, metrics,
                                        files)
            if failure is not None:
                status, reason = Status.FAILED, failure
        return Result(job.key, job.individual_id, status, reason, objectives, metrics,
                      device=str(metrics.get("device", "")), threads=self.threads,
                      seconds=time.perf_counter() - started, weights=weights, files=files)

    def _abort_below(self, job: Job, dataset: Dataset) -> float | None:
        """With --early-abort, the validation accuracy at or below which a fresh candidate
        stops after its first epoch: chance plus a margin for the validation set's size (a
        continued one was judged when it started)."""
        if not self.early_abort or job.resume is not None:
            return None
        from evo.net.budget import chance_threshold

        return chance_threshold(dataset.val.y, dataset.num_classes)

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

    def _epoch_listener(self, job: Job, epochs: int) -> Callable[[dict[str, Any]], None] | None:
        """Announce the candidate (training to ``epochs``), then turn training's progress
        dicts (evo.net.train) into this member's typed events."""
        listener = self.progress
        if listener is None:
            return None
        member = job.individual_id
        listener(CandidateStarted(member=member, epochs=epochs))

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


def early_abort_of(config: SearchConfig) -> bool:
    """``--early-abort``: as given, else on exactly with ``--fidelity halving`` (a search that
    already trains most candidates briefly gains most from dropping hopeless ones, and the
    full-fidelity default keeps the meaning of existing runs)."""
    if config.early_abort is not None:
        return config.early_abort == "on"
    return config.fidelity == "halving"


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
        self.early_abort = early_abort_of(config)

    def describe(self) -> dict[str, Any]:
        described = {
            "dataset": self.dataset.describe(),
            "budget": asdict(self.budget),
            "device_type": self.device_type,
            "threads": self.threads,
        }
        if self.measurement is not None:  # latencies belong to this host and these runtimes
            described["measurement"] = self.measurement
        if self.early_abort:  # absent when off, so runs from before the option still resume
            described["early_abort"] = True
        return described

    def candidate(self, phenotype: str) -> tuple[str, str] | str:
        try:
            spec = parse_arch(phenotype)
        except ArchParseError as exc:
            return f"does not parse: {exc}"
        resolved = resolve(spec, self.dataset.input_shape, self.dataset.num_classes)
        key = evaluation_key(resolved, self.dataset.fingerprint, self.budget, self.device_type,
                             self.threads)
        extra: dict[str, Any] = {}
        if self.measurement is not None:
            extra["measurement"] = self.measurement
        if self.early_abort:  # a stopped candidate is a different result from a trained one
            extra["early_abort"] = True
        if extra:
            payload = json.dumps({"evaluation": key, **extra}, sort_keys=True,
                                 separators=(",", ":"))
            key = hashlib.sha256(payload.encode()).hexdigest()
        return key, resolved.canonical_text()

    def measure(self, evaluation: Evaluation) -> Measured:
        """Latency (and any missing ONNX size) of a trained candidate, timed by the driver."""
        estimated = Measured()
        if mcu_named(self.config.objective_specs, self.config.constraint_specs):
            estimated = estimate_stored(self.run_dir, evaluation)
        if not self.measured.any:
            return estimated
        return merged(estimated, measure_evaluation(self.run_dir, self.measured, self.targets,
                                                    evaluation))

    def evaluator(self) -> TrainingEvaluator:
        return TrainingEvaluator(
            dataset=self.config.dataset, data_dir=self.config.data_dir,
            split_seed=self.config.seed, test_set=self.config.test_set, budget=self.budget,
            subsets=subsets_of(self.config),
            device=self.config.device,
            threads=self.threads,
            constraints=self.config.constraint_specs, max_memory_bytes=self.max_memory,
            mcu=mcu_named(self.config.objective_specs, self.config.constraint_specs),
            measured=self.measured if self.measured.any else None,
            early_abort=self.early_abort,
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
