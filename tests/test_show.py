"""`evo show RUN MEMBER`: everything recorded about a member, for every member of a small real
run; `--torch` gives standalone source the member's weights load into."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import pytest
import torch

from evo.config import SearchConfig
from evo.errors import EvoError
from evo.net.checkpoint import load_checkpoint
from evo.post.retrain import retrain
from evo.report.show import member_details, member_torch_source
from evo.run.front import front_of
from evo.run.store import RunStore
from tests._runs_helpers import cli, copy_run, tiny_digits_run
from tests._search_helpers import blocks_file, run_synthetic

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    return tiny_digits_run(tmp_path_factory)


def test_show_every_member_as_data(run):
    store = RunStore.open(run, write=False)
    front = {ind.id for ind, _ev in front_of(store)}
    evaluations = store.evaluations()
    individuals = store.individuals()
    store.close(checkpoint=False)
    assert len(individuals) == 8
    for ind in individuals:
        d = member_details(run, ind.id)
        json.dumps(d)  # everything is plain data
        assert d["member"] == ind.id and d["phenotype_raw"] == ind.phenotype
        assert d["history"]["generation"] == ind.generation
        assert [p["member"] for p in d["history"]["parents"]] == list(ind.parents)
        assert d["history"]["on_last_front"] == (ind.id in front)
        ev = evaluations.get(ind.eval_key)
        if ev is None:
            assert d["evaluation"] is None
            continue
        assert d["evaluation"]["metrics"] == ev.metrics
        assert d["evaluation"]["objectives"] == ev.objectives
        net = d["network"]
        assert net["params"] == ev.objectives["params"]
        assert net["macs"] == ev.objectives["macs"]
        assert net["input_shape"] == [1, 8, 8] and net["num_classes"] == 10
        assert net["layers"][-1]["output_shape"] == [10]
        assert net["recipe"]["optimizer"]
    offspring = [i for i in individuals if i.generation == 1]
    assert all(len(member_details(run, i.id)["history"]["parents"]) == 2 for i in offspring)
    first = member_details(run, offspring[0].parents[0])
    assert offspring[0].id in first["history"]["children"]
    assert 0 in first["history"]["survived_generations"]


def test_cli_show_prints_each_member(run, capsys):
    store = RunStore.open(run, write=False)
    individuals = store.individuals()
    store.close(checkpoint=False)
    for ind in individuals:
        code, out, err = cli(capsys, "show", str(run), str(ind.id))
        assert code == 0, err
        assert f"member {ind.id} of" in out and "phenotype" in out and "history" in out
        assert "\x1b[" not in out
        if ind.eval_key is None:  # an invalid derivation: said so, no table to show
            assert "invalid" in out and "no layer table" in out
        else:
            assert "Layers for digits input 1x8x8" in out
            assert "Training recipe" in out and "val_accuracy" in out
    code, out, _err = cli(capsys, "show", str(run), "1", "--json")
    assert code == 0 and json.loads(out)["member"] == 1


def test_unknown_member_names_the_valid_ids(run, capsys):
    code, out, err = cli(capsys, "show", str(run), "99")
    assert code == 2 and "no member 99" in err and "1 to 8" in err and out == ""
    with pytest.raises(EvoError, match="1 to 8"):
        member_details(run, 0)


def test_torch_source_loads_the_members_weights_and_gives_the_same_logits(run, tmp_path,
                                                                         capsys):
    store = RunStore.open(run, write=False)
    ind, ev = front_of(store)[0]
    store.close(checkpoint=False)
    code, out, err = cli(capsys, "show", str(run), str(ind.id), "--torch")
    assert code == 0, err
    assert out.startswith(f"# Member {ind.id} of the evo run")
    path = tmp_path / "member.py"
    path.write_text(out)
    model = runpy.run_path(str(path), run_name="member")["build_model"]()
    ckpt = load_checkpoint(run / ev.weights)
    model.load_state_dict(ckpt.state_dict, strict=True)
    model.eval()
    x = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(model(x), ckpt.model(x), atol=1e-6)
    assert member_torch_source(run, ind.id) in out
    code, out, _err = cli(capsys, "show", str(run), str(ind.id), "--torch", "--json")
    assert code == 0 and "def build_model" in json.loads(out)["torch_source"]


def test_show_includes_retrain_results(run, tmp_path, capsys):
    dest = copy_run(run, tmp_path / "run")
    store = RunStore.open(dest, write=False)
    smallest = min(front_of(store), key=lambda m: m[1].objectives["params"])[0].id
    store.close(checkpoint=False)
    record = retrain(dest, [smallest], epochs=1, seeds=1)[0].record
    d = member_details(dest, smallest)
    assert [(r["retrain"], r["id"]) for r in d["retrains"]] == [(1, record.id)]
    assert d["retrains"][0]["test_images"] == record.test_total
    assert d["retrains"][0]["weights_present"] and d["retrains"][0]["export_default"]
    code, out, _err = cli(capsys, "show", str(dest), str(smallest))
    assert code == 0 and "Retrains" in out and f"retrained-{smallest}-1.pt" in out
    code, out, _err = cli(capsys, "show", str(dest), str(smallest), "--torch")
    assert ("# Retrained weights, retrain 1 (1 epoch, 1 seed, train+validation), what evo "
            f"export uses: {dest / record.weights}") in out


def test_torch_file_states_a_load_call_that_works_and_the_input_normalisation(run, tmp_path,
                                                                              capsys):
    """The generated module's docstring once said load_state_dict(torch.load(path)), which
    fails on an evo checkpoint, and the file lacked the mean/std its inputs need."""
    import numpy as np

    from evo.data.dataset import load_dataset

    store = RunStore.open(run, write=False)
    ind, ev = front_of(store)[0]
    store.close(checkpoint=False)
    code, out, err = cli(capsys, "show", str(run), str(ind.id), "--torch")
    assert code == 0, err
    module = runpy.run_path(str(_write(tmp_path / "member.py", out)), run_name="member")
    doc = module["__doc__"]
    call = next(line.strip() for line in doc.splitlines() if "load_state_dict(" in line)
    model = module["build_model"]()
    # The call exactly as the docstring states it, on the member's real checkpoint.
    exec(call, {"model": model, "torch": torch, "path": str(run / ev.weights)})
    model.eval()
    ckpt = load_checkpoint(run / ev.weights)
    assert module["MEAN"] == pytest.approx(ckpt.mean) and module["STD"] == pytest.approx(ckpt.std)
    # preprocess() on raw pixels in [0, 1] gives exactly what the network was trained on.
    from sklearn.datasets import load_digits

    dataset = load_dataset("digits", None, 5)
    raw = torch.from_numpy((load_digits().images[:16] / 16.0).astype(np.float32))[:, None]
    expected = (raw - torch.tensor(dataset.mean).view(1, -1, 1, 1)) / torch.tensor(
        dataset.std).view(1, -1, 1, 1)
    assert torch.allclose(module["preprocess"](raw), expected, atol=1e-6)
    with torch.no_grad():
        x = module["preprocess"](raw)
        assert torch.allclose(model(x), ckpt.model(x), atol=1e-6)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_a_synthetic_member_has_no_layer_table(tmp_path, capsys):
    run_dir = run_synthetic(SearchConfig(grammar=str(blocks_file(tmp_path)), population=4,
                                         generations=1, run_dir=str(tmp_path / "syn")))
    d = member_details(run_dir, 1)
    assert d["network"] is None and "synthetic" in d["no_network"]
    code, out, _err = cli(capsys, "show", str(run_dir), "1")
    assert code == 0 and "no layer table" in out
    code, _out, err = cli(capsys, "show", str(run_dir), "1", "--torch")
    assert code == 2 and "no network" in err
