"""The reference-matching evaluation (training/match_eval.py) on a tiny generated corpus.

References: closed forms for the metrics (a gain G moves only the loudness,
by G; a side gain w moves only the width, by 20 log10 w, and the side levels
by the same); the protocol's own invariants (the same style on A and B: one
gain; the truth is the style of A; cases are a pure function of the seed).
Matchering is not a dependency and is not run here.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import soundfile as sf

from mixpilot.dsp.descriptors import compute_descriptors
from mixpilot.training import match_eval as me
from mixpilot.training.corpus import build_manifest, collect_tracks

SR = me.SAMPLE_RATE


def _music(rng, seconds: float) -> np.ndarray:
    """Stereo noise with slow level changes (not stationary, never silent)."""
    n = int(seconds * SR)
    env = 1.0 + 0.5 * np.sin(2 * np.pi * 0.2 * np.arange(n) / SR)
    m = rng.standard_normal(n) * env
    s = 0.4 * rng.standard_normal(n) * env
    return 0.05 * np.stack([m + s, m - s], axis=1)


def test_score_closed_forms(rng) -> None:
    x = _music(rng, 10.0)
    truth = compute_descriptors(x, SR)
    same = me.score(x, truth)
    assert same["mid_tonal_db"] == pytest.approx(0.0, abs=1e-9) and same["loudness_lu"] == pytest.approx(0.0, abs=1e-9)
    louder = me.score(2.0 * x, truth)
    assert louder["loudness_lu"] == pytest.approx(20 * math.log10(2.0), abs=0.02)
    assert louder["mid_tonal_db"] == pytest.approx(0.0, abs=0.02) and louder["plr_db"] == pytest.approx(0.0, abs=0.02)
    m, s = 0.5 * (x[:, 0] + x[:, 1]), 0.5 * (x[:, 0] - x[:, 1])
    wide = me.score(np.stack([m + 2 * s, m - 2 * s], axis=1), truth)
    assert wide["width_db"] == pytest.approx(20 * math.log10(2.0), abs=0.01)
    # the loudness counts M^2 + S^2: with side/mid energy r it rises by 10 log10((1 + 4 r) / (1 + r)), which every
    # loudness-relative mid band loses and every side band loses from its +6.02 dB
    r = 10.0 ** (truth.width_db / 10.0)
    shift = 10.0 * math.log10((1.0 + 4.0 * r) / (1.0 + r))
    assert wide["mid_tonal_db"] == pytest.approx(shift, abs=0.02)
    assert wide["side_tonal_db"] == pytest.approx(20 * math.log10(2.0) - shift, abs=0.02)


def test_style_is_the_same_chain_on_both_excerpts(rng) -> None:
    # One chain for A and B: the pair reaches the style's loudness together, peaks stay at its ceiling.
    a, b = _music(rng, 5.0), _music(rng, 5.0)
    p = me.draw_style(np.random.default_rng(3))
    p.update(target_lufs=-12.0, limiter_db=-1.0)
    ya, yb = me.apply_style(a, b, p, SR)
    assert me.measure(np.concatenate([ya, yb]), SR)["integrated_lufs"] == pytest.approx(-12.0, abs=0.1)
    assert max(np.abs(ya).max(), np.abs(yb).max()) <= 10 ** (-1.0 / 20) + 1e-6
    ya2, _ = me.apply_style(a, 0.25 * b, p, SR)
    assert not np.allclose(ya, ya2)  # the gain depends on the pair, not on each excerpt alone


def _tiny_corpus(tmp_path, rng):
    root = tmp_path / "tree"
    for name in ("one",):
        p = root / f"usr/share/games/x/music/{name}.flac"  # (libsndfile's Vorbis encoder can crash on long writes)
        p.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(p), _music(rng, 66.0), SR, subtype="PCM_24")
    (root / "usr/share/doc/x-data").mkdir(parents=True)
    (root / "usr/share/doc/x-data/copyright").write_text(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nFiles: *\nLicense: GPL-2+\n"
    )
    corpus = tmp_path / "corpus"
    tracks = collect_tracks("x-data", "1", root, corpus, patterns=("*/music/*",), min_seconds=45.0)
    m = build_manifest(tracks, salt="t")
    for r in m["tracks"]:
        r["split"] = "test"
    m["packages"] = {"x-data": {"version": "1"}}
    (corpus / "manifest.json").write_text(json.dumps(m))
    return corpus


def test_cases_are_reproducible_and_scored(tmp_path, rng) -> None:
    corpus = _tiny_corpus(tmp_path, rng)
    folder = me.prepare_cases(corpus, 1, seed=7)
    inp, ref, truth, meta = me.load_case(folder / "case_000")
    n = int(me.EXCERPT_S * SR)
    assert inp.shape == ref.shape == truth.shape == (n, 2)
    assert abs(meta["a_start_s"] - meta["b_start_s"]) >= me.EXCERPT_S  # two different excerpts
    # the stored audio is the recipe's audio: rebuild it from the track and compare
    from mixpilot.training.match_eval import _read_track

    track = next(t for t in json.loads((corpus / "manifest.json").read_text())["tracks"] if t["id"] == meta["track"])
    x = _read_track(corpus, track)
    a0, b0 = (int(round(meta[k] * SR)) for k in ("a_start_s", "b_start_s"))
    t2, r2 = me.apply_style(x[a0 : a0 + n], x[b0 : b0 + n], meta["style"], SR)
    np.testing.assert_allclose(truth, t2, atol=2e-6 * max(1.0, meta["scales"]["truth"]))  # 24-bit storage
    np.testing.assert_allclose(ref, r2, atol=2e-6 * max(1.0, meta["scales"]["reference"]))

    first = (folder / "case_000" / "truth.flac").read_bytes()
    (folder / "case_000" / "case.json").unlink()
    me.prepare_cases(corpus, 1, seed=7)
    assert (folder / "case_000" / "truth.flac").read_bytes() == first  # same seed, same case

    res = me.evaluate({"bypass": me.bypass, "reference": "reference", "oracle-eq": "oracle-eq"}, folder, 1)
    assert res["oracle-eq"][0]["mid_tonal_db"] < 0.5 < res["bypass"][0]["mid_tonal_db"]
    assert json.loads((folder / "scores" / "bypass.json").read_text())["0"]["case"] == 0

    table = me.format_table(me.summarise(res))
    assert "content floor" in table and "| bypass |" in table


def test_cases_from_another_split_go_to_their_own_folder(tmp_path, rng) -> None:
    """Model selection reads validation-split cases; the test split's folder keeps its name."""
    corpus = _tiny_corpus(tmp_path, rng)
    with pytest.raises(me.EvalError, match="no validation-split track"):
        me.prepare_cases(corpus, 1, seed=7, split="validation")
    test_folder = me.prepare_cases(corpus, 1, seed=7)
    assert test_folder.name == f"v{me.CASES_VERSION}-seed7"
    m = json.loads((corpus / "manifest.json").read_text())
    for r in m["tracks"]:
        r["split"] = "validation"
    (corpus / "manifest.json").write_text(json.dumps(m))
    folder = me.prepare_cases(corpus, 1, seed=7, split="validation")
    assert folder.name == f"v{me.CASES_VERSION}-validation-seed7"
    # the same tracks and seed give the same case, whatever the split is called
    assert (folder / "case_000" / "truth.flac").read_bytes() == (test_folder / "case_000" / "truth.flac").read_bytes()


