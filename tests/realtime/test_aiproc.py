"""The AI in its own process (realtime.aiproc) during real ``play`` runs on the JACK dummy server.

Mechanisms only, never timing (issue 16): the process starts, reads the analysis ring from
shared memory, publishes, ends cleanly; killed, it is reported once and the analytic fallback
takes over while the audio goes on.  References: an in-process
:class:`realtime.engine.AnalysisRing` fed the same input (the ring must equal it bit for bit) and
an in-process :class:`inference.worker.InferenceWorker` with the same estimator (the model, or the
analytic matcher aiming at --target's profile, built here from the profile itself) computing the
same windows (the published values must equal its values bit for bit).
"""

from __future__ import annotations

import glob
import os
import signal
import threading

import numpy as np
import pytest

from mixpilot.inference.profile import Profile
from mixpilot.inference.worker import InferenceWorker, load_estimator, reasons_of
from mixpilot.realtime.aiproc import AIProcess, SharedAnalysisRing
from mixpilot.realtime.api import matcher_for
from mixpilot.realtime.engine import AnalysisRing
from mixpilot.realtime.references import resolve_target
from mixpilot.realtime.stream import RunOptions, run

SR = 48000


def _song(seconds: float, seed: int = 11) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    tone = sum(np.sin(2 * np.pi * f * t) for f in (98.0, 196.0, 293.7, 440.0)) * 0.07
    env = 0.6 + 0.4 * np.sin(2 * np.pi * 0.4 * t)
    x = np.stack([tone * env, tone * env[::-1]], axis=1) + 0.02 * rng.standard_normal((t.size, 2))
    return x.astype(np.float32)


def _shm_files() -> set[str]:
    return set(glob.glob(f"/dev/shm/mixpilot-{os.getpid()}-*"))


@pytest.mark.parametrize("target", [None, "dark", "reference"])
def test_ai_process_reads_the_shared_ring_bit_for_bit_and_ends_cleanly(jack_server, tmp_wav, tmp_path, target):
    x = _song(6.0)
    path = tmp_wav(x, SR, name="song.wav")
    reference = None
    if target == "reference":  # one reference: matched (no tolerance), so the AI has something to say
        reference = (
            str(tmp_wav(_song(6.0, seed=3)[:, ::-1] * np.float32(0.5) + _song(6.0, seed=4), SR, name="r.wav")),
        )
        target = None
    seen: dict = {}
    published: list[tuple[float, dict]] = []
    before = _shm_files()

    def on_ai(ai) -> None:
        seen["ai"] = ai
        inner = ai.on_update

        def record(t: float, values: dict) -> None:
            published.append((t, dict(values)))
            if inner is not None:
                inner(t, values)

        ai.on_update = record

    opts = RunOptions(
        mode="play",
        file=str(path),
        seconds=5.5,
        ui=False,
        model="default",
        ai_hop_s=0.5,
        on_ai=on_ai,
        target=target,
        reference=reference,
    )
    res = run(opts)
    assert res.error is None and res.reason == "seconds", res
    ai = seen["ai"]
    assert isinstance(ai, AIProcess) and ai.died is None
    assert ai.proc.returncode == 0  # asked to quit, it quit (no kill)
    assert res.stats["inference"]["process"] is True and res.stats["inference"]["runs"] >= 1
    assert _shm_files() <= before  # the shared-memory files were unlinked once the child had them

    # the shared ring, filled by the audio callback, equals an in-process ring fed the same input
    ring = ai.ring
    assert isinstance(ring, SharedAnalysisRing)
    played = ring.frames_written  # whole 128-frame blocks: the last one may pass --seconds
    assert played % 128 == 0 and played == pytest.approx(5.5 * SR, abs=128) and played <= x.shape[0]
    ref = AnalysisRing(ring.capacity, 2)
    ref.write(x[:played])
    assert np.array_equal(ring.buf, ref.buf)  # bit for bit (array_equal compares the float32 values exactly)

    # what the child published equals the same model on the same windows in this process
    assert published, "the AI process published nothing"
    if reference is not None:  # the profile of the reference as the run resolved it and sent it (AISpec: its dict)
        est = matcher_for(Profile.from_dict(resolve_target(reference, None).to_dict()), "default", lambda t: None)
    elif target is None:
        est = load_estimator("default", lambda t: None)
    else:  # the child built its estimator from the profile's dict; here it is built from the shipped file
        est = matcher_for(Profile.load(target), "default", lambda t: None)
        assert res.stats["model"] == getattr(est, "name", None)
    configure = getattr(est, "configure", None)
    if configure is not None:  # the delivery the run aims at (the target's loudness and ceiling for --target)
        configure(**ai.spec.configure)
    worker = InferenceWorker(est, ref, SR, lambda v, g, e: None, hop_s=0.5)
    # what the AI said it changes and why: "AI (NAME) at T s: WORDS" lines, each the estimator's own
    # words at that hop (inference.worker.reasons_of), computed here on the same stream
    said = [n for n in res.notes if n.startswith(f"AI ({ai.estimator.name}) at ")]
    said_at = {int(round(float(n.split(" at ", 1)[1].split(" s: ", 1)[0]) * SR)): n.split(" s: ", 1)[1] for n in said}
    words_at: dict[int, tuple[str, ...]] = {}
    for end in sorted({int(round(t * SR)) for t, _ in published} | set(said_at)):
        assert end % worker.hop_frames == 0 and end >= worker.first_end
        values = worker.compute(end)
        words_at[end] = reasons_of(est)
        for t, v in published:
            if int(round(t * SR)) == end:
                assert values == v  # float64 through shared memory: exact
    for end, words in said_at.items():
        assert words == ("; ".join(words_at[end]) or "nothing to move toward the target now"), (end, words)
    if ai.reasons_seq:  # the child reported words: the last of them were said (the wind-down flushes them)
        assert said and said[-1].endswith("; ".join(ai.reasons) or "nothing to move toward the target now")
    if reference is not None:  # a reference unlike the song: the AI says what it moves, and it was said
        assert any(words_at.values()) and said, (words_at, res.notes)


