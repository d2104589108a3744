"""The post-op pipeline (`hwgen.hw.postops`) against the golden model `hwgen.postops.apply`, bit for bit.

A `StreamBench` drives one `PostOpPipeline` through a sequence of layers: it sets ``cfg``, loads the parameter
beats, then offers the accumulator beats with random ``valid`` gaps while a random ``ready`` throttles the
output. A monitor checks the stream contract every cycle (an offered output holds its payload until taken) and
records the transfers; the layer's output beats must equal `apply` on the same accumulators. Directed tests
check the documented latency and full throughput.
"""

import gc
import warnings
from math import ceil

import numpy as np
import pytest
from amaranth.hdl import UnusedElaboratable
from amaranth.sim import Simulator

from hwgen.dtypes import IntType, int4, int32, int48, uint8
from hwgen.hw.postops import PostOpPipeline
from hwgen.postops import (PostOps, QuantParams, apply, check_layer, config_values, pack_params, pack_stream,
                           unpack_stream)
from hwgen.spec import AcceleratorSpec


def make_spec(cols, acc_type=int32):
    acc_type = IntType(acc_type) if isinstance(acc_type, int) else acc_type
    return AcceleratorSpec(rows=2, cols=cols, acc_type=acc_type, act_buffer_bytes=64, weight_buffer_bytes=64,
                           acc_buffer_bytes=cols * acc_type.bits * 8)


class Layer:
    """One layer's stimulus and its golden output beats."""

    def __init__(self, spec, postops, acc, params):
        self.postops, self.acc, self.params = postops, acc, params
        M, E, F = acc.shape
        self.shape = (M, E, F)
        self.m_folds = ceil(M / spec.cols)
        self.cfg = config_values(postops, spec.acc_type, out_h=E, out_w=F, m_folds=self.m_folds)
        self.param_beats = pack_params(params, cols=spec.cols, M=M) if postops.needs_params else []
        self.in_beats = pack_stream(acc, cols=spec.cols, lane_type=spec.acc_type)
        self.expected = apply(acc, params, postops, spec.acc_type)
        self.out_size = postops.out_size(E, F)


def random_layer(spec, postops, shape, rng):
    M = shape[0]
    bits = spec.acc_type.bits
    bias_span = min(1 << 31, 1 << (bits - 2))
    # Accumulators and biases small enough that acc + bias fits acc_type (the golden model's contract without
    # requantization); with it, extremes are fine and saturate.
    acc = rng.integers(-(1 << (bits - 2)), 1 << (bits - 2), size=shape)
    params = QuantParams(bias=rng.integers(-bias_span, bias_span, size=M),
                         multiplier=rng.integers(0, 1 << 31, size=M),
                         shift=rng.integers(bits - 8, min(bits + 24, 64), size=M))
    return Layer(spec, postops, acc, params)


