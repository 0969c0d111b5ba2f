"""A batch on a real (local) Ray instance (realtime/cluster.py) against the local process pool.

Reference: the local pool's outputs of the same batch -- every file the Ray
tasks deliver must be byte-identical to it, through the object store (the
default) and through a shared file system (``--shared-fs``); a broken input
fails in both, once (an input error is not retried).  Ray is the optional
``cluster`` extra, which ``make test`` installs.
"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from mixpilot.demo import synth_demo
from mixpilot.realtime.api import MasterSettings
from mixpilot.realtime.batch import EXIT_PARTIAL, BatchOptions, run_batch

ray = pytest.importorskip("ray", reason="Ray is the optional 'cluster' extra (pip install -e '.[cluster]')")

SR = 22050


@pytest.fixture(scope="module")
def songs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("in")
    for i in range(3):
        sf.write(str(folder / f"s{i}.wav"), synth_demo(4.0, SR, seed=20 + i).astype(np.float32), SR, subtype="FLOAT")
    (folder / "broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt nonsense" * 4)
    return folder


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    yield
    ray.shutdown()


def _outputs(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.suffix == ".flac"}


def test_ray_outputs_are_bit_identical_to_the_local_pool(songs, tmp_path, local_ray):
    options = BatchOptions(MasterSettings(target_lufs=-16.0), bit_depth="16")  # the default model, 16-bit dither
    code, local = run_batch([str(songs)], str(tmp_path / "local"), options, fmt="flac", workers=2, progress_stream=None)
    assert code == EXIT_PARTIAL and local["counts"]["rendered"] == 3 and local["runner"] == "local"
    reference = _outputs(tmp_path / "local")
    assert sorted(reference) == ["s0.flac", "s1.flac", "s2.flac"]
    for shared in (False, True):
        out = tmp_path / f"ray-{'shared' if shared else 'store'}"
        opts = BatchOptions(options.settings, bit_depth="16", shared_fs=shared)
        code, data = run_batch([str(songs)], str(out), opts, fmt="flac", cluster="auto", progress_stream=None)
        assert code == EXIT_PARTIAL and data["runner"] == "auto"
        assert data["counts"] == {"rendered": 3, "skipped": 0, "failed": 1, "interrupted": 0}
        got = _outputs(out)
        assert got.keys() == reference.keys()
        for name in reference:
            assert got[name] == reference[name], f"{name} differs (shared_fs={shared})"
        broken = [r for r in data["results"] if r["status"] == "failed"]
        # found unreadable when planned: never sent to a worker, reported with 0 attempts
        assert len(broken) == 1 and broken[0]["attempts"] == 0 and "not a readable audio file" in broken[0]["error"]
        rows = {r["input"]: r for r in data["results"]}
        for r in local["results"]:
            if r["status"] == "rendered":
                assert rows[r["input"]]["output_integrated_lufs"] == r["output_integrated_lufs"]
                assert rows[r["input"]]["model"] == r["model"] == "target"


def test_a_killed_ray_worker_is_retried(songs, tmp_path, local_ray):
    # Kill the worker process of a running task (SIGKILL): Ray runs the task again (max_retries=1) and the
    # batch still delivers every file, identical to the local pool's.
    import threading

    import psutil

    options = BatchOptions(MasterSettings(model="none"), bit_depth="16")
    run_batch([str(songs)], str(tmp_path / "local"), options, fmt="flac", workers=2, progress_stream=None)
    killed: list[int] = []
    stop = threading.Event()

    def killer() -> None:
        while not stop.is_set() and not killed:
            for p in psutil.process_iter(["pid", "cmdline"]):
                if "ray::_task" in " ".join(p.info["cmdline"] or []):
                    p.kill()
                    killed.append(p.info["pid"])
                    return
            stop.wait(0.005)

    t = threading.Thread(target=killer, daemon=True)
    t.start()
    try:
        code, data = run_batch(
            [str(songs)], str(tmp_path / "ray"), options, fmt="flac", cluster="auto", progress_stream=None
        )
    finally:
        stop.set()
        t.join(5)
    assert killed, "no running task was found to kill"
    assert code == EXIT_PARTIAL and data["counts"]["rendered"] == 3
    assert _outputs(tmp_path / "ray") == _outputs(tmp_path / "local")


def test_a_missing_cluster_is_one_line(songs, tmp_path):
    from mixpilot.realtime.cluster import ClusterError

    options = BatchOptions(MasterSettings(model="none"))
    with pytest.raises(ClusterError, match="--cluster nowhere: give ray://HOST:PORT, auto"):
        run_batch([str(songs)], str(tmp_path / "o"), options, cluster="nowhere", progress_stream=None)