def test_ai_process_killed_one_warning_and_the_fallback_takes_over(jack_server, tmp_wav):
    x = _song(9.0, seed=12)
    path = tmp_wav(x, SR, name="song.wav")
    seen: dict = {}
    notes: list[str] = []

    def on_ai(ai) -> None:
        seen["ai"] = ai

    def killer() -> None:
        ai = seen["ai"]
        for _ in range(400):  # until the child has published once (at most 8 s)
            if ai.published >= 1:
                break
            threading.Event().wait(0.02)
        os.kill(ai.pid, signal.SIGKILL)

    opts = RunOptions(mode="play", file=str(path), seconds=8.0, ui=False, model="default", ai_hop_s=0.5, on_ai=on_ai)
    res = run(opts, note=notes.append, on_started=lambda r: threading.Thread(target=killer, daemon=True).start())
    assert res.error is None and res.reason == "seconds", res  # the audio went on to the end
    assert res.stats["seconds"] == pytest.approx(8.0, abs=0.01)
    died = [n for n in notes if "died" in n]
    assert len(died) == 1 and died[0].startswith("warning: ") and "signal 9" in died[0], notes
    ai = seen["ai"]
    inf = res.stats["inference"]
    assert "died" in inf and inf["fallback"]["runs"] >= 1, inf  # the matcher computed windows after the death
    assert ai.status.startswith("AI: matcher")
    assert ai.fallback._thread is not None and not ai.fallback._thread.is_alive()  # stopped with the run


def test_ai_process_that_cannot_start_falls_back_to_a_thread(jack_server, tmp_wav, monkeypatch):
    # a child that cannot come up (here: a python that exits at once) -> one warning, the AI in-process
    import mixpilot.realtime.aiproc as aiproc

    monkeypatch.setattr(aiproc, "_child_command", lambda: ["/bin/false"])
    path = tmp_wav(_song(4.0, seed=13), SR, name="song.wav")
    notes: list[str] = []
    res = run(RunOptions(mode="play", file=str(path), seconds=3.5, ui=False, model="default"), note=notes.append)
    assert res.error is None, res
    assert any("the AI process did not start" in n and "runs in this process instead" in n for n in notes), notes
    assert res.stats["inference"].get("process") is None  # the thread's stats