class StreamBench:
    def __init__(self, spec, *, max_m_folds=4, max_out_w=16):
        self.spec = spec
        self.dut = PostOpPipeline(spec, max_m_folds=max_m_folds, max_out_w=max_out_w)

    def run(self, layers, *, p_valid=1.0, p_ready=1.0, seed=0, max_cycles=20000):
        """Stream every layer; return the output beats of each. Between layers the pipeline drains."""
        dut, rng = self.dut, np.random.default_rng(seed)
        results = []

        async def testbench(ctx):
            cycles = 0
            for layer in layers:
                check_layer(layer.postops, out_h=layer.shape[1], out_w=layer.shape[2], m_folds=layer.m_folds,
                            max_out_w=dut.max_out_w, max_m_folds=dut.max_m_folds)
                ctx.set(dut.cfg, layer.cfg)
                for word in layer.param_beats:          # params are always accepted; random gaps
                    while rng.random() > p_valid:
                        await ctx.tick()
                    ctx.set(dut.params.valid, 1)
                    ctx.set(dut.params.payload, word)
                    assert ctx.get(dut.params.ready)
                    await ctx.tick()
                    ctx.set(dut.params.valid, 0)
                expected_beats = layer.m_folds * layer.out_size[0] * layer.out_size[1]
                got, sent, offered, held = [], 0, False, None
                # Pooling may emit its last window before the dropped odd row is sent: wait for both.
                while len(got) < expected_beats or sent < len(layer.in_beats) or ctx.get(dut.busy):
                    if not offered and sent < len(layer.in_beats) and rng.random() < p_valid:
                        offered = True                  # once offered, a beat stays valid until taken
                        ctx.set(dut.i.payload, layer.in_beats[sent])
                    ctx.set(dut.i.valid, offered)
                    ready = bool(rng.random() < p_ready)
                    ctx.set(dut.o.ready, ready)
                    if held is not None:                # the output contract: valid and payload hold
                        assert ctx.get(dut.o.valid) and ctx.get(dut.o.payload) == held
                    if offered and ctx.get(dut.i.ready):
                        sent, offered = sent + 1, False
                    held = None
                    if ctx.get(dut.o.valid):
                        if ready:
                            got.append(ctx.get(dut.o.payload))
                        else:
                            held = ctx.get(dut.o.payload)
                    await ctx.tick()
                    cycles += 1
                    assert cycles < max_cycles, "the pipeline stopped making progress"
                ctx.set(dut.i.valid, 0)
                assert sent == len(layer.in_beats)
                results.append(got)

        sim = Simulator(dut)
        sim.add_clock(1e-6)
        sim.add_testbench(testbench)
        sim.run()
        return results

    def check(self, layers, results):
        for layer, beats in zip(layers, results):
            M = layer.shape[0]
            E2, F2 = layer.out_size
            got = unpack_stream(beats, M=M, E=E2, F=F2, cols=self.spec.cols, lane_type=self.spec.acc_type)
            np.testing.assert_array_equal(got, layer.expected, err_msg=f"{layer.postops} on {layer.shape}")


CHAINS = {
    "none": PostOps(),
    "bias": PostOps(bias=True),
    "relu": PostOps(relu=True),
    "requant": PostOps(bias=True, requant=True),
    "requant_relu": PostOps(bias=True, requant=True, relu=True),
    "requant_relu_maxpool": PostOps(bias=True, requant=True, relu=True, pool="max"),
    "requant_relu_avgpool": PostOps(bias=True, requant=True, relu=True, pool="avg"),
    "avgpool": PostOps(pool="avg"),
    "bias_maxpool": PostOps(bias=True, pool="max"),
    "requant_uint8_avgpool": PostOps(requant=True, pool="avg", out_type=uint8),
    "requant_int4_maxpool": PostOps(bias=True, requant=True, pool="max", out_type=int4),
}


@pytest.mark.parametrize("name", list(CHAINS))
def test_chain_equals_golden_model_under_random_stalls(name):
    spec = make_spec(cols=4)
    rng = np.random.default_rng(len(name))
    bench = StreamBench(spec)
    # Odd and even sizes, M not a multiple of cols (padding lanes), one and several m-folds.
    layers = [random_layer(spec, CHAINS[name], shape, rng) for shape in [(6, 5, 7), (3, 4, 4)]]
    bench.check(layers, bench.run(layers, p_valid=0.7, p_ready=0.6, seed=len(name)))


@pytest.mark.parametrize("acc_type", [IntType(20), int48], ids=str)
def test_other_accumulator_widths(acc_type):
    spec = make_spec(cols=2, acc_type=acc_type)
    rng = np.random.default_rng(acc_type.bits)
    bench = StreamBench(spec)
    layers = [random_layer(spec, postops, (3, 4, 5), rng) for postops in
              (CHAINS["requant_relu_avgpool"], CHAINS["bias_maxpool"], CHAINS["requant"])]
    bench.check(layers, bench.run(layers, p_valid=0.8, p_ready=0.7, seed=acc_type.bits))


def test_extreme_values_back_to_back_layers():
    """int32 extremes, shift 0 and 63, the largest multiplier; layers change configuration back to back."""
    spec = make_spec(cols=4)
    rng = np.random.default_rng(7)
    M, E, F = 8, 2, 3
    acc = rng.choice([int32.min, int32.min + 1, -1, 0, 1, int32.max - 1, int32.max], size=(M, E, F))
    extreme = QuantParams(bias=[int32.min, int32.max, -1, 0, 1, int32.max, int32.min, 5],
                          multiplier=[(1 << 31) - 1, (1 << 31) - 1, 1, 0, 1 << 30, 3, (1 << 31) - 1, 12345],
                          shift=[0, 63, 0, 5, 31, 1, 62, 13])
    layers = [
        Layer(spec, PostOps(bias=True, requant=True), acc, extreme),
        Layer(spec, PostOps(bias=True, requant=True, relu=True, pool="max", out_type=IntType(16)), acc, extreme),
        Layer(spec, PostOps(relu=True, pool="avg"), acc, QuantParams()),
        Layer(spec, PostOps(pool="max"), acc, QuantParams()),
    ]
    bench = StreamBench(spec)
    bench.check(layers, bench.run(layers, p_valid=0.9, p_ready=0.5, seed=7))


