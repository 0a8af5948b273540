"""What a new user reads: hints that name the option to use on the command line, and the README
and docs examples of ``evo grammar`` doing what they say from any folder."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import torch

from tests._runs_helpers import cli

ROOT = Path(__file__).resolve().parents[1]


def _command_lines(doc: Path, prefix: str) -> list[list[str]]:
    """Arguments of every line of ``doc`` that starts with ``prefix`` (comments dropped)."""
    lines = [line.split("#")[0].strip() for line in doc.read_text().splitlines()]
    return [shlex.split(line)[1:] for line in lines if line.startswith(prefix)]


# ---------------------------------------------------------------- evo grammar


def test_readme_grammar_check_works_outside_the_source_tree(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (args,) = _command_lines(ROOT / "README.md", "evo grammar check")
    assert not args[-1].endswith(".bnf")
    code, out, err = cli(capsys, *args)
    assert code == 0, err
    assert "cnn_full.bnf" in out and "rules" in out
    for shipped in sorted((ROOT / "grammars").glob("*.bnf")):
        code, out, err = cli(capsys, "grammar", "check", shipped.stem, "--json")
        assert code == 0, (shipped.stem, err)
        assert json.loads(out)["source"] == shipped.name


def test_docs_example_genome_is_valid_and_an_invalid_one_says_why(capsys):
    (args,) = _command_lines(ROOT / "docs" / "writing-grammars.md", "evo grammar map")
    code, out, err = cli(capsys, *args)
    assert code == 0, err
    mapped = json.loads(out)
    assert mapped["valid"] and mapped["reason"] is None
    assert mapped["used_codons"] == len(args[args.index("--genome") + 1].split(","))
    short = ",".join(args[args.index("--genome") + 1].split(",")[:8])
    code, out, err = cli(capsys, "grammar", "map", "cnn_full", "--genome", short)
    assert code == 0, err
    invalid = json.loads(out)
    assert not invalid["valid"]
    assert invalid["reason"] == "genome exhausted after 8 codons (max_wraps 0)"
    doc = (ROOT / "docs" / "writing-grammars.md").read_text()
    assert '"reason": "genome\nexhausted after 8 codons (max_wraps 0)"' in doc


# ---------------------------------------------------------------- evo export


def _checkpoint(path: Path) -> Path:
    from evo.arch import parse_arch, resolve
    from evo.net.checkpoint import save_checkpoint
    from evo.net.model import build_model

    torch.manual_seed(0)
    resolved = resolve(parse_arch("conv(4, k=3) relu gap"), (1, 8, 8), 3)
    model = build_model(resolved)
    return save_checkpoint(path, resolved.canonical_text(), (1, 8, 8), 3, (0.5,), (0.25,),
                           ("a", "b", "c"), model.state_dict())


def test_int8_without_data_names_the_option_that_supplies_it(tmp_path, capsys):
    torch.set_num_threads(1)
    checkpoint = _checkpoint(tmp_path / "model.pt")
    code, out, err = cli(capsys, "export", str(checkpoint), "--format", "onnx-int8", "--json",
                         "--calibration-size", "40", "--out", str(tmp_path / "out"))
    assert code == 0, err
    (row,) = json.loads(out)["members"][0]["rows"]
    assert row["status"] == "failed"
    assert row["reason"] == (
        "INT8 needs calibration data and none was given (pass --dataset with the checkpoint's "
        "dataset: its training split supplies the 40 calibration samples of --calibration-size)")


def test_int8_without_data_from_python_names_the_parameter(tmp_path):
    from evo.net.checkpoint import load_checkpoint
    from export.formats import export_all

    torch.set_num_threads(1)
    loaded = load_checkpoint(_checkpoint(tmp_path / "model.pt"))
    report = export_all(loaded.model, (1, 8, 8), tmp_path / "out", ("onnx-int8",))
    (row,) = report.rows
    assert row.status == "failed"
    assert re.search(r"\(pass calibration= with up to 300 training samples\)$", row.reason or "")

