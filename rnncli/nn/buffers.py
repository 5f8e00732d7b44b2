"""A small pool of large CPU buffers that the hand-written BPTT reuses from one training step to the next.

Why: at 64x512 one (T, B, 4H) float32 buffer is ~52 MB, above glibc's largest mmap threshold (32 MB),
so every fresh `torch.empty` of that size is a new mmap whose pages the kernel zero-fills on first
touch, and every free hands them back to the OS. Measured in benchmarks/ln_paths.py, those page faults
were a third of LN-LSTM's gap to nn.LSTM. Keeping the buffers between steps removes them.

Safety with autograd: a buffer is handed out as a *view* of the pool's own flat tensor, and the pool
hands it out again only when nothing else holds its storage -- no view, no tensor saved for a
backward, no output a caller kept -- which it reads from the storage's reference count. So a buffer
saved by a forward is not reused before that graph's backward has freed it (two forwards before one
backward, `retain_graph=True`: each gets its own); it simply costs a fresh allocation.

Only buffers of at least `min_bytes` on the CPU are pooled (smaller ones come from malloc's heap
without page faults). The pool keeps at most `max_buffers` holding at most `max_bytes` together (a
training step of a 64x512 two-layer LN-LSTM uses ~0.5 GB of them), least recently used dropped first
(a dropped buffer lives on while anything still uses it). A buffer serves requests of exactly its
size and dtype: shapes that change every batch (no fixed T) just allocate as before. Where this torch lacks the reference count
(`torch._C._storage_Use_Count`, a private API), the pool just allocates.
"""
from __future__ import annotations

import math
import threading

import torch
from torch import Tensor

_use_count = getattr(torch._C, "_storage_Use_Count", None)


def _count(base: Tensor) -> int:
    return _use_count(base.untyped_storage()._cdata)


class BufferPool:
    """`pool.empty(shape, like)`: an uninitialised tensor like `torch.empty`, reused when free."""

    def __init__(self, min_bytes: int = 4 << 20, max_buffers: int = 32, max_bytes: int = 1 << 30) -> None:
        self.min_bytes, self.max_buffers, self.max_bytes = min_bytes, max_buffers, max_bytes
        self._buffers: list[tuple[Tensor, int]] = []  # (flat base, its use count when free), LRU first
        self._lock = threading.Lock()  # find-and-take is one step: two threads never get one buffer

    def empty(self, shape: tuple[int, ...], like: Tensor, dtype: torch.dtype | None = None) -> Tensor:
        dtype = like.dtype if dtype is None else dtype
        numel = math.prod(shape)
        size = numel * dtype.itemsize
        if _use_count is None or like.device.type != "cpu" or not self.min_bytes <= size <= self.max_bytes:
            return torch.empty(shape, dtype=dtype, device=like.device)
        with self._lock:
            for i, (base, idle) in enumerate(self._buffers):
                if base.numel() == numel and base.dtype == dtype and _count(base) == idle:
                    self._buffers.append(self._buffers.pop(i))  # most recently used last
                    return base.view(shape)
            base = torch.empty(numel, dtype=dtype, device=like.device)
            self._buffers.append((base, _count(base)))
            while len(self._buffers) > self.max_buffers or self.nbytes() > self.max_bytes:
                self._buffers.pop(0)
            return base.view(shape)

    def clear(self) -> None:
        with self._lock:
            self._buffers.clear()

    def nbytes(self) -> int:
        return sum(base.nbytes for base, _ in self._buffers)

    def __len__(self) -> int:
        return len(self._buffers)
