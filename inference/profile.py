"""Target profiles: what the AI aims for (a reference track, the user's references, a shipped style).

A :class:`Profile` is the mean and natural spread, over one or more tracks,
of the descriptors of :mod:`dsp.descriptors` (definitions there), grouped by
the aspects of the parameter table:

* ``tone``: per 1/3-octave band (``bands_hz``, 25 Hz .. 16 kHz) the mid and
  side level in dB relative to the integrated loudness (``mid_db``,
  ``side_db``), their tolerance (``*_tol_db``) and the mean spread of the
  balance across time within a track (``*_time_spread_db``);
* ``width``: side/mid energy ratio in dB, overall (``width_db``) and per band
  (``width_band_db``), with tolerances;
* ``dynamics``: PLR (true peak - integrated loudness, dB), loudness range
  (LU) and the short-term loudness percentiles ``ST_PERCENTILES`` relative to
  the integrated loudness, with tolerances;
* ``loudness``: integrated loudness (LUFS) and its tolerance; also the
  mean true peak.

**Tolerance** = the standard deviation across the profile's tracks (ddof 1):
for a shipped profile the natural spread of good masters of that style, for
``profile build`` over a folder the spread of the user's references.  A
profile of one track (a single ``--reference``) has tolerance 0: match it.
Each track counts once, whatever its length.

Files are versioned JSON (``"format": "mixpilot-profile"``,
``"schema_version"``: :data:`SCHEMA_VERSION`); a foreign, malformed or
other-version file, a silent reference, one shorter than
:data:`MIN_REFERENCE_S`, or one with NaN/Inf samples raises
:class:`ProfileError` with one line naming the problem.  Shipped profiles
live in ``models_onnx/profiles/NAME.json`` (:func:`shipped_profiles`).

This module reads audio only as arrays: :meth:`Profile.from_references`
takes ``(samples, sample_rate)`` pairs, or paths together with a ``read``
function; :func:`mixpilot.realtime.references.profile_from_files` is the
front end that reads files with the project's audio reader.

For the matcher: :meth:`Profile.deviation` compares a
:class:`~mixpilot.dsp.descriptors.Descriptors` (e.g. the running input
statistics of :class:`~mixpilot.dsp.descriptors.DescriptorAccumulator`)
with the profile, per band and per aspect, with what lies outside the
tolerance; :meth:`Profile.vector` / :data:`VECTOR_NAMES` is a fixed-length
numeric form for a model's conditioning input.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from mixpilot.dsp.descriptors import BAND_NOMINAL_HZ, N_BANDS, ST_PERCENTILES, Descriptors, compute_descriptors
from mixpilot.dsp.errors import InputFileError
from mixpilot.fileio import write_text_atomic

__all__ = [
    "AUDIO_EXTENSIONS",
    "FORMAT",
    "MIN_REFERENCE_S",
    "PROFILES_DIR",
    "SCHEMA_VERSION",
    "VECTOR_NAMES",
    "Profile",
    "ProfileError",
    "expand_sources",
    "set_file_reader",
    "shipped_profiles",
]

FORMAT = "mixpilot-profile"
SCHEMA_VERSION = 1
MIN_REFERENCE_S = 3.0  # one EBU short-term window: LRA and percentiles need at least one
#: folder of the shipped profiles (package data of ``mixpilot.models_onnx``)
PROFILES_DIR = Path(__file__).resolve().parent.parent / "models_onnx" / "profiles"
#: what a folder given as a reference is searched for (what libsndfile reads)
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".w64", ".rf64", ".caf")


# ``read(path) -> (samples, sample_rate)`` for Profile.build: the I/O layer (mixpilot.realtime.references)
# registers the project's audio reader here, so this layer never imports the one above it.
_FILE_READER: Callable[[str], tuple[np.ndarray, float]] | None = None


def set_file_reader(read: Callable[[str], tuple[np.ndarray, float]] | None) -> None:
    """Register the file reader :meth:`Profile.build` uses for paths (``None`` removes it)."""
    global _FILE_READER
    _FILE_READER = read


class ProfileError(InputFileError, ValueError):
    """A bad reference or profile (silent, too short, unreadable, foreign or other-version JSON); one line naming it.

    An :class:`~mixpilot.dsp.errors.InputFileError` (exit code 1 on the command line).
    """


def _band_fields() -> tuple[str, ...]:
    return (
        "mid_db",
        "mid_tol_db",
        "mid_time_spread_db",
        "side_db",
        "side_tol_db",
        "side_time_spread_db",
        "width_band_db",
        "width_band_tol_db",
    )


@dataclass(frozen=True)
class Profile:
    """A target: mean and tolerance of the long-term descriptors of one or more tracks (module docstring).

    Band arrays are ``[N_BANDS]`` float64 (NaN where no track had the band:
    a sample rate below 36 kHz).  Construct with :meth:`from_audio`,
    :meth:`from_descriptors`, :meth:`from_references` or :meth:`load`.
    """

    name: str
    tracks: int
    mid_db: np.ndarray
    mid_tol_db: np.ndarray
    mid_time_spread_db: np.ndarray
    side_db: np.ndarray
    side_tol_db: np.ndarray
    side_time_spread_db: np.ndarray
    width_db: float
    width_tol_db: float
    width_band_db: np.ndarray
    width_band_tol_db: np.ndarray
    plr_db: float
    plr_tol_db: float
    lra_lu: float
    lra_tol_lu: float
    st_percentiles_lu: np.ndarray  # [len(ST_PERCENTILES)], relative to the integrated loudness
    st_percentiles_tol_lu: np.ndarray
    integrated_lufs: float
    integrated_tol_lu: float
    true_peak_dbtp: float
    description: str = ""
    provenance: dict = field(default_factory=dict)
    bands_hz: tuple = BAND_NOMINAL_HZ

    # -- construction ---------------------------------------------------------

    @classmethod
    def from_descriptors(
        cls,
        items: Sequence[Descriptors],
        *,
        name: str = "references",
        description: str = "",
        provenance: dict | None = None,
    ) -> Profile:
        """Combine the descriptors of one or more tracks: per-track means, tolerance = std across tracks."""
        items = list(items)
        if not items:
            raise ProfileError("no references given")
        n = len(items)

        def stack(attr: str) -> np.ndarray:
            return np.array([np.asarray(getattr(d, attr), dtype=np.float64) for d in items])

        def mean(a: np.ndarray) -> np.ndarray:
            ok = np.isfinite(a)
            cnt = ok.sum(axis=0)
            s = np.where(ok, a, 0.0).sum(axis=0)
            with np.errstate(invalid="ignore", divide="ignore"):
                return np.where(cnt > 0, s / np.maximum(cnt, 1), np.nan)

        def tol(a: np.ndarray) -> np.ndarray:
            ok = np.isfinite(a)
            cnt = ok.sum(axis=0)
            m = mean(a)
            d = np.where(ok, a - m, 0.0)
            with np.errstate(invalid="ignore", divide="ignore"):
                v = np.where(cnt >= 2, (d * d).sum(axis=0) / np.maximum(cnt - 1, 1), 0.0)
            return np.where(cnt > 0, np.sqrt(v), np.nan)

        def scalar(x: np.ndarray) -> float:
            return float(np.asarray(x).reshape(()))

        mid, side, wb = stack("mid_db"), stack("side_db"), stack("width_band_db")
        width, plr, lra = stack("width_db"), stack("plr_db"), stack("lra_lu")
        st, lufs, tp = stack("st_percentiles_lu"), stack("integrated_lufs"), stack("true_peak_dbtp")
        return cls(
            name=name,
            tracks=n,
            mid_db=mean(mid),
            mid_tol_db=tol(mid),
            mid_time_spread_db=mean(stack("mid_spread_db")),
            side_db=mean(side),
            side_tol_db=tol(side),
            side_time_spread_db=mean(stack("side_spread_db")),
            width_db=scalar(mean(width)),
            width_tol_db=scalar(tol(width)),
            width_band_db=mean(wb),
            width_band_tol_db=tol(wb),
            plr_db=scalar(mean(plr)),
            plr_tol_db=scalar(tol(plr)),
            lra_lu=scalar(mean(lra)),
            lra_tol_lu=scalar(tol(lra)),
            st_percentiles_lu=mean(st),
            st_percentiles_tol_lu=tol(st),
            integrated_lufs=scalar(mean(lufs)),
            integrated_tol_lu=scalar(tol(lufs)),
            true_peak_dbtp=scalar(mean(tp)),
            description=description,
            provenance=dict(provenance or {}),
        )

    @staticmethod
    def check_audio(x: np.ndarray, sample_rate: float, label: str = "reference") -> Descriptors:
        """Descriptors of one reference, or :class:`ProfileError` (NaN/Inf, shorter than 3 s, silent, bad shape)."""
        a = np.asarray(x)
        if a.ndim == 2 and a.shape[1] == 1:
            a = a[:, 0]
        if a.ndim not in (1, 2) or (a.ndim == 2 and a.shape[1] != 2) or not np.issubdtype(a.dtype, np.number):
            raise ProfileError(f"{label}: expected mono or stereo samples, got an array of shape {a.shape}")
        if not (isinstance(sample_rate, (int, float, np.integer, np.floating)) and 8000 <= sample_rate <= 192000):
            raise ProfileError(f"{label}: sample rate {sample_rate!r} is outside 8000..192000 Hz")
        seconds = a.shape[0] / float(sample_rate)
        if seconds < MIN_REFERENCE_S:
            raise ProfileError(f"{label}: {seconds:.2f} s long; a reference needs at least {MIN_REFERENCE_S:g} s")
        if not np.all(np.isfinite(a)):
            raise ProfileError(f"{label}: contains NaN or infinite samples")
        d = compute_descriptors(a, float(sample_rate))
        if d.silent or d.segments == 0:
            raise ProfileError(f"{label}: silent (nothing above the -70 LUFS gate); a reference needs music")
        return d

    @classmethod
    def from_audio(
        cls, x: np.ndarray, sample_rate: float, *, name: str = "reference", label: str | None = None
    ) -> Profile:
        """Profile of one track given as samples ``[frames]`` or ``[frames, 1 or 2]`` (tolerance 0)."""
        d = cls.check_audio(x, sample_rate, label or name)
        return cls.from_descriptors([d], name=name, provenance={"sources": [label or name]})

    @classmethod
    def from_references(
        cls,
        sources: Any,
        *,
        read: Callable[[str], tuple[np.ndarray, float]] | None = None,
        name: str = "references",
        description: str = "",
        progress: Callable[[int, int, str], None] | None = None,
    ) -> Profile:
        """Combined profile of several references.

        Parameters
        ----------
        sources
            a path (file or folder), or a sequence of paths, folders and
            ``(samples, sample_rate)`` pairs.  A folder stands for the audio
            files directly in it (:data:`AUDIO_EXTENSIONS`, sorted by name).
        read : callable, optional
            ``read(path) -> (samples, sample_rate)``, required when a path is
            given (the real-time layer passes the project's audio reader:
            :func:`mixpilot.realtime.references.profile_from_files`).
        progress : callable, optional
            ``progress(i, n, label)`` before each reference.
        """
        items = expand_sources(sources)
        descs = []
        labels = []
        for i, item in enumerate(items):
            if isinstance(item, tuple):
                x, sr = item
                label = f"reference {i + 1}"
            else:
                label = str(item)
                if read is None:
                    raise ProfileError(f"{label}: reading files needs a read function (see realtime.references)")
                if progress is not None:
                    progress(i, len(items), label)
                x, sr = read(label)
            descs.append(cls.check_audio(x, sr, label))
            labels.append(os.path.basename(label) if not isinstance(item, tuple) else label)
        return cls.from_descriptors(descs, name=name, description=description, provenance={"sources": labels})

    @classmethod
    def build(
        cls,
        sources: Any,
        *,
        name: str = "references",
        description: str = "",
        progress: Callable[[int, int, str], None] | None = None,
        read: Callable[[str], tuple[np.ndarray, float]] | None = None,
    ) -> Profile:
        """Learn a profile from your references: what ``mixpilot profile build`` makes.

        ``sources`` is a path (an audio file, or a folder standing for the
        audio files directly in it), or a sequence of paths, folders and
        ``(samples, sample_rate)`` pairs; each track counts once.  Files are
        read with ``read`` or else the reader the I/O layer registered
        (:func:`set_file_reader`; ``mixpilot.Profile`` comes with mixpilot's
        own: every format libsndfile reads, 3..8 channels downmixed to
        stereo).  Save it with :meth:`save`; aim at it
        with ``--target PATH``.  Raises :class:`ProfileError` or
        ``AudioFileError`` (one line naming the file)::

            taste = mixpilot.Profile.build("my_refs/", name="my taste")
            taste.save("mytaste.json")
        """
        return cls.from_references(
            sources, read=read or _FILE_READER, name=name, description=description, progress=progress
        )

    # -- comparison -----------------------------------------------------------

    def deviation(self, d: Descriptors) -> dict:
        """How ``d`` differs from this profile, per aspect: ``value - target`` and the part outside tolerance.

        Returns a dict of numpy arrays / floats: ``mid_db``, ``side_db``,
        ``width_band_db`` [N_BANDS] and ``width_db``, ``plr_db``, ``lra_lu``,
        ``integrated_lu`` (each ``d - profile``), and for each the same name
        with ``_outside`` appended: the deviation shrunk toward 0 by the
        tolerance (``sign(dev) * max(|dev| - tol, 0)``), what a do-no-harm
        correction would move.  NaN where either side has no value.
        """

        def outside(dev, tol):
            dev = np.asarray(dev, dtype=np.float64)
            return np.sign(dev) * np.maximum(np.abs(dev) - np.nan_to_num(tol), 0.0)

        out: dict = {}
        pairs = (
            ("mid_db", d.mid_db - self.mid_db, self.mid_tol_db),
            ("side_db", d.side_db - self.side_db, self.side_tol_db),
            ("width_band_db", d.width_band_db - self.width_band_db, self.width_band_tol_db),
            ("width_db", d.width_db - self.width_db, self.width_tol_db),
            ("plr_db", d.plr_db - self.plr_db, self.plr_tol_db),
            ("lra_lu", d.lra_lu - self.lra_lu, self.lra_tol_lu),
            ("integrated_lu", d.integrated_lufs - self.integrated_lufs, self.integrated_tol_lu),
        )
        for key, dev, tol in pairs:
            out[key] = dev if isinstance(dev, np.ndarray) else float(dev)
            o = outside(dev, tol)
            out[key + "_outside"] = o if isinstance(dev, np.ndarray) else float(o)
        return out

    def vector(self) -> np.ndarray:
        """Fixed-length float32 form (:data:`VECTOR_NAMES`; NaN -> 0) for a model's conditioning input."""
        parts = [
            self.mid_db,
            self.side_db,
            self.width_band_db,
            [self.width_db, self.plr_db, self.lra_lu],
            self.st_percentiles_lu,
        ]
        v = np.concatenate([np.asarray(p, dtype=np.float64).ravel() for p in parts])
        return np.nan_to_num(v, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)

    # -- files ----------------------------------------------------------------

    def to_dict(self) -> dict:
        """The JSON form (schema :data:`SCHEMA_VERSION`; NaN as ``null``)."""

        def arr(a: ArrayLike) -> list:
            return [None if not math.isfinite(v) else round(float(v), 4) for v in np.asarray(a, dtype=np.float64)]

        def num(v: float) -> float | None:
            return round(float(v), 4) if math.isfinite(v) else None

        return {
            "format": FORMAT,
            "schema_version": SCHEMA_VERSION,
            "name": self.name,
            "description": self.description,
            "tracks": self.tracks,
            "bands_hz": list(self.bands_hz),
            "tone": {k: arr(getattr(self, k)) for k in _band_fields() if not k.startswith("width")},
            "width": {
                "width_db": num(self.width_db),
                "width_tol_db": num(self.width_tol_db),
                "width_band_db": arr(self.width_band_db),
                "width_band_tol_db": arr(self.width_band_tol_db),
            },
            "dynamics": {
                "plr_db": num(self.plr_db),
                "plr_tol_db": num(self.plr_tol_db),
                "lra_lu": num(self.lra_lu),
                "lra_tol_lu": num(self.lra_tol_lu),
                "st_percentiles": list(ST_PERCENTILES),
                "st_percentiles_lu": arr(self.st_percentiles_lu),
                "st_percentiles_tol_lu": arr(self.st_percentiles_tol_lu),
            },
            "loudness": {
                "integrated_lufs": num(self.integrated_lufs),
                "integrated_tol_lu": num(self.integrated_tol_lu),
                "true_peak_dbtp": num(self.true_peak_dbtp),
            },
            "provenance": self.provenance,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1) + "\n"

    @classmethod
    def from_dict(cls, data: Any, source: str = "profile") -> Profile:
        """Validate and build from the JSON form; :class:`ProfileError` naming ``source`` and the bad field."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ProfileError(f'{source}: not a mixpilot profile (no "format": "{FORMAT}")')
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ProfileError(
                f"{source}: profile schema version {version!r}; this mixpilot reads version {SCHEMA_VERSION}"
            )

        def get(path: str) -> Any:
            cur: Any = data
            for part in path.split("."):
                if not isinstance(cur, dict) or part not in cur:
                    raise ProfileError(f"{source}: malformed profile: {path} is missing")
                cur = cur[part]
            return cur

        def array(path: str, n: int = N_BANDS, nonneg: bool = False) -> np.ndarray:
            v = get(path)
            if not isinstance(v, list) or len(v) != n:
                raise ProfileError(f"{source}: malformed profile: {path} must be a list of {n} numbers")
            out = np.empty(n)
            for i, e in enumerate(v):
                if e is None:
                    out[i] = np.nan
                elif isinstance(e, (int, float)) and not isinstance(e, bool) and math.isfinite(e):
                    out[i] = float(e)
                else:
                    raise ProfileError(f"{source}: malformed profile: {path}[{i}] is {e!r}, not a number")
            if nonneg and np.any(out < 0):
                raise ProfileError(f"{source}: malformed profile: {path} has a negative tolerance")
            return out

        def number(path: str, nonneg: bool = False) -> float:
            v = get(path)
            if v is None:
                return math.nan
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
                raise ProfileError(f"{source}: malformed profile: {path} is {v!r}, not a number")
            if nonneg and v < 0:
                raise ProfileError(f"{source}: malformed profile: {path} is negative")
            return float(v)

        bands = get("bands_hz")
        if not isinstance(bands, list) or [float(b) for b in bands if isinstance(b, (int, float))] != list(
            BAND_NOMINAL_HZ
        ):
            raise ProfileError(f"{source}: malformed profile: bands_hz are not the {N_BANDS} bands 25 Hz .. 16 kHz")
        if get("dynamics.st_percentiles") != list(ST_PERCENTILES):
            raise ProfileError(f"{source}: malformed profile: dynamics.st_percentiles must be {list(ST_PERCENTILES)}")
        tracks = get("tracks")
        if not isinstance(tracks, int) or isinstance(tracks, bool) or tracks < 1:
            raise ProfileError(f"{source}: malformed profile: tracks must be a positive integer")
        name, description, provenance = get("name"), data.get("description", ""), data.get("provenance", {})
        if not isinstance(name, str) or not isinstance(description, str) or not isinstance(provenance, dict):
            raise ProfileError(f"{source}: malformed profile: name/description must be text, provenance an object")
        n_st = len(ST_PERCENTILES)
        return cls(
            name=name,
            tracks=tracks,
            mid_db=array("tone.mid_db"),
            mid_tol_db=array("tone.mid_tol_db", nonneg=True),
            mid_time_spread_db=array("tone.mid_time_spread_db", nonneg=True),
            side_db=array("tone.side_db"),
            side_tol_db=array("tone.side_tol_db", nonneg=True),
            side_time_spread_db=array("tone.side_time_spread_db", nonneg=True),
            width_db=number("width.width_db"),
            width_tol_db=number("width.width_tol_db", nonneg=True),
            width_band_db=array("width.width_band_db"),
            width_band_tol_db=array("width.width_band_tol_db", nonneg=True),
            plr_db=number("dynamics.plr_db"),
            plr_tol_db=number("dynamics.plr_tol_db", nonneg=True),
            lra_lu=number("dynamics.lra_lu"),
            lra_tol_lu=number("dynamics.lra_tol_lu", nonneg=True),
            st_percentiles_lu=array("dynamics.st_percentiles_lu", n_st),
            st_percentiles_tol_lu=array("dynamics.st_percentiles_tol_lu", n_st, nonneg=True),
            integrated_lufs=number("loudness.integrated_lufs"),
            integrated_tol_lu=number("loudness.integrated_tol_lu", nonneg=True),
            true_peak_dbtp=number("loudness.true_peak_dbtp"),
            description=description,
            provenance=provenance,
        )

    @classmethod
    def load(cls, name_or_path: str | os.PathLike[str]) -> Profile:
        """A shipped profile by name (``default``, :func:`shipped_profiles`) or a profile JSON file."""
        text_name = os.fspath(name_or_path)
        is_path = os.path.sep in text_name or text_name.endswith(".json") or os.path.isfile(text_name)
        if is_path:
            path = Path(text_name)
        else:
            path = PROFILES_DIR / f"{text_name}.json"
            if not path.is_file():
                names = ", ".join(shipped_profiles()) or "none"
                raise ProfileError(f"profile {text_name!r}: no such shipped profile or file (shipped: {names})")
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ProfileError(f"{path}: no such profile file") from None
        except IsADirectoryError:
            raise ProfileError(f"{path}: is a folder, not a profile JSON file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ProfileError(f"{path}: cannot read the profile ({' '.join(str(exc).split())})") from None
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ProfileError(f"{path}: not valid JSON ({exc})") from None
        return cls.from_dict(data, str(path))

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the JSON atomically (:func:`mixpilot.fileio.write_text_atomic`: temporary file, fsync, rename)."""
        write_text_atomic(path, self.to_json())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Profile):
            return NotImplemented
        for f in fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
                if not np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True):
                    return False
            elif isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
                continue
            elif a != b:
                return False
        return True

    __hash__ = None  # type: ignore[assignment]


