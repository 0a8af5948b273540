"""`evo report`: one self-contained HTML page of a run plus its figures as SVG files, read from
a real run (the tiny digits search, one member retrained, two exported and timed), checked for
what it shows, for pointing nowhere outside itself, and rendered by a real browser.

The browser is Debian's headless Chromium, run so it can send nothing anywhere (no proxy that
answers, every host name unresolvable, no background or component traffic); without it that
one test skips and says why (.ci/run installs it).
"""

from __future__ import annotations

import base64
import contextlib
import html
import io
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from PIL import Image

from evo.config import SearchConfig
from evo.errors import EvoError
from evo.report.front_table import format_test_accuracy, front_rows
from evo.report.html_report import PAGE_NAME, write_report
from evo.run.counts import counts_of
from evo.run.front import front_of
from evo.run.layout import report_dir
from evo.run.per_generation import generation_fronts, training_compute
from evo.run.store import RunStore
from evo.search.engine import Search
from evo.search.synthetic import SyntheticProblem
from tests._runs_helpers import cli, copy_run, tiny_digits_run
from tests._search_helpers import blocks_file

torch.set_num_threads(1)

FIGURES = ("front.svg", "generations.svg", "hypervolume.svg", "compute.svg", "exports.svg")
FRONT_RGB = (0x1F, 0x77, 0xB4)  # the front's colour in the plots (evo.report.front_draw)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the tiny digits run with the most accurate front member retrained (two
    seeds), two front members exported (onnx, ir-fp32) and timed (quick protocol)."""
    from evo.post.benchrun import bench_run
    from evo.post.exporting import export_members
    from evo.post.retrain import retrain

    run_dir = copy_run(tiny_digits_run(tmp_path_factory), tmp_path_factory.mktemp("rep") / "run")
    store = RunStore.open(run_dir, write=False)
    front = front_of(store)
    store.close(checkpoint=False)
    best = max(front, key=lambda m: m[1].metrics["val_accuracy"])[0].id
    retrain(run_dir, [best], epochs=1, seeds=2)
    export_members(run_dir, [ind.id for ind, _ev in front][:2], ("onnx", "ir-fp32"))
    bench_run(run_dir, ("ort:cpu", "ov:CPU"), protocol="quick")
    return run_dir


@pytest.fixture(scope="module")
def reported(full_run: Path) -> tuple[int, str]:
    """``evo report RUN`` run once (into the run's report folder): exit code and stdout."""
    from evo.cli.app import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            main(["report", str(full_run)])
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
    return code, out.getvalue()


@pytest.fixture(scope="module")
def page(full_run: Path, reported: tuple[int, str]) -> str:
    """The page ``evo report RUN`` wrote, as text."""
    assert reported[0] == 0
    return (report_dir(full_run) / PAGE_NAME).read_text(encoding="utf-8")


def _images(text: str) -> list[str]:
    """The SVG text of every data-URI image in the page."""
    found = re.findall(r'src="data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)"', text)
    return [base64.b64decode(item).decode("utf-8") for item in found]


def test_cli_writes_the_page_and_every_figure_into_the_run_report_folder(full_run, reported):
    code, out = reported
    assert code == 0
    folder = report_dir(full_run)
    assert folder == full_run / "report"
    assert f"report: {folder / PAGE_NAME}" in out
    assert f"figures: {', '.join(FIGURES)} (in {folder})" in out
    for name in FIGURES:
        assert (folder / name).read_text(encoding="utf-8").lstrip().startswith(("<?xml", "<svg"))
    assert not [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_page_points_nowhere_outside_itself(page):
    """Figures are data URIs, links are fragments, no script, stylesheet or font is fetched;
    the same holds inside every embedded SVG."""
    lowered = page.lower()
    for banned in ("<script", "<link", "url(", "@import", "<iframe", "<object", "<embed"):
        assert banned not in lowered, banned
    sources = re.findall(r'\bsrc\s*=\s*"([^"]*)"', page)
    assert len(sources) == len(FIGURES)
    assert all(s.startswith("data:image/svg+xml;base64,") for s in sources)
    links = re.findall(r'\bhref\s*=\s*"([^"]*)"', page)
    assert links and all(link.startswith("#") for link in links), links
    anchors = set(re.findall(r'\bid="([^"]+)"', page))
    assert {link[1:] for link in links} <= anchors
    images = _images(page)
    assert len(images) == len(FIGURES)
    for svg in images:
        assert "<!doctype" not in svg.lower()
        urls = re.findall(r"url\(\s*['\"]?([^)'\"]*)", svg)
        assert all(url.startswith("#") for url in urls), urls  # clip paths inside the SVG
        refs = re.findall(r'\b(?:xlink:)?href\s*=\s*"([^"]*)"', svg)
        # fragments, and the colour bar matplotlib embeds as a PNG data URI
        assert [ref for ref in refs if not ref.startswith(("#", "data:image/png;base64,"))] == []
        assert not re.findall(r'\bsrc\s*=', svg)


def test_page_shows_members_exports_latencies_config_host_and_commands(full_run, page):
    rows, _info = front_rows(full_run)
    assert len(rows) >= 2
    for row in rows:
        assert f"{row['val_accuracy']:.2%} of {row['val_images']}" in page
        assert f"phenotype: <code>{html.escape(row['phenotype'])}</code>" in page
    tested = [r for r in rows if r.get("test_accuracy") is not None]
    assert len(tested) == 1 and format_test_accuracy(tested[0]) in page
    assert "(2 seeds)" in page
    store = RunStore.open(full_run, write=False)
    try:
        exports = [r for r in store.exports() if r["status"] == "ok"]
        measured = store.measurements()
        versions = store.meta("versions")
        last = store.hypervolumes()[-1][1]
    finally:
        store.close(checkpoint=False)
    assert {r["format"] for r in exports} == {"onnx", "ir-fp32"}
    for r in exports:
        assert f"{r['bytes'] / 1000:,.1f} kB" in page
    assert "ort:cpu" in page and "ov:CPU" in page and len(measured) >= 4
    assert f"{last:.4f} (last generation)" in page
    assert f"<td>torch version</td><td>{versions['torch']}</td>" in page
    assert "<td>seed</td><td><code>5</code></td>" in page
    run = str(full_run)
    assert f"evo pick {run} --target" in page and "--max-latency" in page
    assert f"evo show {run} {tested[0]['member']}" in page
    assert f"evo retrain {run} --seeds 3" in page  # the other front members are untested


def test_generation_history_matches_the_stored_run(full_run):
    store = RunStore.open(full_run, write=False)
    try:
        fronts = generation_fronts(store)
        compute = training_compute(store)
        counts = counts_of(store)
        assert [(f.generation, f.hypervolume) for f in fronts] == store.hypervolumes()
        assert {m for m, _ev in fronts[-1].members} == {ind.id for ind, _ev in front_of(store)}
        assert [c.generation for c in compute] == [0, 1]
        # One epoch each: every network this run trained ran exactly one epoch.
        assert sum(c.trained for c in compute) == counts.trained
        assert sum(c.epochs for c in compute) == counts.trained
        assert all(c.train_seconds > 0 for c in compute if c.trained)
    finally:
        store.close(checkpoint=False)


def test_page_renders_in_headless_chromium(full_run, page, tmp_path):
    browser = shutil.which("chromium")
    if browser is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium; .ci/run "
                    "installs it): the page cannot be rendered in a real browser here")
    shot = tmp_path / "page.png"
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
               "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--proxy-server=127.0.0.1:9",
               "--host-resolver-rules=MAP * ~NOTFOUND", f"--user-data-dir={tmp_path / 'ud'}",
               f"--screenshot={shot}", "--window-size=1200,2000",
               (report_dir(full_run) / PAGE_NAME).resolve().as_uri()]
    done = subprocess.run(command, capture_output=True, text=True, timeout=90)
    assert shot.is_file(), done.stderr[-2000:]
    image = Image.open(shot).convert("RGB")
    assert image.size == (1200, 2000)
    colours = image.getcolors(maxcolors=1 << 20) or []
    assert len(colours) > 500, "screenshot has almost no distinct colours: a blank page"
    white = sum(count for count, rgb in colours if min(rgb) >= 250)
    assert white < 0.9 * 1200 * 2000, "screenshot is nearly all white"
    # The front's blue appears only inside the figures: the SVG data URIs were drawn.
    front_blue = sum(count for count, rgb in colours
                     if all(abs(a - b) <= 12 for a, b in zip(rgb, FRONT_RGB, strict=True)))
    assert front_blue > 40, "no figure was drawn (the front's colour is missing)"


