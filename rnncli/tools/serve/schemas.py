"""The JSON bodies `rnncli serve` accepts: pydantic models, strict (unknown fields are errors) and
bounded (every text and count has a limit), so a bad request is a 4xx naming the field."""
from __future__ import annotations

from typing import Annotated, Optional

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

MAX_TEXT_CHARS = 2000  # one prompt, text or sentence
MAX_TEXTS = 64  # texts or sentences in one request
MAX_GENERATE = 5000  # characters generated per request
MAX_BEAM = 16


def _not_blank(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be blank (only whitespace)")
    return text


Text = Annotated[str, Field(min_length=1, max_length=MAX_TEXT_CHARS), AfterValidator(_not_blank)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # strict: "5" is not an int, 1 is not a str


class GenerateRequest(Strict):
    """Sample `length` characters after `prompt` (char_lm runs)."""

    prompt: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    length: int = Field(200, ge=0, le=MAX_GENERATE)
    temperature: float = Field(1.0, gt=0, le=100)
    top_k: Optional[int] = Field(None, ge=1)
    top_p: Optional[float] = Field(None, gt=0, le=1)
    greedy: bool = False
    seed: Optional[int] = Field(None, ge=0, le=2**63 - 1)
    stream: bool = False  # text/event-stream: one event per character as it is sampled


class PredictRequest(Strict):
    """Labels (classify) or tags and entities (ner) for each text."""

    texts: list[Text] = Field(min_length=1, max_length=MAX_TEXTS)


class TranslateRequest(Strict):
    """Translate each sentence (seq2seq runs); beam None: the run's trainer.beam_size."""

    sentences: list[Text] = Field(min_length=1, max_length=MAX_TEXTS)
    beam: Optional[int] = Field(None, ge=1, le=MAX_BEAM)
    n_best: int = Field(1, ge=1, le=MAX_BEAM)
