"""Turning scores into outputs: sampling (`sampling`), greedy and beam search (`search`)."""
