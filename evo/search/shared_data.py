"""Hand the driver's loaded dataset to local workers through shared memory.

Every worker used to load the dataset itself: for digits that is importing scikit-learn (about
1.2 s), for Fashion-MNIST decoding and normalising 60,000 images (about 1.6 s), per worker, on
cores the driver and the other workers need at the same moment. The driver has loaded it already
(it needs the fingerprint and the input shape), so it shares its copy instead: the object is
pickled with protocol 5, its arrays travel out of band into one shared-memory block, and a
worker rebuilds it around views of that block (no copy, no decode). The same idea serves Ray,
where the object store holds the dataset once per run (:mod:`evo.search.ray_executor`).

An evaluator takes part by having the two methods of :class:`SharesData` (structural: the NAS
problem's evaluator has them without importing this module). The block lives as long as the
executor: the driver unlinks it on close, and Python's resource tracker unlinks it if the driver
is killed. When ``/dev/shm`` has too little room the workers load the data themselves, as before.
"""

from __future__ import annotations

import contextlib
import os
import pickle
from dataclasses import dataclass
from multiprocessing.shared_memory import SharedMemory
from typing import Any, Protocol, runtime_checkable

_ALIGN = 64  # every array starts on a cache line, as numpy allocates them
_SHM_DIR = "/dev/shm"


@runtime_checkable
class SharesData(Protocol):
    """An evaluator whose read-only data (a dataset) the driver loads once for every worker."""

    def shared_data(self) -> Any:
        """The data as loaded in this process (the driver's cached copy)."""
        ...

    def adopt_data(self, data: Any) -> None:
        """Use ``data`` (the driver's, rebuilt in a worker) instead of loading it again."""
        ...


@dataclass(frozen=True)
class DataHandle:
    """What a worker needs to rebuild the shared object: small, sent with its start-up."""

    name: str
    payload: bytes
    spans: tuple[tuple[int, int], ...]

    def load(self) -> Any:
        """The object, its arrays viewing the shared block (kept open for the process's life:
        the arrays point into it)."""
        # Attaching registers the name with the driver's resource tracker, which this worker
        # shares (spawn and forkserver pass it on): a no-op, and never unregistered here, so
        # the tracker still unlinks the block if the driver is killed.
        block = SharedMemory(name=self.name)
        _ATTACHED.append(block)
        views = [block.buf[offset:offset + size] for offset, size in self.spans]
        return pickle.loads(self.payload, buffers=views)


_ATTACHED: list[SharedMemory] = []  # blocks this worker views; closing one would free its arrays


class SharedData:
    """The driver's side: one shared-memory block holding the arrays of ``data``."""

    def __init__(self, data: Any) -> None:
        buffers: list[pickle.PickleBuffer] = []
        payload = pickle.dumps(data, protocol=5, buffer_callback=buffers.append)
        raws = [buffer.raw() for buffer in buffers]
        spans, offset = [], 0
        for raw in raws:
            spans.append((offset, raw.nbytes))
            offset += -(-raw.nbytes // _ALIGN) * _ALIGN
        self.block: SharedMemory | None = SharedMemory(create=True, size=max(offset, 1))
        for raw, (start, size) in zip(raws, spans, strict=True):
            self.block.buf[start:start + size] = raw
        self.handle = DataHandle(self.block.name, payload, tuple(spans))
        self.nbytes = offset

    def close(self) -> None:
        if self.block is not None:
            self.block.close()
            with contextlib.suppress(FileNotFoundError):
                self.block.unlink()
            self.block = None


def share(evaluator: object) -> SharedData | None:
    """The evaluator's data in shared memory, or ``None`` when it shares none or the block
    would not fit in ``/dev/shm`` (writing past a full tmpfs kills the writer with SIGBUS)."""
    if not isinstance(evaluator, SharesData):
        return None
    data = evaluator.shared_data()
    if data is None:
        return None
    needed = _out_of_band_bytes(data)
    try:
        stat = os.statvfs(_SHM_DIR)
        room = stat.f_bavail * stat.f_frsize
    except OSError:
        return None
    if needed * 2 > room:  # leave room for everything else that uses /dev/shm
        return None
    return SharedData(data)


def _out_of_band_bytes(data: Any) -> int:
    sizes: list[int] = []
    pickle.dumps(data, protocol=5, buffer_callback=lambda b: sizes.append(b.raw().nbytes))
    return sum(sizes)

