"""The real-music corpus: free game soundtracks from Debian, fetched, licensed and split by track.

::

    python -m mixpilot.training.corpus [--dir DIR] [--set v1|v2] [--packages PKG ...] [--min-seconds 45]
                                       [--salt mixpilot-corpus-v1] [--keep-debs] [--list]

Debian carries the soundtracks of several free games as ordinary packages:
real, mixed and mastered music under free licences (GPL-2+, GPL-3+,
CC-BY-SA-3.0; each track's licence is recorded).  For every package in
:data:`PACKAGES` this step

1. downloads the ``.deb`` with ``apt-get download PKG`` (nothing is
   installed; the machine's apt sources must carry the package: ``apt-cache
   policy PKG`` shows a candidate) and checks it against the SHA256 apt knows;
2. unpacks it with ``dpkg-deb -x`` into a temporary folder;
3. keeps the music: audio files (``.ogg``, ``.opus``, ``.oga``, ``.flac``,
   ``.wav``, ``.mp3``) under the package's music folders (:data:`PACKAGES`
   gives the path patterns: game sound effects and ambience loops are left
   out), not symbolic links, readable by libsndfile, at least
   ``--min-seconds`` long (45 s), each content once (SHA256); copies them to
   ``DIR/tracks/PKG/...`` under their installed path;
4. records the licence of each track from the package's
   ``usr/share/doc/PKG/copyright`` (machine-readable DEP-5: the last
   ``Files:`` stanza whose pattern matches the track, :func:`track_licence`;
   free-form files: the GPL version they state) and copies the copyright file
   to ``DIR/licences/PKG.copyright``;
5. writes ``DIR/packages/PKG.json`` (the package's tracks) — the marker that
   makes the step resumable: a package whose marker names the candidate
   version is not fetched again.

Then every track is assigned a split by its **group** (the track's name with
the suffixes of a re-release removed — ``track3_enhanced`` and ``track3``,
``frantic-old`` and ``frantic``, ``forest2`` and ``forest`` are one group, so
a remaster never sits on the other side of a split from its original):
``u = sha256(salt:package:group)`` read as a number in [0, 1), train below
0.70, validation below 0.80, test above.  The split depends only on the salt,
the package and the track's name: stable across re-runs, machines, added or
removed packages.  ``DIR/manifest.json`` lists every track (id, package,
version, path, licence, duration, sample rate, channels, SHA256, group, split)
with the counts per split and package.

Package sets (``--set``): ``v1`` (:data:`PACKAGES`, the default) is the
corpus the shipped model and profiles were made from, 9.8 h in 150 tracks;
``v2`` adds twelve more soundtracks (:data:`MORE_PACKAGES`: orchestral,
rock, electronic and chiptune game music) for training on more varied
music.  Fetch ``v2`` into its own folder (``--dir ~/.cache/mixpilot/corpus-v2``)
and point the training steps at it (their ``--corpus``).  A ``v1`` track
keeps its split in ``v2``: the split does not depend on the other packages.

Default ``DIR``: ``$MIXPILOT_CORPUS``, else ``$XDG_CACHE_HOME/mixpilot/corpus``
(``~/.cache/mixpilot/corpus``).  Nothing of the corpus belongs in git; tests
never need it.  The four recordings in ``../shared/audio`` are evaluation
material and are not part of it.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = [
    "AUDIO_EXTENSIONS",
    "MANIFEST_NAME",
    "MANIFEST_SCHEMA",
    "CORPUS_SETS",
    "DEFAULT_SET",
    "KNOWN_PACKAGES",
    "MORE_PACKAGES",
    "PACKAGES",
    "SPLIT_FRACTIONS",
    "CorpusError",
    "Track",
    "build_manifest",
    "collect_tracks",
    "default_dir",
    "fetch",
    "load_manifest",
    "main",
    "parse_copyright",
    "split_of",
    "track_group",
    "track_licence",
]

#: package -> path patterns (fnmatch, case-insensitive, against the installed path) of its music
PACKAGES: dict[str, tuple[str, ...]] = {
    "wesnoth-1.16-music": ("*/music/*",),
    "warzone2100-music": ("*/music/*",),
    "supertux-data": ("*/music/*",),
    "freedroidrpg-data": ("*/sound/music/*",),
    "megaglest-data": ("*/music/*",),  # tilesets/*/sounds/*.ogg are ambience loops, not music
    "extremetuxracer-data": ("*/music/*",),
    "frozen-bubble-data": ("*/snd/*zik*",),  # the rest of snd/ are sound effects
    "lincity-ng-data": ("*/music/*",),
    "xmoto-data": ("*/musics/*",),
}
#: more Debian game soundtracks (corpus set ``v2``, fetched with ``--set v2``): they were not in the corpus
#: the shipped model and profiles were made from (set ``v1`` = :data:`PACKAGES`), so they are opt-in
MORE_PACKAGES: dict[str, tuple[str, ...]] = {
    "hedgewars-data": ("*/data/music/*",),
    "supertuxkart-data": ("*/supertuxkart/data/music/*",),
    "widelands-data": ("*/widelands/data/music/*",),
    "unknown-horizons": ("*/content/audio/music/*",),
    "flare-game": ("*/fantasycore/music/*",),
    "freecol": ("*/resources/music/*",),
    "marsshooter-data": ("*/audio/music/*",),
    "warmux-data": ("*/warmux/music/*",),
    "openclonk-data": ("*/music.ocg/*",),
    "redeclipse-data": ("*/sounds/music/*",),  # sounds/ambience/ are loops, not music
    "ardentryst": ("*/ardentryst/music/*",),
    "fillets-ng-data": ("*/fillets-ng/music/*",),
}
#: every package the corpus step knows, with its music path patterns
KNOWN_PACKAGES: dict[str, tuple[str, ...]] = {**PACKAGES, **MORE_PACKAGES}
#: named package sets: ``v1`` is the corpus of the shipped model and profiles; ``v2`` adds :data:`MORE_PACKAGES`
CORPUS_SETS: dict[str, tuple[str, ...]] = {"v1": tuple(PACKAGES), "v2": tuple(KNOWN_PACKAGES)}
DEFAULT_SET = "v1"
AUDIO_EXTENSIONS = (".ogg", ".oga", ".opus", ".flac", ".wav", ".mp3")
#: cumulative upper bounds of the hash fraction: train < 0.70 <= validation < 0.80 <= test
SPLIT_FRACTIONS = (("train", 0.70), ("validation", 0.80), ("test", 1.0))
DEFAULT_SALT = "mixpilot-corpus-v1"
DEFAULT_MIN_SECONDS = 45.0
MANIFEST_NAME = "manifest.json"
MANIFEST_SCHEMA = 1


class CorpusError(Exception):
    """A problem with the corpus step; the message is one line."""


@dataclass(frozen=True)
class Track:
    """One music file of the corpus (a row of the manifest)."""

    id: str  # "package:installed/path"
    package: str
    version: str
    path: str  # relative to the corpus folder
    licence: str
    duration_s: float
    sample_rate: int
    channels: int
    frames: int
    sha256: str
    group: str
    split: str = ""


# ---------------------------------------------------------------------------
# pure parts: licence, group, split


def parse_copyright(text: str) -> dict:
    """Parse a Debian copyright file.

    Returns ``{"dep5": bool, "stanzas": [(patterns, licence), ...], "licence": str}``: for a
    machine-readable (DEP-5) file the ``Files:`` stanzas in order with their ``License:``
    short names, and ``licence`` the one of ``Files: *``; for a free-form file no stanzas
    and ``licence`` from the text (:func:`_free_form_licence`).
    """
    dep5 = text.lstrip().startswith("Format:") and "copyright-format" in text.split("\n", 1)[0]
    if not dep5:
        return {"dep5": False, "stanzas": [], "licence": _free_form_licence(text)}
    stanzas: list[tuple[tuple[str, ...], str]] = []
    for para in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = None
        for line in para.splitlines():
            if line[:1] in (" ", "\t") and key is not None:
                fields[key] += "\n" + line.strip()
                continue
            m = re.match(r"([A-Za-z-]+):\s*(.*)$", line)
            if m:
                key = m.group(1).lower()
                fields[key] = m.group(2).strip()
        if "files" in fields and "license" in fields:
            patterns = tuple(fields["files"].split())
            stanzas.append((patterns, fields["license"].split("\n", 1)[0].strip()))
    default = next((lic for pats, lic in stanzas if "*" in pats), "")
    return {"dep5": True, "stanzas": stanzas, "licence": default or "unknown (see copyright file)"}


def _free_form_licence(text: str) -> str:
    """The licence a free-form copyright file states first: ``GPL-N`` / ``GPL-N+``, CC-BY(-SA)."""
    flat = " ".join(text.split())
    m = re.search(r"GNU General Public License,? (?:as published [^.]*?)?version (\d)", flat, re.I)
    if m:
        later = re.search(r"or (?:\(?at your option\)? )?any later version", flat[m.end() : m.end() + 200], re.I)
        return f"GPL-{m.group(1)}{'+' if later else ''}"
    m = re.search(r"Creative Commons Attribution[- ](ShareAlike[- ])?(\d\.\d)", flat, re.I)
    if m:
        return f"CC-BY{'-SA' if m.group(1) else ''}-{m.group(2)}"
    return "unknown (see copyright file)"


def _pattern_matches(pattern: str, installed: str) -> bool:
    """Whether a DEP-5 ``Files:`` pattern (a source-tree path) names the installed file.

    Source and installed trees differ (``data/music/x.ogg`` is installed as
    ``usr/share/games/supertux2/music/x.ogg``), so the pattern is tried against
    every trailing part of the installed path, also without its own first
    folder (``data/``, ``src/``).
    """
    parts = installed.strip("/").split("/")
    candidates = [pattern]
    rest = pattern.split("/", 1)[1] if "/" in pattern else ""
    if rest.strip("*?/"):  # "data/music/*" -> "music/*"; never "src/*" -> "*" (that would match everything)
        candidates.append(rest)
    for cand in candidates:
        for k in range(len(parts)):
            if fnmatch.fnmatchcase("/".join(parts[k:]), cand):
                return True
    return False


def track_licence(copyright_info: dict, installed_path: str) -> str:
    """Licence of one installed file: the last DEP-5 stanza other than ``*`` that matches, else the default."""
    licence = copyright_info["licence"]
    for patterns, lic in copyright_info["stanzas"]:
        if "*" in patterns:
            continue
        if any(_pattern_matches(p, installed_path) for p in patterns):
            licence = lic
    return licence


_RERELEASE = re.compile(r"([_-](enhanced|remix|old|new))+$", re.I)


def track_group(installed_path: str) -> str:
    """The group a track is split with: its name without a re-release suffix or a trailing number.

    ``track3_enhanced`` -> ``track3`` (numbered album tracks keep their number),
    ``airship_2``/``airship_remix`` -> ``airship``, ``forest2`` -> ``forest``,
    ``frantic-old`` -> ``frantic``.  The folder is not part of it: a remaster
    often sits in another folder (``albums/aftermath_soundtrack/menu_enhanced``
    and ``music/menu``); the package is part of the split key.
    """
    name = os.path.basename(installed_path)
    stem = os.path.splitext(name)[0].lower()
    stem = _RERELEASE.sub("", stem)
    if not re.fullmatch(r"track\d+", stem):
        stem = re.sub(r"[_-]?\d+$", "", stem) or stem
        stem = _RERELEASE.sub("", stem)
    return stem


def split_of(package: str, group: str, salt: str = DEFAULT_SALT) -> str:
    """``train`` / ``validation`` / ``test`` from ``sha256(salt:package:group)`` (:data:`SPLIT_FRACTIONS`)."""
    digest = hashlib.sha256(f"{salt}:{package}:{group}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2.0**64
    for name, upper in SPLIT_FRACTIONS:
        if u < upper:
            return name
    return SPLIT_FRACTIONS[-1][0]


# ---------------------------------------------------------------------------
# the package tree -> tracks


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def collect_tracks(
    package: str,
    version: str,
    root: Path,
    corpus_dir: Path,
    *,
    patterns: Sequence[str] | None = None,
    min_seconds: float = DEFAULT_MIN_SECONDS,
    log: Callable[[str], None] = lambda s: None,
) -> list[Track]:
    """Pick the music out of an unpacked package tree ``root`` and copy it into ``corpus_dir/tracks/PKG``.

    ``patterns`` default to :data:`KNOWN_PACKAGES` [package].  The licence comes from
    ``root/usr/share/doc/PKG/copyright`` (copied to ``corpus_dir/licences``);
    a package without one is refused (:class:`CorpusError`).  Returns the
    tracks sorted by path (their ``split`` still empty).
    """
    import soundfile as sf

    pats = tuple(p.lower() for p in (patterns if patterns is not None else KNOWN_PACKAGES[package]))
    copyright_path = root / "usr" / "share" / "doc" / package / "copyright"
    if not copyright_path.is_file():
        raise CorpusError(f"{package}: no usr/share/doc/{package}/copyright in the package: its licence is unknown")
    text = copyright_path.read_text(encoding="utf-8", errors="replace")
    info = parse_copyright(text)
    (corpus_dir / "licences").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(copyright_path, corpus_dir / "licences" / f"{package}.copyright")

    tracks: list[Track] = []
    seen: set[str] = set()
    for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink() or not path.is_file():
            continue
        if not any(fnmatch.fnmatchcase(rel.lower(), p) for p in pats):
            continue
        try:
            si = sf.info(str(path))
        except Exception as exc:  # libsndfile cannot read it: not part of the corpus
            log(f"  skip {rel}: unreadable ({' '.join(str(exc).split())})")
            continue
        if si.frames <= 0 or si.samplerate <= 0 or si.frames / si.samplerate < min_seconds:
            continue
        digest = _sha256_file(path)
        if digest in seen:
            log(f"  skip {rel}: same content as an earlier file")
            continue
        seen.add(digest)
        dest_rel = Path("tracks") / package / rel
        dest = corpus_dir / dest_rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)
        tracks.append(
            Track(
                id=f"{package}:{rel}",
                package=package,
                version=version,
                path=dest_rel.as_posix(),
                licence=track_licence(info, rel),
                duration_s=round(si.frames / si.samplerate, 3),
                sample_rate=int(si.samplerate),
                channels=int(si.channels),
                frames=int(si.frames),
                sha256=digest,
                group=track_group(rel),
            )
        )
    return tracks


def build_manifest(tracks: Iterable[Track], *, salt: str = DEFAULT_SALT, packages: dict | None = None) -> dict:
    """The manifest for ``tracks``: each assigned its split (:func:`split_of`), with counts per split/package."""
    rows = []
    for t in sorted(tracks, key=lambda t: t.id):
        row = asdict(t)
        row["split"] = split_of(t.package, t.group, salt)
        rows.append(row)
    counts: dict = {"splits": {}, "packages": {}, "licences": {}}
    for r in rows:
        for key, name in (("splits", r["split"]), ("packages", r["package"]), ("licences", r["licence"])):
            c = counts[key].setdefault(name, {"tracks": 0, "hours": 0.0})
            c["tracks"] += 1
            c["hours"] += r["duration_s"] / 3600.0
    for key in counts:
        for c in counts[key].values():
            c["hours"] = round(c["hours"], 3)
    return {
        "format": "mixpilot-corpus",
        "schema_version": MANIFEST_SCHEMA,
        "salt": salt,
        "split_fractions": {name: upper for name, upper in SPLIT_FRACTIONS},
        "tracks_total": len(rows),
        "hours_total": round(sum(r["duration_s"] for r in rows) / 3600.0, 3),
        "counts": counts,
        "packages": packages or {},
        "tracks": rows,
    }


def load_manifest(corpus_dir: str | os.PathLike[str] | None = None) -> dict:
    """Read ``DIR/manifest.json`` (:func:`default_dir` when None); :class:`CorpusError` with one line if absent/bad."""
    folder = Path(corpus_dir) if corpus_dir is not None else default_dir()
    path = folder / MANIFEST_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CorpusError(
            f"{path}: no corpus manifest; run `python -m mixpilot.training.corpus --dir {folder}`"
        ) from None
    except (OSError, ValueError) as exc:
        raise CorpusError(f"{path}: unreadable corpus manifest ({' '.join(str(exc).split())})") from None
    if not isinstance(data, dict) or data.get("format") != "mixpilot-corpus":
        raise CorpusError(f"{path}: not a mixpilot corpus manifest")
    if data.get("schema_version") != MANIFEST_SCHEMA:
        raise CorpusError(
            f"{path}: corpus manifest version {data.get('schema_version')!r}, this mixpilot reads {MANIFEST_SCHEMA}; "
            "run the corpus step again"
        )
    data["dir"] = str(folder)
    return data


# ---------------------------------------------------------------------------
# fetching (apt)


def default_dir() -> Path:
    """``$MIXPILOT_CORPUS``, else ``$XDG_CACHE_HOME/mixpilot/corpus`` (``~/.cache/mixpilot/corpus``)."""
    env = os.environ.get("MIXPILOT_CORPUS")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "mixpilot" / "corpus"


def _run(cmd: Sequence[str], **kw) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(list(cmd), capture_output=True, text=True, check=False, **kw)
    except FileNotFoundError:
        raise CorpusError(
            f"{cmd[0]} not found: the corpus step needs Debian/Ubuntu's apt and dpkg (apt-get, apt-cache, dpkg-deb)"
        ) from None


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip() and not ln.startswith("W:")]
    return lines[-1] if lines else "no output"


def _apt_candidate(package: str) -> dict:
    """Version, file name and SHA256 of the candidate ``.deb`` (``apt-cache show`` of the policy candidate)."""
    pol = _run(["apt-cache", "policy", package])
    m = re.search(r"Candidate:\s*(\S+)", pol.stdout)
    if pol.returncode != 0 or not m or m.group(1) == "(none)":
        raise CorpusError(
            f"{package}: not in this machine's apt sources (apt-cache policy shows no candidate; "
            "try apt-get update, or leave it out with --packages)"
        )
    version = m.group(1)
    show = _run(["apt-cache", "show", f"{package}={version}"])
    sha = re.search(r"^SHA256:\s*(\S+)", show.stdout, re.M)
    return {"version": version, "sha256": sha.group(1) if sha else ""}


def _download(package: str, cand: dict, debs: Path, log: Callable[[str], None]) -> Path:
    debs.mkdir(parents=True, exist_ok=True)
    for known in sorted(debs.glob(f"{package}_*.deb")):  # a download of an earlier run (apt names it with the epoch)
        if cand["sha256"] and _sha256_file(known) == cand["sha256"]:
            log(f"  {known.name} already downloaded")
            return known
    log(f"  apt-get download {package}={cand['version']}")
    res = _run(["apt-get", "download", f"{package}={cand['version']}"], cwd=debs)
    if res.returncode != 0:
        raise CorpusError(f"{package}: apt-get download failed: {_last_line(res.stderr or res.stdout)}")
    found = sorted(debs.glob(f"{package}_*.deb"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise CorpusError(f"{package}: apt-get download left no {package}_*.deb in {debs}")
    deb = found[-1]
    if cand["sha256"] and _sha256_file(deb) != cand["sha256"]:
        deb.unlink()
        raise CorpusError(f"{package}: the downloaded .deb does not match apt's SHA256; removed, run again")
    return deb


def fetch_package(
    package: str,
    corpus_dir: Path,
    *,
    min_seconds: float = DEFAULT_MIN_SECONDS,
    keep_debs: bool = False,
    log: Callable[[str], None] = lambda s: None,
) -> dict:
    """Download, unpack and collect one package; returns its marker (also written to ``packages/PKG.json``)."""
    cand = _apt_candidate(package)
    marker_path = corpus_dir / "packages" / f"{package}.json"
    if marker_path.is_file():
        try:
            marker = json.loads(marker_path.read_text(encoding="utf-8"))
        except ValueError:
            marker = {}
        if (
            marker.get("version") == cand["version"]
            and marker.get("min_seconds") == min_seconds
            and all((corpus_dir / t["path"]).is_file() for t in marker.get("tracks", []))
        ):
            log(f"{package} {cand['version']}: done before ({len(marker['tracks'])} tracks)")
            return marker
    log(f"{package} {cand['version']}:")
    deb = _download(package, cand, corpus_dir / "debs", log)
    with tempfile.TemporaryDirectory(prefix=f"{package}-", dir=corpus_dir) as tmp:
        res = _run(["dpkg-deb", "-x", str(deb), tmp])
        if res.returncode != 0:
            raise CorpusError(f"{package}: dpkg-deb -x failed: {_last_line(res.stderr or res.stdout)}")
        shutil.rmtree(corpus_dir / "tracks" / package, ignore_errors=True)
        tracks = collect_tracks(package, cand["version"], Path(tmp), corpus_dir, min_seconds=min_seconds, log=log)
    marker = {
        "package": package,
        "version": cand["version"],
        "deb": deb.name,
        "deb_sha256": cand["sha256"] or _sha256_file(deb),
        "min_seconds": min_seconds,
        "copyright": f"licences/{package}.copyright",
        "tracks": [asdict(t) for t in tracks],
    }
    _write_json(marker_path, marker)
    if not keep_debs:
        deb.unlink(missing_ok=True)
    hours = sum(t.duration_s for t in tracks) / 3600.0
    log(f"  {len(tracks)} tracks of >= {min_seconds:g} s, {hours:.2f} h")
    return marker


def _write_json(path: Path, data: dict) -> None:
    from mixpilot.fileio import write_text_atomic

    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(data, indent=1) + "\n")


def fetch(
    corpus_dir: Path,
    packages: Sequence[str] = tuple(PACKAGES),
    *,
    min_seconds: float = DEFAULT_MIN_SECONDS,
    salt: str = DEFAULT_SALT,
    keep_debs: bool = False,
    log: Callable[[str], None] = lambda s: None,
    corpus_set: str = DEFAULT_SET,
) -> tuple[dict, list[str]]:
    """Fetch ``packages`` (resumable), then write the manifest; returns ``(manifest, errors)``.

    The manifest lists every package of ``corpus_set`` (:data:`CORPUS_SETS`)
    and of ``packages`` fetched now or by an earlier run (its marker in
    ``packages/`` with all its tracks present), so fetching one more package
    never drops the others, and a ``v1`` manifest never takes in a ``v2``
    package left in the same folder.  A package that fails is reported (one
    line in ``errors``) and left out; the others are kept.
    """
    if corpus_set not in CORPUS_SETS:
        raise CorpusError(f"unknown corpus set {corpus_set!r}: one of {', '.join(CORPUS_SETS)}")
    unknown = [p for p in packages if p not in KNOWN_PACKAGES]
    if unknown:
        raise CorpusError(f"unknown package(s) {', '.join(unknown)}: the corpus knows {', '.join(KNOWN_PACKAGES)}")
    listed = [p for p in KNOWN_PACKAGES if p in CORPUS_SETS[corpus_set] or p in packages]
    corpus_dir.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    tracks: list[Track] = []
    pkg_info: dict = {}
    markers: dict[str, dict] = {}
    for i, package in enumerate(packages, 1):
        log(f"[{i}/{len(packages)}] ")
        try:
            markers[package] = fetch_package(package, corpus_dir, min_seconds=min_seconds, keep_debs=keep_debs, log=log)
        except CorpusError as exc:
            errors.append(str(exc))
            log(f"  error: {exc}")
    for package in listed:
        path = corpus_dir / "packages" / f"{package}.json"
        if package in markers or package in packages or not path.is_file():
            continue
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            continue
        if old.get("min_seconds") == min_seconds and all((corpus_dir / t["path"]).is_file() for t in old["tracks"]):
            markers[package] = old
    for package in [p for p in listed if p in markers]:
        marker = markers[package]
        # licence and group are derived again (from the stored copyright file and the path): a change of
        # those rules needs no refetch
        info = parse_copyright((corpus_dir / marker["copyright"]).read_text(encoding="utf-8", errors="replace"))
        for t in marker["tracks"]:
            installed = t["id"].split(":", 1)[1]
            t["licence"] = track_licence(info, installed)
            t["group"] = track_group(installed)
        tracks.extend(Track(**t) for t in marker["tracks"])
        pkg_info[package] = {
            "version": marker["version"],
            "deb_sha256": marker["deb_sha256"],
            "copyright": marker["copyright"],
            "licences": sorted({t.licence for t in tracks if t.package == package}),
            "tracks": len(marker["tracks"]),
        }
    manifest = build_manifest(tracks, salt=salt, packages=pkg_info)
    manifest["min_seconds"] = min_seconds
    manifest["set"] = corpus_set
    manifest["created_by"] = "python -m mixpilot.training.corpus"
    _write_json(corpus_dir / MANIFEST_NAME, manifest)
    return manifest, errors


def format_counts(manifest: dict) -> str:
    """The counts of a manifest as a small text table (tracks and hours per split, package and licence)."""
    lines = [f"{manifest['tracks_total']} tracks, {manifest['hours_total']:.2f} h"]
    for key in ("splits", "packages", "licences"):
        lines.append(f"{key}:")
        for name, c in sorted(manifest["counts"][key].items()):
            lines.append(f"  {name:<28} {c['tracks']:>4} tracks {c['hours']:>7.2f} h")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m mixpilot.training.corpus",
        description="Fetch the real-music corpus (Debian game soundtracks), record licences, split by track.",
    )
    ap.add_argument("--dir", type=Path, default=None, help=f"corpus folder (default {default_dir()})")
    ap.add_argument(
        "--set",
        dest="corpus_set",
        choices=list(CORPUS_SETS),
        default=DEFAULT_SET,
        help="package set: v1 (the shipped model's corpus, %(default)s) or v2 (v1 and more soundtracks); "
        "fetch v2 into its own --dir",
    )
    ap.add_argument("--packages", nargs="+", default=None, metavar="PKG", help="packages to fetch (default: the set's)")
    ap.add_argument("--min-seconds", type=float, default=DEFAULT_MIN_SECONDS, help="shortest track kept (45 s)")
    ap.add_argument("--salt", default=DEFAULT_SALT, help="split salt (changing it changes the split)")
    ap.add_argument("--keep-debs", action="store_true", help="keep the downloaded .deb files in DIR/debs")
    ap.add_argument("--list", action="store_true", help="print the counts of the existing manifest and exit")
    args = ap.parse_args(argv)
    folder = args.dir if args.dir is not None else default_dir()
    packages = list(args.packages) if args.packages is not None else list(CORPUS_SETS[args.corpus_set])
    unknown = [p for p in packages if p not in KNOWN_PACKAGES]
    try:
        if unknown:
            raise CorpusError(f"unknown package(s) {', '.join(unknown)}: the corpus knows {', '.join(KNOWN_PACKAGES)}")
        if args.list:
            print(format_counts(load_manifest(folder)))
            return 0
        t0 = time.monotonic()

        def log(msg: str) -> None:
            print(msg, end="" if msg.endswith("] ") else "\n", file=sys.stderr, flush=True)

        manifest, errors = fetch(
            folder,
            packages,
            min_seconds=args.min_seconds,
            salt=args.salt,
            keep_debs=args.keep_debs,
            log=log,
            corpus_set=args.corpus_set,
        )
    except CorpusError as exc:
        print(f"corpus: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("corpus: interrupted (run again to resume)", file=sys.stderr)
        return 130
    print(format_counts(manifest))
    print(f"manifest: {folder / MANIFEST_NAME} ({time.monotonic() - t0:.0f} s)", file=sys.stderr)
    for e in errors:
        print(f"corpus: error: {e}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
