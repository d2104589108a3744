"""The fixed-point training engine: an 8x8 grid of 16-bit multipliers (Q1.14) that runs SGD steps of an MLP -
forward, the input gradient ``W^T g`` from the same stored tiles (no transposed copy), the outer-product weight
gradient over the batch and the update ``W -= lr * g a^T`` with LFSR stochastic rounding (seed 2024) or
round-to-nearest, chosen per command.

`hwgen sim fxp_train` runs two SGD steps of the MLP 64 -> 16 -> 10 (batch 4, synthetic inputs and labels), reads
every weight back after each step and checks them, and every output word, against the golden model, cycle by
cycle against the model. benchmarks/training.py trains the same MLP on scikit-learn's digits.
"""

from hwgen.fxp import FxpSpec
from hwgen.fxp.design import FxpDesign, MlpTraining

design = FxpDesign(
    name="fxp_train",
    spec=FxpSpec(size=8, frac_bits=14, training=True, stochastic=True, seed=2024, max_batch=16,
                 vector_words=512, weight_words=64, name="fxp_train"),
    workload=MlpTraining(sizes=(64, 16, 10), batch=4, steps=2, lr=0.05, rounding="stochastic"),
)
