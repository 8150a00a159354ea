"""Output files: never over an input or each other, one writer at a time, replaced whole."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import secrets
import stat
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from agent.errors import OutputError

log = logging.getLogger(__name__)

STDIO = "-"  # stdin or stdout, never a file


def real_target(path: str | Path) -> Path:
    """The file ``path`` names once symlinks are followed: what gets replaced and locked."""
    return Path(os.path.realpath(path))


def lock_path(path: str | Path) -> Path:
    """The lock file beside ``path``'s target that ``output_lock`` holds."""
    target = real_target(path)
    return target.with_name(target.name + ".lock")


def partial_path(path: str | Path) -> Path:
    """The file the pipeline streams results into before they replace ``path``'s target."""
    target = real_target(path)
    return target.with_name(target.name + ".partial")


def commit(temp: Path, path: str | Path) -> None:
    """Put the finished ``temp`` in place of ``path``'s target in one step: through a symlink,
    keeping the earlier file's permissions, and durably (the directory is synced)."""
    target = real_target(path)
    with contextlib.suppress(OSError):
        os.chmod(temp, stat.S_IMODE(os.stat(target).st_mode))
    os.replace(temp, target)
    _sync_directory(target.parent)


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether two paths name one file as the OS sees it (links and ``./`` included)."""
    if STDIO in (str(a), str(b)):
        return False
    try:
        return os.path.samefile(a, b)
    except OSError:
        # One of them does not exist yet: compare where each would be created.
        return os.path.realpath(a) == os.path.realpath(b)


def check_outputs(
    inputs: Iterable[str | Path | None], outputs: Mapping[str, str | Path | None]
) -> None:
    """Refuse an output (named by its flag) that is an input or another output, before any I/O."""
    sources = [source for source in inputs if source is not None]
    named = [(flag, Path(out)) for flag, out in outputs.items() if out is not None]
    for flag, out in named:
        if str(out) != STDIO and _special(out):
            # Outputs are replaced whole: a device or a pipe would be replaced by a file.
            raise OutputError(f"{flag} {out} is not a regular file; give a file path")
        # The partial and lock files beside an output are written too.
        for written in (out, partial_path(out), lock_path(out)):
            for source in sources:
                if same_file(written, source):
                    raise OutputError(
                        f"{flag} {out} would overwrite the input {source}; choose another file"
                    )
    for i, (flag, out) in enumerate(named):
        for other_flag, other in named[i + 1 :]:
            if same_file(out, other):
                raise OutputError(
                    f"{other_flag} {other} is the same file as {flag} {out}; choose another file"
                )


def _special(path: Path) -> bool:
    """Whether ``path`` exists and is not a regular file or a directory (a device, a pipe)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


@contextlib.contextmanager
def output_lock(path: str | Path, what: str = "output", *, wait: bool = False) -> Iterator[None]:
    """Be the only writer of ``path`` (``what`` names it in errors) for the block; a lock left
    by a dead run is taken over. Held by another run: an ``OutputError``, or with ``wait``, a
    wait until that run ends."""
    if str(path) == STDIO:
        yield
        return
    path = Path(path)
    lock = lock_path(path)
    try:
        # The output's directory is created when it is written; its lock comes first.
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot write {what} to {path}: {exc.strerror}") from None
    fd = _acquire(path, lock, what, wait)
    try:
        yield
    finally:
        # Unlink before unlocking: a run that opened this file meanwhile sees it is gone.
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()
        os.close(fd)


def _acquire(path: Path, lock: Path, what: str, wait: bool = False) -> int:
    """Open, flock and stamp ``lock`` with our pid; the kernel frees a dead holder's flock."""
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise OutputError(f"cannot write {what} to {path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            who = f"another run (pid {holder})" if holder else "another run"
            if not wait:
                os.close(fd)
                raise OutputError(f"{who} is writing {path}") from None
            log.warning("waiting for %s to finish with %s", who, path)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)  # until that run ends (or dies: the kernel frees it)
            except OSError as exc:
                os.close(fd)
                raise OutputError(f"cannot lock {lock}: {exc.strerror}") from None
        except OSError as exc:
            os.close(fd)
            raise OutputError(f"cannot lock {lock}: {exc.strerror}") from None
        # The previous holder may have unlinked the file between our open and our flock; a
        # lock on an unlinked file excludes nobody, so start again on the current one.
        try:
            current = os.stat(lock)
        except FileNotFoundError:
            current = None
        opened = os.fstat(fd)
        if current is not None and (current.st_dev, current.st_ino) == (
            opened.st_dev,
            opened.st_ino,
        ):
            break
        os.close(fd)
    stale = _read_pid(fd)
    if stale:
        log.info("took over the lock on %s from pid %s, which is no longer running", path, stale)
    # The pid only names us to a run we turn away; on a full disk the flock alone still holds.
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _read_pid(fd: int) -> int | None:
    """The pid written in a lock file, or None when it is empty or not a pid."""
    try:
        text = os.pread(fd, 32, 0).decode("ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


def write_atomic(path: str | Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one step, only once all of it is on disk."""
    path = Path(path)
    # Through a symlink to its target: replacing the link itself would cut it.
    target = real_target(path)
    earlier = target.exists()
    temp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as exc:
        raise OutputError(_failure(path, exc, earlier)) from None
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(text.encode("utf-8"))
            stream.flush()
            os.fsync(stream.fileno())
        commit(temp, target)
    except OSError as exc:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        raise OutputError(_failure(path, exc, earlier)) from None


def _failure(path: Path, exc: OSError, earlier: bool) -> str:
    """One line: what went wrong writing ``path``, and that any earlier file is intact."""
    if exc.errno == errno.ENOSPC:
        what = f"disk full writing {path}"
    elif exc.errno == errno.EDQUOT:
        what = f"disk quota exceeded writing {path}"
    else:
        what = f"cannot write {path}: {exc.strerror}"
    return f"{what}; the earlier {path} is unchanged" if earlier else f"{what}; nothing written"


def _sync_directory(directory: Path) -> None:
    """Make the rename durable; some filesystems cannot fsync a directory, which is harmless."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
