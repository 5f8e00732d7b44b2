"""The run directory's life cycle: checked before anything is built, claimed only once the new run
has its data and model, and tidied of what a killed save left behind.

    check(run_dir, overwrite)      before the data is read: may this run start here? (touches nothing)
    claim(run_dir, overwrite)      after data and model are built: create the directory; with
                                   run.overwrite=true an old run's files move, untouched, into
                                   RUN/.previous-<timestamp>/ (nothing is deleted)
    remove_stale_temps(run_dir)    `last.pt.<random>.tmp` files of a save that was killed (kill -9)
    metrics_up_to(path, step)      metrics.jsonl as a resume keeps it (a torn last line dropped)

So a typo in a data path, a bad key or a Ctrl-C during set-up never costs a trained run.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from rnncli.errors import RunError

CHECKPOINTS = ("last.pt", "best.pt")
PREVIOUS = ".previous-"  # prefix of the folders that hold overwritten runs


def has_checkpoint(run_dir: Path) -> bool:
    return any((Path(run_dir) / name).exists() for name in CHECKPOINTS)


def check(run_dir: Path, overwrite: bool) -> None:
    """Refuse a run directory that cannot be used; changes nothing on disk."""
    run_dir = Path(run_dir)
    for folder in (run_dir, *run_dir.parents):
        if folder.exists():
            if not folder.is_dir():
                raise RunError(f"run directory {run_dir}: {folder} exists and is not a directory "
                               f"(check run.dir and run.name)")
            break
    if has_checkpoint(run_dir) and not overwrite:
        raise RunError(
            f"{run_dir} already holds a trained run. Resume it, start afresh with run.overwrite=true "
            f"(the old files are kept in {run_dir}/{PREVIOUS}<time>/), or pick another run.name"
        )


def claim(run_dir: Path, overwrite: bool) -> Path | None:
    """Create `run_dir`; when it holds a trained run (and `overwrite`), move every file of that run
    into a new `.previous-<timestamp>` folder inside it and return that folder (else None)."""
    run_dir = Path(run_dir)
    check(run_dir, overwrite)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        if not has_checkpoint(run_dir):
            return None
        aside = _fresh_folder(run_dir, PREVIOUS + time.strftime("%Y%m%d-%H%M%S"))
        aside.mkdir()
        for entry in sorted(run_dir.iterdir()):
            if entry != aside and not entry.name.startswith(PREVIOUS):
                entry.rename(aside / entry.name)
    except OSError as e:
        raise RunError(f"cannot prepare run directory {run_dir}: {e.strerror or e}") from None
    return aside


def _fresh_folder(parent: Path, name: str) -> Path:
    candidate, n = parent / name, 1
    while candidate.exists():
        candidate, n = parent / f"{name}-{n}", n + 1
    return candidate


def remove_stale_temps(run_dir: Path) -> list[Path]:
    """Delete the temporary files of checkpoint saves that never finished (a kill during a save);
    the checkpoint they would have replaced is intact (saves are atomic). Returns what was removed."""
    removed = []
    for name in CHECKPOINTS:
        for tmp in sorted(Path(run_dir).glob(f"{name}.*.tmp")):
            try:
                tmp.unlink()
                removed.append(tmp)
            except OSError:
                pass  # not ours to force; the next start tries again
    return removed


def metrics_up_to(path: Path, step: int) -> list[str]:
    """The lines of metrics.jsonl up to `step` (those past a checkpoint are redone on resume). A torn
    last line (a kill mid-write) is dropped; a broken line before it is an error naming file:line."""
    lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    kept = []
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
            record_step = record["step"]
        except (ValueError, KeyError, TypeError):
            if number == len(lines):
                break  # torn by a kill during the write: the checkpoint's step is redone anyway
            raise RunError(f"{path}:{number}: not a metrics record ({line[:60]!r}); fix or remove that line") from None
        if isinstance(record_step, (int, float)) and record_step <= step:
            kept.append(line)
    return kept
