"""The HTTP app of `rnncli serve`: FastAPI routes over `rnncli.api.LoadedRun`s.

    GET  /health                     {"status": "ok", "models": [names]}
    GET  /info                       {"models": {name: model info}}
    GET  /models/{name}              one model's info and the endpoints it has
    POST /models/{name}/generate     char_lm (SamplesText): {"text"}; "stream": true -> text/event-stream
    POST /models/{name}/predict      classify, ner (Predicts): {"predictions": [...]}
    POST /models/{name}/translate    seq2seq (Translates): {"results": [{"source", "translations"}]}

A model has the endpoints its task declares (rnncli/tasks/base.py); another is a 404 saying which
it has. Errors are JSON {"error": message[, "field": name]}: 422 for a body that fails validation
(schemas.py), 400 for a value the model refuses (e.g. a character outside its vocabulary), 404 for
an unknown model or endpoint, 500 {"error": "internal error"} for anything else (logged, never a
traceback in a response).

Model calls are serialized by one lock: the models share the machine's cores, and torch already
spreads one call over them (benchmarks/serve_load.py measures throughput and latency).
"""
from __future__ import annotations

import json
import queue
import sys
import threading
from typing import Iterator

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from rnncli.api import LoadedRun
from rnncli.errors import ArgumentError, RnncliError
from rnncli.tasks.base import Predicts, SamplesText, Translates
from rnncli.tools.serve.schemas import GenerateRequest, PredictRequest, TranslateRequest

ENDPOINTS = {"generate": SamplesText, "predict": Predicts, "translate": Translates}


class ServeError(Exception):
    def __init__(self, status: int, message: str, field: str | None = None):
        super().__init__(message)
        self.status, self.message, self.field = status, message, field


def _body(message: str, field: str | None = None) -> dict:
    return {"error": message} if field is None else {"error": message, "field": field}


def build_app(models: dict[str, LoadedRun]) -> FastAPI:
    """The app serving `models` (name -> loaded run)."""
    app = FastAPI(title="rnncli serve", docs_url=None, redoc_url=None)
    lock = threading.Lock()  # one model call at a time
    _error_handlers(app)

    def model(name: str, endpoint: str | None = None) -> LoadedRun:
        if name not in models:
            raise ServeError(404, f"no model {name!r}; models: {', '.join(models)}")
        run = models[name]
        if endpoint is not None and not run.can(ENDPOINTS[endpoint]):
            raise ServeError(404, f"model {name!r} is a '{run.spec.name}' run: it has no {endpoint} "
                                  f"endpoint (it has: {', '.join(endpoints(run)) or 'none'})")
        return run

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "models": list(models)}

    @app.get("/info")
    def info() -> dict:
        return {"models": {name: describe(name, run) for name, run in models.items()}}

    @app.get("/models/{name}")
    def model_info(name: str) -> dict:
        return describe(name, model(name))

    @app.post("/models/{name}/predict")
    def predict(name: str, request: PredictRequest) -> dict:
        run = model(name, "predict")
        with lock:
            return {"predictions": _user_errors(run.predict, request.texts)}

    @app.post("/models/{name}/translate")
    def translate(name: str, request: TranslateRequest) -> dict:
        run = model(name, "translate")
        if request.beam is not None and request.n_best > request.beam:
            raise ServeError(422, f"n_best: must not exceed beam ({request.beam})", "n_best")
        with lock:
            return {"results": _user_errors(run.translate, request.sentences, request.beam, request.n_best)}

    @app.post("/models/{name}/generate")
    def generate(name: str, request: GenerateRequest):
        run = model(name, "generate")
        args = (request.prompt, request.length, request.temperature, request.top_k, request.top_p,
                request.greedy, request.seed)
        if request.stream:
            return _stream(run, args, lock)
        with lock:
            return {"prompt": request.prompt, "text": _user_errors(run.generate, *args)}

    return app


def endpoints(run: LoadedRun) -> list[str]:
    return [name for name, capability in ENDPOINTS.items() if run.can(capability)]


def describe(name: str, run: LoadedRun) -> dict:
    return {"name": name, **run.info(), "endpoints": [f"/models/{name}/{e}" for e in endpoints(run)]}


def _user_errors(call, *args):
    """The call's result; a user error (bad value the model refuses) becomes a 400 naming it."""
    try:
        return call(*args)
    except ArgumentError as error:
        raise ServeError(400, str(error), error.argument) from None
    except RnncliError as error:
        raise ServeError(400, str(error)) from None


class _Cancelled(Exception):
    """The client went away: stop sampling."""


_END = object()


def _stream(run: LoadedRun, args: tuple, lock: threading.Lock):
    """Sample in a worker thread, one server-sent event per character as it comes:
    `data: {"text": "a"}` ..., then `event: done` with the whole text. An error before the first
    character (e.g. a prompt character outside the vocabulary) is a plain JSON 400."""
    events: queue.Queue = queue.Queue()
    cancelled = threading.Event()

    def on_text(text: str) -> None:
        if cancelled.is_set():
            raise _Cancelled
        events.put(text)

    def work() -> None:
        try:
            with lock:
                events.put(("done", run.generate(*args, on_text=on_text)))
        except _Cancelled:
            pass
        except BaseException as error:  # handed to the response below
            events.put(error)
        events.put(_END)

    threading.Thread(target=work, daemon=True, name="rnncli-generate").start()
    first = events.get()
    if isinstance(first, BaseException):
        _user_errors(_raise, first)

    def sse() -> Iterator[str]:
        item = first
        try:
            while item is not _END:
                if isinstance(item, tuple):
                    yield f"event: done\ndata: {json.dumps({'text': item[1]})}\n\n"
                elif isinstance(item, BaseException):
                    print(f"rnncli serve: generation failed: {type(item).__name__}: {item}", file=sys.stderr)
                    yield f"event: error\ndata: {json.dumps(_body('internal error'))}\n\n"
                else:
                    yield f"data: {json.dumps({'text': item})}\n\n"
                item = events.get()
        finally:
            cancelled.set()

    return StreamingResponse(sse(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


def _raise(error: BaseException):
    raise error


def _error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServeError)
    async def serve_error(request: Request, error: ServeError):
        return JSONResponse(_body(error.message, error.field), status_code=error.status)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError):
        first = error.errors()[0]
        loc = [str(part) for part in first.get("loc", ()) if part != "body"]
        field = ".".join(loc) or "body"
        message = first.get("msg", "invalid")
        if first.get("type") == "extra_forbidden":
            message = "unknown field" + _allowed(request)
        elif first.get("type") == "json_invalid":
            field, message = "body", "is not valid JSON"
        return JSONResponse(_body(f"{field}: {message}", field), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException):
        return JSONResponse(_body(str(error.detail)), status_code=error.status_code)

    @app.exception_handler(Exception)
    async def internal(request: Request, error: Exception):
        print(f"rnncli serve: {request.method} {request.url.path} failed: {type(error).__name__}: {error}",
              file=sys.stderr, flush=True)
        return JSONResponse(_body("internal error"), status_code=500)


def _allowed(request: Request) -> str:
    schema = {"generate": GenerateRequest, "predict": PredictRequest, "translate": TranslateRequest}
    kind = schema.get(request.url.path.rsplit("/", 1)[-1])
    return "" if kind is None else f" (allowed: {', '.join(kind.model_fields)})"
