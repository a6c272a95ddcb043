"""The ARM64 check's machinery (bench/arm64/transcript.py), run here: a recording of every
coder call replays against the stand-in constriction, and a replay whose coder
parameters differ by one array is caught. (The real ARM64 run is bench/arm64/run.sh.)"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_limited

REPO = Path(__file__).resolve().parent.parent
TOOL = REPO / "bench" / "arm64" / "transcript.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "VLAECODEC_MODELS"}   # the shipped default model
    env["VLAECODEC_TRANSCRIPT_MC"] = "0"   # the Monte Carlo case takes minutes (tests/test_mcbb.py covers it)
    # record and replay use ~4.5 s of CPU each (measured): capped at 60 s; the
    # wall-clock guard only catches a hang (they took ~30 s on a loaded 2-core machine).
    return run_limited([sys.executable, str(TOOL), *args], cpu_s=60, hang_guard_s=600,
                       capture_output=True, text=True, env=env, cwd=REPO)


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("transcript")
    r = _run("record", str(out))
    assert r.returncode == 0, r.stderr
    return out


def test_replay_with_the_stand_in_coder_checks_every_call(recording):
    r = _run("replay", str(recording), "--stub")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ALL OK" in r.stdout
    calls = json.loads((recording / "recorded.json").read_text())["cases"]["archive.decode"]
    assert calls > 1000 and f"({calls} coder calls checked" in r.stdout


def test_replay_catches_a_parameter_that_differs(recording, tmp_path):
    for f in recording.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    log = json.loads((tmp_path / "archive.decode.json").read_text())
    i = next(i for i, c in enumerate(log) if c["op"] == "decode" and c["family"] == "Bernoulli")
    log[i]["params"][0] = "0" * 24
    (tmp_path / "archive.decode.json").write_text(json.dumps(log))
    r = _run("replay", str(tmp_path), "--stub")
    assert r.returncode == 1
    assert "archive  decode: FAIL" in r.stdout and "parameters differ" in r.stdout
    assert "archive  encode: ok" in r.stdout
