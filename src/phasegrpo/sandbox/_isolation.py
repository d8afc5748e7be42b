"""Linux isolation primitives for the worker, through libc (ctypes): namespaces, a read-only root,
capability drop, no_new_privs, seccomp, rlimits. Standard library only (imported with -I -S).
"""

from __future__ import annotations

import ctypes
import os
import platform
import resource
import struct

_libc = ctypes.CDLL(None, use_errno=True)

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
CLONE_THREAD = 0x00010000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MS_NOATIME, MS_NODIRATIME, MS_RELATIME, MS_STRICTATIME = 1024, 2048, 1 << 21, 1 << 24
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_CAPBSET_DROP = 1, 4, 24
PR_SET_SECCOMP, PR_SET_NO_NEW_PRIVS, PR_SET_CHILD_SUBREAPER = 22, 38, 36
SECCOMP_MODE_FILTER = 2

SANDBOX_UID = SANDBOX_GID = 1000  # the worker's ids inside its user namespace (and the programs', unless root)
PROGRAM_UID = PROGRAM_GID = 1001  # the programs' ids inside when the trainer is root: nobody outside
NOBODY = 65534
TMP_INODES = 4096  # files and folders a worker's private /tmp may hold at once


def _check(result: int, what: str) -> int:
    if result < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")
    return result


def prctl(option: int, arg: int = 0) -> int:
    return _check(_libc.prctl(option, ctypes.c_ulong(arg), 0, 0, 0), f"prctl({option})")


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def setns(fd: int, kind: int) -> None:
    _check(_libc.setns(fd, kind), "setns")


def namespaces_possible() -> bool:
    return platform.system() == "Linux" and platform.machine() in _PIVOT_ROOT


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    encode = lambda text: None if text is None else text.encode()  # noqa: E731
    _check(_libc.mount(encode(source), encode(target), encode(fstype), ctypes.c_ulong(flags), encode(data)),
           f"mount {source} on {target}")


# ---- namespaces and the read-only root (worker start-up) ----

def enter_user_namespace() -> bool:
    """New user, mount, network, IPC, UTS and PID namespaces; this process maps to SANDBOX_UID.

    As root, a helper left outside also maps PROGRAM_UID to `nobody` (only a process with
    CAP_SETUID outside may map a second id): programs then run as a user the kernel limits with
    RLIMIT_NPROC, which it never applies to root. Returns whether PROGRAM_UID is mapped."""
    uid, gid = os.getuid(), os.getgid()
    helper, go = None, None
    if uid == 0:
        go_r, go = os.pipe()
        helper = os.fork()
        if helper == 0:
            try:
                os.close(go)
                target = os.getppid()
                if os.read(go_r, 1) == b"1":
                    for kind, inside, outside in (("uid", SANDBOX_UID, uid), ("gid", SANDBOX_GID, gid)):
                        with open(f"/proc/{target}/{kind}_map", "w") as handle:
                            handle.write(f"{inside} {outside} 1\n{inside + 1} {NOBODY} 1\n")
                    os._exit(0)
            finally:
                os._exit(1)
        os.close(go_r)
    try:
        unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWPID)
        with open("/proc/self/setgroups", "w") as handle:
            handle.write("deny")
    finally:
        if helper is not None:
            os.write(go, b"1")
            os.close(go)
    mapped = helper is not None and os.waitstatus_to_exitcode(os.waitpid(helper, 0)[1]) == 0
    for kind, inside, outside in (("uid", SANDBOX_UID, uid), ("gid", SANDBOX_GID, gid)):
        with open(f"/proc/self/{kind}_map") as handle:
            if handle.read().strip():
                continue  # the helper wrote it
        mapped = False
        with open(f"/proc/self/{kind}_map", "w") as handle:
            handle.write(f"{inside} {outside} 1")
    return mapped


_STATVFS_TO_MS = {os.ST_RDONLY: MS_RDONLY, os.ST_NOSUID: MS_NOSUID, os.ST_NODEV: MS_NODEV, os.ST_NOEXEC: MS_NOEXEC,
                  os.ST_NOATIME: MS_NOATIME, os.ST_NODIRATIME: MS_NODIRATIME, os.ST_RELATIME: MS_RELATIME}


def _bind_read_only(source: str, target: str) -> None:
    mount(source, target, None, MS_BIND | MS_REC)
    # A remount inside a user namespace must keep the flags the outer mount locked (nodev, atime, ...).
    flags = os.statvfs(source).f_flag
    locked = sum(ms for st, ms in _STATVFS_TO_MS.items() if flags & st)
    mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | locked)


