"""One sentence's attention drawn as a PNG heat-map (matplotlib) or a terminal heat-map (rich).

The pictures take the dict of a seq2seq task's `attention_map` (greedy decoding or beam search's best
hypothesis, each keeping its weights: `rnncli.decoding.search` with keep_attention): source tokens
(columns), output tokens (rows) and the weights (T_out, S); each row sums to 1, padding never appears.
"""

from __future__ import annotations


def _shade(w: float) -> int:
    return int(30 + 225 * w)  # dark for 0, white for 1


def _ink(w: float) -> str:
    return "black" if w > 0.5 else "white"


def plot_attention(amap: dict, path: str, title: str = "") -> bool:
    """Write a PNG heat-map (rows: output tokens, columns: source tokens) with a colour bar and
    `title` (which sentence, decoder and checkpoint); False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    src, out = amap["source"], amap["output"]
    fig, ax = plt.subplots(figsize=(max(5.0, 2.5 + 0.5 * len(src)), 1.6 + 0.4 * len(out)))
    image = ax.imshow(amap["weights"], cmap="viridis", vmin=0, vmax=1, aspect="auto")
    fig.colorbar(image, ax=ax, label="attention weight", fraction=0.05, pad=0.02)
    ax.set_xticks(range(len(src)), src, rotation=60, ha="right")
    ax.set_yticks(range(len(out)), out)
    ax.set_xlabel("source tokens")
    ax.set_ylabel("output tokens")
    if title:
        ax.set_title(title, fontsize=9, wrap=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def attention_table(amap: dict):
    """A rich table: one row per output token, cells shaded by attention weight (terminal heat-map)."""
    from rich.table import Table

    table = Table(title="attention (rows: output, columns: source)")
    table.add_column("")
    for token in amap["source"]:
        table.add_column(token, justify="right")
    for token, row in zip(amap["output"], amap["weights"]):
        cells = [f"[{_ink(w)} on rgb({_shade(w)},{_shade(w)},{_shade(w)})]{w:.2f}[/]" for w in row]
        table.add_row(token, *cells)
    return table
