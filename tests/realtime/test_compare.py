"""``mixpilot compare`` (realtime/compare.py, realtime/plots.py, realtime/measures.py) and ``analyze --plot``.

References, all independent of the code under test:

* loudness of the matched copies: pyloudnorm (an independent ITU-R BS.1770-4
  meter) with ``filter_class="DeMan"`` (the exact K-weighting at any rate, as
  in test_render.py); the issue's promise is "within +-0.1 LU of each other";
* true peak: the project's BS.1770-4 Annex 2 meter (the one the matching
  uses: the ceiling must hold exactly by it) and, independently,
  ``scipy.signal.resample_poly`` 4x oversampling (a different interpolation
  filter, so it is allowed 0.1 dB, as in test_render.py);
* compare.json: its own JSON Schema (realtime/compare.schema.json) checked by
  the ``jsonschema`` package (Draft 2020-12);
* the page: Debian's ``chromium`` in headless mode, driven over the DevTools
  protocol on a pipe (no port, no network); the DOM is asked whether each
  ``<audio>`` loaded its file (``readyState >= 2`` = decoded data, duration
  equal to the excerpt's) and each chart ``<img>`` decoded
  (``naturalWidth > 0``); the screenshot is kept in out/test-artifacts/;
* the tonal distance: ``dsp.descriptors.compute_descriptors`` of each
  system's file minus the shipped default profile (``inference.profile``),
  and the part outside its tolerance as ``Profile.deviation`` defines it;
* closed forms for the measures: BS.1770-4 calibrates a 0 dBFS 1 kHz sine
  in one channel to -3.01 LKFS, so ``A sin`` in both channels reads
  ``20 log10(A)``.
"""

from __future__ import annotations

import base64
import fcntl
import json
import math
import os
import select
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy import signal

from mixpilot.dsp.descriptors import BAND_NOMINAL_HZ, compute_descriptors
from mixpilot.dsp.meter import measure
from mixpilot.dsp.params import PARAM_INDEX, PARAMS
from mixpilot.inference.profile import Profile
from mixpilot.realtime import compare as cmp
from mixpilot.realtime.cli import main
from mixpilot.realtime.measures import envelope, short_term_series

pyloudnorm = pytest.importorskip("pyloudnorm")
jsonschema = pytest.importorskip("jsonschema")
pytest.importorskip("matplotlib")

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "out" / "test-artifacts"
SR = 48000
MODELS = "none,heuristic,cnn"


