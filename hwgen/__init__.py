"""hwgen: loop nests of DNN layers -> verified dataflow accelerators."""
