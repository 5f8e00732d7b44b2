"""Networks built from `rnncli.nn`: char LM, classifier (+ pooling), tagger (+ CRF), encoder-decoder
(+ attention). Plain `nn.Module`s with keyword constructors; no config, no data, no files."""
