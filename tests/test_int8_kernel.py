"""rnncli's own int8 kernels (rnncli/nn/int8_kernels.py): the small-batch int8 matmul and the
one-call int8 LSTM-family layer step equal the same arithmetic on the dequantized weights in
float64 within the bound of their int16 activation rounding, and greedy text from a tiny char-LM
is the same through the compiled int8 step as through the dequantized fp32 model."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from rnncli.nn import fused_cpu
from rnncli.nn.int8 import SMALL_BATCH, Int8Weight
from rnncli.nn.quantize import QuantizedRecurrent
from rnncli.nn.recurrent import Recurrent
from rnncli.nn.stepper import Stepper

FUSED_CELLS = ("lstm", "peephole_lstm", "cifg_lstm")  # the cells with a compiled step (bptt_kind)


@pytest.fixture(scope="module")
def kernels():
    module = fused_cpu.kernels()
    if module is None:
        pytest.skip("no C++ compiler: the fused kernels are not built")
    return module


def test_int8_linear_equals_the_dequantized_matmul(kernels):
    torch.manual_seed(0)
    w, b = torch.randn(45, 37) * 0.3, torch.randn(45)  # odd sizes: the 4-row blocks and the scalar tail
    q = Int8Weight(w)
    deq = q.dequantized().double()
    for batch in (1, SMALL_BATCH, SMALL_BATCH + 3):  # our kernel, then fbgemm's (7-bit activations)
        x = torch.randn(batch, 37)
        exact = x.double() @ deq.t() + b.double()
        if batch <= SMALL_BATCH:  # x rounded to int16 steps of max|x| / 2^14: error <= half a step per element
            step = x.abs().amax(1, keepdim=True).double() / 16383
            bound = step / 2 * deq.abs().sum(1) + 1e-5  # (B, 1) * (R,) -> (B, R)
        else:
            bound = torch.full_like(exact, 0.1)
        assert ((q(x, b).double() - exact).abs() <= bound).all()
        assert ((q(x).double() - (exact - b.double())).abs() <= bound).all()
    assert not torch.allclose(q.dequantized(), w, atol=1e-4)  # it did quantize


def _dequantized(rnn: Recurrent) -> Recurrent:
    """A float64 copy of `rnn` with the weights the int8 stepper reads: layer 0's W_hh quantized per
    row (its W_ih is folded into the fp32 embedding table), layers >= 1 [W_ih | W_hh] per row."""
    ref = Recurrent(rnn.cell, rnn.input_size, rnn.hidden_size, num_layers=rnn.num_layers)
    ref.load_state_dict(rnn.state_dict())
    with torch.no_grad():
        for k in range(rnn.num_layers):
            w_ih, w_hh, _, _ = ref.layer_weights(k)
            if k == 0:
                w_hh.copy_(Int8Weight(w_hh).dequantized())
            else:
                both = Int8Weight(torch.cat([w_ih, w_hh], dim=1)).dequantized()
                w_ih.copy_(both[:, :-rnn.hidden_size])
                w_hh.copy_(both[:, -rnn.hidden_size:])
    return ref.double().eval()


@pytest.mark.parametrize("cell", FUSED_CELLS)
def test_int8_layer_step_equals_the_dequantized_float64_layer(cell, kernels):
    torch.manual_seed(0)
    emb, rnn = nn.Embedding(11, 8), Recurrent(cell, 8, 20, num_layers=2).eval()
    with torch.no_grad():
        for p in rnn.parameters():  # larger weights than init: saturating gates, a real test of the step
            p.mul_(3)
    stepper = Stepper(QuantizedRecurrent(rnn), emb)
    assert [type(layer).__name__ for layer in stepper.layers] == ["_Int8FusedLayer"] * 2
    tokens = torch.tensor([[3, 1, 4, 1, 5, 9, 2, 6], [2, 7, 1, 8, 2, 8, 1, 8]])  # (B, T)
    with torch.no_grad():
        ref, _ = _dequantized(rnn)(emb(tokens).double(), state=None)  # (B, T, H)
    for batch in (1, 2):
        state = stepper.initial_state(batch)
        for t in range(tokens.shape[1]):
            h, state = stepper.step(tokens[:batch, t], state)
            assert (h.double() - ref[:batch, t]).abs().max() < 1e-3, (batch, t)  # int16 activations


@pytest.mark.parametrize("cell", FUSED_CELLS)
def test_int8_greedy_tokens_equal_the_dequantized_model(cell, kernels):
    torch.manual_seed(0)
    emb, rnn, head = nn.Embedding(11, 8), Recurrent(cell, 8, 24, num_layers=2).eval(), nn.Linear(24, 11)
    with torch.no_grad():
        for p in rnn.parameters():
            p.mul_(2)
    int8, reference = Stepper(QuantizedRecurrent(rnn), emb), Stepper(_dequantized(rnn).float(), emb)
    assert int8.int8 and not reference.int8

    @torch.no_grad()
    def greedy(stepper: Stepper) -> list[int]:  # what `generate(greedy=True)` does after the prompt
        token, state, tokens = torch.tensor([1]), stepper.initial_state(), []
        for _ in range(50):
            h, state = stepper.step(token, state)
            token = head(h).argmax(-1)
            tokens.append(int(token))
        return tokens

    assert greedy(int8) == greedy(reference)
