"""Files as a specification: atomic writes (the old file or the new one, never a mix, never a
leftover), the checkpoint format (a marker and a version, checked before reading), run
directories (never overwritten by surprise) and progress.csv (complete rows, truncated on
resume)."""
import os
import stat

import numpy as np
import pytest

from minipg.run import checkpoint as ckpt
from minipg.run import files, rundir
from minipg.run.checkpoint import CheckpointError
from minipg.core.policies import CategoricalPolicy
from minipg.run.checkpoint import load, save_policy
from minipg.run.rundir import ProgressLog, RunDirError


def temporaries(folder):
    return [name for name in os.listdir(folder) if files.TEMP_MARK in name]


# ------------------------------------------------------------------------------------------
# Atomic writes
# ------------------------------------------------------------------------------------------

def test_atomic_write_replaces_the_file_only_once_complete(tmp_path):
    path = tmp_path / "file.txt"
    path.write_text("old")
    with ckpt.atomic_write(path, "w") as f:
        f.write("new")
        assert path.read_text() == "old"                  # not visible until the end
    assert path.read_text() == "new" and temporaries(tmp_path) == []


def test_a_failure_while_writing_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "checkpoint.npz"
    path.write_bytes(b"the good one")
    with pytest.raises(OSError, match="disk full"):
        with ckpt.atomic_write(path) as f:
            f.write(b"half of a new one")
            raise OSError("disk full")
    with pytest.raises(KeyboardInterrupt):
        with ckpt.atomic_write(path) as f:
            raise KeyboardInterrupt
    assert path.read_bytes() == b"the good one" and temporaries(tmp_path) == []


def test_written_files_get_the_usual_permissions_not_mkstemps_0600(tmp_path):
    path = tmp_path / "config.json"
    with ckpt.atomic_write(path, "w") as f:
        f.write("{}")
    expected = 0o666 & ~files._UMASK
    assert stat.S_IMODE(os.stat(path).st_mode) == expected


def test_remove_temporaries_deletes_only_what_atomic_write_leaves(tmp_path):
    (tmp_path / ".checkpoint.npz.abc123.minipg-tmp.npz").write_bytes(b"partial")
    (tmp_path / ".hidden").write_text("mine")
    (tmp_path / "checkpoint.npz").write_bytes(b"good")
    assert files.remove_temporaries(tmp_path) == [".checkpoint.npz.abc123.minipg-tmp.npz"]
    assert sorted(os.listdir(tmp_path)) == [".hidden", "checkpoint.npz"]


# ------------------------------------------------------------------------------------------
# The format
# ------------------------------------------------------------------------------------------

def test_a_checkpoint_carries_the_format_marker_and_version(tmp_path):
    path = tmp_path / "c.npz"
    ckpt.write_checkpoint(path, {"x": np.arange(3)})
    with np.load(path, allow_pickle=False) as data:
        assert str(data[ckpt.FORMAT_KEY]) == "minipg checkpoint"
        assert int(data[ckpt.VERSION_KEY]) == ckpt.FORMAT_VERSION
    saved = ckpt.read_checkpoint(path)
    assert saved.version == ckpt.FORMAT_VERSION
    np.testing.assert_array_equal(saved.arrays["x"], np.arange(3))


def test_policy_save_is_atomic_and_checked_on_load(tmp_path):
    policy = CategoricalPolicy(4, 2, hidden_sizes=(8,), rng=0)
    path = save_policy(policy, tmp_path / "policy")
    assert path.endswith("policy.npz") and temporaries(tmp_path) == []
    assert ckpt.read_checkpoint(path).version == ckpt.FORMAT_VERSION
    np.testing.assert_array_equal(load(path).params, policy.params)
    (tmp_path / "notes.npz").write_text("not an archive")
    with pytest.raises(CheckpointError, match="not an .npz archive"):
        load(tmp_path / "notes.npz")
    with pytest.raises(CheckpointError, match="holds a single policy saved by save_policy"):
        ckpt.load_config(path)


def test_a_value_function_file_is_not_a_policy(tmp_path):
    from minipg.core.value import ValueFunction

    path = save_policy(ValueFunction(4, hidden_sizes=(8,), rng=0), tmp_path / "v.npz")
    with pytest.raises(CheckpointError, match="value function, not a policy"):
        ckpt.load(path)


# ------------------------------------------------------------------------------------------
# Run directories
# ------------------------------------------------------------------------------------------

def test_claim_creates_a_new_directory_and_its_parents(tmp_path):
    run = rundir.claim(tmp_path / "a" / "b" / "run")
    assert os.path.isdir(run.path)
    assert sorted(os.listdir(run.path)) == sorted([rundir.LOCK_FILE, rundir.MARKER_FILE])
    assert rundir.read_marker(run.path) == run.run_id and len(run.run_id) == 16
    run.release()


