"""Removing what a program left behind, whatever shape it gave it. Worker-only module.

Programs can leave very deep folder trees, folders they made unreadable, symlinks pointing at the
host's files, and folders renamed away from where the worker put them. Removal here never recurses
(a deep tree would raise RecursionError) and holds one descriptor at a time: it walks down into a
sub-folder, removes its files, and climbs back through "..". It never follows a symlink, and
never raises: what cannot be removed is left for the next sweep.
"""

from __future__ import annotations

import os
import stat

_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW


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


def _open_folder(name: str, dir_fd: int) -> int:
    try:
        os.chmod(name, 0o700, dir_fd=dir_fd)  # a real folder (checked by the caller), so following is safe
    except OSError:
        pass
    return os.open(name, _DIRECTORY_FLAGS, dir_fd=dir_fd)


def _remove_files(fd: int) -> list[str]:
    """Unlink everything in the folder `fd` but its sub-folders; returns their names."""
    folders = []
    for name in _names(fd):
        is_folder = _is_folder(name, fd)
        if is_folder:
            folders.append(name)
        elif is_folder is False:
            try:
                os.unlink(name, dir_fd=fd)
            except OSError:
                pass
    return folders


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
    try:
        fd = _open_folder(name, parent_fd)
    except OSError:
        return
    current, folders = name, _remove_files(fd)
    above: list[tuple[str, list[str]]] = []  # per level up: that folder's name and its sub-folders still to do
    try:
        while True:
            if folders:
                child = folders.pop()
                try:
                    child_fd = _open_folder(child, fd)
                except OSError:
                    continue
                above.append((current, folders))
                os.close(fd)
                fd, current, folders = child_fd, child, _remove_files(child_fd)
                continue
            if not above:
                break
            parent = os.open("..", _DIRECTORY_FLAGS, dir_fd=fd)  # the program is gone: ".." is where we came from
            os.close(fd)
            fd = parent
            try:
                os.rmdir(current, dir_fd=fd)
            except OSError:
                pass
            current, folders = above.pop()
    except OSError:
        pass
    finally:
        os.close(fd)
    try:
        os.rmdir(name, dir_fd=parent_fd)
    except OSError:
        pass
