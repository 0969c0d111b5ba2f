"""``mixpilot render IN OUT --report PNG|HTML|DIR`` (realtime/render_report.py, realtime/plots.py).

References, independent of the code under test:

* the numbers before/after: ``dsp.descriptors.compute_descriptors`` of the
  input file and of the delivered file read back, minus the profile's own
  numbers (``Profile.load`` / the reference's descriptors), recomputed here;
* a static render (``--model none``) of a quiet file the limiter never
  touches is a plain gain: levels *re the integrated loudness* do not move
  (BS.1770-4 is a power measure), so the output's 1/3-octave balance equals
  the input's and only the loudness moves, to the delivery target;
* the delivered loudness: pyloudnorm (an independent BS.1770-4 meter);
* the AI's trajectories: the ``--params-out`` events of the same render;
* files: the PNG signature/IHDR, JSON Schema ``docs/schemas/render-report.schema.json``
  via ``jsonschema``, the HTML page parsed with ``html.parser``.
"""

from __future__ import annotations

import base64
import json
import math
import struct
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mixpilot.dsp.descriptors import compute_descriptors
from mixpilot.inference.profile import Profile
from mixpilot.realtime.cli import main

jsonschema = pytest.importorskip("jsonschema")
pyloudnorm = pytest.importorskip("pyloudnorm")
pytest.importorskip("matplotlib")

SR = 48000
ROOT = Path(__file__).resolve().parents[2]


def _noise(seconds: float = 8.0, seed: int = 3, level: float = 0.05, width: float = 0.4) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    spec = np.fft.rfft(rng.standard_normal((n, 2)), axis=0)
    f = np.fft.rfftfreq(n, 1 / SR)
    spec /= np.sqrt(np.maximum(f, 20.0))[:, None]
    w = np.fft.irfft(spec, n, axis=0)
    mid, side = w[:, 0], width * w[:, 1]
    env = 1.0 + 0.3 * np.sin(2 * np.pi * 0.25 * np.arange(n) / SR)
    x = np.stack([mid + side, mid - side], axis=1) * env[:, None]
    return (level * x / np.max(np.abs(x))).astype(np.float32)


