"""Writes that never leave half a result behind.

Artifacts are built in a temporary sibling folder and renamed into place when
complete; record files are appended one whole line at a time under a lock (a
short write is cut back off), and rewritten files go through a temporary file and
``os.replace``. Readers skip a damaged line with a warning rather than fail.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from compress.errors import RuntimeFailure, UserInputError


#: The file that marks a folder as an artifact ``compress apply`` wrote (and so one ``--force`` may replace).
MANIFEST = "manifest.json"
#: The ``schema`` field of that manifest; ``--force`` trusts no other.
ARTIFACT_SCHEMA = "compress.artifact/1"
#: Fields every manifest ``compress apply`` writes carries, with their JSON types.
_MANIFEST_FIELDS = {"variant": str, "steps": list, "format": str, "runtime": str, "source": dict}


def is_compress_artifact(folder: Path) -> bool:
    """Whether ``folder`` holds a manifest ``compress apply`` wrote: its schema and its fields, not just the name."""
    file = Path(folder) / MANIFEST
    try:
        if not file.is_file() or file.is_symlink() or file.stat().st_size > 16 * 2**20:
            return False
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return False
    return (isinstance(manifest, dict) and manifest.get("schema") == ARTIFACT_SCHEMA
            and all(isinstance(manifest.get(k), t) for k, t in _MANIFEST_FIELDS.items()))


def check_not_input(out: Path, inputs: dict[str, Any], option: str = "output", replaced: bool = False) -> None:
    """Refuse an output that is one of the run's inputs or lies inside an input folder, before any work.

    ``inputs`` maps the option that named each input (``--model``, ``--results``) to its path
    (None or a missing path is skipped). The same file is found through links too: a hard
    link or symlink to an input is that input. With ``replaced`` (a folder output that is
    replaced whole, as ``apply --force`` does), one that holds an input is refused as well.
    """
    out = Path(out)
    where = Path(os.path.abspath(out)).resolve()
    for label, path in inputs.items():
        if path is None or not str(path) or not Path(path).exists():
            continue
        path = Path(path).resolve()
        same = where == path or (out.exists() and _same_file(out, path))
        inside = path.is_dir() and where.is_relative_to(path)
        holds = replaced and path.is_relative_to(where)
        if same or inside or holds:
            relation = "is" if same else "is inside" if inside else "holds"
            raise UserInputError(f"{option} {out} {relation} the input of {label} ({path}): expected an output "
                                 "apart from the inputs, so they are never overwritten; pick another path")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_output_dir(out: Path, force: bool, source: Path | None = None, option: str = "output") -> None:
    """Refuse an output folder before any work: one that exists (unless ``force`` and it is an
    artifact compress wrote), a file, the current folder or one holding it, the source model
    or a folder holding it or inside it, or a place that cannot be written."""
    out = Path(out)
    where = out.resolve()
    if where == Path.cwd().resolve() or Path.cwd().resolve().is_relative_to(where):
        raise UserInputError(f"{option} {out} is the current folder or holds it: expected a new folder, "
                             "e.g. artifacts/NAME")
    if source is not None and Path(source).resolve().is_relative_to(where):
        raise UserInputError(f"{option} {out} is the source model or holds it: expected a new folder")
    if source is not None and Path(source).is_dir() and where.is_relative_to(Path(source).resolve()):
        raise UserInputError(f"{option} {out} is inside the source model {source}: expected a folder apart "
                             "from it, so the source is never changed; pick another path")
    if out.exists() and not out.is_dir():
        raise UserInputError(f"{option} {out} exists and is a file: expected a folder path")
    if out.exists() and not force:
        raise UserInputError(f"{option} {out} already exists: expected a new path; pass --force to replace it")
    if out.exists() and any(out.iterdir()) and not is_compress_artifact(out):
        raise UserInputError(f"{option} {out} is not an artifact written by compress (no {MANIFEST} of schema "
                             f"{ARTIFACT_SCHEMA}): --force only replaces those; remove the folder yourself or pick "
                             "another path")
    # The artifact is built in a temporary folder beside ``out``: try making one there.
    _try_create(out.parent, option, out, folder=True)


def check_output_file(path: Path, option: str = "output", suffixes: tuple[str, ...] = ()) -> None:
    """Refuse an output file before any work: a folder, the current folder, a name whose suffix is
    not one of ``suffixes`` (when given), or a place that cannot be written (tried, not guessed)."""
    path = Path(path)
    if path.is_dir():
        raise UserInputError(f"{option} {path} is a folder: expected a file path, e.g. {path / 'out'}")
    if suffixes and path.suffix.lower() not in suffixes:
        raise UserInputError(f"{option} {path}: expected a file name ending in {' or '.join(suffixes)}, got "
                             f"{path.suffix or 'no suffix'}; name the file after the format it holds")
    if path.exists() and not os.access(path, os.W_OK):
        raise UserInputError(f"{option} {path} is not writable: expected a file you may write; pick another path")
    _try_create(path, option, path, folder=False)


def check_output_folder(path: Path, option: str = "output") -> None:
    """A folder to write into (a cache): it may exist, but must be a folder and writable."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserInputError(f"{option} {path} is a file: expected a folder")
    if path.is_dir() and not os.access(path, os.W_OK | os.X_OK):
        raise UserInputError(f"{option} {path} is not writable: pick another folder")
    _try_create(path, option, path, folder=True)


