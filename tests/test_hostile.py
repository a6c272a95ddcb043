"""Damaged and hostile files: every one is an error (CodecError or ModelError), never a
wrong image or name, and a hostile header costs bounded time and memory.

(a) single-bit flips of small files; (b) crafted headers with valid CRCs, the worst of
them in fresh processes with a CPU-time and peak-RSS budget; (c) the CLI's answer.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import vlaecodec
from vlaecodec import codec, container as C
from vlaecodec.zoo import ModelError

from conftest import TINY_NAME, run_limited, synthetic_digits
from vlaefile import craft, names_list, names_pattern

ERRORS = (vlaecodec.CodecError, ModelError)
NAMES = ["cat.png", "dog.png", "emu.png"]     # not numbered: stored as a zlib list
# Budgets in CPU time, not wall time (a loaded machine stretches wall time, not CPU
# time): a hostile file that made the decoder work as long as the 58 s of CPU one
# 29-byte header used to cost fails them; these files take well under a second.
CPU_LIMIT_S = 20.0
RSS_LIMIT_KIB = 500 * 1024
# A child process also gets RLIMIT_CPU (its budget + START_CPU_S for the imports), so
# a busy decoder is stopped by the kernel. The wall-clock deadline is only a guard
# against a hang that burns no CPU: generous (a child normally finishes in 1-3 s), and
# a child it kills is reported as a hang, never as slow.
START_CPU_S = 10
HANG_GUARD_S = 300.0


@pytest.fixture(scope="module")
def archive(tiny):
    x = list(synthetic_digits(3, seed=51))
    blob = vlaecodec.compress(x, tiny, names=NAMES)
    h, payload = C.unpack(blob)
    assert h.schedule is not None and h.names == NAMES
    return x, blob, len(blob) - len(payload)


def noise(seed: int, n: int) -> bytes:
    """``n`` pseudo-random bytes, seeded (one seed per use): a failure reproduces."""
    return np.random.default_rng(seed).bytes(n)


def _flip(blob: bytes, bit: int) -> bytes:
    b = bytearray(blob)
    b[bit // 8] ^= 1 << (bit % 8)
    return bytes(b)


def _check_flip(blob: bytes, bit: int, x, names, modes) -> str:
    try:
        out = vlaecodec.decompress(_flip(blob, bit))
    except ERRORS:
        return "error"
    # A flip may only "succeed" if it changes nothing that is decoded (a bit the
    # arithmetic coder never reads, say): the very same pixels, names and modes.
    assert len(out.images) == len(x), bit
    assert all(np.array_equal(a, b) for a, b in zip(out.images, x)), f"bit {bit}: wrong pixels"
    assert out.names == names, f"bit {bit}: wrong names"
    assert out.modes == modes, f"bit {bit}: wrong modes"
    return "same"


# ------------------------------------------------------------ (a) bit flips

def test_every_header_bit_flip_of_an_archive_is_caught(archive):
    x, blob, hlen = archive
    results = [_check_flip(blob, bit, x, NAMES, ["1"] * 3) for bit in range(8 * hlen)]
    assert results == ["error"] * (8 * hlen)    # every header bit is covered by a CRC


def test_sampled_payload_bit_flips_of_an_archive_are_caught(archive):
    x, blob, hlen = archive
    rng = random.Random(5)
    bits = sorted({8 * hlen, 8 * hlen + 7, 8 * len(blob) - 1, 8 * len(blob) - 8, 8 * len(blob) - 40}
                  | set(rng.sample(range(8 * hlen, 8 * len(blob)), 20)))
    results = [_check_flip(blob, bit, x, NAMES, ["1"] * 3) for bit in bits]
    assert results.count("error") >= len(results) - 2


def test_sampled_bit_flips_of_a_single_image_file_are_caught(tiny):
    x = list(synthetic_digits(1, seed=52))
    blob = vlaecodec.compress(x, tiny)
    hlen = len(blob) - len(C.unpack(blob)[1])
    rng = random.Random(6)
    # A single image's header has no CRC of its own: the final CRC must catch it.
    bits = sorted(set(rng.sample(range(8 * hlen), 16)) | set(rng.sample(range(8 * hlen, 8 * len(blob)), 8)))
    results = [_check_flip(blob, bit, x, None, ["1"]) for bit in bits]
    assert results.count("error") >= len(results) - 2


# ------------------------------------------------------------ (b) crafted headers, in process

def _hash(tiny) -> str:
    return tiny.sha256[:6]


def _bomb(total: int, unit: bytes = b"\n") -> bytes:
    """zlib data inflating to ``total`` bytes of ``unit``, built without holding them."""
    z = zlib.compressobj(9)
    chunk = unit * (1 << 20)
    parts = [z.compress(chunk) for _ in range(total // len(chunk))]
    return b"".join(parts) + z.flush()


CASES_IN_PROCESS = {
    "huge count, tiny payload": lambda h: craft(h, model_name=TINY_NAME, count=10 ** 9, schedule=[1, 1000],
                                                payload=noise(1, 8)),
    "count over the payload bound": lambda h: craft(h, model_name=TINY_NAME, count=100_000, schedule=[1, 1000],
                                                    payload=noise(2, 8)),
    "count larger than the schedule covers": lambda h: craft(h, model_name=TINY_NAME, count=24_000,
                                                             schedule=[1] + [1000] * 24, payload=noise(3, 8)),
    "huge batch size": lambda h: craft(h, model_name=TINY_NAME, count=10 ** 6 + 1, schedule=[1, 10 ** 6],
                                       payload=noise(4, 4000)),
    "batch over MAX_BATCH": lambda h: craft(h, model_name=TINY_NAME, count=C.MAX_BATCH + 2,
                                            schedule=[1, C.MAX_BATCH + 1], payload=noise(5, 4000)),
    "direct batch over MAX_DIRECT": lambda h: craft(h, model_name=TINY_NAME, count=C.MAX_DIRECT + 2,
                                                    schedule=[C.MAX_DIRECT + 1, 1], payload=noise(6, 4000)),
    "direct images over MAX_DIRECT, no schedule": lambda h: craft(h, model_name=TINY_NAME, count=C.MAX_DIRECT + 1,
                                                                  payload=noise(7, 4000)),
    "huge width and height": lambda h: craft(h, model_name=TINY_NAME, shape=(10 ** 6, 10 ** 6), payload=bytes(8)),
    "largest allowed size, not the model's": lambda h: craft(h, model_name=TINY_NAME, count=2,
                                                             shape=(C.MAX_SIDE, C.MAX_SIDE), payload=bytes(64)),
    "zlib name bomb, 3 images": lambda h: craft(h, model_name=TINY_NAME, count=3, schedule=[1, 2],
                                                names=names_list(_bomb(8 << 20, b"a")), payload=noise(8, 200)),
    "zlib name bomb of newlines, 3 images": lambda h: craft(h, model_name=TINY_NAME, count=3, schedule=[1, 2],
                                                            names=names_list(_bomb(8 << 20)), payload=noise(9, 200)),
    "names pattern, huge width": lambda h: craft(h, model_name=TINY_NAME, count=3, schedule=[1, 2],
                                                 names=names_pattern("a", "b", 10 ** 6, 0), payload=noise(10, 200)),
    "valid CRC, random payload (chain)": lambda h: craft(h, model_name=TINY_NAME, count=3, schedule=[1, 2],
                                                         names=names_list(zlib.compress(b"a\nb\nc")),
                                                         payload=noise(11, 300)),
    "valid CRC, random payload (one image)": lambda h: craft(h, model_name=TINY_NAME, payload=noise(12, 120)),
    "valid CRC, empty payload (chain)": lambda h: craft(h, model_name=TINY_NAME, count=3, schedule=[1, 2]),
    "valid CRC, empty payload (one image)": lambda h: craft(h, model_name=TINY_NAME),
    "direct part far too long": lambda h: craft(h, model_name=TINY_NAME, payload=noise(13, 200_000)),
    "unknown model hash": lambda h: craft("000000", count=3, schedule=[1, 2], payload=noise(14, 300)),
    "unknown model name": lambda h: craft(h, model_name="no-such-model", payload=noise(15, 30)),
}


@pytest.mark.parametrize("case", list(CASES_IN_PROCESS))
def test_crafted_header_is_an_error(tiny, case):
    data = CASES_IN_PROCESS[case](_hash(tiny))
    c0 = time.process_time()      # this process's CPU time (all its threads)
    with pytest.raises(ERRORS):
        vlaecodec.decompress(data)
    assert time.process_time() - c0 < CPU_LIMIT_S


def test_trailing_garbage_is_an_error(archive, tiny):
    x, blob, _ = archive
    for extra in (b"\0", b"\x01", noise(16, 7), noise(17, 5000)):
        with pytest.raises(ERRORS):
            vlaecodec.decompress(blob + extra)
    one = vlaecodec.compress(x[:1], tiny)
    for extra in (b"\0", noise(18, 3), noise(19, 3000)):
        with pytest.raises(ERRORS):
            vlaecodec.decompress(one + extra)


# ------------------------------------------------------------ (b) the worst, in fresh processes

def _limited(script: str, cpu_s: float) -> str:
    """``script`` run under RLIMIT_CPU: SIGXCPU at ``cpu_s`` seconds of CPU, SIGKILL 5 s later."""
    return (f"import resource; resource.setrlimit(resource.RLIMIT_CPU, ({int(cpu_s)}, {int(cpu_s) + 5}))\n"
            + script)


CHILD = r"""
import json, resource, sys, time
limit = 1536 << 20   # address-space cap: a bomb fails here instead of exhausting the machine
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
import vlaecodec
from vlaecodec.zoo import ModelError

