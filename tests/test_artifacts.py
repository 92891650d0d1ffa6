"""Atomic writes: modes a teammate can read, stale temporaries cleaned, full disks and read-only folders."""
import errno
import os
import stat
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from cxr import artifacts
from cxr.artifacts import atomic_path, write_csv, write_text
from cxr.errors import UserError


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_written_files_respect_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        write_text(tmp_path / "a.txt", "x")
        write_csv(tmp_path / "b.csv", pd.DataFrame({"a": [1]}))
    finally:
        os.umask(old)
    for name in ("a.txt", "b.csv"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode


def temporaries(folder):
    return sorted(p.name for p in folder.glob(".*.tmp"))


def test_a_killed_writers_temporary_is_removed_by_the_next_write(tmp_path):
    killed = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(killed.stdout)  # that process has ended
    stale = tmp_path / f".a.txt.{artifacts._HOST}-{dead_pid}.abc.tmp"
    live = tmp_path / f".a.txt.{artifacts._HOST}-{os.getpid()}.def.tmp"  # a writer still at work
    other = tmp_path / f".b.txt.{artifacts._HOST}-{dead_pid}.ghi.tmp"  # another file's: left for its own next write
    for path in (stale, live, other):
        path.write_text("half")
    write_text(tmp_path / "a.txt", "whole")
    assert temporaries(tmp_path) == sorted([live.name, other.name])
    assert (tmp_path / "a.txt").read_text() == "whole"


def test_a_full_disk_is_one_error_and_the_old_file_stays(tmp_path, monkeypatch):
    target = tmp_path / "oof.csv"
    write_text(target, "old")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(pd.DataFrame, "to_csv", full)
    with pytest.raises(UserError, match=r"cannot write .*oof.csv: No space left on device"):
        write_csv(target, pd.DataFrame({"a": np.arange(3)}))
    assert target.read_text() == "old" and temporaries(tmp_path) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_is_one_error_and_the_old_file_stays(tmp_path):
    target = tmp_path / "oof" / "x.csv"
    write_text(target, "old")
    target.parent.chmod(0o555)
    try:
        with pytest.raises(UserError, match=r"cannot write .*x.csv: Permission denied"):
            write_text(target, "new")
    finally:
        target.parent.chmod(0o755)
    assert target.read_text() == "old"


def test_a_failing_block_leaves_no_temporary_and_its_own_error(tmp_path):
    with pytest.raises(FileNotFoundError):  # an input the block reads is missing: not a write failure
        with atomic_path(tmp_path / "a.txt") as tmp:
            tmp.write_text("half")
            open(tmp_path / "missing.png", "rb")
    assert not (tmp_path / "a.txt").exists() and temporaries(tmp_path) == []


@pytest.fixture
def small_file_system(tmp_path):
    """A 64 KiB tmpfs where the machine lets the tests mount one (root on Linux), else a skip."""
    folder = tmp_path / "fs"
    folder.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (the simulated ENOSPC test covers the logic)")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


def test_a_real_full_file_system(small_file_system):
    target = small_file_system / "oof" / "fold_0.csv"
    write_csv(target, pd.DataFrame({"a": np.arange(10)}))
    before = target.read_bytes()
    with pytest.raises(UserError, match="No space left on device"):
        write_csv(target, pd.DataFrame({"a": np.random.default_rng(0).random(20_000)}))
    assert target.read_bytes() == before and temporaries(target.parent) == []


def test_a_real_read_only_file_system(small_file_system):
    target = small_file_system / "fold_0.csv"
    write_text(target, "old")
    subprocess.run(["mount", "-o", "remount,ro", str(small_file_system)], check=True)
    with pytest.raises(UserError, match="Read-only file system"):
        write_text(target, "new")
    assert target.read_text() == "old"


def test_a_script_writing_into_a_read_only_folder_stops_with_one_line_and_keeps_the_old_file(small_file_system):
    from conftest import one_error_line, run_script

    cwd = small_file_system.parent
    run_script("make_demo.py", "--out", "input/tiny", "--n-train", 12, "--n-dev", 2, "--min-size", 48, "--max-size", 64,
               cwd=cwd)
    run_script("make_folds.py", "--dataset", "tiny", "--n-folds", 2, "--folds-dir", small_file_system, cwd=cwd)
    before = (small_file_system / "tiny.csv").read_bytes()
    subprocess.run(["mount", "-o", "remount,ro", str(small_file_system)], check=True)
    refused = run_script("make_folds.py", "--dataset", "tiny", "--n-folds", 2, "--seed", 7, "--overwrite",
                         "--folds-dir", small_file_system, cwd=cwd, check=False)
    one_error_line(refused, "cannot write", "Read-only file system")
    assert (small_file_system / "tiny.csv").read_bytes() == before
