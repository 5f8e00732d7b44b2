"""The names a config chooses model parts by, without torch (the config schema reads them; the
models that implement them import them from here)."""

POOLINGS = ("last", "mean", "max", "attention")  # rnncli/models/pooling.py
ATTENTIONS = ("none", "dot", "general", "additive")  # rnncli/models/seq2seq.py