def _song(seconds: float = 7.0, seed: int = 7) -> np.ndarray:
    """A loud little stereo song: kick, bass, chord, noise hats, a quiet bridge (so LRA > 0), peaks near 0 dBFS."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    beat = (t * 2.0) % 1.0  # 120 bpm
    kick = np.sin(2 * np.pi * (50 + 80 * np.exp(-beat * 30)) * t) * np.exp(-beat * 8)
    bass = 0.3 * np.sign(np.sin(2 * np.pi * 55 * t)) * (0.5 + 0.5 * np.exp(-beat * 4))
    chord = sum(0.12 * np.sin(2 * np.pi * f * t) for f in (261.6, 329.6, 392.0))
    hats = 0.15 * rng.standard_normal(n) * np.exp(-((t * 4.0) % 1.0) * 40)
    hats = signal.lfilter(*signal.butter(2, 6000, "highpass", fs=SR), hats)
    level = np.where((t > 3.0) & (t < 4.5), 0.25, 1.0)  # a quiet bridge
    left = (kick + bass + chord + 1.4 * hats) * level
    right = (kick + bass + 0.7 * chord + 0.6 * hats) * level
    x = np.stack([left, right], axis=1)
    return (0.98 * x / np.max(np.abs(x))).astype(np.float32)


def _true_peak_scipy(x: np.ndarray) -> float:
    up = signal.resample_poly(np.asarray(x, dtype=np.float64), 4, 1, axis=0)
    return 20 * math.log10(np.max(np.abs(up)))


def _hidden_leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def _run(argv, capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def song_path(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("song") / "song.wav"
    sf.write(str(p), _song(), SR, subtype="PCM_24")
    return p


@pytest.fixture(scope="module")
def compared(song_path, tmp_path_factory):
    """One real comparison (three models, two render processes), run through the CLI."""
    out = tmp_path_factory.mktemp("cmp") / "cmp"
    argv = ["compare", str(song_path), "--out", str(out), "--model", MODELS, "--start", "0.5", "--overwrite"]
    t0 = time.perf_counter()
    code = main(argv)
    seconds = time.perf_counter() - t0
    assert code == 0
    doc = json.loads((out / "compare.json").read_text())
    return out, argv, doc, seconds


# --- the comparison ------------------------------------------------------------------------


def test_every_system_has_its_files_and_the_original_is_untouched(compared, song_path):
    out, _, doc, seconds = compared
    print(f"compare of {doc['input']['duration_s']:.1f} s, {len(doc['systems'])} systems: {seconds:.1f} s")
    names = [s["name"] for s in doc["systems"]]
    assert names == ["original", "none", "heuristic", "cnn"]
    for s in doc["systems"]:
        assert (out / s["files"]["audio"]).is_file()
        assert (out / s["files"]["matched"]).is_file()
    # the original file is the excerpt itself (24-bit): the input from --start on
    x, sr = sf.read(str(song_path), dtype="float64", always_2d=True)
    y, sr2 = sf.read(str(out / "original.flac"), dtype="float64", always_2d=True)
    assert sr2 == sr == SR
    np.testing.assert_allclose(y, x[int(0.5 * SR) :], atol=2.0**-23)
    # every rendered system delivers the target within the render's promise (0.5 LU) and the ceiling
    for s in doc["systems"][1:]:
        assert abs(s["loudness"]["integrated_lufs"] - (-14.0)) <= 0.5
        assert s["loudness"]["true_peak_dbtp"] <= -1.0 + 0.1  # render's limiter (issue 13 tightens it)
        assert s["loudness"]["plr_db"] == pytest.approx(
            s["loudness"]["true_peak_dbtp"] - s["loudness"]["integrated_lufs"], abs=2e-4
        )
        assert s["params"]["names"] and s["render"]["passes"] >= 1
    assert not _hidden_leftovers(out.parent)


def test_loudness_matched_copies_agree_within_a_tenth_of_a_lu_and_respect_the_ceiling(compared):
    out, _, doc, _ = compared
    meter = pyloudnorm.Meter(SR, filter_class="DeMan")
    lufs, peaks = {}, {}
    for s in doc["systems"]:
        y, sr = sf.read(str(out / s["files"]["matched"]), dtype="float64", always_2d=True)
        lufs[s["name"]] = meter.integrated_loudness(y)
        peaks[s["name"]] = (measure(y, sr)["true_peak_dbtp"], _true_peak_scipy(y))
    spread = max(lufs.values()) - min(lufs.values())
    print(
        f"matched level {doc['matched']['integrated_lufs']} LUFS; pyloudnorm: "
        + ", ".join(f"{k} {v:.3f}" for k, v in lufs.items())
        + f"; spread {spread:.4f} LU; true peaks (ours, scipy): {peaks}"
    )
    assert spread <= 0.1
    for own, independent in peaks.values():
        assert own <= -1.0 + 1e-6  # the project's BS.1770-4 meter: exactly under the ceiling
        assert independent <= -1.0 + 0.1  # another 4x interpolator
    # the level is the lowest that keeps everyone under the ceiling: one copy is at its limit
    lim = doc["matched"]["limited_by"]
    assert lim is not None
    own_peak = max(p[0] for p in peaks.values())
    at_loudness = "loudness" in lim["by"]
    assert at_loudness or own_peak == pytest.approx(-1.0, abs=0.01)


def test_compare_json_validates_and_a_rerun_gives_identical_numbers(compared, capsys):
    out, argv, doc, _ = compared
    schema = json.loads(cmp.SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(doc))
    assert not errors, errors[0].message
    assert doc["command"] == shlex.join(["mixpilot", *argv])
    code = main(argv)  # the same command again (with --overwrite it replaces the folder)
    capsys.readouterr()
    assert code == 0
    again = json.loads((out / "compare.json").read_text())

    def without_timing(d):
        d = json.loads(json.dumps(d))
        for s in d["systems"]:
            s.pop("timing")
        return d

    assert without_timing(again) == without_timing(doc)
    assert [s["timing"]["render_s"] for s in again["systems"][1:]] != [0.0] * 3  # timing is measured
    assert not _hidden_leftovers(out.parent)


def test_parameter_trajectories_are_the_render_params_out_events(compared, song_path, tmp_path):
    """The heuristic's trajectory in compare.json equals what ``render --params-out`` logs for the same excerpt."""
    out, _, doc, _ = compared
    x, _ = sf.read(str(song_path), dtype="float32", always_2d=True)
    excerpt = tmp_path / "excerpt.wav"
    sf.write(str(excerpt), x[int(0.5 * SR) :], SR, subtype="FLOAT")
    log = tmp_path / "params.jsonl"
    assert (
        main(["render", str(excerpt), str(tmp_path / "o.wav"), "--model", "heuristic", "--params-out", str(log)]) == 0
    )
    events = [json.loads(line) for line in log.read_text().splitlines()]
    h = next(s for s in doc["systems"] if s["name"] == "heuristic")
    for name, tr in h["params"]["trajectories"].items():
        # the same step function: the log's changes from the table default on (its first AI line may repeat it)
        ai, last = [], PARAMS[PARAM_INDEX[name]].default
        for e in events:
            if e["param"] == name and e["source"] == "ai" and e["value"] != last:
                ai.append((e["t"], e["value"]))
                last = e["value"]
        assert tr["t_s"][0] == 0.0 and tr["value"][0] == PARAMS[PARAM_INDEX[name]].default
        got = list(zip(tr["t_s"][1:], tr["value"][1:]))
        assert len(got) == len(ai), name
        for (t1, v1), (t2, v2) in zip(got, ai):
            assert t1 == pytest.approx(t2, abs=1e-6) and v1 == pytest.approx(v2, abs=1e-6)
    # the mean is the time-weighted mean of the step function
    tr = h["params"]["trajectories"]["input_gain_db"]
    edges = [*tr["t_s"], doc["input"]["duration_s"]]
    mean = sum(v * (edges[i + 1] - edges[i]) for i, v in enumerate(tr["value"])) / doc["input"]["duration_s"]
    assert h["params"]["mean"]["input_gain_db"] == pytest.approx(mean, abs=1e-5)


