"""Where a log's files may go, and how the product creates directories.

pseidon_logs rows are untrusted: the directories they name (base_partition, log_partition, quarantine) must lie inside
the configured roots, `:data-dir` and `:allowed-roots`. A root is a local path or a filesystem URI
(`hdfs://nn:8020/data`, `s3://bucket/lake`); a path from a row is inside it when, after resolving, it has the same
scheme and authority and a path at or below the root's. Local paths are compared after resolving symlinks, so a link
inside the lake cannot lead out of it. These checks need no filesystem access beyond `realpath`.

Directories are created 0o750 whatever the umask, and below the caller's root no symlink is followed.
"""
from __future__ import annotations

import errno
import os
import re
from urllib.parse import urlsplit

PRIVATE_DIR_MODE = 0o750

_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
# Characters that have no business in a lake path and would break (or be substituted in) a Hive LOCATION literal.
_BAD_CHARS = re.compile(r"['\"`\\$\x00-\x1f\x7f]")


def text_problem(text: str) -> str | None:
    """Why TEXT cannot be a path or LOCATION (a quote, backslash, '$' or control character), or None."""
    m = _BAD_CHARS.search(text)
    if m is None:
        return None
    what = "'$' (Hive variable substitution)" if m.group(0) == "$" else repr(m.group(0))
    return f"contains {what}; quotes, backslashes, '$' and control characters are refused"


def redact_url(text: str) -> str:
    """TEXT with the user-info of a URI or JDBC subname (//user:password@) replaced by ***@, for messages."""
    return re.sub(r"(?<=//)[^/?#@]*@", "***@", text)


class Place:
    """A local directory (scheme '') or a location on a URI filesystem, normalised for comparison."""

    __slots__ = ("scheme", "netloc", "path")

    def __init__(self, scheme: str, netloc: str, path: str):
        self.scheme, self.netloc, self.path = scheme, netloc, path

    def __str__(self) -> str:
        return self.path if not self.scheme else f"{self.scheme}://{self.netloc}{self.path}"

    def within(self, root: Place) -> bool:
        if (self.scheme, self.netloc) != (root.scheme, root.netloc):
            return False
        base = root.path.rstrip("/")
        return self.path == root.path or self.path.startswith(base + "/")


def place(text: str, base: str | None = None, real: bool = True) -> Place:
    """TEXT as a Place; a relative local path is taken under BASE (else the working directory). Raises ValueError
    saying why TEXT is refused: '..' segments, a URI with user-info, a query, a fragment, percent-encoding, or a
    file: URI with a host. With REAL, local paths are resolved through symlinks."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("is empty")
    problem = text_problem(text)
    if problem:
        raise ValueError(problem)
    if "://" in text:
        if not _URI.match(text):
            raise ValueError("is neither a path nor a URI (scheme://...)")
        if "?" in text or "#" in text:
            raise ValueError("is a URI with a query or fragment (such as ?endpoint_override=); "
                             "filesystem options belong in pseidon.edn, not in a row")
        if "%" in text:
            raise ValueError("is a URI with percent-encoding, which is refused")
        s = urlsplit(text)
        if "@" in s.netloc:
            raise ValueError("is a URI with user-info (user:password@); credentials never go in a path")
        scheme = s.scheme.lower()
        _no_dotdot(s.path)
        if scheme != "file":
            return Place(scheme, s.netloc.lower(), "/" + "/".join(p for p in s.path.split("/") if p not in ("", ".")))
        if s.netloc:
            raise ValueError("is a file: URI with a host; write file:///absolute/path")
        text = s.path
    _no_dotdot(text)
    path = os.path.join(base, text) if base is not None and not os.path.isabs(text) else text
    path = os.path.abspath(path)
    return Place("", "", os.path.realpath(path) if real else path)


def _no_dotdot(path: str) -> None:
    if ".." in path.replace("\\", "/").split("/"):
        raise ValueError("has a '..' segment")


def outside(text: str, roots: list[str] | tuple[str, ...], base: str | None = None) -> str | None:
    """None when TEXT (relative: under BASE) lies inside one of ROOTS, else why not (a short phrase)."""
    try:
        target = place(text, base)
    except ValueError as e:
        return str(e)
    if any(target.within(r) for r in _places(roots)):
        return None
    return (f"resolves to {redact_url(str(target))}, outside the allowed roots ({', '.join(roots)}); list its root "
            f"in :allowed-roots of pseidon.edn if it is meant")


def _places(roots) -> list[Place]:
    out = []
    for r in roots:
        try:
            out.append(place(r))
        except ValueError:  # a root refused by the config check (Settings built by hand) confines nothing
            continue
    return out


def makedirs_private(path: str, root: str | None = None, mode: int = PRIVATE_DIR_MODE) -> None:
    """Create the local directory PATH and its missing parents with MODE (0o750: not world-readable), whatever the
    umask. Directories that exist are left as they are.

    With ROOT (a directory PATH must be in, e.g. the log's resolved base_partition): below ROOT no symlink is
    followed - a component that is a symlink fails with OSError (ELOOP/ENOTDIR), so a link planted in the lake
    cannot redirect files elsewhere. ROOT itself may be, or lie under, a symlink (the operator's choice)."""
    path = os.path.abspath(path)
    top = os.path.abspath(root) if root else None
    if top is not None and path != top and not path.startswith(top.rstrip("/") + "/"):
        raise ValueError(f"{path} is not under {top}")
    if top is None:
        _makedirs_following(path, mode)
        return
    _makedirs_following(top, mode)
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for name in [p for p in os.path.relpath(path, top).split("/") if p not in ("", ".")]:
            try:
                os.mkdir(name, mode, dir_fd=fd)
                created = True
            except FileExistsError:
                created = False
            nfd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            os.close(fd)
            fd = nfd
            if created:
                os.fchmod(fd, mode)  # mkdir's mode is masked by the umask
    finally:
        os.close(fd)


def _makedirs_following(path: str, mode: int) -> None:
    missing = []
    p = path
    while not os.path.isdir(p):
        missing.append(p)
        parent = os.path.dirname(p)
        if parent == p:
            break
        p = parent
    for d in reversed(missing):
        try:
            os.mkdir(d, mode)
        except FileExistsError:
            if not os.path.isdir(d):
                raise NotADirectoryError(errno.ENOTDIR, "not a directory", d) from None
            continue
        os.chmod(d, mode)  # mkdir's mode is masked by the umask


__all__ = ["PRIVATE_DIR_MODE", "Place", "place", "outside", "text_problem", "redact_url", "makedirs_private"]
