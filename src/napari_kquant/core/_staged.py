"""Writes that land whole or not at all: temporary files and folders beside their targets,
renamed into place together (`Transaction`). The palette files and kquant's outputs
are written this way; nothing is removed that a transaction did not create or replace.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import shutil
import tempfile
import threading

_UMASK_LOCK = threading.Lock()


@functools.cache
def _umask() -> int:
    """The process's umask, read once (reading it means setting it: not at the package's
    import; `files._files` reads it when it is imported, in the main thread)."""
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


class FileError(ValueError):
    """A problem with a file the user named; reported as one line (exit status 2)."""


def _remove(path) -> None:
    """Remove a file or folder of this transaction: one it kept aside, or a temporary."""
    if not os.path.lexists(path):
        return
    if _is_folder(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        os.remove(path)


class Transaction:
    """Temporary files and folders beside their targets, renamed into place together."""

    def __init__(self):
        self._staged = []  # (temporary path, target, is folder)
        self._new = set()  # targets that must not exist when committed
        self._token = secrets.token_hex(4)  # in our temporary names
        self._making = None  # (folder, prefix) of a temporary being made, until it is staged

    def _prefix(self, folder: str, name: str) -> str:
        # the name cut to 200 bytes: with the token, mkstemp's letters and ".part" it stays
        # within the 255 bytes of a file name however long the target's own name is
        short = name.encode("utf-8", "surrogateescape")[:200].decode("utf-8", "ignore")
        self._making = (folder, f".{short}.{self._token}.")  # a signal may stop what follows
        return self._making[1]

    def stage_bytes(self, path: str, data: bytes) -> None:
        folder, name = os.path.split(os.path.abspath(path))
        try:
            prefix = self._prefix(folder, name)
            fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".part", dir=folder)
        except OSError as e:
            raise FileError(f"cannot write {path!r}: {e.strerror}") from None
        self._staged.append((tmp, path, False))
        self._making = None
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            _usual_mode(tmp, 0o666)
        except OSError as e:
            raise FileError(f"cannot write {path!r}: {e.strerror}") from None

    def stage_folder(self, path: str, new: bool = False) -> str:
        """A temporary folder to fill, renamed to ``path`` on commit. ``new``, or no
        ``path`` now: it must not exist then (the commit fails rather than replace what
        appeared there)."""
        if new or not os.path.lexists(path):  # what appears there meanwhile is not ours
            self._new.add(path)
        folder, name = os.path.split(os.path.abspath(path))
        try:
            tmp = tempfile.mkdtemp(prefix=self._prefix(folder, name), suffix=".part", dir=folder)
        except OSError as e:
            raise FileError(f"cannot write {path!r}: {e.strerror}") from None
        self._staged.append((tmp, path, True))
        self._making = None
        _usual_mode(tmp, 0o777)
        return tmp

    def commit(self) -> None:
        """Rename every staged file into place, all or none.

        Existing targets (files the user asked to replace, or our own zarr
        stores) are first kept aside; if a rename fails, the ones already made
        are undone and the old targets put back. The old targets are removed
        only once everything is in place.
        """
        done = []  # [target, where the old target was moved aside (or None), renamed]
        try:
            appeared = [t for _, t, _ in self._staged if t in self._new and os.path.lexists(t)]
            appeared += [t for _, t, folder in self._staged if not folder and _is_folder(t)]
            if appeared:  # (a file never replaces a folder: it may hold anything)
                raise FileError(
                    f"{appeared[0]!r} appeared while this run worked (another program or run "
                    "writing it?): it is left as it is, and nothing was written"
                )
            for tmp, target, _ in self._staged:
                step = [target, None, False]
                done.append(step)
                if os.path.lexists(target):
                    folder = os.path.dirname(os.path.abspath(target))
                    aside = os.path.join(folder, f".old.{secrets.token_hex(8)}")
                    step[1] = _keep_aside(target, aside)
                os.replace(tmp, target)
                step[2] = True
        except BaseException as e:
            for target, aside, renamed in reversed(done):
                with contextlib.suppress(OSError):  # another writer may have moved it
                    if renamed:  # ours: take it back out
                        if _is_folder(target):
                            shutil.rmtree(target, ignore_errors=True)
                        else:
                            os.remove(target)
                    if aside is not None:
                        os.replace(aside, target)
                        if os.path.lexists(aside):  # a second link of target: rename did nothing
                            os.remove(aside)
            if isinstance(e, OSError):  # named by the target, not by a temporary path
                raise FileError(
                    f"cannot write {done[-1][0]!r}: {e.strerror or e} (is another program "
                    "writing it at the same time?)"
                ) from None
            raise
        self._staged = []
        old = [aside for _, aside, _ in done if aside is not None]
        try:
            for aside in old:
                _remove(aside)
        except BaseException:  # SIGTERM mid-way: the replaced targets still go, then stop
            for aside in old:
                with contextlib.suppress(OSError):
                    _remove(aside)
            raise

    def abort(self) -> None:
        """Remove what was staged (only our own temporary files and folders), also one
        made just before a signal stopped its staging (found by this transaction's token)."""
        ours = {tmp for tmp, _, _ in self._staged}
        if self._making is not None:  # made (perhaps) but never staged
            folder, prefix = self._making
            ours |= {os.path.join(folder, entry) for entry in _listing(folder)
                     if entry.startswith(prefix) and entry.endswith(".part")}  # fmt: skip
        self._making = None
        for tmp in ours:
            with contextlib.suppress(OSError):
                _remove(tmp)
        self._staged = []


def _listing(folder: str) -> list[str]:
    try:
        return os.listdir(folder)
    except OSError:
        return []


def _is_folder(path: str) -> bool:
    return os.path.isdir(path) and not os.path.islink(path)


def _keep_aside(target: str, aside: str) -> str | None:
    """Keep an existing target at ``aside`` until the commit ends (returns ``aside``; None
    when the target is gone): a file by a second (hard) link, so that its path never
    stands empty (another writer of the same path would find nothing there); a folder, or
    a file on a file system without links, by moving it."""
    if not _is_folder(target):
        for _ in range(100):
            try:
                os.link(target, aside, follow_symlinks=False)
                return aside
            except FileNotFoundError:  # replaced by another writer while being linked
                if not os.path.lexists(target):
                    return None
            except OSError:  # no links here (or not allowed): move it
                break
    os.replace(target, aside)
    return aside


def _usual_mode(path: str, mode: int) -> None:
    """Give a temporary file or folder the permissions a plain create would have."""
    os.chmod(path, mode & ~_umask())


def file_path(path, name: str = "path") -> str:
    """``path`` as a str, or an error naming ``name``: a TypeError for None, a number or
    an open file, a ValueError for an empty path or one holding a NUL character."""
    try:
        path = os.fsdecode(path)
    except TypeError:
        raise TypeError(f"{name} must be a file path (str or os.PathLike), got {path!r}") from None
    if not path:
        raise ValueError(f"{name} is empty: give a file path")
    if "\0" in path:
        raise ValueError(f"{name} {path!r}: a path cannot hold a NUL character")
    return path


def os_error(e: OSError) -> FileError:
    """An OSError of a write, as the FileError that names the file."""
    where = f" {e.filename!r}" if getattr(e, "filename", None) else ""
    return FileError(f"cannot write{where}: {e.strerror or e}")


def stage_texts(transaction: Transaction, texts) -> None:
    """Stage (path, text) files, UTF-8; a folder is never replaced by a file."""
    for path, content in texts:
        if os.path.isdir(path):
            raise FileError(f"cannot write {path!r}: it is a folder")
        transaction.stage_bytes(path, content.encode("utf-8"))


def write_texts(texts) -> None:
    """Write (path, text) files: all land, or none."""
    transaction = Transaction()
    try:
        stage_texts(transaction, texts)
        transaction.commit()
    except OSError as e:
        raise os_error(e) from None
    finally:
        transaction.abort()
