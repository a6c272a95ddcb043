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