def test_tonal_distance_is_to_the_default_profile(compared):
    """Each system's spectrum is dsp.descriptors' mid levels of its file; the distance is that minus the profile."""
    out, _, doc, _ = compared
    target = Profile.load("default")
    ref = doc["tonal_reference"]
    assert ref["kind"] == "target" and "default" in ref["label"]
    assert doc["bands_hz"] == pytest.approx(list(BAND_NOMINAL_HZ))
    assert ref["target_db"] == pytest.approx(list(target.mid_db), abs=1e-4)
    assert ref["tolerance_db"] == pytest.approx(list(target.mid_tol_db), abs=1e-4)
    for s in doc["systems"]:
        y, sr = sf.read(str(out / s["files"]["audio"]), dtype="float32", always_2d=True)
        d = compute_descriptors(y, sr)
        assert s["spectrum_db"] == pytest.approx(list(d.mid_db), abs=0.01)  # the file is 24-bit
        dev = d.mid_db - target.mid_db
        assert s["tonal_distance"]["per_band_db"] == pytest.approx(list(dev), abs=0.01)
        assert s["tonal_distance"]["rms_db"] == pytest.approx(float(np.sqrt(np.mean(dev**2))), abs=0.01)
        outside = np.sign(dev) * np.maximum(np.abs(dev) - target.mid_tol_db, 0.0)
        assert s["tonal_distance"]["outside_rms_db"] == pytest.approx(float(np.sqrt(np.mean(outside**2))), abs=0.01)
        assert s["tonal_distance"]["outside_rms_db"] <= s["tonal_distance"]["rms_db"]