def test_analytic_systems_match_under_the_ceiling(rng) -> None:
    # the analytic matcher as a match_eval system: finite stereo, at the reference's loudness (BS.1770-4,
    # dsp.meter) within 0.5 LU offline, under -1 dBTP; closer to a darker reference's balance than the input
    import math

    from scipy.signal import sosfilt

    from mixpilot.dsp.biquad import HIGH_SHELF, rbj_coefficients
    from mixpilot.dsp.descriptors import compute_descriptors
    from mixpilot.dsp.meter import measure
    from mixpilot.training.matcher_checks import analytic, analytic_play, tonal_change_db

    sr = me.SAMPLE_RATE
    x = 0.1 * rng.standard_normal((8 * sr, 2))
    b0, b1, b2, a1, a2 = rbj_coefficients(HIGH_SHELF, 3000.0, -6.0, math.sqrt(0.5), sr)
    ref = sosfilt(np.array([[b0, b1, b2, 1.0, a1, a2]]), 0.1 * rng.standard_normal((8 * sr, 2)), axis=0)
    ref *= 10.0 ** ((-3.0 - measure(ref, sr)["true_peak_dbtp"]) / 20.0)  # a master peaking at -3 dBTP
    y = analytic(x, ref, sr)
    p = analytic_play(x, ref, sr)
    assert y.shape == x.shape and p.shape == x.shape and np.all(np.isfinite(y))
    m_ref = measure(ref, sr)["integrated_lufs"]
    assert abs(measure(y, sr)["integrated_lufs"] - m_ref) <= 0.5
    # the ceiling: the reference's own true peak (-3 dBTP, under the default -1: realtime.references.delivery_for)
    assert measure(y, sr)["true_peak_dbtp"] <= -3.0 + 0.01 and measure(p, sr)["true_peak_dbtp"] <= -3.0 + 0.01
    assert tonal_change_db(y, ref, sr) < tonal_change_db(x, ref, sr)
    assert tonal_change_db(y, y, sr) == 0.0 and compute_descriptors(y, sr).segments > 0


