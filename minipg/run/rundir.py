"""Run directories: claimed atomically, one process at a time, never overwritten by surprise.

A run directory holds config.json, progress.csv, checkpoint.npz (and env_state-<digest>.pkl, see
minipg.run.env_state). Claiming one for a run follows three rules:

1. No check-then-create race: a directory is created with os.mkdir, which fails if it exists,
   so of two processes asking for the same new name exactly one gets it. The default name
   runs/<env>-<algo>-seed<seed> takes the first free suffix (-1, -2, ...) the same way.
2. One process per directory: the claiming process holds an exclusive lock (flock) on the
   directory's .lock file until it finishes. The kernel drops the lock when the process dies,
   however it dies, so a killed run never leaves a stale lock behind. A lock is only as good as
   its file: if .lock is deleted, a second process can create and lock a new one. So before
   each write the run checks that the file at .lock is still the one it locked (same device and
   inode, RunDir.check_lock): if it is gone, the run takes a new one (O_EXCL: only if nobody
   else did first); if another file is there, the run stops with LockLost and writes nothing
   more.
3. An existing directory with files in it is refused, unless the caller asks to continue it
   (resume) or to replace the run in it (overwrite). An existing empty directory is used as
   is: it holds nothing to lose.
4. A run directory says it is minipg's: MARKER_FILE (minipg-run.json), written when the run
   starts, holds a random run id, which every checkpoint of the run records too; a resume
   refuses a checkpoint of another run (copied in from elsewhere). overwrite replaces only a
   folder that is minipg's -- it has the marker, or it is a run of a minipg from before the
   marker (its config.json is a minipg config and its progress.csv has minipg's header) -- and
   deletes minipg's files there, nothing else. The filesystem root, the home directory and the
   current directory are never overwritten.

progress.csv is the one file that grows during a run: ProgressLog appends one complete row per
iteration with a single unbuffered write, and a write that fails (a full disk, a file-size
limit, a signal in the middle) is cut back to the previous row, so the file always ends with a
complete row. A resume truncates it (atomically) to the rows of the checkpoint it resumes.
"""
import contextlib
import csv
import io
import json
import os
import secrets
import time

from minipg.algos.config import config_from_dict
from minipg.algos.registry import ALGOS
from minipg.run.checkpoint import CHECKPOINT_FILE
from minipg.run.files import atomic_write, remove_temporaries
from minipg.run.env_state import is_env_state_file

try:
    import fcntl
except ImportError:          # Windows: no flock; the mkdir rules above still hold
    fcntl = None

LOCK_FILE = ".lock"
MARKER_FILE = "minipg-run.json"
MARKER = "minipg run directory"
"""The marker file's "minipg" entry: what the folder is."""
RUN_FILES = ("config.json", "progress.csv", CHECKPOINT_FILE, MARKER_FILE)
"""minipg's files in a run directory, besides the env state files (is_env_state_file)."""
PROGRESS_HEADER_START = "iteration,env_steps,episodes,mean_return,"
"""How every progress.csv minipg ever wrote begins (how a run from before the marker is
recognised)."""


class RunDirError(ValueError):
    """A run directory that cannot be used as asked (exists, in use, missing, not a folder)."""


class LockLost(RunDirError):
    """The run's .lock was deleted or replaced while the run held it: another process may own
    the directory now."""


