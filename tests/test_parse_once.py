"""Objectives and constraints parsed once into typed values; format names without the exporters;
the training, export and session modules each small enough to read."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from evo.config import SearchConfig
from evo.errors import EvoError
from evo.moo.objectives import Constraint
from evo.nas.measured import MeasuredNeeds, needs_of

REPO = Path(__file__).resolve().parents[1]


def test_objective_specs_are_the_one_spelling_evaluations_are_stored_under() -> None:
    config = SearchConfig(objectives=("error", "LATENCY:OV:cpu", "onnx_bytes"))
    assert config.objective_specs == ("error", "latency:ov:CPU", "onnx_bytes")
    assert config.objectives == ("error", "LATENCY:OV:cpu", "onnx_bytes")  # as the user gave


def test_constraint_specs_are_limits_in_base_units_parsed_once() -> None:
    config = SearchConfig(constraint=("params<=200k", " latency:ov:cpu < 2ms", "error<=5%"))
    assert config.constraint_specs == (
        Constraint("params", "<=", 200_000.0, "params<=200k"),
        Constraint("latency:ov:CPU", "<", 2.0, "latency:ov:cpu < 2ms"),
        Constraint("error", "<=", 0.05, "error<=5%"),
    )
    assert config.constraint_specs is config.constraint_specs  # cached, not parsed again


def test_a_changed_config_parses_its_own_objectives() -> None:
    config = SearchConfig(objectives=("error", "params"), constraint=("params<=1k",))
    _ = config.objective_specs, config.constraint_specs
    changed = config.replace(objectives=("error", "macs"), constraint=("macs<=5M",))
    assert changed.objective_specs == ("error", "macs")
    assert [c.name for c in changed.constraint_specs] == ["macs"]


def test_parsed_values_travel_to_workers_with_the_config() -> None:
    config = SearchConfig(constraint=("params<=2e5",))
    _ = config.constraint_specs
    copy = pickle.loads(pickle.dumps(config))
    assert copy == config and copy.constraint_specs == config.constraint_specs


def test_bad_names_still_raise_one_line_from_check() -> None:
    with pytest.raises(EvoError, match="unknown objective 'accuracy'"):
        SearchConfig(objectives=("error", "accuracy")).check()
    with pytest.raises(EvoError, match="is not NAME<=NUMBER"):
        SearchConfig(constraint=("params=5",)).check()
    with pytest.raises(EvoError, match="cannot be negative"):
        SearchConfig(constraint=("params<=-1",)).check()


def test_measured_needs_come_from_the_typed_values() -> None:
    config = SearchConfig(objectives=("error", "onnx_bytes"),
                          constraint=("latency:OV:cpu<=2ms", "latency:ov:CPU<=3ms"))
    needs = needs_of(config.objective_specs, config.constraint_specs)
    assert needs == MeasuredNeeds(onnx_bytes=True, targets=("ov:CPU",))


def test_checking_a_config_imports_neither_torch_nor_numpy_nor_the_exporters() -> None:
    """The search layer validates format names through export.names alone."""
    code = (
        "import json, sys\n"
        "from evo.config import SearchConfig\n"
        "SearchConfig(export=('onnx', 'ir-int8'), objectives=('error', 'latency:ov:CPU'),\n"
        "             constraint=('params<=1M',)).check()\n"
        "print(json.dumps([m for m in ('torch', 'numpy', 'export.formats', 'onnx')\n"
        "                  if m in sys.modules]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         check=True)
    assert json.loads(out.stdout) == []


def test_an_unknown_export_format_is_still_refused() -> None:
    with pytest.raises(EvoError, match="--export: unknown export format onnx-int4"):
        SearchConfig(export=("onnx", "onnx-int4")).check()


def test_every_format_name_has_exactly_one_exporter_in_the_same_order() -> None:
    from export.formats import EXPORTERS
    from export.names import ALL_FORMATS

    assert tuple(EXPORTERS) == ALL_FORMATS
    assert all(exporter.name == name for name, exporter in EXPORTERS.items())


@pytest.mark.parametrize("package", ["evo/net", "export", "hardware"])
def test_no_module_of_the_training_export_and_hardware_packages_passes_400_lines(
        package: str) -> None:
    long = {str(path.relative_to(REPO)): n for path in sorted((REPO / package).glob("*.py"))
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > 400}
    assert long == {}