def _run(argv, capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def _schema(doc: dict) -> None:
    schema = json.loads((ROOT / "docs" / "schemas" / "render-report.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(doc)


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.imgs: list[str] = []
        self.cells: list[str] = []
        self._cell = False

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.imgs.append(dict(attrs)["src"])
        self._cell = tag in ("td", "th")

    def handle_data(self, data):
        if self._cell:
            self.cells.append(data.strip())


@pytest.fixture(scope="module")
def song(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("rr") / "song.wav"
    sf.write(str(p), _noise(), SR, subtype="FLOAT")
    return p


def test_a_static_render_is_a_gain_the_report_shows_it(song, tmp_path, capsys):
    out, folder = tmp_path / "out.wav", tmp_path / "rep"
    code, stdout, err = _run(
        ["render", song, out, "--model", "none", "--target-lufs", "-20", "--report", folder], capsys
    )
    assert code == 0, err
    assert f"report: {folder}" in stdout
    assert sorted(p.name for p in folder.iterdir()) == ["report.html", "report.json", "report.png"]
    doc = json.loads((folder / "report.json").read_text())
    _schema(doc)
    assert doc["model"] == "none" and doc["params"] is None
    assert doc["target"]["kind"] == "target" and doc["target"]["name"] == "default"
    y, _ = sf.read(str(out), dtype="float64")
    x, _ = sf.read(str(song), dtype="float64")
    want = pyloudnorm.Meter(SR, filter_class="DeMan").integrated_loudness(y)
    assert doc["loudness"]["output"]["integrated_lufs"] == pytest.approx(want, abs=0.1)
    assert doc["loudness"]["output"]["integrated_lufs"] == pytest.approx(-20.0, abs=0.1)
    assert doc["loudness"]["input"]["integrated_lufs"] == pytest.approx(
        pyloudnorm.Meter(SR, filter_class="DeMan").integrated_loudness(x), abs=0.1
    )
    # a gain: the balance re loudness is the input's, band by band
    b = np.array(doc["before"]["mid"]["level_db"], dtype=float)
    a = np.array(doc["after"]["mid"]["level_db"], dtype=float)
    np.testing.assert_allclose(a, b, atol=0.05)
    assert doc["after"]["mid"]["rms_db"] == pytest.approx(doc["before"]["mid"]["rms_db"], abs=0.05)
    # the numbers, recomputed from the files and the default profile
    prof = Profile.load("default")
    for key, path in (("before", song), ("after", out)):
        d = compute_descriptors(sf.read(str(path), dtype="float32")[0], SR)
        np.testing.assert_allclose(doc[key]["mid"]["deviation_db"], d.mid_db - prof.mid_db, atol=0.01)
        np.testing.assert_allclose(doc[key]["side"]["deviation_db"], d.side_db - prof.side_db, atol=0.01)
        assert doc[key]["plr_db"]["difference"] == pytest.approx(d.plr_db - prof.plr_db, abs=0.01)
    # the page links the chart and shows the numbers
    page = _Page()
    page.feed((folder / "report.html").read_text())
    assert page.imgs == ["report.png"]
    assert f"{doc['after']['mid']['rms_db']:.2f}" in page.cells
    w, h = _png_size((folder / "report.png").read_bytes())
    assert w == 1100 and h > 800


def test_a_reference_render_reports_the_ai_and_its_target(song, tmp_path, capsys):
    ref = tmp_path / "ref.wav"
    sf.write(str(ref), _noise(seed=9, level=0.5, width=0.8), SR, subtype="FLOAT")
    out, folder, log = tmp_path / "out.flac", tmp_path / "rep", tmp_path / "params.jsonl"
    code, _, err = _run(["render", song, out, "--params-out", log, "--report", folder, "--reference", ref], capsys)
    assert code == 0, err
    doc = json.loads((folder / "report.json").read_text())
    _schema(doc)
    assert doc["target"]["kind"] == "reference" and doc["target"]["sources"] == ["ref.wav"]
    assert doc["model"] != "none" and doc["params"] is not None
    d_ref = compute_descriptors(sf.read(str(ref), dtype="float32")[0], SR)
    d_out = compute_descriptors(sf.read(str(out), dtype="float32")[0], SR)
    np.testing.assert_allclose(doc["after"]["mid"]["target_db"], d_ref.mid_db, atol=2e-3)
    np.testing.assert_allclose(doc["after"]["mid"]["deviation_db"], d_out.mid_db - d_ref.mid_db, atol=0.01)
    assert doc["after"]["width_db"]["difference"] == pytest.approx(d_out.width_db - d_ref.width_db, abs=0.01)
    # toward the reference: the wider reference's width and tonal balance come closer
    assert abs(doc["after"]["width_db"]["difference"]) < abs(doc["before"]["width_db"]["difference"])
    # delivered at the reference's loudness (no --target-lufs)
    assert doc["delivery"]["target_lufs"] == pytest.approx(d_ref.integrated_lufs, abs=0.01)
    # the trajectories are the --params-out events of the AI
    events = [json.loads(line) for line in log.read_text().splitlines()]
    ai = [e for e in events if e["source"] == "ai"]
    assert ai
    for name, tr in doc["params"]["trajectories"].items():
        for e in (e for e in ai if e["param"] == name):  # each AI event is the value in force from its time on
            k = max(i for i, t in enumerate(tr["t_s"]) if t <= e["t"] + 1e-9)
            assert tr["value"][k] == pytest.approx(e["value"], abs=1e-6), name
        for t, v in zip(tr["t_s"][1:], tr["value"][1:]):  # and every change is an AI event
            assert any(abs(e["t"] - t) < 1e-6 and abs(e["value"] - v) < 1e-6 for e in ai if e["param"] == name)
    assert any(len(tr["t_s"]) > 1 for tr in doc["params"]["trajectories"].values())  # the AI moved something


def test_png_and_self_contained_html(song, tmp_path, capsys):
    png = tmp_path / "r.png"
    code, _, err = _run(["render", song, tmp_path / "o.wav", "--target", "dark", "--report", png], capsys)
    assert code == 0, err
    _png_size(png.read_bytes())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.wav", "r.png"]
    page_path = tmp_path / "r.html"
    code, _, err = _run(["render", song, tmp_path / "o2.wav", "--model", "none", "--report", page_path], capsys)
    assert code == 0, err
    page = _Page()
    page.feed(page_path.read_text())
    assert len(page.imgs) == 1 and page.imgs[0].startswith("data:image/png;base64,")
    _png_size(base64.b64decode(page.imgs[0].split(",", 1)[1]))


@pytest.mark.parametrize(
    ("make", "needle", "code_want"),
    [
        (lambda d, s: [s], "is an input or the output", 2),
        (lambda d, s: [d / "o.wav"], "is an input or the output", 2),
        (lambda d, s: [d / "ref.wav", "--reference", d / "ref.wav"], "is an input or the output", 2),
        (lambda d, s: [d / "exists.png"], "exists; pass --overwrite", 2),
        (lambda d, s: [d / "busy"], "holds other files", 2),
        (lambda d, s: [d / "nofolder" / "r.png"], "does not exist", 1),
    ],
)
def test_report_paths_that_cannot_be_used_stop_before_rendering(song, tmp_path, capsys, make, needle, code_want):
    sf.write(str(tmp_path / "ref.wav"), _noise(seed=4), SR)
    (tmp_path / "exists.png").write_bytes(b"mine")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("keep")
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    extra = make(tmp_path, song)
    code, _, err = _run(["render", song, tmp_path / "o.wav", "--model", "none", "--report", *extra], capsys)
    assert code == code_want and needle in err and err.count("\n") == 1, err
    assert not (tmp_path / "o.wav").exists()
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.rglob("*")} == before


def test_batch_refuses_report_and_missing_matplotlib_says_how(song, tmp_path, capsys, monkeypatch):
    code, _, err = _run(["render", song, "--out-dir", tmp_path / "b", "--report", tmp_path / "r.png"], capsys)
    assert code == 2 and "--report is for one file" in err
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code, _, err = _run(["render", song, tmp_path / "o.wav", "--report", tmp_path / "r.png"], capsys)
    assert code == 1 and "pip install matplotlib" in err and err.count("\n") == 1
    assert not (tmp_path / "o.wav").exists() and not (tmp_path / "r.png").exists()


def test_mono_render_report_has_no_side(tmp_path, capsys):
    mono = tmp_path / "mono.wav"
    sf.write(str(mono), _noise()[:, 0], SR, subtype="FLOAT")
    folder = tmp_path / "rep"
    code, _, err = _run(["render", mono, tmp_path / "o.wav", "--model", "none", "--report", folder], capsys)
    assert code == 0, err
    doc = json.loads((folder / "report.json").read_text())
    _schema(doc)
    assert doc["channels"] == 1 and doc["before"]["side"] is None and doc["after"]["side"] is None
    assert math.isfinite(doc["after"]["mid"]["rms_db"])
