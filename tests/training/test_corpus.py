"""The corpus step's own logic (training/corpus.py), on a fake package tree and tiny generated files.

No download: apt is never called here.  References: the DEP-5 rule "the last
matching Files stanza wins" (Debian copyright-format 1.0); the split is a
pure function of (salt, package, group) and its fractions follow the
binomial distribution (a 4-sigma band over 3000 names).
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import soundfile as sf

from mixpilot.training.corpus import (
    CORPUS_SETS,
    MORE_PACKAGES,
    PACKAGES,
    SPLIT_FRACTIONS,
    CorpusError,
    build_manifest,
    collect_tracks,
    fetch,
    parse_copyright,
    split_of,
    track_group,
    track_licence,
)
from mixpilot.training.corpus import main as corpus_main

DEP5 = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: Fake

Files: *
Copyright: someone
License: GPL-3+

Files: data/music/*
Copyright: a composer
License: CC-BY-SA-3.0
 Long text of the licence.

Files: debian/*
Copyright: the packager
License: GPL-2+

License: GPL-3+
 text
"""

FREE_FORM = """This package was debianized by someone.

License:
        This program is free software; you can redistribute it and/or modify
        it under the terms of the GNU General Public License version 2
        or at your option any later version.
"""


def test_dep5_last_matching_stanza_wins() -> None:
    info = parse_copyright(DEP5)
    assert info["dep5"] and info["licence"] == "GPL-3+"
    # installed path differs from the source path (data/ dropped): still the music stanza
    assert track_licence(info, "usr/share/games/fake/music/a.ogg") == "CC-BY-SA-3.0"
    assert track_licence(info, "usr/share/games/fake/sounds/a.ogg") == "GPL-3+"  # "debian/*" must not match


def test_free_form_copyright_states_gpl_version() -> None:
    info = parse_copyright(FREE_FORM)
    assert not info["dep5"] and info["licence"] == "GPL-2+"
    assert track_licence(info, "usr/share/x/music/a.ogg") == "GPL-2+"


@pytest.mark.parametrize(
    "path, group",
    [
        ("music/albums/aftermath/track3_enhanced.opus", "track3"),
        ("music/albums/original/track3.opus", "track3"),
        ("music/track13.opus", "track13"),
        ("music/forest2.ogg", "forest"),
        ("music/airship_remix.ogg", "airship"),
        ("music/frantic-old.ogg", "frantic"),
        ("music/menu_enhanced.opus", "menu"),
        ("music/01 - Artist - City Blues.ogg", "01 - artist - city blues"),
    ],
)
def test_track_group(path: str, group: str) -> None:
    assert track_group(path) == group


def test_split_is_stable_and_follows_the_fractions() -> None:
    names = [f"song{i:04d}x" for i in range(3000)]
    a = [split_of("pkg", n) for n in names]
    assert a == [split_of("pkg", n) for n in names]  # pure function: same on every run
    assert [split_of("pkg", n, salt="other") for n in names] != a  # the salt changes it
    lower = 0.0
    for name, upper in SPLIT_FRACTIONS:
        p = upper - lower
        lower = upper
        count = a.count(name)
        sigma = math.sqrt(len(names) * p * (1 - p))
        assert abs(count - len(names) * p) < 4 * sigma, (name, count)


def _fake_package(root, files: dict[str, float], sample_rate: int = 8000, package: str = "fake-data") -> None:
    """Write an unpacked package tree: {installed path: seconds} of Ogg/Vorbis noise + the copyright file."""
    rng = np.random.default_rng(5)
    for rel, seconds in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(p), 0.1 * rng.standard_normal((int(seconds * sample_rate), 2)), sample_rate, format="OGG")
    doc = root / "usr/share/doc" / package
    doc.mkdir(parents=True)
    (doc / "copyright").write_text(DEP5)


