"""Model files from strangers, checked before any framework reads them.

A model file may name other files (a Core ML package's manifest and weights; ONNX Runtime
itself refuses external data outside the model's folder) and may declare sizes (the members of
a `.keras` or `.pt` zip). Before a model is loaded, hashed or measured, `check_model_path`
makes sure that:
- every path it names resolves inside it (symlinks leading out are refused unless the user
  trusts the model, `--trust-model`);
- it holds only regular files and directories: devices, FIFOs, sockets and /proc entries are
  never read, trusted or not;
- what it declares fits the archive budget (`archive_budget()`, a quarter of physical memory
  by default, `CONVBENCH_ARCHIVE_BUDGET` in GiB to change it), and each metadata member
  (`config.json`, `Manifest.json`) fits `METADATA_LIMIT`.
Walking, hashing and sizing never follow a link inside a model: `walk` yields links as links.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import zipfile
from pathlib import Path
from typing import Iterator

from convbench.models.load import ModelLoadError

GIB = 1 << 30
METADATA_LIMIT = 64 << 20  # a model's JSON metadata: Keras configs of large models are < 10 MB
MAX_MEMBERS = 100_000

_TRUST_HINT = "pass --trust-model only if you trust the file's author"


class UnsafeFileError(ModelLoadError):
    """A model file refused before anything reads it; the message says why and what to do."""


def physical_memory() -> int:
    """Bytes of memory this machine (or this container's cgroup, when lower) has."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for limit in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(limit).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return total


def archive_budget() -> int:
    """Bytes a model may declare in all (archive members, package files): a quarter of
    physical memory, or `CONVBENCH_ARCHIVE_BUDGET` GiB (0: no budget)."""
    env = os.environ.get("CONVBENCH_ARCHIVE_BUDGET")
    if env:
        try:
            value = float(env)
        except ValueError:
            value = -1
        if value < 0:
            raise ValueError(f"CONVBENCH_ARCHIVE_BUDGET={env!r}: give a number of GiB, e.g. "
                             f"4, or 0 for no budget")
        return int(value * GIB) if value else 1 << 62
    return physical_memory() // 4


def size_text(n: int) -> str:
    """Bytes as a reader takes them in: "3.9 GiB", "80 MiB"."""
    return f"{n / GIB:.3g} GiB" if n >= GIB else f"{n / (1 << 20):.3g} MiB"


def _special(mode: int) -> bool:
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode))


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def model_path(path: str | os.PathLike) -> Path:
    """The model's own path, resolved (a link the user names is theirs to follow), checked to be a
    regular file or a directory; /proc and /sys are never read."""
    p = Path(path)
    try:
        real = p.resolve(strict=True)
        st = real.stat()
    except OSError as e:
        raise ModelLoadError(f"{path}: cannot be read ({e.strerror or e})") from None
    if _special(st.st_mode) or _system(real):
        kind = _kind(st.st_mode) if _special(st.st_mode) else "a system file"
        raise UnsafeFileError(f"{path}: {kind}, not a model file; give the path of a model file")
    return real


def _system(p: Path) -> bool:
    """/proc and /sys (whose files stat as regular and read as anything) and /dev (but not
    the shared-memory files users keep in /dev/shm)."""
    top = p.parts[1:3]
    return top[:1] in (("proc",), ("sys",)) or (top[:1] == ("dev",) and top != ("dev", "shm"))


def walk(root: str | os.PathLike) -> Iterator[tuple[Path, os.stat_result]]:
    """Every entry under directory `root` with its `lstat`, in path order, links not followed."""
    found = []
    for here, dirs, files in os.walk(root, followlinks=False):
        found += [Path(here) / name for name in dirs + files]
        if len(found) > MAX_MEMBERS:
            raise UnsafeFileError(f"{root}: more than {MAX_MEMBERS} files; refused as a model")
    for p in sorted(found):
        yield p, p.lstat()


def _inside(target: Path, root: Path) -> bool:
    return target == root or root in target.parents


def _check_link(link: Path, root: Path, trust: bool, what: str) -> os.stat_result:
    """A link inside a model: what it leads to must be a regular file or directory outside
    /proc, /sys and /dev (always), and inside `root` (unless `trust`); returns its stat."""
    target = Path(os.path.realpath(link))
    to = f"{os.readlink(link)}" + (f" ({target})" if str(target) != os.readlink(link) else "")
    try:
        st = target.stat()
    except OSError as e:
        why = "a loop of links" if e.errno == errno.ELOOP else "which does not exist"
        raise ModelLoadError(f"{link}: a symlink in {what} to {to}, {why}") from None
    if _special(st.st_mode) or _system(target):
        kind = _kind(st.st_mode) if _special(st.st_mode) else "a system file"
        raise UnsafeFileError(f"{link}: a symlink in {what} to {to}, {kind}; never read, "
                              f"trusted or not")
    if not _inside(target, root) and not trust:
        raise UnsafeFileError(f"{link}: a symlink in {what} that points outside it (to {to}); "
                              f"refused: copy the file into the model, or {_TRUST_HINT}")
    return st


