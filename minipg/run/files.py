"""Files written atomically: a reader, or whatever is left after a crash, sees the old file or the
new one, never part of one.

The bytes go to a temporary file in the same directory, which is flushed and fsynced and then
renamed over the target with os.replace. A rename within one directory is atomic. Every file
minipg writes goes through here: checkpoints, config.json, the env's state, plots, GIFs.
"""
import contextlib
import os
import tempfile

__all__ = ["atomic_output", "atomic_write", "remove_temporaries", "TEMP_MARK", "user_path"]

TEMP_MARK = ".minipg-tmp"      # in the name of every temporary file atomic_write creates


def user_path(path):
    """A path as the user meant it: "~" and "~user" expanded to the home directory (a shell
    does it for an unquoted word, Python does not). Anything not a path is returned as it is,
    for the caller's own type check."""
    if isinstance(path, (str, bytes, os.PathLike)):
        return os.path.expanduser(os.fspath(path))
    return path


def _current_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()       # read once: os.umask can only be read by setting it


@contextlib.contextmanager
def atomic_output(path):
    """A temporary file name next to `path`; on a clean exit the file is fsynced and renamed
    to `path` with os.replace (for writers that want a name, like matplotlib's).

    If the block raises (a full disk, Ctrl-C), the temporary file is removed and `path` is left
    as it was. The temporary name keeps the extension (matplotlib picks its format from it).
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    name = os.path.basename(path)
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=f".{name}.",
                                     suffix=TEMP_MARK + os.path.splitext(name)[1])
    os.close(fd)
    try:
        os.chmod(temporary, 0o666 & ~_UMASK)      # mkstemp makes it 0600; use the usual mode
        yield temporary
        with open(temporary, "rb+") as written:
            os.fsync(written.fileno())            # the data is on disk before the rename
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _fsync_directory(directory)                   # and so is the rename


@contextlib.contextmanager
def atomic_write(path, mode="wb", **open_kwargs):
    """Open a file to write `path` atomically (atomic_output):

        with atomic_write("run/checkpoint.npz") as f:
            np.savez(f, **arrays)
    """
    with atomic_output(path) as temporary:
        with open(temporary, mode, **open_kwargs) as f:
            yield f


def _fsync_directory(directory):
    """Make the rename itself durable (POSIX); not possible, nor needed, everywhere."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_temporaries(directory):
    """Delete the temporary files a killed process left in `directory`; returns their names."""
    removed = []
    for name in os.listdir(directory):
        if name.startswith(".") and TEMP_MARK in name:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(directory, name))
                removed.append(name)
    return removed