def build_root(new_root: str, read_only_paths: list[str], tmp_size_mb: int) -> None:
    """Make `new_root` (an empty folder) this mount namespace's `/`: the interpreter's folders read-only,
    a few devices, an empty size-capped /tmp, and nothing else (no /home, /root, /proc, /etc, /sys)."""
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    mount("tmpfs", new_root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
    for path in read_only_paths:
        if not os.path.lexists(path):
            continue
        target = new_root + path
        if os.path.islink(path) and os.path.dirname(path) == "/":  # merged /usr: /bin -> usr/bin
            os.symlink(os.readlink(path), target)
            continue
        real = os.path.realpath(path)
        if os.path.isdir(real):
            os.makedirs(target, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            open(target, "w").close()
        _bind_read_only(real, target)
    os.makedirs(new_root + "/dev")
    for device in ("null", "zero", "full", "random", "urandom"):
        target = f"{new_root}/dev/{device}"
        open(target, "w").close()
        mount(f"/dev/{device}", target, None, MS_BIND)
    os.makedirs(new_root + "/tmp")
    # Inodes are kernel memory that `size` does not count: cap them too.
    mount("tmpfs", new_root + "/tmp", "tmpfs", MS_NOSUID | MS_NODEV,
          f"size={tmp_size_mb}m,nr_inodes={TMP_INODES},mode=1777")
    os.makedirs(new_root + "/.old")
    pivot_root(new_root, new_root + "/.old")
    os.chdir("/")
    _check(_libc.umount2(b"/.old", MNT_DETACH), "umount old root")
    os.rmdir("/.old")
    mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)


def unmount_quietly(target: str) -> None:
    _libc.umount2(target.encode(), MNT_DETACH)


_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}


def pivot_root(new_root: str, put_old: str) -> None:
    number = _PIVOT_ROOT.get(platform.machine())
    if number is None:
        raise OSError(f"pivot_root: unknown syscall number on {platform.machine()}")
    _check(_libc.syscall(number, new_root.encode(), put_old.encode()), "pivot_root")


# ---- per program: drop everything, then seccomp ----

