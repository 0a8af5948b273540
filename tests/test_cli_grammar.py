"""`evo grammar ...` through the real console entry point, as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.test_grammar import BLOCKS

HEAVY = ("torch", "onnx", "onnxruntime", "openvino", "ray", "litert_torch", "ai_edge_litert",
         "ai_edge_quantizer", "tflite_micro", "jax")


def run(*args: str, cwd=None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "evo", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


def test_help_version_and_grammar_commands_import_no_heavy_runtime(tmp_path):
    grammar = tmp_path / "blocks.bnf"
    grammar.write_text(BLOCKS)
    probe = (
        "import sys\nfrom evo.cli.app import main\n"
        f"for argv in (['--help'], ['--version'], ['grammar', 'check', {str(grammar)!r}],"
        f" ['grammar', 'sample', {str(grammar)!r}, '-n', '2'],"
        f" ['grammar', 'map', {str(grammar)!r}, '--genome', '1,2,3']):\n"
        "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
        f"print('HEAVY', sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout


def test_map_prints_one_json_object_per_genome(tmp_path):
    grammar = tmp_path / "blocks.bnf"
    grammar.write_text(BLOCKS)
    genomes = tmp_path / "g.txt"
    genomes.write_text("[0, 0, 0, 0, 0, 0, 0, 0]\n1,2,3\n\n")
    out = run("grammar", "map", str(grammar), "--genomes", str(genomes))
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert rows[0] == {"phenotype": "conv( 8 , 3 )  |  lr=0.1 bs=0", "valid": True,
                       "used_codons": 8, "depth": 5, "nodes": 12, "reason": None}
    assert rows[1]["valid"] is False and rows[1]["phenotype"] is None
    assert rows[1]["reason"] == "genome exhausted after 3 codons (max_wraps 0)"


def test_sample_is_seeded(tmp_path):
    grammar = tmp_path / "blocks.bnf"
    grammar.write_text(BLOCKS)
    a = run("grammar", "sample", str(grammar), "-n", "4", "--seed", "7", "--init", "pi-grow")
    b = run("grammar", "sample", str(grammar), "-n", "4", "--seed", "7", "--init", "pi-grow")
    assert a.returncode == 0 and a.stdout == b.stdout and len(a.stdout.splitlines()) == 4


def test_bad_grammar_is_one_line_exit_2(tmp_path):
    bad = tmp_path / "bad.bnf"
    bad.write_text("<a> ::= <missing>\n")
    out = run("grammar", "check", str(bad))
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "bad.bnf:1:9" in out.stderr
    assert "Traceback" not in out.stderr
    out = run("grammar", "map", str(bad), "--genome", "x,y")
    assert out.returncode == 2 and "not a genome" in out.stderr
