"""`evo ... --help` of every command reads as help, not as Python: no ``<bool>`` after flags, no
``<list[Path]>``, no ``{run_dir}`` in usage lines, every option described, one name per option."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest

from evo.cli.app import command, main

Path_ = list[str]  # a command's words, e.g. ["grammar", "map"]


def _commands(cmd: object, path: Path_) -> Iterator[tuple[Path_, object]]:
    yield path, cmd
    for name, sub in getattr(cmd, "commands", {}).items():
        yield from _commands(sub, [*path, name])


COMMANDS = [path for path, _cmd in _commands(command(), [])]


def help_text(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
              *path: str) -> str:
    monkeypatch.setenv("COLUMNS", "200")  # one line per option: the checks see whole cells
    with pytest.raises(SystemExit) as exc:
        main([*path, "--help"])
    assert exc.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "evo")
def test_help_shows_words_not_python_types(capsys, monkeypatch, path):
    text = help_text(capsys, monkeypatch, *path)
    assert "Usage: evo" in text
    for noise in ("<bool>", "<str>", "<int>", "<float>", "<path>", "list[", "<Path>"):
        assert noise not in text, f"{noise} in evo {' '.join(path)} --help"
    usage = next(line for line in text.splitlines() if "Usage:" in line)
    assert "{" not in usage and "}" not in usage, usage
    # A flag's row has no type: "--json" is followed directly by its help.
    if "--json" in text:
        row = next(line for line in text.splitlines() if re.search(r"--json\b", line))
        assert re.search(r"--json\s+(Machine|Print|One)", row), row


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "evo")
def test_every_visible_option_and_argument_is_described(path):
    found = next(c for p, c in _commands(command(), []) if p == path)
    for param in found.params:  # type: ignore[attr-defined]
        if getattr(param, "hidden", False):
            continue
        assert (param.help or "").strip(), f"evo {' '.join(path)}: {param.opts} has no help"


def test_tree_depth_has_one_name_everywhere_and_the_old_one_still_works(
        capsys, monkeypatch, tmp_path):
    for path in (["search"], ["grammar", "sample"], ["grammar", "map"]):
        text = help_text(capsys, monkeypatch, *path)
        assert "--max-tree-depth" in text and "--max-depth" not in text, path
        assert re.search(r"--max-wraps\s+INT( \[x>=0\])?\s+Genome wraps allowed", text), path

    def mapped(*args: str) -> dict:
        with pytest.raises(SystemExit) as exc:
            main(["grammar", "map", "cnn_topology", "--genome", "1,2,3,4,5", *args])
        assert exc.value.code in (0, None)
        return json.loads(capsys.readouterr().out)

    new, old = mapped("--max-tree-depth", "3"), mapped("--max-depth", "3")
    assert new == old and new["valid"] is False and "3" in new["reason"]
    assert mapped()["depth"] <= 90
