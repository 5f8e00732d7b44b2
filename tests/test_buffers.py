"""The buffer pool (rnncli/nn/buffers.py) and its use in the layer-normalised BPTT (rnncli/nn/bptt_ln.py):
a buffer comes back only when nothing holds it, so reuse across training steps gives the very same
results, and graphs alive at once (two forwards before one backward, retain_graph) keep their own."""

from __future__ import annotations

import pytest
import torch

from rnncli.nn import bptt_ln, buffers, fused_ln
from rnncli.nn.cells import make_cell

F64 = torch.float64
needs_count = pytest.mark.skipif(buffers._use_count is None, reason="this torch has no storage use count")


@needs_count
def test_a_buffer_is_reused_only_when_nothing_holds_it():
    pool, like = buffers.BufferPool(min_bytes=0), torch.empty(0)
    a = pool.empty((4, 5), like)
    ptr = a.data_ptr()
    b = pool.empty((4, 5), like)  # a is held: a new buffer
    assert b.data_ptr() != ptr
    rows = a.unbind(0)
    del a
    assert pool.empty((20,), like).data_ptr() not in (ptr, b.data_ptr())  # a view of a still held it
    del rows
    c = pool.empty((2, 10), like)  # same size, any shape: a's storage again
    assert c.data_ptr() == ptr and c.shape == (2, 10)
    assert pool.empty((4, 5), like, dtype=F64).data_ptr() != ptr  # another dtype: its own
    assert len(pool) == 4


@needs_count
def test_a_buffer_saved_for_backward_is_not_reused_until_the_backward_ran():
    pool, w = buffers.BufferPool(min_bytes=0), torch.randn(3, requires_grad=True)
    saved = pool.empty((3,), w)
    ptr = saved.data_ptr()
    saved.copy_(torch.tensor([1.0, 2.0, 3.0]))
    loss = (w * saved).sum()  # autograd saves `saved` (for dloss/dw)
    del saved
    assert pool.empty((3,), w).data_ptr() != ptr
    loss.backward(retain_graph=True)
    assert pool.empty((3,), w).data_ptr() != ptr  # the graph is retained, so is the buffer
    del loss
    assert pool.empty((3,), w).data_ptr() == ptr
    assert w.grad.tolist() == [1.0, 2.0, 3.0]


def test_small_requests_are_plain_allocations_and_the_pool_stays_within_its_bounds():
    pool, like = buffers.BufferPool(min_bytes=1 << 10, max_buffers=3, max_bytes=1 << 14), torch.empty(0)
    pool.empty((10,), like)
    assert len(pool) == 0
    held = [pool.empty((1024,), like) for _ in range(4)]  # 4 KB each, all in use
    assert len(pool) == 3 and pool.nbytes() == 3 << 12
    held += [pool.empty((3000,), like) for _ in range(2)]  # 12 KB each: the oldest give way
    assert len(pool) == 1 and pool.nbytes() == 12000
    pool.empty((5000,), like)  # larger than max_bytes: never pooled
    assert len(pool) == 1


def _layer_inputs(kind, seed):
    torch.manual_seed(seed)
    cell = make_cell(kind, 4, 5).to(F64)
    x = torch.randn(6, 3, 4, dtype=F64, requires_grad=True)
    h = torch.randn(3, 5, dtype=F64)
    state = h if kind == "ln_gru" else (h, torch.randn(3, 5, dtype=F64))
    return cell, x, state


def _run(kind, cell, x, state):
    """forward of one layer -> (hs, loss) with a loss that reaches every output."""
    extra = tuple(getattr(cell, name) for name in cell.extra_params)
    hs, final = bptt_ln.ln_layer(kind, x, state, cell.weight_ih, cell.weight_hh, extra)
    last = final if kind == "ln_gru" else final[1]
    weights = torch.linspace(-1, 1, hs.numel(), dtype=F64).view_as(hs)
    return hs, (hs * weights).sum() + last.sum() ** 2


def _grads(cell, x):
    return [x.grad.clone()] + [p.grad.clone() for p in cell.parameters()]


def _zero(cell, x):
    x.grad = None
    for p in cell.parameters():
        p.grad = None


@needs_count
@pytest.mark.parametrize("kind", bptt_ln.KINDS)
def test_reused_buffers_give_identical_results_and_interleaved_graphs_their_own(kind, monkeypatch):
    if fused_ln.kernels() is None:
        pytest.skip("no C++ compiler here: the layer-normalised cells run their autograd loop")
    monkeypatch.setattr(bptt_ln, "POOL", buffers.BufferPool(min_bytes=1 << 40))  # no reuse
    cells = {s: _layer_inputs(kind, s) for s in (0, 1)}
    expected = {}
    for s, (cell, x, state) in cells.items():  # one step at a time, fresh buffers: the reference
        hs, loss = _run(kind, cell, x, state)
        loss.backward()
        expected[s] = (hs.detach().clone(), _grads(cell, x))
        _zero(cell, x)
    monkeypatch.setattr(bptt_ln, "POOL", buffers.BufferPool(min_bytes=0, max_buffers=64))  # pool everything
    for _ in range(3):  # the steady state: step after step, the same buffers, bit-identical results
        size = len(bptt_ln.POOL)
        hs, loss = _run(kind, *cells[0])
        loss.backward()
        assert torch.equal(hs, expected[0][0])
        assert all(torch.equal(a, b) for a, b in zip(_grads(*cells[0][:2]), expected[0][1]))
        assert size == 0 or len(bptt_ln.POOL) == size  # after the first step nothing new is allocated
        _zero(*cells[0][:2])
        del hs, loss
    # two forwards before one backward, the first graph retained and backpropagated twice
    outs = {s: _run(kind, *cells[s]) for s in (0, 1)}
    outs[0][1].backward(retain_graph=True)
    outs[1][1].backward()
    extra = _run(kind, *cells[1])  # a third forward meanwhile: must not take graph 0's buffers
    first = _grads(*cells[0][:2])
    _zero(*cells[0][:2])
    outs[0][1].backward()
    for s, got in ((0, first), (0, _grads(*cells[0][:2])), (1, _grads(*cells[1][:2]))):
        assert all(torch.equal(a, b) for a, b in zip(got, expected[s][1])), s
    assert torch.equal(outs[0][0], expected[0][0]) and torch.equal(outs[1][0], expected[1][0])
    assert extra[0].data_ptr() not in (outs[0][0].data_ptr(), outs[1][0].data_ptr())