def _try_create(path: Path, option: str, shown: Path, folder: bool) -> None:
    """Prove ``path`` can be written by making it (a folder, or a file beside nothing else), then
    remove whatever the check made. Permission bits alone miss /proc, read-only mounts and
    full quotas, where ``mkdir`` and ``open`` fail for other reasons.

    An existing folder gets a temporary entry made and removed in it; an existing file is opened
    for appending (nothing is written, and a FIFO with no reader does not block).
    """
    path = Path(os.path.abspath(path))
    missing = []
    parent = path if folder else path.parent
    while not parent.exists() and parent != parent.parent:
        missing.append(parent)
        parent = parent.parent
    if not parent.is_dir():
        raise UserInputError(f"{option} {shown}: {parent} is a file, not a folder; pick another path")
    made: list[Path] = []
    try:
        for folder_path in reversed(missing):
            os.mkdir(folder_path)
            made.append(folder_path)
        if folder:
            os.rmdir(tempfile.mkdtemp(prefix=".compress-check.", dir=path))
        elif path.exists():
            os.close(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_NONBLOCK))
        else:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
            os.unlink(path)
    except OSError as err:
        reason = err.strerror or str(err)
        raise UserInputError(f"{option} {shown}: cannot write there ({reason}); expected a place this user may "
                             "create files in; pick another path") from None
    finally:
        for folder_path in reversed(made):
            with contextlib.suppress(OSError):
                os.rmdir(folder_path)


def process_start_time() -> float:
    """When this process started (seconds since the epoch), from /proc; now where /proc is missing."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return time.time()


def remove_stale_partials(folder: Path, name: str | None = None) -> list[Path]:
    """Remove ``.NAME.*.partial`` folders (all ``.*.partial`` when ``name`` is None) left in ``folder``
    by a killed ``compress`` run; returns what was removed.

    Only folders made by :func:`atomic_dir` match, only those older than this process, and
    never one another process still holds (each run keeps a lock on its folder while it works).
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    # /proc gives the boot time in whole seconds, so this errs early: never later than the real start.
    started = process_start_time()
    removed = []
    for path in folder.glob(f".{glob.escape(name)}.*.partial" if name else ".*.partial"):
        try:
            if not path.is_dir() or path.is_symlink() or path.stat().st_mtime >= started:
                continue
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # a running compress process is writing it
        finally:
            os.close(fd)
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


