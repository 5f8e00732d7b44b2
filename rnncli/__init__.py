"""rnncli: train, evaluate and sample recurrent neural networks from YAML configs."""
__version__ = "0.1.0"