# --- the page in a real browser --------------------------------------------------------------


class _Chromium:
    """Headless Chromium driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``).

    Chromium reads NUL-terminated JSON commands on fd 3 and answers on fd 4;
    bash puts the two pipe ends there (fds >= 10 first, so nothing collides).
    """

    FLAGS = (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    )

    def __init__(self, exe: str, user_data_dir: str) -> None:
        r1, w1 = os.pipe()
        r2, w2 = os.pipe()
        cr, cw = fcntl.fcntl(r1, fcntl.F_DUPFD, 10), fcntl.fcntl(w2, fcntl.F_DUPFD, 10)
        os.close(r1)
        os.close(w2)
        args = [exe, *self.FLAGS, f"--user-data-dir={user_data_dir}", "--remote-debugging-pipe", "about:blank"]
        self.log = open(os.path.join(user_data_dir, "chromium-stderr.log"), "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            ["/bin/bash", "-c", f"exec {shlex.join(args)} 3<&{cr} 4>&{cw} {cr}<&- {cw}>&-"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self.log,
            pass_fds=(cr, cw),
        )
        os.close(cr)
        os.close(cw)
        self.w, self.r = w1, r2
        self.buf = b""
        self.next_id = 0
        self.events: list[dict] = []

    def _read(self, timeout: float) -> dict:
        end = time.monotonic() + timeout
        while b"\0" not in self.buf:
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError("chromium did not answer")
            if select.select([self.r], [], [], left)[0]:
                chunk = os.read(self.r, 1 << 20)
                if not chunk:
                    raise EOFError("chromium closed the DevTools pipe")
                self.buf += chunk
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 60) -> dict:
        self.next_id += 1
        m = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            m["sessionId"] = session
        os.write(self.w, json.dumps(m).encode() + b"\0")
        while True:
            msg = self._read(timeout)
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait_event(self, method: str, timeout: float = 60) -> dict:
        for i, e in enumerate(self.events):
            if e.get("method") == method:
                return self.events.pop(i)
        end = time.monotonic() + timeout
        while True:
            msg = self._read(max(0.01, end - time.monotonic()))
            if msg.get("method") == method:
                return msg
            self.events.append(msg)

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=10)
        except (OSError, EOFError, TimeoutError, RuntimeError):
            pass
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self.w)
        os.close(self.r)
        self.log.close()


_DOM_CHECK = r"""
(async () => {
  const audios = [...document.querySelectorAll('audio')];
  const res = await Promise.all(audios.map(a => new Promise(resolve => {
    const done = () => resolve({system: a.dataset.system, kind: a.dataset.kind, src: a.currentSrc,
      ready: a.readyState, duration: a.duration, error: a.error ? a.error.code : null,
      canPlay: [...a.querySelectorAll('source')].map(s => a.canPlayType(s.type))});
    if (a.readyState >= 2 || a.error) return done();
    a.addEventListener('loadeddata', done);
    a.addEventListener('error', done, true);
    setTimeout(done, 20000);
    a.preload = 'auto';
    a.load();
  })));
  await Promise.all([...document.images].map(i => i.decode().catch(() => null)));
  const imgs = [...document.images].map(i => ({chart: i.dataset.chart, src: i.currentSrc, complete: i.complete,
    width: i.naturalWidth}));
  return {audios: res, imgs, rows: document.querySelectorAll('#systems tbody tr').length,
    command: document.getElementById('command').textContent, height: document.documentElement.scrollHeight};
})()
"""