@contextlib.contextmanager
def atomic_dir(out: Path, force: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside ``out``; rename it to ``out`` on success.

    On any error the temporary folder is removed and ``out`` is left as it was.
    """
    out = Path(out)
    check_output_dir(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(out.parent, out.name)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    # Held while we work: tells remove_stale_partials in other processes that this folder is in use.
    lock = os.open(tmp, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes it private; the artifact is an ordinary folder
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        os.close(lock)


def current_umask() -> int:
    """This process's umask (reading it means setting it: it is put back at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename; the file gets the mode
    an ordinary ``open`` would give it (0666 less the umask), not the temporary file's 0600."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            os.fchmod(f.fileno(), 0o666 & ~current_umask())
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def append_jsonl(path: Path, record: dict[str, Any] | list[dict[str, Any]]) -> None:
    """Append one record as one line (or a list of records as lines), whole or not at all.

    The line is written with a single ``write`` on an ``O_APPEND`` descriptor under
    an exclusive lock, then fsynced, so concurrent writers never interleave. A short
    write (a full disk, a file-size limit) is cut back off the file, which is left
    as it was, and raised as one line.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    batch = record if isinstance(record, list) else [record]
    line = "".join(json.dumps(r, sort_keys=True, allow_nan=False) + "\n" for r in batch).encode("utf-8")
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o666)  # less the umask, as open() does
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        size = os.fstat(fd).st_size
        # Start on a fresh line if an earlier writer died mid-line.
        if size and os.pread(fd, 1, size - 1) != b"\n":
            line = b"\n" + line
        try:
            written = os.write(fd, line)
        except OSError as err:
            written, failure = -1, f"{err.strerror or err}"
        else:
            failure = None if written == len(line) else f"wrote {written} of {len(line)} bytes"
        if failure is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)
            raise RuntimeFailure(f"could not append a record to {path} ({failure}; is the disk full?): "
                                 "the file was left as it was; free space and rerun")
        os.fsync(fd)
    finally:
        os.close(fd)


#: Deepest nesting of a record line read back: ours are 3 deep; Python's parser fails near 1,000.
MAX_JSON_DEPTH = 64


def json_depth(text: str | bytes) -> int:
    """How deeply the brackets of a JSON text nest (brackets inside strings are counted too, which
    only errs towards refusing), found without parsing so a hostile depth cannot exhaust the stack."""
    data = text.encode("utf-8", errors="replace") if isinstance(text, str) else text
    depth = deepest = 0
    for byte in data.translate(None, delete=bytes(b for b in range(256) if b not in b"[]{}")):
        depth += 1 if byte in b"[{" else -1
        deepest = max(deepest, depth)
    return deepest


def read_json_file(path: Path, expected: str, max_bytes: int = 64 * 2**20) -> Any:
    """The JSON in ``path``, or one line naming the file and saying what was expected: a file
    that is not UTF-8 JSON, larger than ``max_bytes`` or nested deeper than :data:`MAX_JSON_DEPTH`
    (which would exhaust the parser's stack) is refused before it is parsed."""
    from compress.errors import UserInputError

    path = Path(path)
    try:
        if path.stat().st_size > max_bytes:
            raise UserInputError(f"{path} is larger than {max_bytes // 2**20} MiB: expected {expected}")
        data = path.read_bytes()
    except OSError as err:
        raise UserInputError(f"cannot read {path} ({err.strerror or err}): expected {expected}") from None
    if json_depth(data) > MAX_JSON_DEPTH:
        raise UserInputError(f"{path} nests deeper than {MAX_JSON_DEPTH} levels: expected {expected}")
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise UserInputError(f"{path} is not UTF-8 text: expected {expected}") from None
    except ValueError as err:
        raise UserInputError(f"{path} is not valid JSON ({err}): expected {expected}") from None


def read_jsonl(path: Path, warn: Callable[[str], None] | None = None,
               check: Callable[[dict[str, Any]], str | None] | None = None) -> list[dict[str, Any]]:
    """Every whole record in ``path``.

    Blank lines are skipped silently; a line that is not UTF-8, not JSON, nested deeper than
    :data:`MAX_JSON_DEPTH`, or not a JSON object is skipped with a one-line warning on stderr
    naming the file and line. ``check`` returns why a record cannot be read (skipped with that
    reason), ``""`` to skip it silently, or None to keep it. Only regular files are read, so
    ``/dev/zero`` or a FIFO cannot hang a reader.
    """
    path = Path(path)
    if not path.exists():
        return []
    if not path.is_file():
        from compress.errors import UserInputError

        raise UserInputError(f"{path} is not a regular file: expected a JSON Lines file of records")
    warn = warn or _warn
    records = []
    for number, raw in enumerate(path.read_bytes().split(b"\n"), 1):
        if not raw.strip():
            continue
        if json_depth(raw) > MAX_JSON_DEPTH:
            warn(f"warning: {path}:{number}: skipped a line nested deeper than {MAX_JSON_DEPTH} levels")
            continue
        try:
            value = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            warn(f"warning: {path}:{number}: skipped a line that is not UTF-8 text")
            continue
        except json.JSONDecodeError as err:
            warn(f"warning: {path}:{number}: skipped a line that is not valid JSON ({err.msg})")
            continue
        if not isinstance(value, dict):
            warn(f"warning: {path}:{number}: skipped a JSON {type(value).__name__}: expected a record (an object)")
            continue
        problem = check(value) if check else None
        if problem:
            warn(f"warning: {path}:{number}: skipped a record: {problem}")
        if problem is not None:
            continue
        records.append(value)
    return records


def _warn(line: str) -> None:
    import sys

    print(line, file=sys.stderr)


def dir_size_bytes(path: Path) -> int:
    """Total size of the files under ``path`` (or of the file itself)."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