def check_tree(root: str | os.PathLike, trust: bool = False, budget: int | None = None,
               what: str = "the model", _seen: set | None = None) -> int:
    """Check a model directory (a Core ML package, a SavedModel): no special files, no link
    leading out (unless `trust`: then what it leads to is checked the same way), at most
    `budget` bytes in all. Returns the bytes."""
    root = model_path(root)
    budget = archive_budget() if budget is None else budget
    seen = {root} if _seen is None else _seen
    total = 0
    for p, st in walk(root):
        if stat.S_ISLNK(st.st_mode):
            st = _check_link(p, root, trust, what)
            target = Path(os.path.realpath(p))
            if stat.S_ISDIR(st.st_mode) and not _inside(target, root) and target not in seen:
                seen.add(target)
                total += check_tree(target, trust, budget - total, what, seen)
        elif _special(st.st_mode):
            raise UnsafeFileError(f"{p}: {_kind(st.st_mode)} inside {what}; never read")
        if stat.S_ISREG(st.st_mode):
            total += st.st_size
        if total > budget:
            raise UnsafeFileError(
                f"{root}: holds more than {size_text(budget)}, the budget for a model; if it "
                f"is genuine, raise CONVBENCH_ARCHIVE_BUDGET (GiB)")
    return total


def check_zip(path: str | os.PathLike, budget: int | None = None) -> int:
    """Check a zip archive (`.keras`, PyTorch's zip checkpoints, `.pt2`) by what its central
    directory declares, before anything inflates it: members in all within `budget`, JSON
    metadata within `METADATA_LIMIT`. Returns the declared bytes; 0 for a file that is not
    a zip (its loader says what is wrong with it)."""
    budget = archive_budget() if budget is None else budget
    entries, directory = _zip_directory(path)
    if entries > MAX_MEMBERS or directory > METADATA_LIMIT:
        raise UnsafeFileError(f"{path}: an archive of {entries} members ({size_text(directory)} "
                              f"of directory); refused (at most {MAX_MEMBERS} members)")
    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return 0
    if len(infos) > MAX_MEMBERS:
        raise UnsafeFileError(f"{path}: an archive of {len(infos)} members; refused (at most "
                              f"{MAX_MEMBERS})")
    total = 0
    for info in infos:
        total += info.file_size
        if info.filename.endswith(".json") and info.file_size > METADATA_LIMIT:
            raise UnsafeFileError(
                f"{path}: its {info.filename} inflates to {size_text(info.file_size)} (from "
                f"{info.compress_size} bytes); model metadata is never that large: refused "
                f"as a decompression bomb")
    if total > budget:
        raise UnsafeFileError(
            f"{path}: its members inflate to {size_text(total)}, above the "
            f"{size_text(budget)} budget for a model (a quarter of memory by default); if it is "
            f"genuine, raise CONVBENCH_ARCHIVE_BUDGET (GiB)")
    return total


def _zip_directory(path: str | os.PathLike) -> tuple[int, int]:
    """(members, bytes of central directory) a zip's end record declares, read from its last
    64 KiB before the directory itself is parsed; (0, 0) when it has none."""
    import struct

    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - (1 << 16) - 22))
        tail = f.read()
        at = tail.rfind(b"PK\x05\x06")
        if at < 0 or len(tail) - at < 22:
            return 0, 0
        entries, directory = struct.unpack("<HL", tail[at + 10:at + 16])
        locator = tail[at - 20:at] if at >= 20 else b""
        if locator[:4] == b"PK\x06\x07":  # zip64: the counts live in the zip64 end record
            f.seek(struct.unpack("<Q", locator[8:16])[0])
            record = f.read(56)
            if record[:4] == b"PK\x06\x06" and len(record) == 56:
                entries, directory = struct.unpack("<QQ", record[32:48])
    return entries, directory


def package_root_model(path: str | os.PathLike, trust: bool = False) -> Path:
    """The root model file a `.mlpackage` names, after checking the whole package: every
    manifest entry a relative path inside `Data/`, nothing leading out unless `trust`."""
    root = model_path(path)
    check_tree(root, trust, what="the package")
    manifest = root / "Manifest.json"
    try:
        st = manifest.lstat()
    except OSError:
        raise ModelLoadError(f"{path}: not a Core ML package (no Manifest.json); convert it "
                             f"again with coremltools") from None
    if st.st_size > METADATA_LIMIT:
        raise UnsafeFileError(f"{manifest}: {size_text(st.st_size)}, no manifest is that large")
    try:
        doc = json.loads(Path(os.path.realpath(manifest)).read_text())
        entries = doc["itemInfoEntries"]
        root_id = doc["rootModelIdentifier"]
        paths = {k: str(v["path"]) for k, v in entries.items()}
        named = paths[root_id]
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ModelLoadError(f"{manifest}: not a valid package manifest ({type(e).__name__}: "
                             f"{e}); convert the model again with coremltools") from None
    for rel in paths.values():
        if os.path.isabs(rel) or ".." in Path(rel).parts:
            raise UnsafeFileError(f"{manifest}: names {rel!r}, a path outside the package; "
                                  f"refused (a package's files live in its Data/ folder)")
    model = root / "Data" / named
    if model.is_symlink():
        _check_link(model, root, trust, "the package")
    if model.is_dir():
        raise ModelLoadError(f"{path}: its manifest names {named} as the model, a directory, "
                             f"not a model file; convert the model again with coremltools")
    if not model.is_file():
        raise ModelLoadError(f"{path}: its manifest names {named}, which is not in the "
                             f"package; convert the model again with coremltools")
    return model


def check_model_path(path: str | os.PathLike, fmt: str, trust: bool = False) -> None:
    """Everything above that applies to a model file of format `fmt`, before it is loaded."""
    real = model_path(path)
    if real.is_dir():
        if (real / "Manifest.json").exists() or fmt == "coreml":
            package_root_model(real, trust)
        else:
            check_tree(real, trust)
        return
    budget = archive_budget()
    if real.stat().st_size > budget:
        raise UnsafeFileError(f"{path}: {size_text(real.stat().st_size)}, above the "
                              f"{size_text(budget)} budget for a model; if it is genuine, raise "
                              f"CONVBENCH_ARCHIVE_BUDGET (GiB)")
    check_zip(real, budget)