def hwm_kib():
    # Peak RSS of this process image. (ru_maxrss would be no use: Linux carries the
    # parent's peak over fork and exec, and the parent, pytest with torch, is large.)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])

data = open(sys.argv[1], "rb").read()
base = hwm_kib()
t0, c0 = time.monotonic(), time.process_time()
try:
    vlaecodec.decompress(data)
    result = "decoded"
except (vlaecodec.CodecError, ModelError) as e:
    result = "error: " + str(e)
except MemoryError:
    result = "MemoryError"
wall, cpu = time.monotonic() - t0, time.process_time() - c0
print("RESULT " + json.dumps({"result": result, "cpu_s": cpu, "wall_s": wall, "base_rss_kib": base,
                              "max_rss_kib": hwm_kib(),
                              "ru_maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def _many_batches(h: str) -> bytes:
    """Fifty full bits-back batches (50,001 images) behind an 8-byte payload: the
    count bound counts the schedule's own bytes as payload, so it passes."""
    k = 50
    return craft(h, model_name=TINY_NAME, count=1 + 1000 * k, schedule=[1] + [1000] * k, payload=noise(20, 8))


def _pattern_bomb(h: str) -> bytes:
    """Two million 520-character names from a 4.5 KB header (names are built while
    parsing, before anything is decoded). The model hash is unknown, so a decoder
    that survives the parse stops right after it."""
    k = 2000
    return craft("000000", count=1 + 1000 * k, schedule=[1] + [1000] * k,
                 names=names_pattern("a" * 255, "b" * 255, 10, 0), payload=bytes(8))


def _zlib_bomb(h: str) -> bytes:
    """~150 KB of zlib inflating to 160 MB of newlines (160 million empty names), for a
    schedule claiming two million images (unknown model hash, as above)."""
    k = 2000
    return craft("000000", count=1 + 1000 * k, schedule=[1] + [1000] * k,
                 names=names_list(_bomb(160 << 20)), payload=bytes(8))


def _one_full_batch(h: str) -> bytes:
    """The largest batch an encoder may write (MAX_BATCH images) behind an 8-byte payload."""
    return craft(h, model_name=TINY_NAME, count=1 + C.MAX_BATCH, schedule=[1, C.MAX_BATCH], payload=noise(21, 8))


def _max_direct(h: str, tiny) -> bytes:
    """MAX_DIRECT directly coded images with the longest direct part the decoder accepts."""
    return craft(h, model_name=TINY_NAME, count=C.MAX_DIRECT,
                 payload=noise(22, C.MAX_DIRECT * codec._max_direct_bytes(tiny.net)))


HOSTILE = {
    "one full batch, tiny payload": _one_full_batch,
    "random payload with valid CRCs": lambda h: craft(h, model_name=TINY_NAME, count=40, schedule=[1, 15, 24],
                                                      payload=noise(23, 400)),
    "many full batches, tiny payload": _many_batches,
    "names pattern bomb": _pattern_bomb,
    "zlib names bomb": _zlib_bomb,
    "longest direct part": _max_direct,
}
XFAIL = {
}


def _run_children(jobs: list[tuple[str, Path]], parallel: int, script: str = CHILD,
                  cpu_limit_s: float = CPU_LIMIT_S + START_CPU_S,
                  hang_guard_s: float = HANG_GUARD_S) -> dict[str, dict]:
    """Run ``script`` on each file, ``parallel`` at a time, each under RLIMIT_CPU; a
    report per job: the child's RESULT line, or why there is none."""
    reports: dict[str, dict] = {}
    running: list = []
    while jobs or running:
        while jobs and len(running) < parallel:
            name, p = jobs.pop(0)
            proc = subprocess.Popen([sys.executable, "-c", _limited(script, cpu_limit_s), str(p)],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
            running.append((name, proc, time.monotonic(), p.stat().st_size))
        for item in list(running):
            name, proc, t0, size = item
            if proc.poll() is None and time.monotonic() - t0 < hang_guard_s:
                continue
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
                reports[name] = {"result": f"hang guard: still running after {hang_guard_s:.0f} s of wall time, "
                                           f"killed (its CPU is capped at {cpu_limit_s:.0f} s by RLIMIT_CPU, so "
                                           "it waited rather than worked: a hang)", "file_bytes": size}
            else:
                out, err = proc.communicate()
                line = [ln for ln in out.splitlines() if ln.startswith("RESULT ")]
                if line:
                    reports[name] = {**json.loads(line[0][7:]), "file_bytes": size}
                elif proc.returncode in (-signal.SIGXCPU, -signal.SIGKILL):
                    reports[name] = {"result": f"over its CPU limit: stopped by RLIMIT_CPU at {cpu_limit_s:.0f} s "
                                               f"of CPU (signal {-proc.returncode})", "file_bytes": size}
                else:
                    reports[name] = {"result": f"crashed (exit {proc.returncode}): {err.strip()[-1500:]}"}
            running.remove(item)
        time.sleep(0.02)
    return reports


@pytest.fixture(scope="module")
def hostile_runs(tiny, tmp_path_factory):
    d = tmp_path_factory.mktemp("hostile")
    jobs = []
    for name, make in HOSTILE.items():
        data = make(_hash(tiny), tiny) if make is _max_direct else make(_hash(tiny))
        p = d / (name.replace(" ", "_").replace(",", "") + ".vlae")
        p.write_bytes(data)
        jobs.append((name, p))
    # CPU time is what is judged, so two children run at once; the known failures
    # (if any) run all at once, each stopped by its CPU limit (the address-space cap
    # keeps the memory bombs near 1.5 GB each).
    reports = _run_children([j for j in jobs if j[0] not in XFAIL], parallel=2)
    reports.update(_run_children([j for j in jobs if j[0] in XFAIL], parallel=len(XFAIL)))
    return reports


@pytest.mark.parametrize("case", [pytest.param(c, marks=XFAIL[c]) if c in XFAIL else c for c in HOSTILE])
def test_hostile_file_costs_bounded_time_and_memory(hostile_runs, case):
    r = hostile_runs[case]
    assert r["result"].startswith("error: "), r
    assert r["cpu_s"] < CPU_LIMIT_S, r
    assert r["max_rss_kib"] < RSS_LIMIT_KIB, r


def test_child_limits_report_what_stopped_a_child(tmp_path):
    """The harness above: a child that keeps the CPU busy is stopped by RLIMIT_CPU and
    reported as over its CPU limit; one that hangs idle is reported by the hang guard."""
    f = tmp_path / "x"
    f.write_bytes(b"")
    busy = _run_children([("busy", f)], 1, script="while True:\n    pass\n", cpu_limit_s=1, hang_guard_s=120)
    assert busy["busy"]["result"].startswith("over its CPU limit"), busy
    idle = _run_children([("idle", f)], 1, script="import time\ntime.sleep(600)\n", cpu_limit_s=5, hang_guard_s=1)
    assert idle["idle"]["result"].startswith("hang guard: still running after 1 s"), idle


def test_run_limited_says_what_stopped_a_child():
    """conftest.run_limited (the other tests' subprocesses): the same two limits."""
    with pytest.raises(pytest.fail.Exception, match="over its CPU limit"):
        run_limited([sys.executable, "-c", "while True: pass"], cpu_s=1, hang_guard_s=120)
    with pytest.raises(pytest.fail.Exception, match="hang guard: .* still running after 1 s"):
        run_limited([sys.executable, "-c", "import time; time.sleep(600)"], cpu_s=5, hang_guard_s=1)
    assert run_limited([sys.executable, "-c", "print(6 * 7)"], cpu_s=5, hang_guard_s=120,
                       capture_output=True, text=True).stdout == "42\n"


# ------------------------------------------------------------ (c) the CLI

def _fails_cleanly(r, *fragments: str) -> str:
    assert r.exit_code == 1, (r.output, r.exception)
    assert isinstance(r.exception, SystemExit), r.exception
    assert "Traceback" not in r.output
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), r.stderr
    for f in fragments:
        assert f in lines[0], lines[0]
    return lines[0]


def test_cli_reports_damaged_files_in_one_line(tmp_path, archive, tiny):
    from vlaecodec.cli.main import cli

    x, blob, hlen = archive
    bad_files = {
        "flip-header.vlae": _flip(blob, 8 * 8 + 3),
        "flip-payload.vlae": _flip(blob, 8 * (hlen + 10)),
        "flip-crc.vlae": _flip(blob, 8 * (hlen - 2)),
        "trailing.vlae": blob + b"garbage",
        "truncated.vlae": blob[:-3],
        "v1.vlae": b"VL\x10" + blob[3:],
        "huge-count.vlae": CASES_IN_PROCESS["huge count, tiny payload"](_hash(tiny)),
        "random-payload.vlae": CASES_IN_PROCESS["valid CRC, random payload (chain)"](_hash(tiny)),
        "name-bomb.vlae": CASES_IN_PROCESS["zlib name bomb, 3 images"](_hash(tiny)),
        "empty.vlae": b"",
        "png.vlae": b"\x89PNG\r\n\x1a\n" + bytes(40),
    }
    for fname, data in bad_files.items():
        f = tmp_path / fname
        f.write_bytes(data)
        out = tmp_path / f"out-{fname}"
        msg = _fails_cleanly(CliRunner().invoke(cli, ["decompress", str(f), "-o", str(out), "-q"]), str(f))
        assert not out.exists(), fname
        if fname == "v1.vlae":
            assert "version 1" in msg
    # `info` parses the header only (no decoding): header damage is still one line.
    for fname in ("flip-header.vlae", "v1.vlae", "huge-count.vlae", "name-bomb.vlae", "empty.vlae"):
        _fails_cleanly(CliRunner().invoke(cli, ["info", "--no-elbo", str(tmp_path / fname)]), fname)