def test_collect_tracks_keeps_music_of_the_minimum_length(tmp_path) -> None:
    root = tmp_path / "tree"
    _fake_package(
        root,
        {
            "usr/share/games/fake/music/long.ogg": 2.0,
            "usr/share/games/fake/music/sub/other.ogg": 1.5,
            "usr/share/games/fake/music/short.ogg": 0.5,  # under min_seconds
            "usr/share/games/fake/sounds/ambience.ogg": 3.0,  # not under a music folder
        },
    )
    (root / "usr/share/games/fake/music/copy.ogg").write_bytes(
        (root / "usr/share/games/fake/music/long.ogg").read_bytes()
    )
    os.symlink("long.ogg", root / "usr/share/games/fake/music/link.ogg")
    (root / "usr/share/games/fake/music/notaudio.ogg").write_bytes(b"not an ogg file")
    corpus = tmp_path / "corpus"
    tracks = collect_tracks("fake-data", "1.0-1", root, corpus, patterns=("*/music/*",), min_seconds=1.0)
    assert [t.id.rsplit("/", 1)[1] for t in tracks] in (["copy.ogg", "other.ogg"], ["long.ogg", "other.ogg"])
    # the duplicate content is kept once (the first in path order: copy.ogg sorts before long.ogg)
    assert tracks[0].id.endswith("copy.ogg")
    for t in tracks:
        assert (corpus / t.path).is_file()
        assert t.licence == "CC-BY-SA-3.0" and t.sample_rate == 8000 and t.channels == 2
    assert tracks[1].duration_s == pytest.approx(1.5)
    assert (corpus / "licences" / "fake-data.copyright").read_text() == DEP5

    m = build_manifest(tracks, salt="s")
    assert m["tracks_total"] == 2 and m["hours_total"] == pytest.approx(3.5 / 3600, abs=1e-3)
    assert {r["split"] for r in m["tracks"]} <= {"train", "validation", "test"}
    assert sum(c["tracks"] for c in m["counts"]["splits"].values()) == 2
    assert m["counts"]["licences"]["CC-BY-SA-3.0"]["tracks"] == 2


def test_package_without_copyright_is_refused(tmp_path) -> None:
    (tmp_path / "tree/usr/share").mkdir(parents=True)
    with pytest.raises(CorpusError, match="licence is unknown"):
        collect_tracks("fake-data", "1", tmp_path / "tree", tmp_path / "c", patterns=("*",))


def _marker(corpus, package: str, root, installed: dict[str, float], min_seconds: float = 1.0) -> list:
    """A package fetched as fetch_package leaves it (tracks copied, marker written), without apt."""
    import json
    from dataclasses import asdict

    _fake_package(root, installed, package=package)
    tracks = collect_tracks(package, "1.0-1", root, corpus, min_seconds=min_seconds)
    marker = {
        "package": package,
        "version": "1.0-1",
        "deb": f"{package}_1.0-1_all.deb",
        "deb_sha256": "0" * 64,
        "min_seconds": min_seconds,
        "copyright": f"licences/{package}.copyright",
        "tracks": [asdict(t) for t in tracks],
    }
    (corpus / "packages").mkdir(parents=True, exist_ok=True)
    (corpus / "packages" / f"{package}.json").write_text(json.dumps(marker))
    return tracks


def test_corpus_sets_keep_v1_apart_and_splits_stable(tmp_path) -> None:
    # xmoto-data is a v1 package, ardentryst one of the v2 additions; both left in one folder
    assert not set(MORE_PACKAGES) & set(PACKAGES)
    assert CORPUS_SETS["v1"] == tuple(PACKAGES) and set(CORPUS_SETS["v2"]) == set(PACKAGES) | set(MORE_PACKAGES)
    corpus = tmp_path / "corpus"
    v1 = _marker(corpus, "xmoto-data", tmp_path / "a", {"usr/share/xmoto/Textures/Musics/a.ogg": 1.5})
    v2 = _marker(
        corpus,
        "ardentryst",
        tmp_path / "b",
        {"usr/share/games/ardentryst/Music/b.ogg": 2.0, "usr/share/games/ardentryst/Sounds/fx.ogg": 2.0},
    )
    assert len(v1) == 1 and len(v2) == 1  # the pattern keeps the music folder only
    m1, err1 = fetch(corpus, (), min_seconds=1.0, corpus_set="v1")
    assert not err1 and m1["set"] == "v1" and list(m1["packages"]) == ["xmoto-data"]
    m2, err2 = fetch(corpus, (), min_seconds=1.0, corpus_set="v2")
    assert not err2 and m2["set"] == "v2" and sorted(m2["packages"]) == ["ardentryst", "xmoto-data"]
    # a v1 track keeps its split in the v2 manifest (split_of depends on salt, package and group only)
    s1 = {t["id"]: t["split"] for t in m1["tracks"]}
    s2 = {t["id"]: t["split"] for t in m2["tracks"]}
    assert s1 and all(s2[k] == v for k, v in s1.items())
    with pytest.raises(CorpusError, match="unknown corpus set"):
        fetch(corpus, (), corpus_set="v3")
    with pytest.raises(CorpusError, match="unknown package"):
        fetch(corpus, ("no-such-data",))


def test_corpus_cli_refuses_an_unknown_package(capsys) -> None:
    assert corpus_main(["--packages", "no-such-data", "--list"]) == 1
    assert "unknown package(s) no-such-data" in capsys.readouterr().err