def test_full_throughput_without_stalls():
    spec = make_spec(cols=4)
    rng = np.random.default_rng(8)
    for postops in (CHAINS["requant_relu"], CHAINS["requant_relu_maxpool"]):
        layer = random_layer(spec, postops, (4, 6, 8), rng)
        bench = StreamBench(spec)
        bench.check([layer], bench.run([layer]))


def test_latency_is_documented_value():
    """A beat accepted in cycle t is on ``o`` in cycle t + LATENCY; a pooled window 6 cycles after its last
    input; ``i.ready`` stays high while ``o`` is ready; a stalled ``o`` holds everything, and ready is
    combinational from ``o.ready``."""
    spec = make_spec(cols=2)
    dut = PostOpPipeline(spec, max_m_folds=2, max_out_w=4)
    assert dut.latency == PostOpPipeline.LATENCY == 6
    seen = {}

    async def testbench(ctx):
        ctx.set(dut.o.ready, 1)
        # No pooling: one beat at cycle 0.
        ctx.set(dut.cfg, config_values(PostOps(), spec.acc_type, out_h=2, out_w=2, m_folds=1))
        ctx.set(dut.i.valid, 1)
        ctx.set(dut.i.payload, 5)
        for cycle in range(12):
            assert ctx.get(dut.i.ready)
            if ctx.get(dut.o.valid):
                seen.setdefault("plain", cycle)
                assert ctx.get(dut.o.payload) == 5
            await ctx.tick()
            ctx.set(dut.i.valid, 0)
        # Send the remaining 3 beats of that 2x2 layer so the counters wrap, then a pooled layer.
        ctx.set(dut.i.valid, 1)
        for _ in range(3):
            await ctx.tick()
        ctx.set(dut.i.valid, 0)
        for _ in range(8):
            await ctx.tick()
        ctx.set(dut.cfg, config_values(PostOps(pool="max"), spec.acc_type, out_h=2, out_w=2, m_folds=1))
        ctx.set(dut.i.valid, 1)
        for cycle in range(16):
            ctx.set(dut.i.payload, cycle + 1)
            ctx.set(dut.i.valid, cycle < 4)
            if ctx.get(dut.o.valid):
                assert "pool" not in seen, "one window, one output beat"
                seen["pool"] = cycle
                assert ctx.get(dut.o.payload) == 4
            await ctx.tick()
        # Backpressure: o not ready -> after the pipe fills, i.ready falls and follows o.ready.
        ctx.set(dut.cfg, config_values(PostOps(), spec.acc_type, out_h=4, out_w=4, m_folds=1))
        ctx.set(dut.o.ready, 0)
        ctx.set(dut.i.valid, 1)
        accepted = 0
        for _ in range(10):
            accepted += ctx.get(dut.i.ready)
            await ctx.tick()
        assert accepted == PostOpPipeline.LATENCY
        ctx.set(dut.o.ready, 1)
        assert ctx.get(dut.i.ready) and ctx.get(dut.o.valid)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    assert seen == {"plain": PostOpPipeline.LATENCY, "pool": 3 + PostOpPipeline.LATENCY}


def test_constructor_checks():
    spec = make_spec(cols=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusedElaboratable)   # the half-built components are never elaborated
        with pytest.raises(TypeError, match="AcceleratorSpec"):
            PostOpPipeline("spec", max_m_folds=2)
        with pytest.raises(ValueError, match="max_m_folds"):
            PostOpPipeline(spec, max_m_folds=0)
        with pytest.raises(ValueError, match="max_out_w"):
            PostOpPipeline(spec, max_m_folds=2, max_out_w=1)
        gc.collect()