#: names of :meth:`Profile.vector`'s entries
VECTOR_NAMES = (
    tuple(f"mid_db_{int(b) if b == int(b) else b}" for b in BAND_NOMINAL_HZ)
    + tuple(f"side_db_{int(b) if b == int(b) else b}" for b in BAND_NOMINAL_HZ)
    + tuple(f"width_band_db_{int(b) if b == int(b) else b}" for b in BAND_NOMINAL_HZ)
    + ("width_db", "plr_db", "lra_lu")
    + tuple(f"st_p{int(p)}_lu" for p in ST_PERCENTILES)
)


def expand_sources(sources: Any) -> list:
    """Flatten references: a path or pair, or a sequence of them; a folder -> its audio files (sorted).

    Raises :class:`ProfileError` for a missing path, a folder without audio
    files, or an empty list.
    """

    def is_pair(v: Any) -> bool:
        return isinstance(v, tuple) and len(v) == 2 and isinstance(v[0], np.ndarray)

    if isinstance(sources, (str, os.PathLike)) or is_pair(sources):
        sources = [sources]
    out: list = []
    for item in sources:
        if isinstance(item, tuple):
            if not is_pair(item):
                raise ProfileError("a reference given as a pair must be (samples array, sample_rate)")
            out.append(item)
            continue
        p = Path(os.fspath(item))
        if p.is_dir():
            files = sorted(q for q in p.iterdir() if q.is_file() and q.suffix.lower() in AUDIO_EXTENSIONS)
            if not files:
                raise ProfileError(f"{p}: no audio files in this folder ({', '.join(AUDIO_EXTENSIONS)})")
            out.extend(str(q) for q in files)
        elif p.exists():
            out.append(str(p))
        else:
            raise ProfileError(f"{p}: no such file or folder")
    if not out:
        raise ProfileError("no references given")
    return out


def shipped_profiles() -> list[str]:
    """Names of the shipped profiles (``models_onnx/profiles/*.json``), ``default`` first."""
    names = sorted(p.stem for p in PROFILES_DIR.glob("*.json")) if PROFILES_DIR.is_dir() else []
    return sorted(names, key=lambda n: (n != "default", n))


def iter_shipped() -> Iterable[Profile]:
    """Every shipped profile, loaded (``default`` first)."""
    for n in shipped_profiles():
        yield Profile.load(n)
