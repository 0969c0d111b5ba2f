"""Target profiles (inference/profile.py).

References: a combined profile's mean and tolerance are numpy's mean and
standard deviation (ddof=1) of the per-track descriptors
(dsp.descriptors.compute_descriptors, tested against closed forms there);
the file round trip is exact to the 4 decimals the JSON keeps; the bad-input
rules of issue 14 (silent, shorter than 3 s, other schema version, foreign or
malformed JSON -> one line naming the problem).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from mixpilot.dsp.descriptors import N_BANDS, compute_descriptors
from mixpilot.inference.profile import (
    FORMAT,
    SCHEMA_VERSION,
    VECTOR_NAMES,
    Profile,
    ProfileError,
    expand_sources,
    shipped_profiles,
)

FS = 44100


def _track(rng, seconds: float = 6.0, tilt: float = 0.0, side: float = 0.3) -> np.ndarray:
    """Stereo noise: white plus ``tilt`` times its 8-sample moving average (more low end), and a side level."""
    n = int(seconds * FS)
    m = rng.standard_normal(n)
    mid = 0.1 * (m + tilt * np.convolve(m, np.ones(8) / 8, mode="same"))
    s = side * 0.1 * rng.standard_normal(n)
    return np.stack([mid + s, mid - s], axis=1)


def test_single_track_profile_matches_its_descriptors(rng) -> None:
    x = _track(rng)
    p = Profile.from_audio(x, FS, name="one")
    d = compute_descriptors(x, FS)
    np.testing.assert_array_equal(p.mid_db, d.mid_db)
    np.testing.assert_array_equal(p.width_band_db, d.width_band_db)
    assert p.tracks == 1 and p.plr_db == d.plr_db and p.integrated_lufs == d.integrated_lufs
    assert np.all(p.mid_tol_db == 0.0) and p.plr_tol_db == 0.0  # one track: match it exactly
    dev = p.deviation(d)
    assert np.all(dev["mid_db"] == 0.0) and dev["plr_db"] == 0.0


def test_combined_profile_is_mean_and_std_across_tracks(rng) -> None:
    # Reference: numpy mean and std(ddof=1) over the tracks' own descriptors.
    tracks = [_track(rng, tilt=t, side=s) for t, s in ((0.0, 0.2), (2.0, 0.5), (4.0, 0.1))]
    p = Profile.from_references([(x, FS) for x in tracks], name="three")
    ds = [compute_descriptors(x, FS) for x in tracks]
    mid = np.array([d.mid_db for d in ds])
    np.testing.assert_allclose(p.mid_db, mid.mean(axis=0), atol=1e-12)
    np.testing.assert_allclose(p.mid_tol_db, mid.std(axis=0, ddof=1), atol=1e-12)
    widths = np.array([d.width_db for d in ds])
    assert p.width_db == pytest.approx(widths.mean()) and p.width_tol_db == pytest.approx(widths.std(ddof=1))
    lufs = np.array([d.integrated_lufs for d in ds])
    assert p.integrated_tol_lu == pytest.approx(lufs.std(ddof=1))
    assert p.tracks == 3
    # deviation: outside = |dev| shrunk by the tolerance
    dev = p.deviation(ds[1])
    expect = np.sign(dev["mid_db"]) * np.maximum(np.abs(dev["mid_db"]) - p.mid_tol_db, 0.0)
    np.testing.assert_allclose(dev["mid_db_outside"], expect)


def test_save_and_load_round_trip(rng, tmp_path) -> None:
    p = Profile.from_references([(_track(rng), FS), (_track(rng, tilt=3.0), FS)], name="mine", description="test")
    path = tmp_path / "mine.json"
    p.save(path)
    assert [q.name for q in tmp_path.iterdir()] == ["mine.json"]  # no temporary left
    data = json.loads(path.read_text())
    assert data["format"] == FORMAT and data["schema_version"] == SCHEMA_VERSION
    q = Profile.load(path)
    assert q.name == "mine" and q.tracks == 2 and q.description == "test"
    np.testing.assert_allclose(q.mid_db, p.mid_db, atol=5e-5)
    np.testing.assert_allclose(q.width_band_tol_db, p.width_band_tol_db, atol=5e-5)
    assert q.plr_db == pytest.approx(p.plr_db, abs=5e-5)
    assert Profile.load(path) == q  # loading is deterministic; equality handles NaN bands


def test_vector_has_the_documented_layout(rng) -> None:
    p = Profile.from_audio(_track(rng), FS)
    v = p.vector()
    assert v.dtype == np.float32 and v.shape == (len(VECTOR_NAMES),) == (3 * N_BANDS + 3 + 4,)
    assert v[VECTOR_NAMES.index("plr_db")] == pytest.approx(p.plr_db, abs=1e-4)
    assert v[VECTOR_NAMES.index("mid_db_1000")] == pytest.approx(p.mid_db[16], abs=1e-4)


# --- bad input: one line naming the problem ------------------------------------------


def test_short_reference_is_refused(rng) -> None:
    with pytest.raises(ProfileError, match=r"^ref\.wav: 2\.50 s long; a reference needs at least 3 s$"):
        Profile.from_audio(_track(rng, seconds=2.5), FS, label="ref.wav")


def test_silent_reference_is_refused() -> None:
    with pytest.raises(ProfileError, match="silent"):
        Profile.from_audio(np.zeros((5 * FS, 2)), FS)


def test_non_finite_reference_is_refused(rng) -> None:
    x = _track(rng)
    x[100, 0] = np.inf
    with pytest.raises(ProfileError, match="NaN or infinite"):
        Profile.from_audio(x, FS)


def test_paths_need_a_reader(tmp_path) -> None:
    f = tmp_path / "a.wav"
    f.write_bytes(b"")
    with pytest.raises(ProfileError, match="read function"):
        Profile.from_references([str(f)])


def test_expand_sources_lists_a_folder_and_refuses_missing(tmp_path) -> None:
    (tmp_path / "b.flac").write_bytes(b"")
    (tmp_path / "a.wav").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("x")
    assert [p.rsplit("/", 1)[1] for p in expand_sources(tmp_path)] == ["a.wav", "b.flac"]
    with pytest.raises(ProfileError, match="no such file"):
        expand_sources([tmp_path / "missing.wav"])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ProfileError, match="no audio files"):
        expand_sources(empty)


def _valid_dict(rng) -> dict:
    return Profile.from_references([(_track(rng), FS), (_track(rng, tilt=1.0), FS)]).to_dict()


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.update(schema_version=SCHEMA_VERSION + 1), "schema version 2; this mixpilot reads version 1"),
        (lambda d: d.update(format="something-else"), "not a mixpilot profile"),
        (lambda d: d["tone"].update(mid_db=[0.0] * 5), r"tone\.mid_db must be a list of 29 numbers"),
        (lambda d: d["tone"]["mid_db"].__setitem__(3, "loud"), r"tone\.mid_db\[3\] is 'loud'"),
        (lambda d: d["dynamics"].pop("plr_db"), r"dynamics\.plr_db is missing"),
        (lambda d: d["width"].update(width_tol_db=-1.0), r"width\.width_tol_db is negative"),
        (lambda d: d.update(bands_hz=[1, 2, 3]), "bands_hz"),
        (lambda d: d.update(tracks=0), "tracks must be a positive integer"),
    ],
)
def test_bad_profile_files_give_one_line(rng, tmp_path, mutate, message) -> None:
    data = _valid_dict(rng)
    mutate(data)
    path = tmp_path / "p.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ProfileError, match=message) as info:
        Profile.load(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_foreign_json_and_non_json(tmp_path) -> None:
    a = tmp_path / "list.json"
    a.write_text("[1, 2]")
    with pytest.raises(ProfileError, match="not a mixpilot profile"):
        Profile.load(a)
    b = tmp_path / "broken.json"
    b.write_text("{ nope")
    with pytest.raises(ProfileError, match="not valid JSON"):
        Profile.load(b)
    with pytest.raises(ProfileError, match="no such profile file"):
        Profile.load(tmp_path / "absent.json")


def test_unknown_name_lists_the_shipped_profiles() -> None:
    with pytest.raises(ProfileError, match=r"no such shipped profile or file \(shipped: "):
        Profile.load("no-such-style")


def test_shipped_profiles_load_and_are_built_from_the_corpus() -> None:
    # The shipped profiles carry their card: the corpus packages, licences, track count, seed, command.
    names = shipped_profiles()
    assert names and names[0] == "default"
    for n in names:
        p = Profile.load(n)
        assert p.name == n and p.tracks >= 5
        assert np.all(np.isfinite(p.mid_db)) and np.all(p.mid_tol_db > 0.0)
        assert math.isfinite(p.plr_db) and p.plr_tol_db > 0.0
        card = p.provenance
        assert card["packages"] and card["licences"] and card["seed"] is not None
        assert "mixpilot.training.profiles" in card["command"]
