"""The recurrent engine: cells, the `Recurrent` layer, init, hand-written BPTT, the one-token
stepper and the CPU kernels — everything that knows a gate layout."""
