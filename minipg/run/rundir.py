"""Run directories: claimed atomically, one process at a time, never overwritten by surprise.

A run directory holds config.json, progress.csv, checkpoint.npz (and env_state-<digest>.pkl, see
minipg.run.env_state). Claiming one for a run follows three rules:

1. No check-then-create race: a directory is created with os.mkdir, which fails if it exists,
   so of two processes asking for the same new name exactly one gets it. The default name
   runs/<env>-<algo>-seed<seed> takes the first free suffix (-1, -2, ...) the same way.
2. One process per directory: the claiming process holds an exclusive lock (flock) on the
   directory's .lock file until it finishes. The kernel drops the lock when the process dies,
   however it dies, so a killed run never leaves a stale lock behind.
3. An existing directory with files in it is refused, unless the caller asks to continue it
   (resume) or to replace the run in it (overwrite: minipg's own files are deleted, nothing
   else). An existing empty directory is used as is: it holds nothing to lose.

progress.csv is the one file that grows during a run: ProgressLog appends one complete row per
iteration with a single write and flushes it, so whatever stops the process, the file ends with
a complete row. A resume truncates it (atomically) to the rows of the checkpoint it resumes.
"""
import csv
import io
import os

from minipg.run.checkpoint import CHECKPOINT_FILE
from minipg.run.files import atomic_write, remove_temporaries
from minipg.run.env_state import is_env_state_file

try:
    import fcntl
except ImportError:          # Windows: no flock; the mkdir rules above still hold
    fcntl = None

LOCK_FILE = ".lock"
RUN_FILES = ("config.json", "progress.csv", CHECKPOINT_FILE)
"""minipg's files in a run directory, besides the env state files (is_env_state_file)."""


class RunDirError(ValueError):
    """A run directory that cannot be used as asked (exists, in use, missing, not a folder)."""


class RunDir:
    """A claimed run directory: `path`, and the lock held until release()."""

    def __init__(self, path, lock_fd):
        self.path, self._lock_fd = path, lock_fd

    def file(self, name):
        return os.path.join(self.path, name)

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
    if resume:
        if not os.path.isdir(run_dir):
            raise RunDirError(f"cannot resume {run_dir!r}: no such run directory")
        created = False
    else:
        created = _make_directory(run_dir)
    run = RunDir(run_dir, _lock(run_dir))
    try:
        if not created and not resume:
            _check_reusable(run_dir, overwrite)
        remove_temporaries(run_dir)          # left by a process killed while writing
    except BaseException:
        run.release()
        raise
    return run


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
        return RunDir(path, _lock(path))
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
    for name in contents:
        path = os.path.join(run_dir, name)
        if (name in RUN_FILES or is_env_state_file(name)) and os.path.isfile(path):
            os.unlink(path)


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
    """progress.csv: a header, then one row per iteration, each flushed as one complete write.

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
        self._file = open(path, "a", newline="", encoding="utf-8")

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
        """Append one row; a failed write raises here, at the iteration it happens."""
        self._file.write(self._line(record))
        self._file.flush()

    def sync(self):
        """fsync the rows written so far (before a checkpoint that counts them)."""
        os.fsync(self._file.fileno())

    def close(self):
        self._file.close()
