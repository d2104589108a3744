"""The fixed-point LSTM engine: an 8x8 grid of 16-bit multipliers (Q3.12) that computes the four gates of two
hidden units per output word over ``[x_t, h_(t-1)]``, with sigmoid and tanh tables (256 segments, piecewise
linear) and the cell state in its own memory; the weights stream in every step (as a batch-1 RNN reads them from
DRAM), so the engine runs at the weight-bandwidth roof of one 8x8 tile per cycle.

`hwgen sim fxp_lstm` runs 4 steps of 16 hidden units over inputs of 8 (batch 2) and checks every hidden state
against the golden model, cycle by cycle against the model. benchmarks/lstm.py runs the DeepBench shape (hidden
128, T = 50, batch 1 and 16) against PyTorch's nn.LSTM.
"""

from hwgen.fxp import FxpSpec
from hwgen.fxp.design import FxpDesign, LstmSequence

design = FxpDesign(
    name="fxp_lstm",
    spec=FxpSpec(size=8, frac_bits=12, lstm=True, vector_words=256, weight_words=2, max_batch=16, max_steps=64,
                 cell_words=128, name="fxp_lstm"),
    workload=LstmSequence(input_size=8, hidden=16, batch=2, steps=4),
)
