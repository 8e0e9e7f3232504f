"""The reading rule: every file the runner reads is a regular file, opened without blocking and
read to a bound (read_regular), named by a path with no symbolic link where it must be
(no_link_path)."""

import errno
import os
import stat

# Every file the runner reads is read by read_regular: opened without following a final
# symlink and without blocking (a FIFO, a device or a socket is refused before any read: the
# open does not wait for a writer), fstat'ed as a regular file, and read up to a bound (more
# is an error, never a partial value). What blocks anyway (a slow filesystem) is bounded by
# the launch's deadline (Deadline).
MAX_SECRET_BYTES = 64 << 10
MAX_CHECK_READ = 1 << 20
MAX_DOC_BYTES = 16 << 20
# pseudo-filesystems: their files are not data (/proc/kmsg blocks and drains the kernel log,
# /dev/zero never ends); a secret or a check's `contains` never reads one
PSEUDO_ROOTS = ("proc", "sys", "dev")


class ReadRefused(Exception):
    """Why a file was not read: a sentence naming no byte of it."""


def read_regular(path, limit, truncate=False):
    """The bytes of the regular file at path, at most `limit` of them (more: ReadRefused, or
    with `truncate` the first `limit`), or ReadRefused."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise ReadRefused("it is a symbolic link") from None
        raise ReadRefused(e.strerror or str(e)) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ReadRefused("it is not a regular file (%s)" % file_kind(st.st_mode))
        chunks, size = [], 0
        while size <= limit:
            try:
                chunk = os.read(fd, min(1 << 16, limit + 1 - size))
            except BlockingIOError:
                raise ReadRefused("reading it would block") from None
            except OSError as e:
                raise ReadRefused(e.strerror or str(e)) from None
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit and not truncate:
            raise ReadRefused("it is larger than %d bytes" % limit)
        return b"".join(chunks)[:limit]
    finally:
        os.close(fd)


def file_kind(mode):
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISLNK, "a symbolic link"),
    ):
        if test(mode):
            return name
    return "not a file"


def no_link_path(path, root="/"):
    """An absolute path with no symlink in any component (each one is lstat'ed), not `..`,
    and not under a pseudo-filesystem, as ROOT/path; else ReadRefused."""
    parts = path.split("/")[1:]
    if not path.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ReadRefused("the path must be absolute and normal (no //, . or ..)")
    if parts[0] in PSEUDO_ROOTS:
        raise ReadRefused("/%s is a pseudo-filesystem" % parts[0])
    at = root
    for part in parts[:-1]:
        at = os.path.join(at, part)
        try:
            st = os.lstat(at)
        except OSError as e:
            raise ReadRefused(e.strerror or str(e)) from None
        if stat.S_ISLNK(st.st_mode):
            raise ReadRefused("/%s is a symbolic link" % os.path.relpath(at, root))
    return os.path.join(at, parts[-1])
