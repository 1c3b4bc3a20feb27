"""The sweep engine every study runs through: chunks, persistence, resume, devices, processes.

A study groups its (configuration, draw) items into :class:`Chunk` s (items that share their
static settings and so run as one compiled program); :class:`Executor` computes each chunk
once. With an output directory, a finished chunk is written atomically to
``OUT/.chunks/STUDY/KEY.chunk`` (``KEY`` hashes the study, its spec, the items and the
package's sources, :func:`package_digest`), with a checksum: a killed run started again loads
the finished chunks, bit-identical to computed ones, and recomputes only the missing or corrupt
ones. :func:`shard_leading` and :func:`item_mesh` place a chunk's runs or items over the local
devices; under JAX's multi-controller runtime, process ``p`` of ``P`` computes the chunks whose
index is ``p`` modulo ``P`` and loads the others'. :func:`enable_compilation_cache` turns on
JAX's persistent compilation cache.

The chunk files are Python pickles of the studies' own result objects: load them only from
output directories you wrote yourself.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import pickle
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "Chunk",
    "Executor",
    "draw_seed",
    "enable_compilation_cache",
    "environment",
    "item_mesh",
    "local_mesh",
    "package_digest",
    "pad_leading",
    "shard_leading",
]

_MAGIC = b"stabtheory-chunk/2\n"  # /2: the payload holds (key, result)

#: A claim (``NAME.lock``) older than this is taken over: its run died without removing it.
STALE_LOCK_S = 6 * 3600.0


@functools.cache
def package_digest() -> str:
    """SHA-256 of the package version and of every source file of ``stabtheory``.

    Part of every chunk key: a chunk computed by other code is never reused.
    """
    import stabtheory

    h = hashlib.sha256(stabtheory.__version__.encode())
    root = Path(stabtheory.__file__).parent
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def draw_seed(seed: int, draw: int) -> int:
    """The seed of data draw ``draw`` of a study seeded with ``seed`` (draw 0 keeps ``seed``).

    Example:
      >>> draw_seed(0, 0), draw_seed(0, 1) == draw_seed(1, 0)
      (0, False)
    """
    if draw == 0:
        return int(seed)
    digest = hashlib.sha256(f"{seed}/{draw}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


@dataclasses.dataclass(frozen=True)
class Chunk:
    """Items that run as one compiled program.

    Attributes:
      study: the study's registry name.
      group: the static settings shared by the items (e.g. ``("exponential", 64)``).
      items: ``(config, draw)`` pairs; configs are frozen dataclasses.
      spec: the study's whole spec (a frozen dataclass): every setting outside the items
        (checkpoints, dimensions, seeds) is part of the key through it.
    """

    study: str
    group: tuple
    items: tuple[tuple[Hashable, int], ...]
    spec: Hashable = None

    @property
    def key(self) -> str:
        """A hash of the study, its spec, the group, the items and the package (version and
        sources): a chunk is reused only by the very same computation."""
        text = repr((self.study, self.spec, self.group, self.items, package_digest()))
        return hashlib.sha256(text.encode()).hexdigest()[:32]


def enable_compilation_cache(path: str | os.PathLike | None = None) -> Path | None:
    """Turn on JAX's persistent compilation cache (``$XDG_CACHE_HOME/stabtheory/jax`` or
    ``~/.cache/stabtheory/jax`` by default); ``STABTHEORY_NO_COMPILATION_CACHE=1`` disables it.

    Returns the directory, or ``None`` when disabled or not writable.
    """
    if os.environ.get("STABTHEORY_NO_COMPILATION_CACHE"):
        return None
    if path is None:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        path = os.path.join(base, "stabtheory", "jax")
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    return path


def local_mesh() -> jax.sharding.Mesh | None:
    """A one-axis mesh ``("runs",)`` over every local device; ``None`` on a single device."""
    devices = jax.local_devices()
    return None if len(devices) == 1 else jax.sharding.Mesh(np.array(devices), ("runs",))


def item_mesh() -> jax.sharding.Mesh | None:
    """The mesh to split a chunk's independent items over (:func:`local_mesh`), or ``None``
    on the CPU backend.

    Host devices (``--xla_force_host_platform_device_count``) share the same cores, so
    splitting gains nothing there, and it changes the last bits of the fine-tuning study's
    results (about 1e-15 between 1 and 4 host devices, measured), which would break the
    same-report guarantee; items on accelerators are split."""
    return None if jax.default_backend() == "cpu" else local_mesh()


def pad_leading(x: np.ndarray, multiple: int) -> np.ndarray:
    """Pad the leading axis to a multiple of ``multiple`` by repeating the last entry."""
    x = np.asarray(x)
    extra = (-x.shape[0]) % multiple
    if extra == 0:
        return x
    return np.concatenate([x, np.repeat(x[-1:], extra, axis=0)])


def shard_leading(*arrays) -> tuple[jax.Array, ...]:
    """Place arrays with a common leading (runs) axis over every local device.

    The leading axis is padded to a multiple of the number of local devices (repeating the last
    entry; the caller drops the padding from the results) and sharded with
    ``NamedSharding(mesh, P("runs"))``; on one device this is a plain transfer. On the CPU,
    results do not depend on the number of devices (tested with
    ``XLA_FLAGS=--xla_force_host_platform_device_count=4``).
    """
    devices = jax.local_device_count()
    padded = [pad_leading(a, devices) for a in arrays]
    if devices == 1:
        return tuple(jnp.asarray(a) for a in padded)
    mesh = local_mesh()
    spec = jax.sharding.PartitionSpec("runs")
    sharding = jax.sharding.NamedSharding(mesh, spec)
    return tuple(jax.device_put(a, sharding) for a in padded)


def environment(replicates: dict[str, int]) -> dict:
    """What a report states about where it ran: backend, devices, versions, replicates."""
    import stabtheory

    devices = jax.devices()
    return {
        "backend": jax.default_backend(),
        "devices": len(devices),
        "processes": jax.process_count(),
        "device_kind": devices[0].device_kind,
        "jax": jax.__version__,
        "stabtheory": stabtheory.__version__,
        "replicates": dict(replicates),
    }


def _owner() -> str:
    """This process's claim text: ``host pid``."""
    return f"{socket.gethostname()} {os.getpid()}"


