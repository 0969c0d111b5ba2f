"""``mixpilot profile build|show|list`` (realtime/profile_cli.py, realtime/references.py).

References: the profile written by ``build`` equals
:meth:`Profile.from_references` of the same audio (arrays, no CLI) to the 4
decimals the JSON keeps; issue 14's bad-input rule: one line
``mixpilot: error: ...`` naming the problem, a non-zero exit code, nothing
written.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from mixpilot.inference.profile import Profile, shipped_profiles
from mixpilot.realtime.cli import main
from mixpilot.realtime.references import load_target

FS = 44100


def run(argv, capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def refs(tmp_wav, rng):
    """Two 4 s stereo noise references (different side levels) in a folder ``refs/``."""
    a = 0.1 * rng.standard_normal((4 * FS, 2))
    m = 0.1 * rng.standard_normal(4 * FS)
    b = np.stack([m, 0.5 * m], axis=1)
    return [tmp_wav(a, FS, "refs/a.wav"), tmp_wav(b, FS, "refs/b.flac", subtype="PCM_24")]


def test_build_from_a_folder_equals_the_array_profile(refs, tmp_path, capsys) -> None:
    out = tmp_path / "mytaste.json"
    code, stdout, err = run(["profile", "build", refs[0].parent, "-o", out], capsys)
    assert code == 0, err
    assert "profile mytaste: 2 tracks" in stdout and "[2/2]" in err
    p = Profile.load(out)
    import soundfile as sf

    arrays = [sf.read(str(r), dtype="float32", always_2d=True) for r in refs]
    direct = Profile.from_references([(x, sr) for x, sr in arrays])
    np.testing.assert_allclose(p.mid_db, direct.mid_db, atol=1e-4)
    np.testing.assert_allclose(p.side_tol_db, direct.side_tol_db, atol=1e-4)
    assert p.provenance["sources"] == ["a.wav", "b.flac"]


def test_show_and_list(refs, tmp_path, capsys) -> None:
    out = tmp_path / "p.json"
    assert run(["profile", "build", *refs, "-o", out, "--quiet"], capsys)[0] == 0
    code, stdout, _ = run(["profile", "show", out], capsys)
    assert code == 0 and "band Hz" in stdout and "16k" in stdout and "PLR" in stdout
    code, stdout, _ = run(["profile", "show", out, "--json"], capsys)
    assert json.loads(stdout)["tracks"] == 2
    code, stdout, _ = run(["profile", "list"], capsys)
    assert code == 0
    for n in shipped_profiles():
        assert n in stdout


def test_plot(refs, tmp_path, capsys) -> None:
    pytest.importorskip("matplotlib")  # the 'plot' extra (make setup installs it)
    out = tmp_path / "p.json"
    assert run(["profile", "build", *refs, "-o", out, "--quiet"], capsys)[0] == 0
    png = tmp_path / "p.png"
    code, stdout, err = run(["profile", "show", out, "--plot", png], capsys)
    assert code == 0, err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"plot: {png}" in stdout
    code, _, err = run(["profile", "show", "default", "--plot", tmp_path / "p.jpg"], capsys)
    _one_line_error(code, err)
    assert "give a .png file name" in err


def test_plot_without_matplotlib_says_how_to_install_it(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if the 'plot' extra were not installed
    png = tmp_path / "p.png"
    code, _, err = run(["profile", "show", "default", "--plot", png], capsys)
    _one_line_error(code, err)
    assert "pip install matplotlib" in err and not png.exists()


# --- bad input ----------------------------------------------------------------------------


def _one_line_error(code: int, err: str) -> None:
    """Exactly one error line, the last thing on stderr (progress lines of ``build`` may precede it)."""
    assert code != 0
    lines = err.splitlines()
    assert lines and lines[-1].startswith("mixpilot: error: "), err
    assert sum(ln.startswith("mixpilot: error") for ln in lines) == 1 and "Traceback" not in err
    assert all(ln.startswith("[") for ln in lines[:-1]), err


def test_existing_output_needs_overwrite(refs, tmp_path, capsys) -> None:
    out = tmp_path / "p.json"
    out.write_text("keep")
    code, _, err = run(["profile", "build", *refs, "-o", out], capsys)
    _one_line_error(code, err)
    assert "--overwrite" in err and out.read_text() == "keep"


def test_silent_short_and_unreadable_references(tmp_wav, tmp_path, capsys) -> None:
    silent = tmp_wav(np.zeros((4 * FS, 2)), FS, "silent.wav")
    short = tmp_wav(0.1 * np.ones((2 * FS, 2)), FS, "short.wav")
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF0000WAVEjunk")
    out = tmp_path / "p.json"
    for bad, words in ((silent, "silent"), (short, "at least 3 s"), (broken, "broken.wav")):
        code, _, err = run(["profile", "build", bad, "-o", out], capsys)
        _one_line_error(code, err)
        assert words in err and str(bad.name) in err
        assert not out.exists() and not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_wrong_version_and_unknown_profile(refs, tmp_path, capsys) -> None:
    out = tmp_path / "p.json"
    assert run(["profile", "build", *refs, "-o", out, "--quiet"], capsys)[0] == 0
    data = json.loads(out.read_text())
    data["schema_version"] = 99
    out.write_text(json.dumps(data))
    code, _, err = run(["profile", "show", out], capsys)
    _one_line_error(code, err)
    assert "schema version 99" in err
    code, _, err = run(["profile", "show", "no-such-style"], capsys)
    _one_line_error(code, err)
    assert "no such shipped profile" in err


def test_profile_without_action(capsys) -> None:
    code, _, err = run(["profile"], capsys)
    _one_line_error(code, err)
    assert "build, show or list" in err


def test_load_target_resolves_names_json_and_audio(refs, tmp_path) -> None:
    assert load_target("default").name == "default"
    p = load_target(str(refs[0]))
    assert p.tracks == 1 and p.name == "a"
    q = load_target([str(refs[0].parent)])
    assert q.tracks == 2


def test_the_api_build_is_the_cli_build(refs, tmp_path, capsys) -> None:
    # Reference: `mixpilot profile build` of the same folder (the command the API stands for): the same
    # profile, and from arrays the same as Profile.from_references.
    import mixpilot

    out = tmp_path / "cli.json"
    assert run(["profile", "build", refs[0].parent, "-o", out, "--quiet"], capsys)[0] == 0
    api = mixpilot.Profile.build(refs[0].parent, name="cli")
    assert mixpilot.Profile is Profile and isinstance(api, Profile) and api.tracks == 2
    cli = Profile.load(out)
    np.testing.assert_allclose(api.mid_db, cli.mid_db, atol=1e-4)
    np.testing.assert_allclose(api.side_tol_db, cli.side_tol_db, atol=1e-4)
    assert api.provenance["sources"] == cli.provenance["sources"] == ["a.wav", "b.flac"]
    # a mix of a file and a (samples, rate) pair; an unreadable file is named
    x = 0.1 * np.random.default_rng(1).standard_normal((4 * FS, 2))
    mixed = mixpilot.Profile.build([refs[0], (x, FS)])
    assert mixed.tracks == 2
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not audio")
    with pytest.raises(mixpilot.MixpilotError, match="bad.wav"):
        mixpilot.Profile.build([bad])
