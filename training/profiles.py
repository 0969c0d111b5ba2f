"""Build the shipped target profiles from the corpus's training split.

::

    python -m mixpilot.training.profiles [--corpus DIR] [--out models_onnx/profiles] [--k 3] [--seed 0]

1. **Descriptors** of every ``train`` track of the corpus manifest
   (:mod:`training.corpus`), whole track, with :func:`dsp.descriptors.compute_descriptors`;
   cached per track in ``DIR/descriptors/SHA.json`` (resumable, reused by
   :mod:`training.match_eval` and whoever needs them).
2. **default** = :meth:`Profile.from_descriptors` of all of them: the mean
   per band and the natural spread of these masters (std across tracks) as
   the tolerance.
3. **Styles**: k-means (``--k`` clusters, k-means++ seeded, 50 restarts, the
   lowest within-cluster sum of squares kept) on each track's standardised
   style features (:func:`style_features`: the mid tonal balance in octave
   groups, width, PLR, LRA).  Each cluster becomes a profile named by what
   distinguishes it most from the whole training set (:func:`name_cluster`:
   ``bright``/``dark`` for the top octaves 4-16 kHz, ``warm``/``lean`` for
   the low end 40-160 Hz, ``full-range``/``mid-forward`` for both ends at
   once, ``punchy``/``dense`` for PLR, ``dynamic``/``steady`` for LRA,
   ``wide``/``narrow`` for width; the largest standardised difference wins);
   its tolerance is the spread within the cluster.
4. Every profile carries its **card** in ``provenance`` (corpus packages and
   versions, licences, track count, salt, seed, k, this command);
   ``OUT/README.md`` lists them.

Written atomically; the shipped set is what ``mixpilot profile list`` shows.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from mixpilot.dsp.descriptors import BAND_NOMINAL_HZ, Descriptors
from mixpilot.inference.profile import PROFILES_DIR, Profile

__all__ = [
    "DESCRIPTOR_CACHE_VERSION",
    "build_profiles",
    "descriptors_from_dict",
    "kmeans",
    "main",
    "name_cluster",
    "style_features",
    "track_descriptors",
]

DESCRIPTOR_CACHE_VERSION = 1
_OCTAVE_GROUPS_HZ = ((25, 50), (63, 125), (160, 315), (400, 800), (1000, 2000), (2500, 5000), (6300, 16000))
#: (summary, low band, high band, adjective if higher, adjective if lower)
_NAMING = (
    ("top 4-16 kHz", 4000.0, 16000.0, "bright", "dark"),
    ("low end 40-160 Hz", 40.0, 160.0, "warm", "lean"),
)


def _band_slice(lo_hz: float, hi_hz: float) -> slice:
    return slice(BAND_NOMINAL_HZ.index(float(lo_hz)), BAND_NOMINAL_HZ.index(float(hi_hz)) + 1)


def descriptors_from_dict(d: dict) -> Descriptors:
    """Inverse of :meth:`Descriptors.as_dict` (``None`` -> NaN)."""

    def arr(v):
        return np.array([np.nan if e is None else float(e) for e in v])

    def num(v):
        return math.nan if v is None else float(v)

    kw = {}
    for k, v in d.items():
        if k == "bands_hz":
            kw[k] = tuple(v)
        elif k == "segments":
            kw[k] = int(v)
        elif isinstance(v, list):
            kw[k] = arr(v)
        else:
            kw[k] = num(v)
    if kw.get("integrated_lufs") is not None and math.isnan(kw["integrated_lufs"]):
        kw["integrated_lufs"] = -math.inf
    return Descriptors(**kw)


def track_descriptors(track: dict, corpus_dir: Path) -> Descriptors:
    """Descriptors of one manifest track, from the cache ``DIR/descriptors/SHA.json`` or measured (and cached)."""
    from mixpilot.fileio import write_text_atomic
    from mixpilot.realtime.audio_io import read_audio

    cache = corpus_dir / "descriptors" / f"{track['sha256'][:24]}.json"
    if cache.is_file():
        try:
            data = json.loads(cache.read_text(encoding="utf-8"))
            if data.get("version") == DESCRIPTOR_CACHE_VERSION:
                return descriptors_from_dict(data["descriptors"])
        except (ValueError, KeyError, TypeError):
            pass
    from mixpilot.dsp.descriptors import compute_descriptors

    x, sr, _ = read_audio(corpus_dir / track["path"])
    d = compute_descriptors(x, sr)
    cache.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(
        cache, json.dumps({"version": DESCRIPTOR_CACHE_VERSION, "id": track["id"], "descriptors": d.as_dict()})
    )
    return d


def style_features(d: Descriptors) -> np.ndarray:
    """What the style clustering sees: mid level in 7 octave groups (dB re loudness), width, PLR, LRA."""
    groups = [np.nanmean(d.mid_db[_band_slice(lo, hi)]) for lo, hi in _OCTAVE_GROUPS_HZ]
    return np.array([*groups, d.width_db, d.plr_db, d.lra_lu])


def kmeans(x: np.ndarray, k: int, seed: int, restarts: int = 50, iters: int = 100) -> tuple[np.ndarray, float]:
    """k-means (Lloyd) with k-means++ seeding; the best of ``restarts`` by inertia. Returns (labels, inertia)."""
    rng = np.random.default_rng(seed)
    best_labels, best_inertia = None, math.inf
    n = x.shape[0]
    for _ in range(restarts):
        centres = [x[rng.integers(n)]]
        for _ in range(1, k):
            d2 = np.min(((x[:, None, :] - np.array(centres)[None]) ** 2).sum(-1), axis=1)
            centres.append(x[rng.choice(n, p=d2 / d2.sum())])
        c = np.array(centres)
        labels = np.zeros(n, dtype=int)
        for it in range(iters):
            dist = ((x[:, None, :] - c[None]) ** 2).sum(-1)
            new = dist.argmin(axis=1)
            if it and np.array_equal(new, labels):
                break
            labels = new
            for j in range(k):
                if np.any(labels == j):
                    c[j] = x[labels == j].mean(axis=0)
        inertia = float(((x - c[labels]) ** 2).sum())
        if inertia < best_inertia - 1e-9:
            best_labels, best_inertia = labels.copy(), inertia
    # order clusters by size (largest first) so the numbering is stable
    order = sorted(range(k), key=lambda j: (-int(np.sum(best_labels == j)), j))
    remap = {old: new for new, old in enumerate(order)}
    return np.array([remap[v] for v in best_labels]), best_inertia


def _summaries(d: Descriptors) -> dict[str, float]:
    out = {name: float(np.nanmean(d.mid_db[_band_slice(lo, hi)])) for name, lo, hi, _, _ in _NAMING}
    out["PLR"] = float(d.plr_db)
    out["LRA"] = float(d.lra_lu)
    out["width"] = float(d.width_db)
    return out


_ADJ = {name: (up, down) for name, _, _, up, down in _NAMING} | {
    "PLR": ("punchy", "dense"),
    "LRA": ("dynamic", "steady"),
    "width": ("wide", "narrow"),
}
_UNIT = {"PLR": "dB", "LRA": "LU", "width": "dB side/mid"}
_COMBO_Z = 0.5  # both ends this far out, the same way, and the two largest: one word for the tilt of both ends


def name_cluster(members: Sequence[Descriptors], everyone: Sequence[Descriptors], taken: set[str]) -> tuple[str, str]:
    """``(name, what distinguishes it)`` for a cluster: its largest standardised difference from everyone.

    For each summary (top octaves 4-16 kHz, low end 40-160 Hz, PLR, LRA,
    width) the cluster mean minus the mean of all tracks, in units of the
    all-track standard deviation (z); the largest |z| names it: ``bright`` /
    ``dark``, ``warm`` / ``lean``, ``punchy`` / ``dense`` (PLR), ``dynamic`` /
    ``steady`` (LRA), ``wide`` / ``narrow``.  When the two largest are the top
    and the low end, both beyond 0.5 the same way, the name is ``full-range``
    (both ends up) or ``mid-forward`` (both down).  A name already ``taken``
    goes to the next summary.  The text names the three largest differences
    in their units.
    """
    s_all = [_summaries(d) for d in everyone]
    s_in = [_summaries(d) for d in members]
    z = {}
    diff = {}
    for key in s_all[0]:
        a = np.array([s[key] for s in s_all])
        m = np.array([s[key] for s in s_in])
        diff[key] = float(m.mean() - a.mean())
        z[key] = diff[key] / max(float(a.std()), 1e-9)
    ranked = sorted(z, key=lambda k: -abs(z[k]))
    words = [(_ADJ[k][0] if z[k] > 0 else _ADJ[k][1]) for k in ranked]
    ends = {_NAMING[0][0], _NAMING[1][0]}
    if set(ranked[:2]) == ends and min(abs(z[k]) for k in ends) >= _COMBO_Z and len({np.sign(z[k]) for k in ends}) == 1:
        words.insert(0, "full-range" if z[ranked[0]] > 0 else "mid-forward")
    name = next((w for w in words if w not in taken), f"{words[0]}-{words[1]}")
    parts = [f"{k} {diff[k]:+.1f} {_UNIT.get(k, 'dB')}" for k in ranked[:3]]
    return name, ", ".join(parts) + " against all training tracks"


def build_profiles(
    corpus_dir: Path,
    out_dir: Path,
    *,
    k: int = 3,
    seed: int = 0,
    command: str = "",
    log: Callable[[str], None] = lambda s: None,
) -> list[Profile]:
    """Steps 1-4 of the module docstring; returns the profiles written (``default`` first)."""
    from mixpilot.fileio import write_text_atomic
    from mixpilot.training.corpus import load_manifest

    manifest = load_manifest(corpus_dir)
    tracks = [t for t in manifest["tracks"] if t["split"] == "train"]
    if len(tracks) < 3 * k:
        raise SystemExit(f"profiles: only {len(tracks)} training tracks; the corpus step must run first")
    descs: list[Descriptors] = []
    t0 = time.monotonic()
    for i, t in enumerate(tracks, 1):
        descs.append(track_descriptors(t, corpus_dir))
        log(f"[{i}/{len(tracks)}] {t['id']} ({time.monotonic() - t0:.0f} s)")

    def card(members: list[int]) -> dict:
        rows = [tracks[i] for i in members]
        pk = Counter(r["package"] for r in rows)
        return {
            "corpus": "Debian game soundtracks, python -m mixpilot.training.corpus (training/corpus.py)",
            "split": "train",
            "salt": manifest["salt"],
            "tracks": len(rows),
            "hours": round(sum(r["duration_s"] for r in rows) / 3600.0, 2),
            "packages": {
                p: {"version": manifest["packages"][p]["version"], "tracks": n} for p, n in sorted(pk.items())
            },
            "licences": dict(sorted(Counter(r["licence"] for r in rows).items())),
            "seed": seed,
            "k": k,
            "command": command,
        }

    everyone = list(range(len(tracks)))
    profiles = [
        Profile.from_descriptors(
            descs,
            name="default",
            description=f"general: all {len(tracks)} training tracks of the corpus (game soundtracks: orchestral, "
            "electronic, retro and more); tolerance = their natural spread",
            provenance=card(everyone),
        )
    ]
    feats = np.array([style_features(d) for d in descs])
    z = (feats - feats.mean(axis=0)) / np.maximum(feats.std(axis=0), 1e-9)
    labels, inertia = kmeans(z, k, seed)
    log(f"k-means k={k}: inertia {inertia:.1f}, sizes {np.bincount(labels).tolist()}")
    taken: set[str] = {"default"}
    for j in range(k):
        members = [i for i in everyone if labels[i] == j]
        name, why = name_cluster([descs[i] for i in members], descs, taken)
        taken.add(name)
        pk = Counter(tracks[i]["package"] for i in members).most_common()
        mix = ", ".join(f"{p} {n}" for p, n in pk)
        prof_card = card(members)
        prof_card["cluster"] = {
            "index": j,
            "distinguished_by": why,
            "features": "standardised style_features",
            "package_mix": mix,
        }
        profiles.append(
            Profile.from_descriptors(
                [descs[i] for i in members],
                name=name,
                description=f"{name}: {why}",
                provenance=prof_card,
            )
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("*.json"):
        if old.stem not in {p.name for p in profiles}:
            old.unlink()
    for p in profiles:
        p.save(out_dir / f"{p.name}.json")
        log(f"wrote {out_dir / (p.name + '.json')}: {p.description}")
    write_text_atomic(out_dir / "README.md", _readme(profiles, command))
    return profiles


def _readme(profiles: Sequence[Profile], command: str) -> str:
    d = profiles[0].provenance
    lines = [
        "# Shipped target profiles",
        "",
        "Built by `" + command + "` from the training split of the real-music corpus "
        "(`python -m mixpilot.training.corpus`: free game soundtracks from Debian). "
        "Each JSON carries its card in `provenance`. Levels are dB re the integrated loudness per "
        "1/3-octave band (mid and side); the tolerance is the standard deviation across the tracks.",
        "",
        f"Corpus: {d['tracks']} training tracks, {d['hours']} h; salt `{d['salt']}`, seed {d['seed']}, k = {d['k']}.",
        "",
        "| package | version | tracks |",
        "|---|---|---|",
    ]
    lines += [f"| {p} | {v['version']} | {v['tracks']} |" for p, v in d["packages"].items()]
    lines += ["", "Licences: " + ", ".join(f"{lic} ({n} tracks)" for lic, n in d["licences"].items()), ""]
    lines += ["| profile | tracks | LUFS | PLR dB | LRA LU | width dB | what it is |", "|---|---|---|---|---|---|---|"]
    for p in profiles:
        lines.append(
            f"| `{p.name}` | {p.tracks} | {p.integrated_lufs:.1f} | {p.plr_db:.1f} +- {p.plr_tol_db:.1f} | "
            f"{p.lra_lu:.1f} | {p.width_db:.1f} | {p.description} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    from mixpilot.training.corpus import CorpusError, default_dir

    ap = argparse.ArgumentParser(prog="python -m mixpilot.training.profiles", description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", type=Path, default=None, help=f"corpus folder (default {default_dir()})")
    ap.add_argument("--out", type=Path, default=PROFILES_DIR, help="where the profiles go (default: the shipped ones)")
    ap.add_argument("--k", type=int, default=3, help="number of style profiles (default 3)")
    ap.add_argument("--seed", type=int, default=0, help="k-means seed (default 0)")
    args = ap.parse_args(argv)
    command = f"python -m mixpilot.training.profiles --k {args.k} --seed {args.seed}"
    try:
        build_profiles(
            args.corpus or default_dir(),
            args.out,
            k=args.k,
            seed=args.seed,
            command=command,
            log=lambda s: print(s, file=sys.stderr, flush=True),
        )
    except CorpusError as exc:
        print(f"profiles: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