def test_frozen_play_applies_the_offline_parameters(rng) -> None:
    # matcher_checks splits play vs offline into the level path and the running estimate with a third render:
    # the real-time path (follower) fed the whole-file estimate; its AI parameters must be exactly the offline
    # render's at every hop (else the split would measure a third estimate), and it ignores the stream
    from scipy.signal import sosfilt

    from mixpilot.dsp.biquad import HIGH_SHELF, rbj_coefficients
    from mixpilot.training import matcher_checks as mc

    sr = me.SAMPLE_RATE
    x = 0.1 * rng.standard_normal((6 * sr, 2))
    x[3 * sr :] *= 0.3  # a quieter second half: the running estimate would move
    b0, b1, b2, a1, a2 = rbj_coefficients(HIGH_SHELF, 3000.0, -6.0, math.sqrt(0.5), sr)
    ref = sosfilt(np.array([[b0, b1, b2, 1.0, a1, a2]]), 0.1 * rng.standard_normal((6 * sr, 2)), axis=0)
    off, _ = mc._render(x, ref, sr, "search", system="analytic")
    frozen = mc._frozen_play(x, ref, sr, "analytic")
    live, _ = mc._render(x, ref, sr, "follow", system="analytic")
    assert len(off.ai_updates) == 1 and len(frozen.ai_updates) > 5
    assert all(v == off.ai_updates[0][1] for _, v in frozen.ai_updates)
    assert any(v != off.ai_updates[0][1] for _, v in live.ai_updates)
    assert frozen.out.shape == x.shape and np.all(np.isfinite(frozen.out))


def test_checked_systems_are_the_estimators_the_cli_builds() -> None:
    # matcher_checks --system: "model" is what render/play build without --model (realtime.api.matcher_for with a
    # reference, inference.worker.load_estimator without: the shipped default model aiming at the default
    # profile with do-no-harm), "analytic" what --model matcher builds; a model the product would replace by the
    # analytic matcher fails the measurement instead of measuring the fallback
    from mixpilot.inference.matcher import AnalyticMatcher
    from mixpilot.inference.model import MODELS_DIR
    from mixpilot.inference.profile import Profile
    from mixpilot.inference.worker import load_estimator
    from mixpilot.realtime.api import matcher_for
    from mixpilot.training import matcher_checks as mc

    if not (MODELS_DIR / "target.onnx").is_file():
        pytest.skip("no shipped target model")
    from mixpilot.inference.model_matcher import ModelMatcher

    prof = Profile.load("default")
    said: list[str] = []
    for system, spec in (("model", None), ("analytic", "matcher")):
        with_ref, without = mc._estimator(system, prof), mc._estimator(system, None)
        cli_ref, cli = matcher_for(prof, spec, said.append), load_estimator(spec, said.append)
        for a, b in ((with_ref, cli_ref), (without, cli)):
            assert type(a) is type(b) and a.name == b.name and a.do_no_harm == b.do_no_harm
            if isinstance(a, ModelMatcher):
                assert a.model.card["sha256"] == b.model.card["sha256"] and a.model.model_share == b.model.model_share
        assert isinstance(without, ModelMatcher) == (system == "model") and without.do_no_harm
        assert isinstance(with_ref, AnalyticMatcher)
    assert said == [] and mc._estimator("none", None) is None
    with pytest.raises(RuntimeError, match="not the one asked for"):
        mc._refuse("model 'x' cannot be used")
    with pytest.raises(ValueError, match="unknown system"):
        mc._estimator("matchering", None)


def test_decompose_rows_and_chain_closed_forms(rng) -> None:
    """training/match_decompose.py: a constant error is all offset, the regions' mean squares add up to
    the mean square; the chain-only render at neutral values is the input, a 1 kHz tone gain moves only
    the bands near 1 kHz (re loudness)."""
    from mixpilot.dsp.descriptors import BAND_CENTRES_HZ, N_BANDS
    from mixpilot.inference.matcher import neutral_values
    from mixpilot.training import match_decompose as md

    s = md._stats([np.full(N_BANDS, 2.0)])
    assert s["rms"] == pytest.approx(2.0) and s["offset"] == pytest.approx(2.0) and s["shape"] == pytest.approx(0.0)
    d = rng.standard_normal(N_BANDS)
    d[:2] = np.nan
    s = md._stats([d])
    assert sum(s["ms"].values()) == pytest.approx(s["rms"] ** 2)
    x = _music(rng, 5.0)
    vals = neutral_values()
    assert np.array_equal(md._chain(x, vals, md._EQ_STAGES, SR), x.astype(np.float32).astype(np.float64))
    vals["tone_1khz_db"] = 3.0
    a, b = compute_descriptors(x, SR), compute_descriptors(md._chain(x, vals, md._EQ_STAGES, SR), SR)
    moved = (b.mid_db - a.mid_db) - (b.mid_db - a.mid_db)[BAND_CENTRES_HZ < 100].mean()
    assert moved[np.argmin(np.abs(BAND_CENTRES_HZ - 1000.0))] == pytest.approx(3.0, abs=0.3)
    assert np.all(np.abs(moved[(BAND_CENTRES_HZ < 100) | (BAND_CENTRES_HZ > 10000)]) < 0.2)