def test_out_folder_and_a_run_with_nothing_exported(tmp_path_factory, tmp_path, capsys):
    run_dir = tiny_digits_run(tmp_path_factory)
    code, _out, err = cli(capsys, "report", str(run_dir), "--out", str(tmp_path / "r"))
    assert code == 0, err
    assert not report_dir(run_dir).exists()  # the shared run stays untouched
    text = (tmp_path / "r" / PAGE_NAME).read_text(encoding="utf-8")
    assert "No member exported yet" in text
    assert f"evo export {run_dir} --front --format all" in text
    assert not (tmp_path / "r" / "exports.svg").exists()
    assert len(_images(text)) == len(FIGURES) - 1


def test_a_run_with_nothing_evaluated_still_gets_a_page(tmp_path):
    config = SearchConfig(grammar=str(blocks_file(tmp_path)), population=4,
                          run_dir=str(tmp_path / "empty"))
    Search.create(tmp_path / "empty", config, SyntheticProblem()).close("interrupted")
    written = write_report(tmp_path / "empty", tmp_path / "out")
    text = written.page.read_text(encoding="utf-8")
    assert written.figures == () and "Nothing evaluated yet" in text
    assert f"evo search --resume {tmp_path / 'empty'}" in text


def test_bad_folders_are_one_line_exit_2(tmp_path, tmp_path_factory, capsys):
    code, out, err = cli(capsys, "report", str(tmp_path / "nothing"))
    assert code == 2 and out == "" and "no run here" in err and len(err.splitlines()) == 1
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, out, err = cli(capsys, "report", str(tiny_digits_run(tmp_path_factory)), "--out",
                         str(blocker))
    assert code == 2 and "is a file, not a folder" in err and len(err.splitlines()) == 1
    with pytest.raises(EvoError, match="no run here"):
        write_report(tmp_path / "nothing")
