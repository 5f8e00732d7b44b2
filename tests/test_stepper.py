"""rnncli.nn.stepper: one-token steps match the full forward for every cell; generation is unchanged."""

import pytest
import torch

from rnncli.data.text import CharVocab
from rnncli.nn import fused_cpu
from rnncli.nn.cells import CELL_NAMES, cell_class, cells_where
from rnncli.decoding.sampling import next_token
from rnncli.nn.recurrent import Recurrent
from rnncli.models.char_lm import CharLM
from rnncli.nn.state import join_state, split_state
from rnncli.nn.stepper import Stepper
from rnncli.tasks.char_lm import generate

CELLS = [(cell, n) for cell in CELL_NAMES for n in cell_class(cell).nonlinearities]
EVERY_CELL = pytest.mark.parametrize("cell,nonlinearity", CELLS, ids=[f"{c}-{n}" for c, n in CELLS])
LAYERS = pytest.mark.parametrize("num_layers", [1, 2])
VOCAB, STEPS, BATCH = 7, 9, 2


def close(actual, expected):
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)


def tiny_lm(cell: str, nonlinearity: str, num_layers: int, seed: int = 0) -> CharLM:
    torch.manual_seed(seed)
    model = CharLM(vocab_size=VOCAB, embedding_dim=5, cell=cell, hidden_size=6, num_layers=num_layers,
                   nonlinearity=nonlinearity).eval()
    randomize_(model)
    with torch.no_grad():
        model.head.weight.mul_(4.0)  # peaked logits, so a wrong state changes what is sampled
    return model


def randomize_(module: torch.nn.Module) -> None:
    """Every parameter ~ U(-0.5, 0.5): the init zeroes biases, which would hide a lost b_hh."""
    with torch.no_grad():
        for p in module.parameters():
            p.uniform_(-0.5, 0.5)


@EVERY_CELL
@LAYERS
def test_steps_match_the_full_forward(cell, nonlinearity, num_layers):
    model = tiny_lm(cell, nonlinearity, num_layers)
    ids = torch.randint(0, VOCAB, (BATCH, STEPS))
    with torch.no_grad():
        logits, final = model(ids)  # (B, T, V)
        _, primed = model(ids[:, :3])
    stepper = Stepper(model.rnn, model.embedding)
    for start, state in ((0, stepper.initial_state(BATCH)), (3, split_state(primed))):
        for t in range(start, STEPS):
            h, state = stepper.step(ids[:, t], state)
            close(model.head(h), logits[:, t])
        close(join_state(state), final)


@EVERY_CELL
@LAYERS
def test_steps_without_an_embedding_take_inputs(cell, nonlinearity, num_layers):
    torch.manual_seed(1)
    rnn = Recurrent(cell, 4, 6, num_layers, nonlinearity=nonlinearity).eval()
    randomize_(rnn)
    x = torch.randn(BATCH, STEPS, 4)
    with torch.no_grad():
        out, final = rnn(x)  # (B, T, H)
    stepper = Stepper(rnn)
    state = stepper.initial_state(BATCH)
    for t in range(STEPS):
        h, state = stepper.step(x[:, t], state)
        close(h, out[:, t])
    close(join_state(state), final)
    assert not h.requires_grad  # stepping records no graph, even with grad enabled


def per_token_forward(model, vocab, prompt, length, seed, **sampling) -> str:
    """generate as it was before the stepper: a length-1 model forward per character."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        logits, state = model(vocab.encode(prompt).unsqueeze(0))
        out = []
        for _ in range(length):
            token = next_token(logits[:, -1], generator=generator, **sampling)
            out.append(vocab.chars[token.item()])
            logits, state = model(token.view(1, 1), state)
    return "".join(out)


@EVERY_CELL
@LAYERS
@pytest.mark.parametrize("sampling", [{"temperature": 1.0}, {"temperature": 0.7, "top_k": 4}, {"top_p": 0.9},
                                      {"greedy": True}], ids=["t1", "top_k", "top_p", "greedy"])
def test_generate_matches_the_per_token_forward(cell, nonlinearity, num_layers, sampling):
    model, vocab = tiny_lm(cell, nonlinearity, num_layers), CharVocab("abcdefg")
    expected = per_token_forward(model, vocab, "abca", 40, seed=5, **sampling)
    assert generate(model, vocab, "abca", 40, seed=5, **sampling) == expected


def test_bidirectional_stacks_do_not_step():
    for cell in ("lstm", "peephole_lstm"):
        with pytest.raises(ValueError, match=f"cannot step a bidirectional '{cell}' layer"):
            Stepper(Recurrent(cell, 4, 6, bidirectional=True))


def test_embedding_size_must_match():
    with pytest.raises(ValueError, match="embedding_dim 3 does not match .* input size 4"):
        Stepper(Recurrent("gru", 4, 6), torch.nn.Embedding(VOCAB, 3))


@pytest.mark.parametrize("cell", cells_where(lambda c: c.bptt_kind in fused_cpu.KINDS))
@pytest.mark.parametrize("compiled", [True, False], ids=["compiled-step", "eager-step"])
def test_lstm_family_steps_match_with_and_without_the_compiled_step(cell, compiled, monkeypatch):
    """The LSTM family steps through rnncli/nn/fused_cpu.py when it is built, else through torch ops;
    both must match the full forward."""
    from rnncli.nn import stepper as stepper_module

    if compiled and fused_cpu.kernels() is None:
        pytest.skip("no C++ compiler here")
    if not compiled:
        monkeypatch.setattr(stepper_module, "_fused_kernels", lambda recurrent: None)
    model = tiny_lm(cell, "tanh", 2, seed=3)
    ids = torch.randint(0, VOCAB, (BATCH, STEPS))
    with torch.no_grad():
        logits, final = model(ids)
    stepper = Stepper(model.rnn, model.embedding)
    assert all(type(layer).__name__ == ("_FusedLayer" if compiled else type(layer).__name__)
               for layer in stepper.layers)
    assert any(type(layer).__name__ == "_FusedLayer" for layer in stepper.layers) == compiled
    state = stepper.initial_state(BATCH)
    for t in range(STEPS):
        h, state = stepper.step(ids[:, t], state)
        close(model.head(h), logits[:, t])
    close(join_state(state), final)