def test_an_existing_directory_with_files_is_refused_and_left_alone(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(RunDirError, match="already exists and holds config.json.*--resume.*"
                                          "--overwrite"):
        rundir.claim(tmp_path)
    assert (tmp_path / "config.json").read_text() == "{}"


def test_an_existing_empty_directory_is_used(tmp_path):
    """An empty folder (made beforehand, say) is claimed as it is: the run lives in it, not in
    a fresh sibling or a replacement, and it is locked while claimed."""
    empty = tmp_path / "run"
    empty.mkdir()
    inode = os.stat(empty).st_ino
    run = rundir.claim(empty)
    try:
        assert os.path.samefile(run.path, empty) and os.stat(empty).st_ino == inode
        assert sorted(os.listdir(empty)) == sorted([rundir.LOCK_FILE, rundir.MARKER_FILE])
        assert os.listdir(tmp_path) == ["run"]                         # no sibling made
        if rundir.fcntl is not None:
            with pytest.raises(RunDirError, match="in use"):
                rundir.claim(empty)
    finally:
        run.release()
    # Released: free to claim again (now a marked run directory, so only to overwrite or resume).
    rundir.claim(empty, overwrite=True).release()


def test_overwrite_deletes_minipgs_files_and_nothing_else(tmp_path):
    first = rundir.claim(tmp_path)                   # the marker says the folder is minipg's
    first.release()
    for name in (*rundir.RUN_FILES[:-1], "env_state-0123456789abcdef.pkl", "notes.txt"):
        (tmp_path / name).write_text("x")
    second = rundir.claim(tmp_path, overwrite=True)
    second.release()
    assert sorted(os.listdir(tmp_path)) == sorted([rundir.LOCK_FILE, rundir.MARKER_FILE,
                                                   "notes.txt"])
    assert rundir.read_marker(tmp_path) == second.run_id != first.run_id     # a new run


def test_claim_refuses_what_cannot_be_a_run_directory(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunDirError, match="not a directory"):
        rundir.claim(tmp_path / "file")
    with pytest.raises(RunDirError, match="no such run directory"):
        rundir.claim(tmp_path / "missing", resume=True)
    with pytest.raises(RunDirError, match="exclude each other"):
        rundir.claim(tmp_path, resume=True, overwrite=True)
    assert not (tmp_path / "missing").exists()


def test_the_default_name_takes_the_first_free_suffix(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    os.makedirs("runs/env-ppo-seed0")
    os.makedirs("runs/env-ppo-seed0-1")
    run = rundir.claim(None, "env-ppo-seed0")
    assert run.path == os.path.join("runs", "env-ppo-seed0-2")
    run.release()


def test_a_name_taken_between_check_and_create_is_skipped(tmp_path, monkeypatch):
    """The race the old check-then-create lost: another process creates the name just before
    this one. os.mkdir fails for this one, and it takes the next name."""
    monkeypatch.chdir(tmp_path)
    real_mkdir = os.mkdir

    def another_process_was_first(path, *args, **kwargs):
        if path == os.path.join("runs", "env-ppo-seed0") and not os.path.exists(path):
            real_mkdir(path)
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", another_process_was_first)
    run = rundir.claim(None, "env-ppo-seed0")
    assert run.path == os.path.join("runs", "env-ppo-seed0-1")
    run.release()


# ------------------------------------------------------------------------------------------
# progress.csv
# ------------------------------------------------------------------------------------------

FIELDS = ("iteration", "env_steps", "mean_return")


def test_each_row_is_on_disk_as_soon_as_it_is_written(tmp_path):
    log = ProgressLog(tmp_path / "progress.csv", FIELDS)
    log.write({"iteration": 1, "env_steps": 128, "mean_return": 9.5})
    assert (tmp_path / "progress.csv").read_bytes() == \
        b"iteration,env_steps,mean_return\r\n1,128,9.5\r\n"            # before close()
    log.close()


def test_a_resume_keeps_the_header_and_the_rows_of_the_checkpoint(tmp_path):
    path = tmp_path / "progress.csv"
    path.write_bytes(b"iteration,env_steps,mean_return\r\n1,128,1.0\r\n2,256,2.0\r\n3,38")
    log = ProgressLog(path, FIELDS, keep_rows=2)
    log.write({"iteration": 3, "env_steps": 384, "mean_return": 3.0})
    log.close()
    assert path.read_bytes() == (b"iteration,env_steps,mean_return\r\n1,128,1.0\r\n"
                                 b"2,256,2.0\r\n3,384,3.0\r\n")


@pytest.mark.parametrize("content, match", [
    (b"iteration,env_steps,mean_return\r\n1,128,1.0\r\n", "holds 1 complete rows"),
    (b"step,return\r\n", "header"),
], ids=["too-few-rows", "other-header"])
def test_a_resume_refuses_a_progress_csv_that_does_not_fit(tmp_path, content, match):
    path = tmp_path / "progress.csv"
    path.write_bytes(content)
    with pytest.raises(RunDirError, match=match):
        ProgressLog(path, FIELDS, keep_rows=2)
    assert path.read_bytes() == content
