"""Atomic writes of files and directories: the target appears complete or not at all."""
from __future__ import annotations

import errno
import os

import pytest

from albert.atomic import atomic_dir, atomic_write, remove_temporaries
from albert.errors import AlbertError


def test_atomic_write_replaces_a_file_or_leaves_it(tmp_path):
    path = tmp_path / "a.json"
    with atomic_write(path) as f:
        f.write("one")
    with pytest.raises(ValueError), atomic_write(path) as f:
        f.write("half")
        raise ValueError("crash")
    assert path.read_text() == "one" and os.listdir(tmp_path) == ["a.json"]


def test_atomic_dir_appears_complete(tmp_path):
    target = tmp_path / "sub" / "best"
    with atomic_dir(target) as tmp:
        assert tmp.parent == target.parent and tmp.name.startswith(".best.tmp-") and not target.exists()
        (tmp / "model.bin").write_bytes(b"1")
        (tmp / "inner").mkdir()
        (tmp / "inner" / "x").write_text("x")
    assert sorted(p.name for p in target.parent.iterdir()) == ["best"]
    assert (target / "model.bin").read_bytes() == b"1" and (target / "inner" / "x").read_text() == "x"


def test_atomic_dir_replaces_or_keeps_an_existing_one(tmp_path):
    target = tmp_path / "d"
    with atomic_dir(target) as tmp:
        (tmp / "v").write_text("1")
    with atomic_dir(target) as tmp:  # replace=True: the new one wins, the old one is gone
        (tmp / "v").write_text("2")
    assert (target / "v").read_text() == "2" and sorted(p.name for p in tmp_path.iterdir()) == ["d"]
    with atomic_dir(target, replace=False) as tmp:  # a concurrent writer got there first: keep theirs
        (tmp / "v").write_text("3")
    assert (target / "v").read_text() == "2" and sorted(p.name for p in tmp_path.iterdir()) == ["d"]


def test_a_failure_leaves_the_old_directory_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "d"
    with atomic_dir(target) as tmp:
        (tmp / "v").write_text("old")
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "v").write_text("half")
        raise RuntimeError("writer failed")
    real = os.replace
    for failing in (".d.old-", ".d.tmp-"):  # moving the old one aside fails, or moving the new one in

        def replace(src, dst, _failing=failing):
            if _failing in str(dst) or _failing in str(src):
                raise OSError(errno.EIO, os.strerror(errno.EIO))
            return real(src, dst)

        monkeypatch.setattr(os, "replace", replace)
        with pytest.raises(OSError), atomic_dir(target) as tmp:
            (tmp / "v").write_text("new")
        monkeypatch.setattr(os, "replace", real)
        assert (target / "v").read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["d"]


def test_remove_temporaries_sweeps_what_a_kill_left(tmp_path):
    for name in (".best.tmp-1-a", ".best.old-2-b", ".step-3.tmp-4-c", "best", ".bestish"):
        (tmp_path / name).mkdir()
    remove_temporaries(tmp_path, "best")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".bestish", ".step-3.tmp-4-c", "best"]
    remove_temporaries(tmp_path, "step-*")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".bestish", "best"]


def test_atomic_write_names_the_file_on_a_full_disk(tmp_path, monkeypatch):
    def full(src, dst):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(AlbertError, match=f"{tmp_path / 'r.json'}: cannot write \\(No space left on device\\)"):
        with atomic_write(tmp_path / "r.json") as f:
            f.write("{}")


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_files_and_directories_get_the_users_umask(tmp_path, umask):
    """What the atomic helpers write has the mode a plain open() or mkdir() would give it (mkstemp
    and mkdtemp alone would leave 0600 and 0700)."""
    from albert.atomic import atomic_path, current_umask, write_json

    before = os.umask(umask)
    try:
        assert current_umask() == umask
        write_json(tmp_path / "a.json", {"x": 1})
        with atomic_path(tmp_path / "b.bin") as tmp:
            tmp.write_bytes(b"1")
        with atomic_dir(tmp_path / "best") as tmp:
            (tmp / "model.bin").write_bytes(b"1")
        (tmp_path / "plain").write_text("x")
        (tmp_path / "plaindir").mkdir()
    finally:
        os.umask(before)
    mode = lambda name: (tmp_path / name).stat().st_mode & 0o777  # noqa: E731
    assert mode("a.json") == mode("b.bin") == mode("plain") == 0o666 & ~umask
    assert mode("best") == mode("plaindir") == 0o777 & ~umask
    assert mode("best/model.bin") == 0o666 & ~umask
