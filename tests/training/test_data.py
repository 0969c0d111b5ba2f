"""training.data: reproducible datasets whose targets undo the faults that made them.

References: the fault -> target rules of the training.data docstring; band
energies measured with scipy.signal.welch (an independent estimate of what the
chain's filters did); the RBJ cookbook fact that a -G dB shelf/bell inverts a
+G dB one (so applying the target with the chain restores the good mix).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from mixpilot.dsp.params import AI_PARAM_NAMES, normalise
from mixpilot.inference.features import FEATURE_CONFIG
from mixpilot.training import synth
from mixpilot.training.data import (
    Dataset,
    apply_faults,
    build_dataset,
    load_dataset,
    neutral_params,
    normalise_targets,
    sample_faults,
    save_dataset,
    split_by_group,
    undo_targets,
)

SR = synth.SAMPLE_RATE


@pytest.fixture(scope="module")
def small() -> Dataset:
    return build_dataset(12, seed=7)


@pytest.fixture(scope="module")
def good_mix() -> synth.GoodMix:
    rng = np.random.default_rng(11)
    return synth.mix_good(synth.synth_song(rng, style="pop", seconds=4.0), rng)


def _band_db(x: np.ndarray, lo: float, hi: float, *, side: bool = False) -> float:
    sig = 0.5 * (x[:, 0] - x[:, 1]) if side else 0.5 * (x[:, 0] + x[:, 1])
    f, p = signal.welch(sig.astype(np.float64), fs=SR, nperseg=8192)
    sel = (f >= lo) & (f < hi)
    return float(10.0 * np.log10(np.sum(p[sel]) + 1e-30))


def test_shapes_dtypes_and_names(small):
    n = 12
    assert small.features.shape == (n,) + FEATURE_CONFIG.shape
    assert small.features.dtype == np.float32
    assert small.targets.shape == (n, len(AI_PARAM_NAMES)) and small.targets.dtype == np.float32
    assert small.param_names == tuple(AI_PARAM_NAMES)
    assert small.groups.shape == (n,) and small.groups.dtype == np.int64
    assert len(small.meta) == n
    assert np.all((small.targets >= 0.0) & (small.targets <= 1.0))
    assert np.all(np.isfinite(small.features))


def test_reproducible_for_a_seed(small):
    again = build_dataset(12, seed=7)
    np.testing.assert_array_equal(again.features, small.features)
    np.testing.assert_array_equal(again.targets, small.targets)
    np.testing.assert_array_equal(again.groups, small.groups)
    assert again.meta == small.meta
    other = build_dataset(4, seed=8)
    assert not np.array_equal(other.features, small.features[:4])


def test_targets_follow_the_meta(small):
    for target, meta in zip(small.targets, small.meta):
        np.testing.assert_array_equal(target, normalise_targets(undo_targets(meta["faults"], meta["good"])))


@pytest.mark.parametrize(
    "faults, name, value",
    [
        ({"low": 4.0}, "low_gain_db", -3.0),  # clamped to the AI range
        ({"low": -2.0}, "low_gain_db", 2.0),
        ({"mid": 1.5}, "mid_gain_db", -1.5),
        ({"high": -4.0}, "high_gain_db", 3.0),
        ({"presence": -3.5}, "presence_gain_db", 3.0),
        ({"presence": 2.5}, "presence_gain_db", -2.0),
        ({"level": -4.0}, "input_gain_db", 4.0),
        ({"level": 7.0}, "input_gain_db", -6.0),
        ({"width": 1.3}, "stereo_width", 0.9),
        ({"width": 1.0 / 1.05}, "stereo_width", 1.05),
        ({"over_comp": {"comp_ratio": 8.0}}, "comp_ratio", 1.0),
        ({"under_comp": 3.0}, "comp_ratio", 3.0),
        ({"under_comp": 3.0}, "output_gain_db", 1.0),
        ({"reverb_dry": 0.01}, "reverb_send", 0.03),
        ({"reverb_wet": 0.2}, "reverb_send", 0.0),
        ({"delay_dry": 0.02}, "delay_send", 0.08),
    ],
)
def test_documented_fault_to_target_rules(faults, name, value):
    good = {"reverb_send": 0.04, "delay_send": 0.1, "comp_ratio": 3.0, "makeup_db": 2.5}
    t = undo_targets(faults, good)
    assert t[name] == pytest.approx(value)
    vec = normalise_targets(t)
    i = AI_PARAM_NAMES.index(name)
    assert vec[i] == pytest.approx(normalise(name, value), abs=1e-6)
    # every other parameter stays neutral unless the rule names it
    neutral = normalise_targets(neutral_params())
    touched = {i} | (
        {AI_PARAM_NAMES.index("output_gain_db"), AI_PARAM_NAMES.index("comp_ratio")}
        if "under_comp" in faults
        else set()
    )
    for j in set(range(len(AI_PARAM_NAMES))) - touched:
        assert vec[j] == neutral[j]


def test_no_fault_examples_are_neutral(small):
    neutral = normalise_targets(neutral_params())
    assert neutral[AI_PARAM_NAMES.index("low_gain_db")] == 0.5
    assert neutral[AI_PARAM_NAMES.index("comp_ratio")] == 0.0
    clean = [i for i, m in enumerate(small.meta) if not m["faults"]]
    for i in clean:
        np.testing.assert_array_equal(small.targets[i], neutral)
    rng = np.random.default_rng(0)
    assert sample_faults(rng, n_faults=0) == {}


def test_low_shelf_fault_changes_the_bands_it_claims(good_mix):
    x = good_mix.good
    y = apply_faults(x, {"low": 4.0}, SR)
    assert _band_db(y, 20, 60) - _band_db(x, 20, 60) == pytest.approx(4.0, abs=0.4)
    assert abs(_band_db(y, 1500, 3000) - _band_db(x, 1500, 3000)) < 0.3
    # the clamped target (-3 dB) undoes 3 of the 4 dB
    z = synth.apply_chain(y, SR, undo_targets({"low": 4.0}), stages=("input_gain", "compressor", "eq"))
    assert _band_db(z, 20, 60) - _band_db(x, 20, 60) == pytest.approx(1.0, abs=0.4)


def test_high_and_presence_faults(good_mix):
    x = good_mix.good
    y = apply_faults(x, {"high": -3.0}, SR)
    assert _band_db(y, 12000, 18000) - _band_db(x, 12000, 18000) == pytest.approx(-3.0, abs=0.5)
    assert abs(_band_db(y, 100, 1000) - _band_db(x, 100, 1000)) < 0.2
    y = apply_faults(x, {"presence": 2.0}, SR)
    assert _band_db(y, 4000, 5000) - _band_db(x, 4000, 5000) == pytest.approx(2.0, abs=0.4)


def test_width_and_level_faults(good_mix):
    x = good_mix.good
    y = apply_faults(x, {"width": 1.25}, SR)
    assert _band_db(y, 200, 8000, side=True) - _band_db(x, 200, 8000, side=True) == pytest.approx(
        20 * np.log10(1.25), abs=0.05
    )
    assert abs(_band_db(y, 200, 8000) - _band_db(x, 200, 8000)) < 0.05
    y = apply_faults(x, {"level": -5.0}, SR)
    assert synth.level_db(y) - synth.level_db(x) == pytest.approx(-5.0, abs=1e-3)


def test_undo_restores_the_good_mix_in_range(good_mix):
    """Within the AI ranges the chain with the target parameters inverts the faults."""
    x = good_mix.good
    faults = {"low": 2.0, "mid": -1.5, "high": 2.5, "presence": -1.5, "width": 1 / 0.95, "level": -4.0}
    y = apply_faults(x, faults, SR)
    z = synth.apply_chain(y, SR, undo_targets(faults), stages=("input_gain", "compressor", "eq", "width"))
    err = z.astype(np.float64) - x
    assert 10 * np.log10(np.mean(err**2) / np.mean(x.astype(np.float64) ** 2)) < -60.0


def test_over_compression_keeps_level_and_flattens_dynamics(good_mix):
    x = good_mix.dry  # uncompressed: plenty of short-term dynamics
    faults = {
        "over_comp": {
            "comp_ratio": 8.0,
            "comp_threshold_db": -30.0,
            "comp_attack_ms": 2.0,
            "comp_release_ms": 60.0,
            "comp_knee_db": 3.0,
        }
    }
    settle = SR // 2  # as in the data pipeline: the window starts after a pre-roll
    y = apply_faults(x, faults, SR, level_from=settle)
    assert synth.level_db(y[settle:]) == pytest.approx(synth.level_db(x[settle:]), abs=0.01)

    def spread_db(a, block=1024):  # 95th - 10th percentile of ~23 ms block levels
        a = a[settle:].astype(np.float64)
        n = a.shape[0] // block
        e = 10 * np.log10(np.mean(a[: n * block].reshape(n, block, 2) ** 2, axis=(1, 2)))
        return np.percentile(e, 95) - np.percentile(e, 10)

    assert spread_db(y) < spread_db(x) - 1.0


def test_dry_wet_bases_differ_by_the_send(good_mix):
    from mixpilot.training.data import _synth_base

    sl = slice(0, good_mix.compressed.shape[0])
    drier = _synth_base(good_mix, {"reverb_dry": 0.0}, sl)
    expected = good_mix.mix(reverb_send=0.0)
    np.testing.assert_array_equal(drier, expected)
    assert synth.level_db(good_mix.good - drier) == pytest.approx(
        synth.level_db(good_mix.reverb_send * good_mix.reverb_wet.astype(np.float64)), abs=0.01
    )


def test_split_by_group_is_disjoint(small):
    train, test = split_by_group(small, 0.34, seed=1)
    assert len(train) + len(test) == len(small)
    assert len(test) > 0 and len(train) > 0
    assert not set(train.groups.tolist()) & set(test.groups.tolist())
    again = split_by_group(small, 0.34, seed=1)[1]
    np.testing.assert_array_equal(again.groups, test.groups)


def test_save_load_round_trip(small, tmp_path):
    path = tmp_path / "sub" / "ds.npz"
    save_dataset(small, path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["ds.npz"]  # no temp file left
    back = load_dataset(path)
    np.testing.assert_array_equal(back.features, small.features)
    np.testing.assert_array_equal(back.targets, small.targets)
    np.testing.assert_array_equal(back.groups, small.groups)
    assert back.param_names == small.param_names and back.meta == small.meta
    np.savez(tmp_path / "bad.npz", features=small.features)
    with pytest.raises(ValueError, match="not a mixpilot dataset"):
        load_dataset(tmp_path / "bad.npz")


def test_real_recordings_get_faults_only(tmp_wav, tmp_path):
    rng = np.random.default_rng(5)
    song = synth.synth_song(rng, style="rock", seconds=5.0)
    mix = synth.mix_good(song, rng)
    tmp_wav(mix.good, SR, name="real/a.wav")
    tmp_wav(mix.dry[:, :1] * 0.1, SR, name="real/b/mono.flac", subtype=None)
    ds = build_dataset(8, seed=3, real_dirs=[tmp_path / "real"], real_fraction=0.5)
    real = [i for i, m in enumerate(ds.meta) if m["source"] == "real"]
    assert len(real) == 4
    assert {ds.meta[i]["file"] for i in real} == {"a.wav", "mono.flac"}
    assert not set(ds.groups[real].tolist()) & set(ds.groups[[i for i in range(8) if i not in real]].tolist())
    neutral = normalise_targets(neutral_params())
    for i in real:
        for name in ("comp_ratio", "reverb_send", "delay_send", "output_gain_db"):
            j = AI_PARAM_NAMES.index(name)
            assert ds.targets[i, j] == neutral[j]
    with pytest.raises(FileNotFoundError):
        build_dataset(2, seed=0, real_dirs=[tmp_path / "missing"])


def test_binned_median_is_the_l1_optimum_on_a_known_mixture(rng):
    # y = 0 (neutral) unless a fault; the cue is the fault plus noise. A noiseless cue lets the
    # conditional median recover y exactly; pure noise leaves the neutral MAE (closed form: mean |y|)
    from mixpilot.training.identifiability import binned_median_mae

    n = 20000
    y = np.where(rng.random(n) < 0.5, rng.uniform(0.6, 1.0, n), 0.0)
    neutral, cond = binned_median_mae(y.copy(), y)
    assert cond < 0.02 * neutral
    neutral, cond = binned_median_mae(rng.standard_normal(n), y)
    assert cond == pytest.approx(neutral, rel=0.1)
