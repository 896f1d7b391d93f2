"""Profiles: their file names, a speedscope file read back as shares of the samples, and py-spy's failures
turned into messages that say what to do."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta, timezone

from lab.profiling import (
    Frame,
    ProfilingDenied,
    PySpyMissing,
    Samples,
    failure,
    in_framework,
    in_model,
    read_speedscope,
    stem,
)

# Two threads, as py-spy writes speedscope: shared frames, stacks root first as indexes, weights in seconds.
SPEEDSCOPE = {
    "$schema": "https://www.speedscope.app/file-format-schema.json",
    "exporter": "py-spy@0.4.3",
    "name": "py-spy profile",
    "activeProfileIndex": None,
    "shared": {
        "frames": [
            {"name": "Workload.run", "file": "/app/model_api/workload.py", "line": 125, "col": None},
            {"name": "time_sleep", "file": "/usr/lib/libpython3.11.so.1.0", "line": 0, "col": None},
            {"name": "ForestClassifier.predict_proba", "file": "/sklearn/ensemble/_forest.py", "line": 956},
            {"name": "Tree_predict", "file": "/sklearn/tree/_tree.cpython-311-x86_64-linux-gnu.so", "line": 0},
        ]
    },
    "profiles": [
        {"type": "sampled", "name": 'Process 7 Thread 7 "MainThread"', "unit": "seconds", "startValue": 0,
         "endValue": 4, "samples": [[0, 1], [0, 1], [0, 2, 3]], "weights": [0.02, 0.02, 0.02]},
        {"type": "sampled", "name": 'Process 7 Thread 9 "AnyIO worker thread"', "unit": "seconds",
         "startValue": 0, "endValue": 4, "samples": [[2]], "weights": [0.02]},
    ],
}  # fmt: skip


def test_a_profile_is_named_by_its_scenario_and_the_utc_time_it_started():
    paris = timezone(timedelta(hours=1))

    assert stem("cpu-bound", datetime(2026, 12, 3, 18, 45, 1, tzinfo=paris)) == "cpu-bound-20261203T174501Z"
    assert stem("api", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == "api-20260102T030405Z"


def test_a_speedscope_file_reads_back_as_every_threads_stacks_with_their_weights(tmp_path):
    path = tmp_path / "x.speedscope.json"
    path.write_text(json.dumps(SPEEDSCOPE))

    samples = read_speedscope(path)

    assert len(samples.stacks) == 4
    assert samples.stacks[0] == ((Frame("Workload.run", "/app/model_api/workload.py", 125),
                                  Frame("time_sleep", "/usr/lib/libpython3.11.so.1.0", 0)), 0.02)  # fmt: skip
    assert samples.threads == ['Process 7 Thread 7 "MainThread"', 'Process 7 Thread 9 "AnyIO worker thread"']
    assert round(samples.total, 6) == 0.08


def test_a_frames_share_counts_each_sample_once_whatever_the_depth_at_which_it_appears(tmp_path):
    path = tmp_path / "x.speedscope.json"
    path.write_text(json.dumps(SPEEDSCOPE))
    samples = read_speedscope(path)

    shares = samples.shares()

    assert shares == {"Workload.run": 0.75, "ForestClassifier.predict_proba": 0.5, "time_sleep": 0.5,
                      "Tree_predict": 0.25}  # fmt: skip
    assert next(iter(shares)) == "Workload.run"  # largest first
    assert samples.share(lambda frame: ".so" in frame.file) == 0.75  # native frames: time_sleep, Tree_predict
    assert samples.share(lambda frame: frame.name == "nothing") == 0


def done(code: int, stderr: str) -> subprocess.CompletedProcess[str]:
    return subprocess.CompletedProcess(["py-spy"], code, "", stderr)


def test_a_refused_ptrace_says_how_to_allow_it_natively_and_in_compose():
    error = failure("the API", done(1, "Error: Permission Denied: Try running again with elevated permissions"))

    assert isinstance(error, ProfilingDenied)
    assert "sudo sysctl kernel.yama.ptrace_scope=0" in str(error)
    assert "cap_add: [SYS_PTRACE]" in str(error)


def test_an_image_without_py_spy_says_to_rebuild_it():
    error = failure("a Locust worker", done(126, 'OCI runtime exec failed: exec: "py-spy": executable file not found'))

    assert isinstance(error, PySpyMissing)
    assert "docker compose build" in str(error)


def test_any_other_py_spy_failure_carries_its_output():
    error = failure("the API", done(1, "Error: Failed to find python version from target process"))

    assert "exit 1" in str(error)
    assert "Failed to find python version" in str(error)


def samples_of(*stacks: tuple[Frame, ...]) -> Samples:
    return Samples([(stack, 1.0) for stack in stacks])


LOOP = Frame("Runner.run", "/usr/lib/python3.11/asyncio/runners.py", 118)
ROUTE = Frame("classify", "/app/model_api/routes.py", 70)
MODEL = Frame("Models.default_probabilities", "/app/model_api/models.py", 80)
ONNX = Frame("Session.run", "/onnxruntime/capi/onnxruntime_inference_collection.py", 270)
POOL = Frame("WorkerThread.run", "/anyio/_backends/_asyncio.py", 960)


def test_busy_samples_leave_out_threads_whose_stack_ends_in_a_wait_past_its_last_python_frame():
    samples = samples_of(
        (LOOP, Frame("0x7f", "", None), Frame("epoll_pwait", "/lib/libc.so.6", 0)),  # the loop, idle
        (POOL, Frame("Condition.wait", "/usr/lib/python3.11/threading.py", 320), Frame("0x7e", "", None)),  # idle
        (LOOP, ROUTE, MODEL, ONNX, Frame("0x7d", "/onnxruntime/capi/onnxruntime_pybind11_state.so", 0)),  # busy
        (LOOP, ROUTE, Frame("loads", "/usr/lib/python3.11/json/__init__.py", 346)),  # busy
        # a wait above the last Python frame is not the thread's own: it is busy
        (Frame("acquire_pool", "/x.so", 0), LOOP, ROUTE),
    )

    busy = samples.busy()

    assert len(busy.stacks) == 3
    assert busy.share(in_model) == 1 / 3
    assert busy.share(in_framework, unless=in_model) == 2 / 3  # the route and JSON; the model's sample not twice
    assert samples.share(in_framework, unless=in_model) == 2 / 5
