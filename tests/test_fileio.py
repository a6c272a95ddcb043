"""Atomic writes (vlaecodec.fileio): never a partial file, never a silent overwrite."""
from __future__ import annotations

import os

import pytest

from vlaecodec import fileio


def test_writes_bytes_or_a_writer(tmp_path):
    fileio.write_atomic(tmp_path / "a.bin", b"data")
    fileio.write_atomic(tmp_path / "b.bin", lambda f: f.write(b"from a writer"))
    assert (tmp_path / "a.bin").read_bytes() == b"data"
    assert (tmp_path / "b.bin").read_bytes() == b"from a writer"
    assert sorted(os.listdir(tmp_path)) == ["a.bin", "b.bin"]      # no temp files left


def test_refuses_to_overwrite_unless_asked(tmp_path):
    p = tmp_path / "a.bin"
    p.write_bytes(b"precious")
    with pytest.raises(FileExistsError) as e:
        fileio.write_atomic(p, b"new")
    assert e.value.filename == str(p) and p.read_bytes() == b"precious"
    fileio.write_atomic(p, b"new", overwrite=True)
    assert p.read_bytes() == b"new"


def test_missing_folder_and_folder_targets(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such folder"):
        fileio.write_atomic(tmp_path / "nope" / "a.bin", b"x")
    fileio.write_atomic(tmp_path / "made" / "a.bin", b"x", make_parents=True)
    assert (tmp_path / "made" / "a.bin").read_bytes() == b"x"
    with pytest.raises(IsADirectoryError):
        fileio.write_atomic(tmp_path / "made", b"x", overwrite=True)
    fileio.check_writable("-")                                     # stdout: always


def test_cleans_up_on_failure(tmp_path, monkeypatch):
    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(fileio.os, "replace", broken_replace)
    with pytest.raises(OSError):
        fileio.write_atomic(tmp_path / "f.bin", b"data", overwrite=True)
    assert os.listdir(tmp_path) == []

    def failing_writer(f):
        f.write(b"half")
        raise RuntimeError("writer failed")
    monkeypatch.undo()
    with pytest.raises(RuntimeError):
        fileio.write_atomic(tmp_path / "g.bin", failing_writer)
    assert os.listdir(tmp_path) == []


def test_many_files_written_in_one_batch(tmp_path, monkeypatch):
    syncs = []
    monkeypatch.setattr(os, "sync", lambda: syncs.append(sorted(os.listdir(tmp_path))))
    items = [(tmp_path / f"{i}.png", f"image {i}".encode()) for i in range(5)]
    assert fileio.write_many_atomic(items) == 5
    # one sync, while every file was still a temp file (no final name yet)
    assert len(syncs) == 1 and len(syncs[0]) == 5 and all(n.endswith(".tmp") for n in syncs[0])
    assert sorted(os.listdir(tmp_path)) == [f"{i}.png" for i in range(5)]
    assert [(tmp_path / f"{i}.png").read_bytes() for i in range(5)] == [f"image {i}".encode() for i in range(5)]
    with pytest.raises(FileExistsError):
        fileio.write_many_atomic([(tmp_path / "new.png", b"x"), (tmp_path / "2.png", b"y")])
    assert sorted(os.listdir(tmp_path)) == [f"{i}.png" for i in range(5)]   # nothing new, no temps
    fileio.write_many_atomic([(tmp_path / "2.png", b"replaced")], overwrite=True)
    assert (tmp_path / "2.png").read_bytes() == b"replaced"


def test_many_files_nothing_appears_if_making_one_fails(tmp_path):
    def items():
        yield tmp_path / "a.png", b"a"
        yield tmp_path / "b.png", b"b"
        raise RuntimeError("encoder failed")

    with pytest.raises(RuntimeError):
        fileio.write_many_atomic(items())
    assert os.listdir(tmp_path) == []


def test_many_files_a_name_that_appears_meanwhile_is_kept(tmp_path, monkeypatch):
    def sync():   # another program writes b.png after our check, before our rename
        (tmp_path / "b.png").write_bytes(b"theirs")
    monkeypatch.setattr(os, "sync", sync)
    with pytest.raises(FileExistsError):
        fileio.write_many_atomic([(tmp_path / "a.png", b"a"), (tmp_path / "b.png", b"b"), (tmp_path / "c.png", b"c")])
    assert (tmp_path / "b.png").read_bytes() == b"theirs"
    assert sorted(os.listdir(tmp_path)) == ["a.png", "b.png"]   # a was complete; no temps