class RunDir:
    """A claimed run directory: `path`, its `run_id` (None for a run from before the marker),
    and the lock held until release()."""

    def __init__(self, path, lock_fd, run_id=None):
        self.path, self._lock_fd, self.run_id = path, lock_fd, run_id

    def file(self, name):
        return os.path.join(self.path, name)

    def mark(self):
        """Write the marker with a new run id (a new run, or a run from before the marker)."""
        self.run_id = _write_marker(self.path)

    def check_lock(self):
        """Before a write: raise LockLost unless the file at .lock is still the one this process
        locked. A deleted .lock is taken again, if no other process has created one."""
        if self._lock_fd is None or fcntl is None:
            return
        held = os.fstat(self._lock_fd)
        try:
            now = os.stat(self.file(LOCK_FILE))
        except FileNotFoundError:
            self._take_again()
            return
        if (now.st_dev, now.st_ino) != (held.st_dev, held.st_ino):
            raise LockLost(self._lost("replaced by another file, which another minipg process "
                                      "may hold"))

    def _take_again(self):
        try:
            fd = os.open(self.file(LOCK_FILE), os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        except OSError as error:
            raise LockLost(self._lost(f"deleted, and it could not be taken again "
                                      f"({error.strerror})")) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise LockLost(self._lost("deleted, and another process locked the new one "
                                      "first")) from None
        os.close(self._lock_fd)
        self._lock_fd = fd

    def _lost(self, what):
        return (f"the lock of run directory {self.path!r} was lost: its {LOCK_FILE} was {what}; "
                "this process stopped training and writes nothing more there, so that two "
                "runs never mix their files (check which process owns the directory now)")

    def release(self):
        if self._lock_fd is not None:
            os.close(self._lock_fd)          # closing the descriptor drops the flock
            self._lock_fd = None


def claim(run_dir=None, default_name=None, resume=False, overwrite=False):
    """Create or reopen a run directory and lock it; returns a RunDir.

    run_dir=None creates runs/<default_name>, or the first free runs/<default_name>-<k>.
    resume=True requires an existing directory; overwrite=True deletes minipg's files in it.
    """
    if resume and overwrite:
        raise RunDirError("resume and overwrite exclude each other: continue the run in the "
                          "directory, or replace it")
    if run_dir is None:
        if resume:
            raise RunDirError("resume needs the run directory to continue")
        return _claim_new_default(default_name)
    if not isinstance(run_dir, (str, os.PathLike)):
        raise TypeError(f"run_dir must be a path (str or os.PathLike), got "
                        f"{type(run_dir).__name__}")
    run_dir = os.fspath(run_dir)
    if overwrite:
        _refuse_to_overwrite_outright(run_dir)
    if resume:
        if not os.path.isdir(run_dir):
            raise RunDirError(f"cannot resume {run_dir!r}: no such run directory")
        created = False
    else:
        created = _make_directory(run_dir)
    run = RunDir(run_dir, _lock(run_dir))
    try:
        if resume:
            run.run_id = read_marker(run_dir)
        else:
            if not created:
                _check_reusable(run_dir, overwrite)
            run.mark()
        remove_temporaries(run_dir)          # left by a process killed while writing
    except BaseException:
        run.release()
        raise
    return run


def _refuse_to_overwrite_outright(run_dir):
    """The filesystem root, the home directory and the current directory hold a user's own
    files: overwrite is never pointed at them, whatever they contain."""
    real = os.path.realpath(os.path.expanduser(run_dir))
    for what, path in (("the home directory", os.path.expanduser("~")),
                       ("the current directory", os.getcwd())):
        if real == os.path.realpath(path):
            break
    else:
        if os.path.dirname(real) != real:
            return
        what = "the root of the filesystem"
    raise RunDirError(f"overwrite refused: run directory {run_dir!r} is {what}; overwrite "
                      "replaces a run in a folder of its own (choose one, e.g. runs/NAME)")


def _make_directory(path):
    """os.mkdir(path) after its parents: True if this call created it, False if it existed."""
    parent = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(parent, exist_ok=True)
        os.mkdir(path)
        return True
    except FileExistsError as error:
        if os.path.isdir(path):
            return False
        culprit = path if error.filename in (path, os.path.abspath(path)) else error.filename
        raise RunDirError(f"cannot create run directory {path!r}: {culprit!r} is a file, not "
                          "a directory") from None
    except OSError as error:
        raise RunDirError(f"cannot create run directory {path!r}: {error.strerror} "
                          f"({error.filename!r})") from None


def _claim_new_default(name):
    base = os.path.join("runs", name)
    os.makedirs("runs", exist_ok=True)
    for k in range(100_000):
        path = base if k == 0 else f"{base}-{k}"
        try:
            os.mkdir(path)                   # atomic: exactly one process creates each name
        except FileExistsError:
            continue
        run = RunDir(path, _lock(path))
        try:
            run.mark()
        except BaseException:
            run.release()
            raise
        return run
    raise RunDirError(f"no free run directory name {base}-<k> below k = 100000")


def _check_reusable(run_dir, overwrite):
    contents = sorted(set(os.listdir(run_dir)) - {LOCK_FILE})
    if not contents:
        return
    if not overwrite:
        shown = ", ".join(contents[:4]) + (", ..." if len(contents) > 4 else "")
        raise RunDirError(f"run directory {run_dir!r} already exists and holds {shown}: pass "
                          "--resume to continue that run or --overwrite to replace it "
                          "(resume=... / overwrite=True in Python), or choose another "
                          "--run-dir")
    why_not = _not_minipgs(run_dir, contents)
    if why_not:
        raise RunDirError(f"overwrite refused: {run_dir!r} does not hold a minipg run ({why_not});"
                          " its files are left alone: move them, or choose another --run-dir")
    for name in contents:
        path = os.path.join(run_dir, name)
        if (name in RUN_FILES or is_env_state_file(name)) and os.path.isfile(path):
            os.unlink(path)


def _not_minipgs(run_dir, contents):
    """Why the folder is not a minipg run directory, or "" when it is: it has minipg's marker, or
    it is a run of a minipg from before the marker (its config.json is a minipg config and its
    progress.csv starts with minipg's header)."""
    if read_marker(run_dir) is not None:
        return ""
    shown = ", ".join(contents[:4]) + (", ..." if len(contents) > 4 else "")
    if "config.json" not in contents or "progress.csv" not in contents:
        return f"no {MARKER_FILE}, and no minipg config.json and progress.csv; it holds {shown}"
    try:
        with open(os.path.join(run_dir, "config.json"), encoding="utf-8") as f:
            values = json.loads(f.read(1 << 20))
        config_from_dict(ALGOS[values["algo"]].Config, values).validate()
    except Exception:                       # whatever is wrong with it, it is not minipg's
        return f"no {MARKER_FILE}, and its config.json is not a minipg config"
    try:
        with open(os.path.join(run_dir, "progress.csv"), encoding="utf-8") as f:
            header = f.readline(4096)
    except (OSError, UnicodeDecodeError):
        header = ""
    if not header.startswith(PROGRESS_HEADER_START):
        return f"no {MARKER_FILE}, and its progress.csv does not start with minipg's header"
    return ""


def _write_marker(path):
    """Write path/MARKER_FILE with a new random run id; returns the id."""
    run_id = secrets.token_hex(8)
    marker = {"minipg": MARKER, "run_id": run_id,
              "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    with atomic_write(os.path.join(path, MARKER_FILE), "w", encoding="utf-8") as f:
        f.write(json.dumps(marker, indent=1) + "\n")
    return run_id


def read_marker(path):
    """The run id in a run directory's marker, or None: no marker, or not minipg's."""
    try:
        with open(os.path.join(path, MARKER_FILE), encoding="utf-8") as f:
            marker = json.loads(f.read(4096))
    except (OSError, ValueError):
        return None
    if (isinstance(marker, dict) and marker.get("minipg") == MARKER
            and isinstance(marker.get("run_id"), str)):
        return marker["run_id"]
    return None


def _lock(path):
    """An exclusive flock on path/.lock, or RunDirError if another process holds it."""
    fd = os.open(os.path.join(path, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o644)
    if fcntl is None:
        return fd
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise RunDirError(f"run directory {path!r} is in use by another minipg process; wait "
                          "for it to finish or choose another --run-dir") from None
    return fd


def _csv_line_endings(lines, ending):
    """The lines with every line ending ("\\n", "\\r\\n" or "\\r": a file converted by an
    editor or a tool like dos2unix) made `ending`, the one minipg writes; and whether any
    changed. A last line without an ending (a row cut short) keeps none."""
    converted = []
    for line in lines:
        text = line.rstrip("\r\n")
        converted.append(text + ending if text != line else line)
    return converted, converted != lines


class ProgressLog:
    """progress.csv: a header, then one row per iteration, each one unbuffered write, cut back
    if it fails: the file never ends inside a row.

    keep_rows=None starts a new file (header only); an int keeps the header and the first
    keep_rows rows of the existing file (a resume) and appends after them.
    """

    def __init__(self, path, fields, keep_rows=None):
        self.path, self.fields = path, list(fields)
        if keep_rows is None:
            with atomic_write(path, "w", newline="", encoding="utf-8") as f:
                f.write(self._line(dict(zip(self.fields, self.fields))))
        else:
            self._truncate(keep_rows)
        # O_BINARY (Windows only): the rows' \r\n go to the file as they are.
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | getattr(os, "O_BINARY", 0))
        self._size = os.fstat(self._fd).st_size        # where the last complete row ends

    def _line(self, record):
        buffer = io.StringIO()
        csv.DictWriter(buffer, self.fields, extrasaction="ignore").writerow(record)
        return buffer.getvalue()

    def _truncate(self, keep_rows):
        try:
            with open(self.path, newline="", encoding="utf-8") as f:
                lines = f.readlines()
        except FileNotFoundError:
            raise RunDirError(f"cannot resume: {self.path} is missing") from None
        header = self._line(dict(zip(self.fields, self.fields)))
        lines, converted = _csv_line_endings(lines, header[len(header.rstrip("\r\n")):])
        if not lines or lines[0] != header:
            raise RunDirError(f"cannot resume: {self.path} does not start with minipg's header "
                              f"({header.strip()})")
        complete = [line for line in lines[1:keep_rows + 1] if line.endswith("\n")]
        if len(complete) < keep_rows:
            raise RunDirError(f"cannot resume: {self.path} holds {len(complete)} complete rows, "
                              f"the checkpoint was saved after {keep_rows}")
        if len(lines) != keep_rows + 1 or converted:
            with atomic_write(self.path, "w", newline="", encoding="utf-8") as f:
                f.writelines([header, *complete])

    def write(self, record):
        """Append one row; a failed write raises here, at the iteration it happens, after the
        file is cut back to its last complete row (os.write may write part of the bytes before
        a full disk or a file-size limit stops it)."""
        data = self._line(record).encode("utf-8")
        try:
            written = 0
            while written < len(data):
                written += os.write(self._fd, data[written:])
        except BaseException:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._size)
            raise
        self._size += len(data)

    def sync(self):
        """fsync the rows written so far (before a checkpoint that counts them)."""
        os.fsync(self._fd)

    def close(self):
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)
