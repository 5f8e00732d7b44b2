"""The loop and what it needs: trainer, atomic checkpoints, precision, progress (the only printer)
and the fast-path report."""