def test_the_page_loads_offline_in_headless_chromium(compared):
    exe = shutil.which("chromium")
    if exe is None:
        pytest.skip("chromium is not installed (make test installs Debian's chromium: apt install chromium)")
    out, _, doc, _ = compared
    udd = tempfile.mkdtemp(prefix="mixpilot-chromium-")
    browser = _Chromium(exe, udd)
    try:
        target = browser.send("Target.createTarget", {"url": "about:blank"})
        s = browser.send("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True})["sessionId"]
        browser.send("Page.enable", session=s)
        browser.send("Network.enable", session=s)
        metrics = {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False}
        browser.send("Emulation.setDeviceMetricsOverride", metrics, session=s)
        browser.send("Page.navigate", {"url": (out / "index.html").as_uri()}, session=s)
        browser.wait_event("Page.loadEventFired")
        res = browser.send(
            "Runtime.evaluate", {"expression": _DOM_CHECK, "awaitPromise": True, "returnByValue": True}, session=s
        )
        v = res["result"]["value"]
        browser.send("Emulation.setDeviceMetricsOverride", {**metrics, "height": v["height"]}, session=s)
        shot = browser.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, session=s)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        png = ARTIFACTS / "compare_index.png"
        png.write_bytes(base64.b64decode(shot["data"]))
        print(f"screenshot: {png}")
        requested = [
            e["params"]["request"]["url"] for e in browser.events if e.get("method") == "Network.requestWillBeSent"
        ]
    finally:
        browser.close()
        shutil.rmtree(udd, ignore_errors=True)
    # every system: its file and its matched copy, loaded and decodable, as long as the excerpt
    audios = v["audios"]
    assert {(a["system"], a["kind"]) for a in audios} == {
        (s["name"], k) for s in doc["systems"] for k in ("audio", "matched")
    }
    for a in audios:
        assert a["error"] is None and a["ready"] >= 2, a
        assert a["duration"] == pytest.approx(doc["input"]["duration_s"], abs=0.01), a
        assert "probably" in a["canPlay"] or "maybe" in a["canPlay"], a
        assert a["src"].startswith(out.as_uri())
    # every chart drawn and decoded
    assert sorted(i["chart"] for i in v["imgs"]) == sorted(cmp.CHARTS)
    for i in v["imgs"]:
        assert i["complete"] and i["width"] > 0, i
    assert v["rows"] == len(doc["systems"])
    assert v["command"] == doc["command"]
    # offline: nothing but files of the folder was asked for
    # (data: URLs are inline: Chromium's own media-control icons)
    foreign = [u for u in requested if not u.startswith((out.as_uri() + "/", "data:"))]
    assert requested and not foreign, foreign
    assert png.stat().st_size > 50_000


# --- replot, blind ---------------------------------------------------------------------------------


def test_replot_redraws_from_the_json_without_rendering(compared, capsys):
    out, _, doc, _ = compared
    audio_mtimes = {p.name: p.stat().st_mtime_ns for p in out.glob("*.flac")}
    (out / "spectrum.png").unlink()
    (out / "index.html").unlink()
    code, stdout, _ = _run(["compare", "--replot", out], capsys)
    assert code == 0 and "spectrum.png" in stdout
    assert (out / "spectrum.png").stat().st_size > 10_000 and (out / "index.html").is_file()
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.flac")} == audio_mtimes
    # a folder that is no comparison
    code, _, err = _run(["compare", "--replot", out.parent.parent], capsys)
    assert code == 2 and "no compare.json" in err


