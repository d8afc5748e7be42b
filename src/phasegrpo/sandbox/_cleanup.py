"""Removing what a program left behind, whatever shape it gave it. Worker-only module.

Programs can leave very deep folder trees, folders they made unreadable, symlinks pointing at the
host's files, and folders renamed away from where the worker put them. Removal here never recurses
(a deep tree would raise RecursionError) and never needs more than two descriptors: every
sub-folder is moved up beside the folder being emptied, then emptied in its turn. It never
follows a symlink, and never raises: what cannot be removed is left for the next sweep.
"""

from __future__ import annotations

import itertools
import os
import stat

_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
_counter = itertools.count()


def remove_tree(path: str) -> None:
    """Remove `path` (file, symlink or folder tree) without following symlinks; never raises."""
    parent, name = os.path.split(os.path.abspath(path))
    try:
        parent_fd = os.open(parent, _DIRECTORY_FLAGS)
    except OSError:
        return
    try:
        _remove_entry(parent_fd, name)
    finally:
        os.close(parent_fd)


def empty_folder(path: str) -> None:
    """Remove everything inside `path`, keeping `path` itself; never raises."""
    try:
        parent_fd = os.open(path, _DIRECTORY_FLAGS)
    except OSError:
        return
    try:
        for name in _names(parent_fd):
            _remove_entry(parent_fd, name)
    finally:
        os.close(parent_fd)


def _names(fd: int) -> list[str]:
    try:
        return os.listdir(fd)
    except OSError:
        return []


def _is_folder(name: str, dir_fd: int) -> bool | None:
    """True for a real folder, False for anything else (symlinks included), None if it is gone."""
    try:
        return stat.S_ISDIR(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return None


def _remove_entry(parent_fd: int, name: str) -> None:
    is_folder = _is_folder(name, parent_fd)
    if is_folder is None:
        return
    if not is_folder:
        try:
            os.unlink(name, dir_fd=parent_fd)
        except OSError:
            pass
        return
    todo = [name]  # folders beside each other in parent_fd, each still to be emptied and removed
    while todo:
        current = todo.pop()
        try:
            os.chmod(current, 0o700, dir_fd=parent_fd)  # a real folder (checked), so following is safe
        except OSError:
            pass
        try:
            fd = os.open(current, _DIRECTORY_FLAGS, dir_fd=parent_fd)
        except OSError:
            continue
        try:
            for child in _names(fd):
                child_is_folder = _is_folder(child, fd)
                try:
                    if child_is_folder:
                        moved = f".phasegrpo-removing-{os.getpid()}-{next(_counter)}"
                        os.rename(child, moved, src_dir_fd=fd, dst_dir_fd=parent_fd)
                        todo.append(moved)
                    elif child_is_folder is False:
                        os.unlink(child, dir_fd=fd)
                except OSError:
                    pass
        finally:
            os.close(fd)
        try:
            os.rmdir(current, dir_fd=parent_fd)
        except OSError:
            pass
