"""Everything recorded about one member of a run, as plain data (``evo show``).

One function gathers it all from run.db, so the rich view and ``--json`` cannot disagree: the
phenotype and the network it resolves to for the run's dataset, the per-layer table, the
training recipe, every metric of its evaluation, its history (parents, the generations it
survived, other individuals that are the same network), retrains, exports and measurements.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evo.arch.mcu import measured_text
from evo.errors import EvoError
from evo.report.readable import canonical_phenotype, integral_counts
from evo.run.compute import compute_spent
from evo.run.exports import checked_exports
from evo.run.layout import resolve_stored
from evo.run.retrains import RetrainRecord, chosen_retrain, member_ids_hint, retrain_records
from evo.run.store import Evaluation, Individual, RunStore


def search_budget(config: dict[str, Any], problem: dict[str, Any]) -> dict[str, Any]:
    """Both budgets of a run: what a candidate got in the search (epochs, fidelity, early
    abort, the training and validation images, a subset's seed) and what the final retrain
    gets (``--final-epochs`` on all of training + validation). A search on subsets ranks
    networks by a proxy, so a reader of a member must see both."""
    from evo.search.rungs import schedule

    dataset = problem.get("dataset") or {}
    sizes = dataset.get("sizes") or {}
    subset = dataset.get("subset") or {}
    full = subset.get("full_sizes") or sizes
    epochs, fidelity = config.get("epochs"), config.get("fidelity") or "full"
    halving = fidelity == "halving" and isinstance(epochs, int)
    return {
        "epochs": epochs, "seed": config.get("seed"), "fidelity": fidelity,
        "rungs": list(schedule(int(config.get("min_epochs") or 1), int(config.get("eta") or 3),
                               epochs)) if halving else None,
        "early_abort": bool(problem.get("early_abort", False)),
        "train_images": sizes.get("train"), "val_images": sizes.get("val"),
        "full_train_images": full.get("train"), "full_val_images": full.get("val"),
        "subset_seed": subset.get("seed"),
        "final_epochs": config.get("final_epochs"),
        "final_train_images": (full["train"] + full["val"]) if full.get("train") is not None
        and full.get("val") is not None else None,
    }


def _of(part: int | None, whole: int | None, what: str) -> str:
    if part is None:
        return f"? {what}"
    return f"{part:,} {what}" if part == whole else f"{part:,} of {whole:,} {what}"


def budget_rows(budget: dict[str, Any], compute: dict[str, Any]) -> list[tuple[str, str]]:
    """The budgets and the run's compute as (label, text) lines for ``evo show``."""
    fidelity = "full fidelity" if not budget.get("rungs") else \
        "successive halving, rungs at " + ", ".join(map(str, budget["rungs"])) + " epochs"
    data = (f"{_of(budget.get('train_images'), budget.get('full_train_images'), 'training')}"
            f" / {_of(budget.get('val_images'), budget.get('full_val_images'), 'validation')}"
            " images")
    if budget.get("subset_seed") is not None:
        data += f" (stratified subsets, seed {budget['subset_seed']})"
    early = "on" if budget.get("early_abort") else "off"
    final = budget.get("final_epochs")
    images = budget.get("final_train_images")
    final_text = "-"
    if images is not None:
        final_text = (f"{final} epochs" if final else "evo retrain --epochs N (no "
                      "--final-epochs)") + f" on all {images:,} training+validation images"
    spent = compute.get("images_seen")
    return [
        ("search budget", f"{budget.get('epochs')} epochs x epochs_mult, {fidelity}, early "
                          f"abort {early}; {data}"),
        ("final budget", final_text),
        ("run compute", f"{'?' if spent is None else f'{spent:,}'} training images, "
                        f"{compute.get('epochs_trained') or 0:,} epochs trained (all "
                        "candidates)"),
    ]


def _evaluation_dict(ev: Evaluation | None) -> dict[str, Any] | None:
    if ev is None:
        return None
    return {"key": ev.key, "status": ev.status, "reason": ev.reason, "source": ev.source,
            "evaluated_as_member": ev.individual_id, "objectives": ev.objectives,
            "metrics": ev.metrics, "device": ev.device, "threads": ev.threads,
            "seconds": ev.seconds, "weights": ev.weights}


def _history(store: RunStore, ind: Individual,
             evaluations: dict[str, Evaluation]) -> dict[str, Any]:
    parents = []
    for parent in store.individuals(list(ind.parents)):
        ev = evaluations.get(parent.eval_key or "")
        parents.append({"member": parent.id, "generation": parent.generation,
                        "origin": parent.origin,
                        "val_accuracy": ev.metrics.get("val_accuracy") if ev else None,
                        "params": ev.objectives.get("params") if ev else None})
    survived, on_front = [], False
    last = store.last_generation()
    for g in range(0, (last if last is not None else -1) + 1):
        gen = store.generation(g)
        if gen is None or ind.id not in gen["population"]:
            continue
        survived.append(g)
        if g == last:
            at = gen["population"].index(ind.id)
            on_front = gen["ranks"][at] == 0 and gen["violation"][at] == 0
    return {"generation": ind.generation, "origin": ind.origin, "parents": parents,
            "survived_generations": survived, "on_last_front": on_front,
            "same_network_as": store.same_network(ind), "children": store.children(ind)}


def _network(store: RunStore, ind: Individual) -> tuple[dict[str, Any] | None, Any, str | None]:
    """(network facts, resolved arch, why there is none)."""
    from evo.arch import ArchParseError, describe_recipe, parse_arch, resolve

    dataset = (store.meta("problem") or {}).get("dataset")
    if not dataset:
        return None, None, "this run has no dataset (a synthetic test problem)"
    if not ind.phenotype:
        return None, None, f"no phenotype ({ind.reason or 'invalid derivation'})"
    try:
        spec = parse_arch(ind.phenotype)
    except ArchParseError as exc:
        return None, None, f"phenotype does not parse: {exc}"
    shape = tuple(int(v) for v in dataset["input_shape"])
    resolved = resolve(spec, shape, int(dataset["num_classes"]))
    from evo.arch.memory import default_limit, estimate_inspection, refusal

    too_large = refusal(estimate_inspection(resolved), default_limit(), option=None)
    if too_large is not None:
        return None, None, too_large
    from evo.net.model import layer_table

    layers = [{"index": i, "layer": row.name, "output_shape": list(row.output_shape),
               "params": row.params, "macs": row.macs, "source": item.source}
              for i, (row, item) in enumerate(zip(layer_table(resolved), resolved.layers,
                                                  strict=True))]
    facts = {
        "dataset": dataset.get("name"), "input_shape": list(shape),
        "num_classes": int(dataset["num_classes"]), "canonical_text": resolved.canonical_text(),
        "layers": layers, "params": sum(r["params"] for r in layers),
        "macs": sum(r["macs"] for r in layers), "recipe": describe_recipe(resolved.recipe),
        "resolution_notes": list(resolved.notes), "dropped": list(resolved.dropped),
    }
    return facts, resolved, None


def _retrains(store: RunStore, ind: Individual) -> list[dict[str, Any]]:
    """Every retrain of the member's network, oldest first, numbered; each says whether its
    weights file is there and which one ``evo export`` uses by default (the newest)."""
    records = retrain_records(store, ind.id)
    out = []
    for record in records:
        path = record.weights_path(store.run_dir)
        out.append({**record.to_dict(), "weights_present": bool(path and path.is_file()),
                    "export_default": record is records[-1]})
    return out


def _open_member(run_dir: Path, member: int) -> tuple[RunStore, Individual]:
    store = RunStore.open(Path(run_dir), write=False)
    ind = store.individual(int(member))
    if ind is None:
        hint = member_ids_hint(store)
        store.close(checkpoint=False)
        raise EvoError(f"{run_dir}: no member {member}", hint + "; see evo front " + str(run_dir))
    return store, ind


def member_details(run_dir: Path, member: int) -> dict[str, Any]:
    """Everything run.db knows about ``member``, JSON-ready. Unknown ids raise ``EvoError``
    naming the valid range."""
    store, ind = _open_member(run_dir, member)
    try:
        evaluations = store.evaluations()
        ev = evaluations.get(ind.eval_key) if ind.eval_key else None
        network, _resolved, no_network = _network(store, ind)
        config = store.meta("config") or {}
        return integral_counts({  # counts as ints; canonical phenotype, raw one kept
            "run_dir": str(run_dir),
            "member": ind.id,
            "phenotype": canonical_phenotype(ind.phenotype),
            "phenotype_raw": ind.phenotype,
            "valid": ind.valid,
            "reason": ind.reason,
            "genome": {"length": len(ind.genome), "used_codons": ind.used_codons,
                       "tree_depth": ind.depth, "tree_nodes": ind.nodes},
            "history": _history(store, ind, evaluations),
            "evaluation": _evaluation_dict(ev),
            "network": network,
            "no_network": no_network,
            "budget": search_budget(config, store.meta("problem") or {}),
            "compute": compute_spent(store),  # the whole run's, every training segment
            "retrains": _retrains(store, ind),
            "exports": [_with_mcu(row) for row in checked_exports(store)  # missing files say so
                        if row["individual_id"] == ind.id],
            "measurements": store.member_measurements(ind.id),
        })
    finally:
        store.close(checkpoint=False)


def _with_mcu(row: dict[str, Any]) -> dict[str, Any]:
    """An export row with its microcontroller figures in one line (litert-int8 only)."""
    text = measured_text(row.get("details") or {})
    return row if text is None else {**row, "microcontroller": text}


def member_torch_source(run_dir: Path, member: int, *, header: bool = False) -> str:
    """Standalone PyTorch source of the member's network for the run's dataset, with the
    dataset's input normalisation; ``header`` prepends comments naming the member's weights
    (the search's, and the retrain ``evo export`` uses by default) and how to load them."""
    from evo.net.torch_source import torch_source

    store, ind = _open_member(run_dir, member)
    try:
        _facts, resolved, why = _network(store, ind)
        ev = store.evaluation(ind.eval_key) if ind.eval_key else None
        retrain = chosen_retrain(store, ind.id)
        count = len(retrain_records(store, ind.id))
        dataset = (store.meta("problem") or {}).get("dataset") or {}
    finally:
        store.close(checkpoint=False)
    if resolved is None:
        raise EvoError(f"{run_dir}: member {member} has no network to write out ({why})",
                       "pick a member with a valid phenotype (evo front)")
    source = torch_source(resolved, dataset.get("mean"), dataset.get("std"))
    if not header:
        return source
    lines = [f"# Member {ind.id} of the evo run {run_dir} (written by `evo show --torch`)."]
    if ev is not None and ev.weights:
        lines.append(f"# Weights from the search: {resolve_stored(Path(run_dir), ev.weights)}")
    lines += _retrain_header(Path(run_dir), ind.id, retrain, count)
    if len(lines) > 1:
        lines += ["# evo checkpoints keep the weights under 'state_dict':",
                  "#   model = build_model()",
                  "#   model.load_state_dict(torch.load(PATH, weights_only=True)['state_dict'])"]
    return "\n".join(lines) + "\n" + source


def _retrain_header(run_dir: Path, member: int, retrain: RetrainRecord | None,
                    count: int) -> list[str]:
    if retrain is None:
        return []
    path = retrain.weights_path(run_dir)
    where = str(path) if path is not None and path.is_file() else "(weights file not kept)"
    lines = [f"# Retrained weights, {retrain.label(member)}, what evo export uses: {where}"]
    if count > 1:
        lines.append(f"# ({count} retrains in all: evo show {run_dir} {member} lists "
                     "them; evo export --retrain N picks another)")
    return lines