def test_blind_names_files_by_letter_and_keeps_the_key_apart(song_path, tmp_path, capsys):
    out = tmp_path / "blind"
    code, _, err = _run(
        ["compare", song_path, "--out", out, "--model", "none,analytic", "--seconds", "4", "--blind", "--seed", "3",
         "--jobs", "1", "-q"],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    doc = json.loads((out / "compare.json").read_text())
    key = json.loads((out / "blind_key.json").read_text())
    assert [s["name"] for s in doc["systems"]] == ["A", "B", "C"]
    # (the analytic matcher, asked for by the name for it, is the system "matcher")
    assert sorted(k["key"] for k in key["systems"].values()) == ["matcher", "none", "original"]
    files = sorted(p.name for p in out.iterdir() if p.suffix == ".flac")
    assert files == ["A.flac", "A.matched.flac", "B.flac", "B.matched.flac", "C.flac", "C.matched.flac"]
    for s in doc["systems"]:
        assert s["label"] == s["name"] and s["settings"] is None and s["kind"] is None
    # the players and the table say letters only (the command line, shown further down, names the models)
    page = (out / "index.html").read_text()
    players_and_table = page.split("<h2>Listen</h2>")[1].split("</table>")[0]
    for label in ("matcher", "analytic", "original", "static", "none"):
        assert label not in json.dumps(doc["systems"]) and label not in players_and_table
    # the key says which is the original: its file is the excerpt
    orig = next(k for k, v in key["systems"].items() if v["key"] == "original")
    y, _ = sf.read(str(out / f"{orig}.flac"), always_2d=True)
    x, _ = sf.read(str(song_path), always_2d=True)
    np.testing.assert_allclose(y, x[: 4 * SR], atol=2.0**-23)


# --- bad input ---------------------------------------------------------------------------------------


def test_unknown_model_lists_the_known_ones_and_writes_nothing(song_path, tmp_path, capsys):
    out = tmp_path / "cmp"
    code, _, err = _run(["compare", song_path, "--out", out, "--model", "none,nosuch"], capsys)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("mixpilot: error: --model 'nosuch': unknown model")
    for known in cmp.known_models():
        assert known in err
    assert {"none", "default", "cnn", "ast", "ensemble", "matcher", "heuristic"} <= set(cmp.known_models())
    assert not out.exists() and not _hidden_leftovers(tmp_path)


def test_unreadable_input_is_named_and_nothing_is_written(tmp_path, capsys):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF not really a wave file")
    out = tmp_path / "cmp"
    code, _, err = _run(["compare", bad, "--out", out, "--model", "none"], capsys)
    assert code != 0 and str(bad) in err and err.count("\n") == 1
    assert not out.exists() and not _hidden_leftovers(tmp_path)


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--start", "60"], "--start 60 s is at or past the end"),
        (["--start", "-1"], "--start -1 is outside"),
        (["--seconds", "0"], "--seconds must be > 0"),
        (["--target-lufs", "3"], "--target-lufs 3 is outside"),
        (["--ceiling-dbtp", "1"], "--ceiling-dbtp 1 is outside"),
        (["--model", ""], "--model needs at least one name"),
        (["--jobs", "0"], "--jobs 0 is outside"),
    ],
)
def test_bad_numbers_are_one_line_usage_errors(song_path, tmp_path, capsys, extra, needle):
    out = tmp_path / "cmp"
    argv = ["compare", song_path, "--out", out, *extra]
    if "--model" not in extra:
        argv += ["--model", "none"]
    code, _, err = _run(argv, capsys)
    assert code == 2 and needle in err and err.count("\n") == 1, err
    assert not out.exists() and not _hidden_leftovers(tmp_path)


def test_out_folder_rules(song_path, tmp_path, capsys):
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    code, _, err = _run(["compare", song_path, "--out", other, "--model", "none"], capsys)
    assert code == 2 and "not an earlier comparison" in err
    assert (other / "notes.txt").read_text() == "keep me"
    # the input inside --out is never replaced
    inside = tmp_path / "cmp2"
    inside.mkdir()
    (inside / "compare.json").write_text("{}")
    shutil.copy(song_path, inside / "song.wav")
    code, _, err = _run(["compare", inside / "song.wav", "--out", inside, "--model", "none", "--overwrite"], capsys)
    assert code == 2 and "holds the input" in err
    assert (inside / "song.wav").is_file()


