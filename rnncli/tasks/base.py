"""The task contract: `Task` is what the trainer (and every command) needs from a task; the
small capability protocols below are what a task can do beyond training and scoring.

A task class implements `Task` and the capabilities it lists in the registry
(rnncli/tasks/__init__.py); `api`, the CLI and the tools ask the registry (`spec.can(Translates)`)
and never probe a task object for methods. tests/test_tasks.py checks that every task
implements exactly the capabilities it declares.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Protocol, Sequence

if TYPE_CHECKING:  # annotations only: the registry (and so every config check) loads this without torch
    import torch

    from rnncli.data.text import CharVocab
    from rnncli.metrics import ExampleScores


class Task(Protocol):
    """What `rnncli.training.trainer.Trainer` needs from a task.

    Batches must be deterministic given the config's seed and the epoch number, so that a
    resumed run can skip to the saved batch index and see exactly the batches it would have.
    """

    model: torch.nn.Module
    metric: str  # validation metric that picks the best checkpoint, e.g. "loss"
    higher_is_better: bool

    def num_train_batches(self) -> int: ...

    def train_batches(self, epoch: int) -> Sequence[Any]: ...

    def initial_carry(self) -> Any:
        """State carried from batch to batch within an epoch (None when nothing is carried)."""

    def train_step(self, batch: Any, carry: Any) -> tuple[torch.Tensor, Any, int]:
        """Forward one batch: (mean loss to backpropagate, new carry, tokens in the batch)."""

    def shard(self, batch: Any, parts: int) -> list[tuple[Any, int]]:
        """A training batch cut into `parts` pieces (torchrun ranks x trainer.accumulate), each with
        the count its mean loss is taken over (tokens or examples; 0 for a stand-in piece), so that
        sum(loss_p x count_p) / sum(count_p) is the whole batch's loss."""

    def evaluate(self, split: str) -> dict[str, float]: ...

    def state(self) -> dict:
        """Plain data (vocabularies, ...) saved in checkpoints to rebuild the task at eval time."""

    def load_data(self, data_file: str | None = None) -> None:
        """Load the evaluation splits: the config's, or the file `data_file` as the split "file".

        `build` loads the data itself; a task rebuilt by `restore` has none until this is called.
        """


# --------------------------------------------------------------------------- capabilities
class SamplesText(Protocol):
    """Generates text one character at a time (char_lm; `rnncli generate`)."""

    vocab: CharVocab  # the characters it reads and writes

    def generate(self, prompt: str, length: int = 500, temperature: float = 1.0, top_k: int | None = None,
                 top_p: float | None = None, greedy: bool = False, seed: int | None = None,
                 on_text: Callable[[str], None] | None = None) -> str:
        """Prime the state with `prompt`, then sample `length` characters (`on_text` streams them)."""


class Predicts(Protocol):
    """Predicts for raw input texts: a label (classify) or tags and entities (ner); `rnncli predict`."""

    def predict(self, texts: list[str]) -> list[dict]:
        """One plain dict per input text."""

    @staticmethod
    def format_prediction(prediction: dict) -> str:
        """One line of text for a prediction dict."""


class WritesPredictions(Protocol):
    """Writes predictions in the task's own file format (ner: CoNLL); `rnncli predict --output`."""

    @staticmethod
    def write_predictions(predictions: list[dict], path: str) -> None: ...


class Translates(Protocol):
    """Translates sentences with greedy or beam search (seq2seq); `rnncli generate`, `eval --beam`."""

    def translate(self, sentences: list[str], beam: int | None = None, n_best: int = 1) -> list[dict]:
        """{"source", "translations": [{"text", "score"}, ...]} per sentence, best first."""

    @staticmethod
    def format_translation(result: dict, n_best: int = 1) -> str: ...

    def evaluate(self, split: str, beam: int | None = None) -> dict:
        """Scores with free decoding at this beam size (None: the config's)."""


class MapsAttention(Protocol):
    """Shows where the decoder attends for one sentence (seq2seq; `rnncli eval --attention-plot`)."""

    def attention_map(self, split: str, index: int = 0, beam: int | None = None) -> dict:
        """{"source": tokens, "output": tokens, "weights": (T_out, S) nested lists, "decoder": "greedy"
        or "beam K"}: greedy decoding's attention, or with `beam` that of beam search's best hypothesis."""


class Probes(Protocol):
    """Gives `rnncli diagnose` one validation batch for the recurrent stack `model.rnn`."""

    def probe(self, batch_size: int) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
        """Recurrent inputs (B, T, I) and loss(outputs (B, T, H)) -> scalar."""


class RendersMetrics(Protocol):
    """Tables beyond the scalar metrics for `rnncli eval` (per class, per type, examples)."""

    @staticmethod
    def metric_tables(metrics: dict) -> list:
        """rich renderables."""


class ScoresExamples(Protocol):
    """Per-example statistics of a split for paired comparisons of two runs (`rnncli eval --compare`):
    each metric as rows that sum over any subset of examples (rnncli/metrics.py, `ExampleScores`)."""

    def example_scores(self, split: str) -> ExampleScores:
        """The split's examples, in order, each metric's rows and how summed rows give the metric."""


class ShowsSamples(Protocol):
    """A few outputs of the model as text, for TensorBoard at each validation (char_lm: a generated
    sample; seq2seq: translations beside their references; ner: tagged sentences)."""

    def samples(self, split: str, count: int = 3) -> str:
        """Markdown."""


CAPABILITIES = (SamplesText, Predicts, WritesPredictions, Translates, MapsAttention, Probes, RendersMetrics,
                ScoresExamples, ShowsSamples)