def _stale(lock: Path) -> bool:
    """Whether a chunk's claim is left over: its process is gone (same host), or it is older
    than :data:`STALE_LOCK_S`, or it cannot be read."""
    try:
        host, pid = lock.read_text().split()
        age = time.time() - lock.stat().st_mtime
    except (OSError, ValueError):
        return True
    if age > STALE_LOCK_S:
        return True
    if host == socket.gethostname():
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
    return False


class Executor:
    """Computes chunks once: loads finished ones, computes and persists the rest.

    Args:
      out: output directory (chunks go to ``out/.chunks``); ``None`` keeps nothing on disk.
      force: recompute every chunk, ignoring persisted ones.
      progress: called as ``progress(done, total, label)`` after each chunk.
      process_index, process_count: this process's share under the multi-controller runtime
        (default: ``jax.process_index()`` and ``jax.process_count()``).
      wait_timeout_s: how long a process waits for the chunks of the other processes.
    """

    def __init__(
        self,
        out: str | os.PathLike | None = None,
        *,
        force: bool = False,
        progress: Callable[[int, int, str], None] | None = None,
        process_index: int | None = None,
        process_count: int | None = None,
        wait_timeout_s: float = 24 * 3600.0,
    ):
        self.root = None if out is None else Path(out) / ".chunks"
        self.force = force
        self.progress = progress
        self.process_index = jax.process_index() if process_index is None else process_index
        self.process_count = jax.process_count() if process_count is None else process_count
        self.wait_timeout_s = wait_timeout_s
        self.computed = 0
        self.loaded = 0

    def _path(self, chunk: Chunk) -> Path | None:
        return None if self.root is None else self.root / chunk.study / f"{chunk.key}.chunk"

    def load(self, chunk: Chunk) -> tuple[bool, Any]:
        """``(True, result)`` for a persisted, intact chunk of this key; ``(False, None)``
        otherwise (missing, truncated, corrupt, or the content of another chunk: recomputed)."""
        path = self._path(chunk)
        if path is None or not path.exists():
            return False, None
        try:
            blob = path.read_bytes()
            head, digest, payload = blob.split(b"\n", 2)
            if head + b"\n" != _MAGIC or hashlib.sha256(payload).hexdigest().encode() != digest:
                raise ValueError("checksum mismatch")
            key, result = pickle.loads(payload)
            if key != chunk.key:
                raise ValueError(f"it holds chunk {key[:12]}..., not this key")
            return True, result
        except Exception as err:  # truncated, corrupt or unreadable: recompute it
            print(f"stabtheory: recomputing chunk {path.name} ({err})", file=sys.stderr)
            return False, None

    def save(self, chunk: Chunk, result: Any) -> None:
        """Write the chunk atomically: temporary file in the same folder, fsync, rename."""
        path = self._path(chunk)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = pickle.dumps((chunk.key, result), protocol=pickle.HIGHEST_PROTOCOL)
        digest = hashlib.sha256(payload).hexdigest().encode()
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".chunk")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(_MAGIC + digest + b"\n" + payload)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def claim(self, chunk: Chunk) -> bool:
        """Claim a chunk for this run (create ``NAME.lock`` beside it, atomically): ``False``
        when another run on the same ``out`` holds a live claim, so that run computes it and
        this one waits for its file. A claim whose process is gone (same host) or older than
        :data:`STALE_LOCK_S` is taken over. Always ``True`` without an ``out``."""
        path = self._path(chunk)
        if path is None:
            return True
        lock = path.with_suffix(".lock")
        lock.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=lock.parent, prefix=".claim-")
        with os.fdopen(fd, "w") as f:
            f.write(_owner())
        try:
            for _ in range(2):
                try:
                    os.link(tmp, lock)  # appears with its owner in one step, or not at all
                    return True
                except FileExistsError:
                    if not _stale(lock):
                        return False
                    # a dead run's claim: move it aside (one taker wins the rename)
                    aside = lock.with_name(f".stale-{os.getpid()}-{lock.name}")
                    try:
                        os.replace(lock, aside)
                    except FileNotFoundError:
                        continue
                    if not _stale(aside):  # a live claim slipped in: put it back
                        os.replace(aside, lock)
                        return False
                    aside.unlink(missing_ok=True)
            return False
        finally:
            os.unlink(tmp)

    def release(self, chunk: Chunk) -> None:
        """Remove this run's claim on ``chunk`` (after saving it, or when computing failed)."""
        path = self._path(chunk)
        if path is None:
            return
        lock = path.with_suffix(".lock")
        try:
            if lock.read_text() == _owner():  # never another run's claim
                lock.unlink(missing_ok=True)
        except OSError:
            pass

    def _compute(self, chunk: Chunk, compute: Callable[[Chunk], Any]) -> Any:
        """Compute a claimed chunk, unless the run that held the claim before saved it in the
        meantime (it saves, then releases: loading after the claim closes that window)."""
        try:
            ok, result = (False, None) if self.force else self.load(chunk)
            if ok:
                self.loaded += 1
                return result
            result = compute(chunk)
            self.save(chunk, result)
        finally:
            self.release(chunk)
        self.computed += 1
        return result

    def run(
        self,
        chunks: Sequence[Chunk],
        compute: Callable[[Chunk], Any],
        *,
        label: Callable[[Chunk], str] = lambda c: f"{c.study} {c.group}",
    ) -> list[Any]:
        """The result of every chunk, in order (computed or loaded).

        Another run on the same ``out`` (another process of the multi-controller runtime, or a
        second command started by hand) shares the work: a chunk that run has claimed
        (:meth:`claim`) is waited for and loaded, never computed twice; a claim it leaves
        behind without the chunk (it was killed) is taken over."""
        results: list[Any] = [None] * len(chunks)
        pending = []
        for k, chunk in enumerate(chunks):
            mine = k % self.process_count == self.process_index
            ok, value = (False, None) if self.force and mine else self.load(chunk)
            if ok:
                results[k] = value
                self.loaded += 1
                self._tick(results, chunks, label(chunk) + " (loaded)")
            elif mine and self.claim(chunk):
                results[k] = self._compute(chunk, compute)
                self._tick(results, chunks, label(chunk))
            else:
                pending.append(k)
        deadline = time.monotonic() + self.wait_timeout_s
        while pending:  # chunks of the other processes, or claimed by another run
            still = []
            for k in pending:
                ok, value = self.load(chunks[k])
                mine = k % self.process_count == self.process_index
                if ok:
                    results[k] = value
                    self.loaded += 1
                    self._tick(results, chunks, label(chunks[k]) + " (other process)")
                elif mine and self.claim(chunks[k]):  # its claimant died: compute it here
                    results[k] = self._compute(chunks[k], compute)
                    self._tick(results, chunks, label(chunks[k]))
                else:
                    still.append(k)
            pending = still
            if pending:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"{len(pending)} chunks of the other processes did not appear under "
                        f"{self.root} within {self.wait_timeout_s:.0f} s."
                    )
                time.sleep(0.5)
        return results

    def _tick(self, results, chunks, text: str) -> None:
        if self.progress is not None:
            done = sum(r is not None for r in results)
            self.progress(done, len(chunks), text)