def test_a_failure_midway_leaves_nothing_behind(song_path, tmp_path):
    """The progress stream breaks (stderr closed) during the renders: no --out, no hidden temporary folder."""

    class Broken:
        def isatty(self):
            return False

        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            pass

    out = tmp_path / "cmp"
    opts = cmp.CompareOptions(input=str(song_path), out=str(out), models=["none", "heuristic"], seconds=3.0, jobs=2)
    with pytest.raises(BrokenPipeError):
        cmp.run_compare(opts, progress_stream=Broken())
    assert not out.exists() and not _hidden_leftovers(tmp_path)


# --- the measures against closed forms ------------------------------------------------------------------


def test_matched_level_is_the_quietest_or_the_ceiling_bound():
    # loudness bound: -20 is the quietest, and nobody's peak passes -1 dBTP at -20
    assert cmp.matched_level([-14.0, -20.0], [-1.0, -8.0], -1.0) == -20.0
    # true-peak bound: the original at -12 LUFS peaks at +0.5 dBTP; -14 - (0.5 - -1) ... its peak allows -13.5,
    # a quiet peaky one (-16 LUFS, -0.2 dBTP) allows -16.8
    assert cmp.matched_level([-12.0, -14.0, -16.0], [0.5, -1.0, -0.2], -1.0) == pytest.approx(-16.8)
    assert cmp.matched_level([-math.inf, -14.0], [-math.inf, -1.0], -1.0) == -14.0
    assert math.isnan(cmp.matched_level([-math.inf], [-math.inf], -1.0))


def test_measures_against_closed_forms():
    n = 6 * SR
    t = np.arange(n) / SR
    s = np.sin(2 * np.pi * 1000.0 * t)
    a = 0.1
    x = np.stack([a * s, a * s], axis=1).astype(np.float32)
    # short-term loudness of a steady 1 kHz stereo sine: -0.691 + 10 log10(2 * a^2 / 2)
    ts, st = short_term_series(x, SR, 0.5)
    assert ts[0] == pytest.approx(3.0) and ts[-1] == pytest.approx(6.0)
    want = 20 * math.log10(a)  # BS.1770-4: a 0 dBFS 1 kHz sine in one channel reads -3.01; two channels +3.01
    assert all(v == pytest.approx(want, abs=0.05) for v in st)
    # tonal distance: +-1 dB everywhere is 1 dB RMS; with 0.5 dB tolerance, 0.5 dB of it lies outside
    td = cmp.tonal_distance([1.0, -1.0, None, 1.0], [0.0, 0.0, 0.0, float("nan")], [0.5, 0.5, 0.5, 0.5])
    assert td["per_band_db"] == [1.0, -1.0, None, None]
    assert td["rms_db"] == pytest.approx(1.0) and td["outside_rms_db"] == pytest.approx(0.5)
    # envelope: a square wave of amplitude 0.5 has peak and RMS 0.5 in every bin
    sq = 0.5 * np.sign(np.sin(2 * np.pi * 100.0 * t + 0.1))[:, None]
    peak, rms_env = envelope(sq, 100)
    assert len(peak) == 100 and all(p == pytest.approx(0.5) for p in peak)
    assert all(r == pytest.approx(0.5) for r in rms_env)


# --- analyze --plot -------------------------------------------------------------------------------------


def test_analyze_plot_draws_a_png(song_path, tmp_path, capsys):
    png = tmp_path / "analysis.png"
    code, out, err = _run(["analyze", song_path, "--model", "heuristic", "--plot", png], capsys)
    assert code == 0, err
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 30_000
    code, out, err = _run(["analyze", song_path, "--plot", tmp_path / "a.jpg"], capsys)
    assert code == 2 and "give a .png file name" in err


def test_missing_matplotlib_says_how_to_install_it(song_path, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if the 'plot' extra were not installed
    code, _, err = _run(["analyze", song_path, "--plot", tmp_path / "a.png"], capsys)
    assert code == 1 and "pip install matplotlib" in err and err.count("\n") == 1
    assert not (tmp_path / "a.png").exists()
    code, _, err = _run(["compare", "--replot", tmp_path], capsys)
    assert code == 1 and "pip install matplotlib" in err
