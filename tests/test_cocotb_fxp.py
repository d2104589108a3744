"""cocotb regression of the fixed-point engine on the Verilog: SGD steps of an MLP on real digits (the weights
after every step read back and compared bit for bit), an LSTM sequence, random programs; every cfg handshake,
done pulse and out beat at the cycle `hwgen.fxp.perf.predict` says, and random stalls that only slow it down."""

import os

import numpy as np
import pytest

from hwgen.fxp import FxpSpec, ProgramBuilder
from hwgen.fxp.lstm_layer import LstmShape, lstm_program
from hwgen.fxp.spec import LR_FRAC
from hwgen.fxp.training import FixedPointMLP, digits_data, init_weights
from hwgen.sim.fxp_runner import run_fxp
from tests.fxp_programs import random_program, random_spec

pytestmark = pytest.mark.cocotb

SIM = os.environ.get("SIM", "icarus")

TRAIN_SPEC = FxpSpec(size=4, frac_bits=14, vector_words=256, weight_words=96, max_batch=4, training=True,
                     stochastic=True, seed=2024, name="fxp_train4")


def assert_cycle_exact(result):
    m, p = result.measured, result.model
    assert m.cfg == p.cfg, "cfg handshakes differ"
    assert m.done == p.done, "done pulses differ"
    assert m.out == p.out, "out beats differ in time"


@pytest.mark.parametrize("rounding", ["nearest", "stochastic"])
def test_sgd_steps_of_an_mlp_on_digits(rounding):
    """Three SGD steps of the MLP 64 -> 16 -> 10 (batch 4) on the first digits: forward, loss gradient from the
    host, W^T g, outer-product updates; after each step every weight is read back and must equal the golden
    model's, and the host's gradient waits for the logits it is made from."""
    x, y, _, _ = digits_data()
    mlp = FixedPointMLP(TRAIN_SPEC, (65, 16, 10), batch=4, logit_scale=4.0)
    builder = ProgramBuilder(TRAIN_SPEC)
    mlp.load(builder, init_weights(mlp.sizes, seed=3))
    for step in range(3):
        idx = np.arange(step * 4, step * 4 + 4)
        mlp.step(builder, x[idx] * 0.25, y[idx], lr_mult=int(0.05 * (1 << LR_FRAC)), rounding=rounding,
                 read_back=True)
    program = builder.program()
    # The weights moved, and the read-backs are what the golden model holds.
    assert not np.array_equal(mlp.weights(builder.machine)[0], mlp.unpack(mlp.tiles(init_weights(mlp.sizes, 3))[0], 0))
    result = run_fxp(program, simulator=SIM, tag=f"mlp-{rounding}")
    assert result.exact, result.report
    assert_cycle_exact(result)


def test_lstm_sequence():
    spec = FxpSpec(size=4, frac_bits=12, vector_words=128, weight_words=2, max_batch=2, lstm=True, cell_words=16,
                   max_steps=4, name="fxp_lstm4")
    shape = LstmShape(input_size=6, hidden=5, batch=2, steps=3)
    rng = np.random.default_rng(7)
    x = rng.uniform(-1, 1, (3, 2, 6))
    w_ih, w_hh, bias = (rng.uniform(-0.5, 0.5, s) for s in ((20, 6), (20, 5), (20,)))
    builder, _ = lstm_program(spec, shape, x, w_ih, w_hh, bias, read_back=True)
    result = run_fxp(builder.program(), simulator=SIM, tag="lstm")
    assert result.exact, result.report
    assert_cycle_exact(result)


@pytest.mark.parametrize("seed, stall", [(3, 0.0), (11, 0.0), (6, 0.25)])
def test_random_programs(seed, stall):
    spec = random_spec(seed)
    program = random_program(spec, seed)
    result = run_fxp(program, simulator=SIM, stall=stall, seed=seed, tag=f"rand{seed}")
    assert result.exact, result.report
    if stall:
        assert all(t >= m for t, m in zip(result.measured.done, result.model.done))
    else:
        assert_cycle_exact(result)


@pytest.mark.slow
def test_deepbench_sized_lstm_on_the_rtl():
    """The DeepBench layer (hidden 128, inputs of 128) for a few steps at batch 2, PyTorch's weights: every h read
    back exact, cycles = model (benchmarks/lstm.py --rtl runs all 50 steps)."""
    from hwgen.fxp.lstm_layer import deepbench_spec, torch_lstm
    shape = LstmShape(input_size=128, hidden=128, batch=2, steps=4)
    spec = deepbench_spec(shape, name="fxp_lstm_db")
    x = np.random.default_rng(5).uniform(-1, 1, (4, 2, 128))
    _, w_ih, w_hh, bias = torch_lstm(x, 128, 128, seed=0)
    builder, _ = lstm_program(spec, shape, x, w_ih, w_hh, bias, emit=False, read_back=True)
    result = run_fxp(builder.program(), simulator=SIM, tag="lstm-db")
    assert result.exact, result.report
    assert_cycle_exact(result)
