"""Config errors, `config show` and `config keys` answer without importing torch (seconds), and the
torch-free cell catalog says what every cell class says."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from dataclasses import fields
from pathlib import Path

import pytest

from rnncli.nn.cells import CELL_NAMES, cell_class
from rnncli.nn.cells.catalog import CATALOG, CellFacts

ROOT = Path(__file__).resolve().parents[1]

# Runs the CLI in-process on argv, then reports whether torch was imported (exit code kept in `code`).
PROBE = textwrap.dedent("""
    import sys
    from rnncli.cli import app
    code = 0
    try:
        app(sys.argv[1:], prog_name="rnncli")
    except SystemExit as e:
        code = e.code
    print("TORCH" if "torch" in sys.modules else "NO-TORCH", code)
""")


def _run(*argv: str) -> tuple[str, str]:
    out = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, timeout=60,
                         cwd=ROOT)
    return out.stdout.strip().splitlines()[-1], out.stderr


@pytest.fixture
def bad_config(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("task: char_lm\ndata:\n  path: ../data/demo.txt\nmodel:\n  hiden_size: 32\n")
    return path


def test_config_errors_and_config_commands_do_not_import_torch(bad_config):
    demo = str(ROOT / "configs" / "demo.yaml")
    line, err = _run("train", str(bad_config))
    assert line == "NO-TORCH 2" and "hiden_size" in err and "Did you mean 'hidden_size'" in err
    line, err = _run("train", demo, "--set", "trainr.lr=1")
    assert line == "NO-TORCH 2" and "override trainr.lr=1" in err
    line, err = _run("train", demo, "--set", "model.cell=lstmm")
    assert line == "NO-TORCH 2" and "model.cell" in err
    assert _run("config", "show", demo)[0] == "NO-TORCH 0"
    assert _run("config", "keys", "seq2seq")[0] == "NO-TORCH 0"


def test_the_probe_sees_torch_when_it_is_imported():
    """The check above can fail: a command that needs torch is reported as importing it."""
    line, _ = _run("eval", str(ROOT / "no-such-run"))
    assert line.startswith("TORCH")


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_the_catalog_says_what_the_cell_class_says(cell):
    cls = cell_class(cell)
    from_class = {f.name: getattr(cls, f.name) for f in fields(CellFacts)}
    from_class["torch_kernel"] = cls.torch_kernel.__name__ if cls.torch_kernel is not None else None
    assert CATALOG[cell] == CellFacts(**from_class)