def drop_privileges(become: int | None, drop_groups: bool) -> None:
    """Leave no capability and no way to regain one (no_new_privs); become the user id `become` if given
    (with no supplementary groups where `drop_groups`, i.e. outside a user namespace)."""
    if become is not None:
        if drop_groups:
            os.setgroups([])
        os.setgid(become)
        os.setuid(become)
    for capability in range(64):
        if _libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) < 0:
            break
    header = struct.pack("II", 0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this thread
    _libc.capset(ctypes.c_char_p(header), ctypes.c_char_p(bytes(24)))
    prctl(PR_SET_NO_NEW_PRIVS, 1)


def set_limits(*, cpu_s: int, memory_mb: int, file_size_mb: int, max_processes: int | None) -> None:
    limits = {
        resource.RLIMIT_CPU: (cpu_s, cpu_s + 1),
        resource.RLIMIT_AS: (memory_mb * 2**20,) * 2,
        resource.RLIMIT_FSIZE: (file_size_mb * 2**20,) * 2,
        resource.RLIMIT_NOFILE: (256, 256),
        resource.RLIMIT_CORE: (0, 0),
        resource.RLIMIT_MEMLOCK: (0, 0),
    }
    if max_processes is not None:
        limits[resource.RLIMIT_NPROC] = (max_processes, max_processes)
    for kind, value in limits.items():
        resource.setrlimit(kind, value)


# x86_64 syscall numbers. Denied for every program: debugging other processes, new namespaces and
# mounts, memory the address-space limit does not count (memfd, SysV and POSIX IPC), kernel attack
# surface no test needs.
_DENIED_ALWAYS = {
    "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311, "unshare": 272, "setns": 308,
    "mount": 165, "umount2": 166, "pivot_root": 155, "chroot": 161, "bpf": 321, "perf_event_open": 298,
    "keyctl": 250, "add_key": 248, "request_key": 249, "userfaultfd": 323, "io_uring_setup": 425,
    "kexec_load": 246, "init_module": 175, "finit_module": 313, "name_to_handle_at": 303,
    "open_by_handle_at": 304, "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsmount": 432,
    "fspick": 433, "mount_setattr": 442, "pidfd_getfd": 438,
    "memfd_create": 319, "memfd_secret": 447, "shmget": 29, "shmat": 30, "shmctl": 31, "semget": 64,
    "semop": 65, "semctl": 66, "semtimedop": 220, "msgget": 68, "msgsnd": 69, "msgrcv": 70, "msgctl": 71,
    "mq_open": 240, "mq_unlink": 241, "mq_timedsend": 242, "mq_timedreceive": 243, "mq_notify": 244,
    "mq_getsetattr": 245,
}
# Denied too when namespaces are unavailable, since then the program shares the host's PIDs and
# network: no sockets, no signals to anyone.
_DENIED_FALLBACK = {
    "socket": 41, "kill": 62, "tkill": 200, "tgkill": 234, "rt_sigqueueinfo": 129, "rt_tgsigqueueinfo": 297,
    "pidfd_open": 434, "pidfd_send_signal": 424,
}
# New processes (threads stay allowed), denied where RLIMIT_NPROC cannot bound them: without
# namespaces, and when the trainer runs as root (the kernel never applies RLIMIT_NPROC to root).
_DENIED_PROCESSES = {"fork": 57, "vfork": 58}
_CLONE, _CLONE3, _SOCKET, _SOCKETPAIR = 56, 435, 41, 53
# clone's flags that make new namespaces (CLONE_NEWTIME shares bits with the exit signal there,
# and clone3, whose flags seccomp cannot read, answers ENOSYS so that libc falls back to clone).
_CLONE_NAMESPACES = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | 0x02000000
_AF_UNIX, _AF_INET, _AF_INET6 = 1, 2, 10
_AUDIT_ARCH_X86_64 = 0xC000003E
_EPERM, _ENOSYS, _EAFNOSUPPORT = 1, 38, 97


def seccomp_available() -> bool:
    return platform.machine() == "x86_64"


def seccomp_filter(is_fallback: bool, deny_processes: bool) -> bytes:
    """The deny-list filter as classic BPF (x86_64)."""
    ld_abs, jeq, jset, ret = 0x20, 0x15, 0x45, 0x06
    allow, deny, kill = 0x7FFF0000, 0x00050000 | _EPERM, 0x80000000
    no_family = 0x00050000 | _EAFNOSUPPORT
    first_argument = (ld_abs, 0, 0, 16)  # low half of args[0]: clone's flags, socket's family
    program = [
        (ld_abs, 0, 0, 4),  # seccomp_data.arch
        (jeq, 1, 0, _AUDIT_ARCH_X86_64),
        (ret, 0, 0, kill),  # the 32-bit ABI would bypass every number below
        (ld_abs, 0, 0, 0),  # seccomp_data.nr
        (0x35, 0, 1, 0x40000000),  # JGE: x32 ABI numbers
        (ret, 0, 0, kill),
        (jeq, 0, 1, _CLONE3), (ret, 0, 0, 0x00050000 | _ENOSYS),
    ]
    # clone: never a new namespace; and, where processes are denied, only threads.
    processes = [(jset, 1, 0, CLONE_THREAD), (ret, 0, 0, deny)] if deny_processes else []
    clone = [first_argument, (jset, 0, 1, _CLONE_NAMESPACES), (ret, 0, 0, deny), *processes, (ret, 0, 0, allow)]
    program += [(jeq, 0, len(clone), _CLONE), *clone]
    # Sockets: unix and inet only (the network namespace is empty); none at all in fallback (below).
    if not is_fallback:
        socket = [first_argument, (jeq, 3, 0, _AF_UNIX), (jeq, 2, 0, _AF_INET), (jeq, 1, 0, _AF_INET6),
                  (ret, 0, 0, no_family), (ret, 0, 0, allow)]
        program += [(jeq, 0, len(socket), _SOCKET), *socket]
    pair = [first_argument, (jeq, 1, 0, _AF_UNIX), (ret, 0, 0, no_family), (ret, 0, 0, allow)]
    program += [(jeq, 0, len(pair), _SOCKETPAIR), *pair]
    denied = dict(_DENIED_ALWAYS)
    if is_fallback:
        denied.update(_DENIED_FALLBACK)
    if deny_processes:
        denied.update(_DENIED_PROCESSES)
    for number in sorted(set(denied.values())):
        program += [(jeq, 0, 1, number), (ret, 0, 0, deny)]
    program.append((ret, 0, 0, allow))
    return b"".join(struct.pack("HBBI", *instruction) for instruction in program)


def install_seccomp(filters: bytes) -> None:
    """Install a filter from `seccomp_filter` on this thread (needs no_new_privs first)."""
    buffer = ctypes.create_string_buffer(filters)
    fprog = struct.pack("HxxxxxxQ", len(filters) // 8, ctypes.addressof(buffer))
    _check(_libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.c_char_p(fprog), 0, 0), "seccomp")
