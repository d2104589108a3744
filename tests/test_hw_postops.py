"""The post-op pipeline (`hwgen.hw.postops`) against the golden model `hwgen.postops.apply`, bit for bit.

A `StreamBench` drives one `PostOpPipeline` through a sequence of layers *back to back*, the way the top feeds
it: each layer's settings (``cfg``) and parameter ``bank`` are presented with its beats only, and change on the
first beat of the next layer while earlier beats are still in the pipe; in cycles without an offered beat they
carry garbage (the settings ride with each accepted beat, nothing else may sample them). A layer's parameters
are written through the ``params_*`` port into its bank (alternating by default) while the previous layer
streams, as soon as the last beat of the bank's previous user has entered the chain. Beats are offered with
random ``valid`` gaps while a random ``ready`` throttles the output; a monitor checks the stream contract every
cycle (an offered output holds its payload until taken). Each layer's output beats must equal `apply` on the
same accumulators. Directed tests check the documented latency and full throughput.
"""

import dataclasses
import gc
import warnings
from math import ceil

import numpy as np
import pytest
from amaranth.hdl import Elaboratable, Fragment, UnusedElaboratable
from amaranth.sim import Simulator

from hwgen.dtypes import IntType, int4, int32, int48, uint8
from hwgen.hw.postops import PostOpPipeline, greater_in_parts, greater_parts
from hwgen.hw.target import Target
from hwgen.perf import postops_latency
from hwgen.postops import (PostOps, QuantParams, apply, check_layer, config_values, pack_params, pack_stream,
                           unpack_stream)
from hwgen.spec import AcceleratorSpec


def make_spec(cols, acc_type=int32, lanes=None):
    acc_type = IntType(acc_type) if isinstance(acc_type, int) else acc_type
    return AcceleratorSpec(rows=2, cols=cols, acc_type=acc_type, act_buffer_bytes=64, weight_buffer_bytes=64,
                           acc_buffer_bytes=cols * acc_type.bits * 8, postop_lanes=lanes)


class Layer:
    """One layer's stimulus and its golden output beats."""

    def __init__(self, spec, postops, acc, params):
        self.postops, self.acc, self.params = postops, acc, params
        M, E, F = acc.shape
        self.shape = (M, E, F)
        self.m_folds = ceil(M / spec.cols)
        self.cfg = config_values(postops, spec.acc_type, out_h=E, out_w=F, m_folds=self.m_folds)
        self.param_beats = (pack_params(params, cols=spec.cols, M=M, lanes=spec.postop_lanes)
                            if postops.needs_params else [])
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


class _OnPlatform(Elaboratable):
    """Elaborates ``inner`` for ``platform`` (a `hwgen.hw.target.Target`) in the simulator, whose own platform is
    None: a family's form of a block that has no device cells in it (iCE40's post-op chain)."""

    def __init__(self, inner, platform):
        self.inner, self.platform = inner, platform

    def elaborate(self, platform):
        return Fragment.get(self.inner, self.platform)


class StreamBench:
    def __init__(self, spec, *, max_m_folds=4, max_out_w=16, platform=None):
        self.spec = spec
        self.platform = platform
        self.dut = PostOpPipeline(spec, max_m_folds=max_m_folds, max_out_w=max_out_w)

    def run(self, layers, *, p_valid=1.0, p_ready=1.0, seed=0, banks=None, max_cycles=20000):
        """Stream every layer, back to back; return the output beats of each layer.

        ``banks[n]``: the parameter bank of layer ``n`` (default ``n % 2``). Records the cycle of every accepted
        input beat in ``self.accepted`` and of every output beat taken in ``self.emitted``."""
        dut, rng = self.dut, np.random.default_rng(seed)
        banks = [n % 2 for n in range(len(layers))] if banks is None else banks
        for layer in layers:
            check_layer(layer.postops, out_h=layer.shape[1], out_w=layer.shape[2], m_folds=layer.m_folds,
                        max_out_w=dut.max_out_w, max_m_folds=dut.max_m_folds)
        beats = [(n, beat) for n, layer in enumerate(layers) for beat in layer.in_beats]
        last_beat = {}                               # layer -> index of its last beat in `beats`
        for index, (n, _) in enumerate(beats):
            last_beat[n] = index
        expected = sum(layer.m_folds * layer.out_size[0] * layer.out_size[1] for layer in layers)
        configs = [layer.cfg for layer in layers]
        got, self.accepted, self.emitted = [], [], []

        async def testbench(ctx):
            cycle, sent, offered, held = 0, 0, False, None
            written = [0] * len(layers)              # parameter words written per layer
            loading = 0                              # the layer whose parameters are written next
            while len(got) < expected or sent < len(beats) or ctx.get(dut.busy):
                assert cycle < max_cycles, "the pipeline stopped making progress"
                # Parameters of the next layers, in order, once their bank's previous user has streamed in.
                while loading < len(layers) and written[loading] == len(layers[loading].param_beats):
                    loading += 1
                write = False
                if loading < len(layers) and rng.random() < p_valid:
                    users = [n for n in range(loading) if banks[n] == banks[loading] and layers[n].param_beats]
                    if not users or sent > last_beat.get(users[-1], -1):
                        k = written[loading]
                        ctx.set(dut.params_addr, banks[loading] * dut.bank_words + k)
                        ctx.set(dut.params_data, layers[loading].param_beats[k])
                        written[loading] += 1
                        write = True
                ctx.set(dut.params_en, write)
                # The next beat, once its layer's parameters are all in (written in an earlier cycle).
                if not offered and sent < len(beats) and rng.random() < p_valid:
                    n = beats[sent][0]
                    if written[n] == len(layers[n].param_beats) and not (write and loading == n):
                        offered = True               # once offered, a beat stays valid until taken
                if offered:
                    n = beats[sent][0]
                    ctx.set(dut.i.payload, beats[sent][1])
                    ctx.set(dut.cfg, configs[n])
                    ctx.set(dut.bank, banks[n])
                else:                                # no beat: settings and bank are don't-cares
                    ctx.set(dut.cfg, configs[int(rng.integers(len(configs)))])
                    ctx.set(dut.bank, int(rng.integers(2)))
                ctx.set(dut.i.valid, offered)
                ready = bool(rng.random() < p_ready)
                ctx.set(dut.o.ready, ready)
                if held is not None:                 # the output contract: valid and payload hold
                    assert ctx.get(dut.o.valid) and ctx.get(dut.o.payload) == held
                if offered and ctx.get(dut.i.ready):
                    self.accepted.append(cycle)
                    sent, offered = sent + 1, False
                held = None
                if ctx.get(dut.o.valid):
                    if ready:
                        got.append(ctx.get(dut.o.payload))
                        self.emitted.append(cycle)
                    else:
                        held = ctx.get(dut.o.payload)
                await ctx.tick()
                cycle += 1
            ctx.set(dut.i.valid, 0)
            assert sent == len(beats) and len(got) == expected

        sim = Simulator(dut if self.platform is None else _OnPlatform(dut, self.platform))
        sim.add_clock(1e-6)
        sim.add_testbench(testbench)
        sim.run()
        results, at = [], 0
        for layer in layers:
            count = layer.m_folds * layer.out_size[0] * layer.out_size[1]
            results.append(got[at:at + count])
            at += count
        return results

    def check(self, layers, results):
        for n, (layer, beats) in enumerate(zip(layers, results)):
            M = layer.shape[0]
            E2, F2 = layer.out_size
            got = unpack_stream(beats, M=M, E=E2, F=F2, cols=self.spec.cols, lane_type=self.spec.acc_type)
            np.testing.assert_array_equal(got, layer.expected, err_msg=f"layer {n}: {layer.postops} on {layer.shape}")


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


# Lanes of the chain: all four columns (a beat per cycle), two (a beat in two cycles), one (in four).
LANES = pytest.mark.parametrize("lanes", [4, 2, 1], ids=lambda n: f"lanes{n}")


@LANES
@pytest.mark.parametrize("name", list(CHAINS))
def test_chain_equals_golden_model_under_random_stalls(name, lanes):
    spec = make_spec(cols=4, lanes=lanes)
    rng = np.random.default_rng(len(name))
    bench = StreamBench(spec)
    # Odd and even sizes, M not a multiple of cols (padding lanes), one and several m-folds.
    layers = [random_layer(spec, CHAINS[name], shape, rng) for shape in [(6, 5, 7), (3, 4, 4)]]
    bench.check(layers, bench.run(layers, p_valid=0.7, p_ready=0.6, seed=len(name)))


@pytest.mark.parametrize("name", ["relu", "requant_relu", "requant_uint8_avgpool"])
def test_ice40_form_equals_golden_model(name):
    """The chain as elaborated for iCE40 (the whole shift in S8, one `*` for the multiply, the no-bias choice
    of x's low half before S3): exact under random stalls."""
    spec = make_spec(cols=2, acc_type=IntType(20), lanes=1)
    rng = np.random.default_rng(7 + len(name))
    bench = StreamBench(spec, platform=Target("ice40"))
    layers = [random_layer(spec, CHAINS[name], shape, rng) for shape in [(3, 5, 4), (2, 2, 2)]]
    bench.check(layers, bench.run(layers, p_valid=0.7, p_ready=0.6, seed=len(name)))


@pytest.mark.parametrize("lanes", [2, 1], ids=lambda n: f"lanes{n}")
@pytest.mark.parametrize("acc_type", [IntType(20), int48], ids=str)
def test_other_accumulator_widths(acc_type, lanes):
    spec = make_spec(cols=2, acc_type=acc_type, lanes=lanes)
    rng = np.random.default_rng(acc_type.bits)
    bench = StreamBench(spec)
    layers = [random_layer(spec, postops, (3, 4, 5), rng) for postops in
              (CHAINS["requant_relu_avgpool"], CHAINS["bias_maxpool"], CHAINS["requant"])]
    bench.check(layers, bench.run(layers, p_valid=0.8, p_ready=0.7, seed=acc_type.bits))


@LANES
def test_extreme_values_back_to_back_layers(lanes):
    """int32 extremes, shift 0 and 63, the largest multiplier; layers change configuration back to back."""
    spec = make_spec(cols=4, lanes=lanes)
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


@pytest.mark.parametrize("width, b_width", [(32, 32), (34, 34), (9, 9), (38, 36), (36, 38)])
def test_greater_in_parts_is_the_signed_compare(width, b_width):
    """`greater_in_parts` against Python's ``a > b`` on pairs equal above a part boundary and differing at it,
    just below it or only in the lowest bit, of both signs, at the type's ends, both orders, and random pairs
    (one compare per cycle, the flags registered: the result is the previous cycle's pair's); with operands of
    two widths (the saturation tests' 38-bit value against 36-bit bounds), the narrower one's range."""
    from amaranth.hdl import Module, Signal, signed
    rng = np.random.default_rng(width)
    low, high = -(1 << (width - 1)), (1 << (width - 1)) - 1
    values = [low, low + 1, -1, 0, 1, high - 1, high]
    for lo, hi in greater_parts(width):
        for bit in {lo, max(lo - 1, 0), hi - 1}:
            base = int(rng.integers(low, high + 1)) >> (bit + 1) << (bit + 1)     # bits above `bit` random
            values += [base, base | (1 << bit), base | ((1 << bit) - 1), base + 1]
    values = [((v - low) % (1 << width)) + low for v in values]
    pairs = [(x, y) for x in values for y in values]
    pairs += [tuple(int(v) for v in rng.integers(low, high + 1, size=2)) for _ in range(500)]
    b_low, b_high = -(1 << (b_width - 1)), (1 << (b_width - 1)) - 1
    pairs = [(x, min(max(y, b_low), b_high)) for x, y in pairs]
    if b_width < width:
        pairs += [(x, b_low) for x in values] + [(x, b_high) for x in values]
    m = Module()
    a, b = Signal(signed(width)), Signal(signed(b_width))
    result = Signal()
    m.d.comb += result.eq(greater_in_parts(m, a, b, name="cmp", enable=1))
    got = []

    async def testbench(ctx):
        for x, y in pairs:
            ctx.set(a, x)
            ctx.set(b, y)
            await ctx.tick()
            got.append(ctx.get(result))

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    assert [(x, y) for (x, y), g in zip(pairs, got) if g != (x > y)] == []


@LANES
def test_pooling_compares_values_that_differ_only_across_the_part_boundaries(lanes):
    """The pooling compares are made in parts (`greater_in_parts`): values whose upper parts are equal and whose
    lower parts differ in their top bit (or only below it), of both signs, near the int32 ends, in every order,
    under max pooling (the pair's compare, then the window's) and average pooling (the sums)."""
    spec = make_spec(cols=4, lanes=lanes)
    rng = np.random.default_rng(11)
    M, E, F = 8, 4, 6
    # Every value is built around one boundary of the accumulator-wide compare's parts: upper bits equal
    # among many values, the bits below the boundary differing at their top bit or just below it.
    boundaries = [lo for lo, _ in greater_parts(32)[1:]] + [16]
    bound = rng.choice(boundaries, size=(M, E, F))
    top = (1 << (31 - bound)) - 1         # uppers within int32 for that boundary
    uppers = np.stack([np.zeros_like(top), -np.ones_like(top), np.ones_like(top), top, -top - 1, -(top + 1) // 2])
    half = 1 << (bound - 1)
    lowers = np.stack([np.zeros_like(half), np.ones_like(half), half - 1, half, half + 1, 2 * half - 1,
                       2 * half - 2])
    def pick(options):
        return np.take_along_axis(options, rng.integers(len(options), size=(1, M, E, F)), 0)[0]
    acc = (pick(uppers) << bound) + pick(lowers)
    acc[0, 0, :] = [int32.max, int32.max - 0x8000, int32.min, int32.min + 0x8000, 0x7fff, 0x8000]
    layers = [Layer(spec, PostOps(pool="max"), acc, QuantParams()),
              Layer(spec, PostOps(relu=True, pool="max"), acc, QuantParams()),
              Layer(spec, PostOps(pool="avg"), acc // 4, QuantParams())]
    bench = StreamBench(spec)
    bench.check(layers, bench.run(layers, p_valid=0.9, p_ready=0.8, seed=11))


@LANES
def test_full_throughput_without_stalls(lanes):
    """Layers with different chains, every source valid and the sink ready: one beat in per cols / lanes
    cycles from the first to the last, across every change of settings (no drain between layers)."""
    spec = make_spec(cols=4, lanes=lanes)
    rng = np.random.default_rng(8)
    chains = ["requant_relu", "requant_relu_maxpool", "none", "bias_maxpool", "requant_uint8_avgpool", "requant"]
    layers = [random_layer(spec, CHAINS[name], shape, rng)
              for name, shape in zip(chains, [(4, 6, 8), (6, 4, 6), (3, 3, 5), (5, 2, 4), (4, 5, 3), (2, 2, 2)])]
    bench = StreamBench(spec)
    bench.check(layers, bench.run(layers))
    total = sum(len(layer.in_beats) for layer in layers)
    groups = spec.postop_groups
    assert bench.accepted == list(range(bench.accepted[0], bench.accepted[0] + groups * total, groups))


@LANES
@pytest.mark.parametrize("p_valid, p_ready", [(1.0, 1.0), (0.9, 0.9)], ids=["full_rate", "stalls"])
def test_pooling_rows_of_two_and_three_outputs(p_valid, p_ready, lanes):
    """With out_w = 2 the row above's pair is written at the very edge its reader is issued (two beats
    behind): the line buffer forwards that write. out_w = 3 is one beat further."""
    spec = make_spec(cols=4, lanes=lanes)
    rng = np.random.default_rng(11)
    layers = [random_layer(spec, CHAINS[name], shape, rng)
              for name, shape in [("avgpool", (4, 4, 2)), ("requant_relu_maxpool", (6, 6, 2)),
                                  ("avgpool", (3, 4, 3)), ("requant_uint8_avgpool", (5, 2, 2))]]
    bench = StreamBench(spec)
    bench.check(layers, bench.run(layers, p_valid=p_valid, p_ready=p_ready, seed=11))


@pytest.mark.parametrize("lanes", [2, 1], ids=lambda n: f"lanes{n}")
def test_a_bank_shared_by_consecutive_layers_waits_for_their_beats(lanes):
    """Parameters for a bank still in use are written only once its last beat is in: same results."""
    spec = make_spec(cols=2, lanes=lanes)
    rng = np.random.default_rng(9)
    layers = [random_layer(spec, CHAINS[name], (3, 3, 4), rng)
              for name in ("requant", "requant_relu_maxpool", "bias", "none", "requant_relu")]
    bench = StreamBench(spec, max_m_folds=2)
    for banks in ([0, 0, 0, 0, 0], [1, 1, 0, 1, 1]):
        bench.check(layers, bench.run(layers, p_valid=0.8, p_ready=0.8, seed=sum(banks), banks=banks))


@LANES
@pytest.mark.parametrize("p_valid, p_ready", [(1.0, 1.0), (0.7, 0.6)], ids=["full_rate", "stalls"])
def test_chain_without_pooling_hardware_is_exact_and_cycle_identical(p_valid, p_ready, lanes):
    """``postop_pooling=False`` (small devices): bias, requantization and ReLU bit for bit as the golden model,
    every beat taken and emitted in the same cycle as by the chain with pooling (same latency), and layers that
    pool are rejected when planned."""
    from hwgen.errors import MappingError
    from hwgen.postops import check_supported
    spec = make_spec(cols=4, lanes=lanes)
    bare = dataclasses.replace(spec, postop_pooling=False)
    assert PostOpPipeline.latency_for(bare) == PostOpPipeline.latency_for(spec) == postops_latency(bare)
    rng = np.random.default_rng(17)
    names = [name for name, chain in CHAINS.items() if chain.pool == "none"]
    layers = [random_layer(spec, CHAINS[name], shape, rng)
              for name, shape in zip(names * 2, [(6, 5, 7), (3, 4, 4), (5, 2, 3), (4, 3, 2), (8, 2, 2)] * 2)]
    with_pooling, without = StreamBench(spec), StreamBench(bare)
    results = without.run(layers, p_valid=p_valid, p_ready=p_ready, seed=lanes)
    without.check(layers, results)
    with_pooling.run(layers, p_valid=p_valid, p_ready=p_ready, seed=lanes)
    assert (without.accepted, without.emitted) == (with_pooling.accepted, with_pooling.emitted)
    check_supported(bare, CHAINS["requant_relu"])
    for name in ("requant_relu_maxpool", "avgpool"):
        with pytest.raises(MappingError, match="postop_pooling=False"):
            check_supported(bare, CHAINS[name], "conv1")
    with pytest.raises(Exception, match="postop_pooling must be True"):
        dataclasses.replace(spec, postop_pooling="no")


def test_latency_is_documented_value():
    """A beat accepted in cycle t is on ``o`` in cycle t + LATENCY; a pooled window LATENCY cycles after its
    last input; ``i.ready`` stays high while ``o`` is ready; a stalled ``o`` holds everything, and ready is
    combinational from ``o.ready``."""
    spec = make_spec(cols=2, lanes=2)
    dut = PostOpPipeline(spec, max_m_folds=2, max_out_w=4)
    assert dut.latency == PostOpPipeline.LATENCY == 13
    # A narrow chain splits the pooling pair into two stages; stochastic rounding adds its offset stage.
    narrow = make_spec(cols=4, lanes=1)
    assert PostOpPipeline.latency_for(narrow) == 14 == postops_latency(narrow)
    assert PostOpPipeline.latency_for(dataclasses.replace(narrow, stochastic_rounding=True)) == 15
    latency = PostOpPipeline.LATENCY
    seen = {}

    async def testbench(ctx):
        ctx.set(dut.o.ready, 1)
        # No pooling: one beat at cycle 0.
        ctx.set(dut.cfg, config_values(PostOps(), spec.acc_type, out_h=2, out_w=2, m_folds=1))
        ctx.set(dut.i.valid, 1)
        ctx.set(dut.i.payload, 5)
        for cycle in range(latency + 2):
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
        for _ in range(latency + 1):
            await ctx.tick()
        ctx.set(dut.cfg, config_values(PostOps(pool="max"), spec.acc_type, out_h=2, out_w=2, m_folds=1))
        ctx.set(dut.i.valid, 1)
        for cycle in range(latency + 9):
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
        for _ in range(latency + 3):
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


def test_a_beat_of_groups_leaves_after_its_last_group():
    """With G groups a beat offered in cycle 0 is taken group by group in cycles 0 .. G-1 (``i.ready`` with
    the last) and leaves on ``o`` in cycle G - 1 + L (L = `latency_for`: 14, the pair split over two stages);
    the next beat follows G cycles later."""
    spec = make_spec(cols=4, lanes=1)
    groups = spec.postop_groups
    dut = PostOpPipeline(spec, max_m_folds=2, max_out_w=4)
    latency = dut.latency
    assert latency == PostOpPipeline.LATENCY + 1
    readies, outs = [], []

    async def testbench(ctx):
        ctx.set(dut.o.ready, 1)
        ctx.set(dut.cfg, config_values(PostOps(), spec.acc_type, out_h=2, out_w=2, m_folds=1))
        ctx.set(dut.i.valid, 1)
        for cycle in range(2 * groups + latency + 2):
            beat = len(readies)
            ctx.set(dut.i.payload, (beat + 1) * 0x0000000300000002_0000000100000000 + beat)
            ctx.set(dut.i.valid, beat < 2)
            if beat < 2 and ctx.get(dut.i.ready):
                readies.append(cycle)
            if ctx.get(dut.o.valid):
                outs.append((cycle, ctx.get(dut.o.payload)))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    assert readies == [groups - 1, 2 * groups - 1]
    assert [cycle for cycle, _ in outs] == [groups - 1 + latency, 2 * groups - 1 + latency]
    assert [payload for _, payload in outs] == [(beat + 1) * 0x0000000300000002_0000000100000000 + beat
                                                for beat in range(2)]


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


def test_a_narrow_chain_runs_free_against_credits():
    """A narrow chain (``free_running``) never stalls: with ``o`` not ready it accepts `skid_depth` beats (its
    credits), then ``i.ready`` falls; ``i.ready`` does not follow ``o.ready`` within a cycle; once ``o`` is
    ready every beat leaves, in order, unchanged (no post-ops), and the credits come back."""
    spec = make_spec(cols=4, lanes=1)
    assert PostOpPipeline.free_running(spec) and not PostOpPipeline.free_running(make_spec(cols=2, lanes=2))
    dut = PostOpPipeline(spec, max_m_folds=2, max_out_w=4)
    depth = PostOpPipeline.skid_depth(spec)
    beats = [(k + 1) * 0x0000000700000005_0000000300000001 + k for k in range(3 * depth)]
    accepted, outs = [], []

    async def testbench(ctx):
        ctx.set(dut.cfg, config_values(PostOps(), spec.acc_type, out_h=8, out_w=8, m_folds=1))
        ctx.set(dut.o.ready, 0)
        for cycle in range(400):
            sent = len(accepted)
            ctx.set(dut.i.valid, sent < len(beats))
            ctx.set(dut.i.payload, beats[sent] if sent < len(beats) else 0)
            ready = cycle >= 200 and cycle % 3 != 0
            ctx.set(dut.o.ready, not ready)
            before = ctx.get(dut.i.ready)
            ctx.set(dut.o.ready, ready)
            assert ctx.get(dut.i.ready) == before, "i.ready must not depend on o.ready"
            if cycle == 199:
                assert len(accepted) == depth and not ctx.get(dut.i.ready)
            if sent < len(beats) and ctx.get(dut.i.ready):
                accepted.append(cycle)
            if ready and ctx.get(dut.o.valid):
                outs.append(ctx.get(dut.o.payload))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    assert outs == beats


@pytest.mark.parametrize("lanes", [4, 1], ids=lambda n: f"lanes{n}")
def test_every_shift_saturates_exactly_at_the_edges(lanes):
    """Every shift amount 0-63 (one channel each) on products of every magnitude, both signs, and on products
    whose shifted value lands around 2**30-2**41, where the narrow rounding shifter's "fits" flag (from its
    top bits and the blocks above them) decides saturation: both must match the whole value's compares (int8,
    int16 and int32 outputs; ReLU and a zero point move the bounds)."""
    spec = make_spec(cols=4, lanes=lanes)
    rng = np.random.default_rng(63)
    M, E, F = 64, 4, 4
    shape = (M, E, F)
    sign = rng.choice([-1, 1], size=shape)
    magnitude = rng.integers(0, 32, size=shape)
    wide = np.clip(sign * ((1 << magnitude) + rng.integers(-1, 2, size=shape)), int32.min, int32.max)
    random_params = QuantParams(
        bias=np.zeros(M, dtype=np.int64), shift=np.arange(M),
        multiplier=np.array([min((1 << int(k)) - int(d), (1 << 31) - 1)
                             for k, d in zip(rng.integers(0, 32, size=M), rng.integers(0, 2, size=M))]))
    # 2p >> s near 2**u: p = acc * 2**a with acc near 2**(s + u - 1 - a).
    a = np.clip(np.arange(M) + 10, 0, 30)
    u = rng.integers(30, 42, size=shape)
    k = np.clip(np.arange(M)[:, None, None] + u - 1 - a[:, None, None], 0, 30)
    edge = sign * ((1 << k) + rng.integers(-2, 3, size=shape))
    edge_params = QuantParams(bias=np.zeros(M, dtype=np.int64), shift=np.arange(M),
                              multiplier=np.array([(1 << int(x)) - int(x > 0 and d) for x, d in
                                                   zip(a, rng.integers(0, 2, size=M))]))
    layers = [Layer(spec, PostOps(requant=True), wide, random_params),
              Layer(spec, PostOps(requant=True, out_type=int32), wide, random_params)]
    layers += [Layer(spec, PostOps(requant=True), edge, edge_params),
               Layer(spec, PostOps(requant=True, out_type=IntType(16)), edge, edge_params),
               Layer(spec, PostOps(requant=True, relu=True, zero_point=-3), edge, edge_params),
               Layer(spec, PostOps(requant=True, out_type=int32), edge, edge_params)]
    # The int8 bounds with a zero point and no ReLU (S8's lower bound 2 lo + ~(2 z)): halves of -300..300, so
    # both clamps of round_shift(acc, 1) + z are crossed value by value.
    near = rng.integers(-300, 301, size=shape)
    halves = QuantParams(bias=np.zeros(M, dtype=np.int64), shift=np.ones(M, dtype=np.int64),
                         multiplier=np.ones(M, dtype=np.int64))
    layers += [Layer(spec, PostOps(requant=True, zero_point=z), near, halves) for z in (5, -7)]
    bench = StreamBench(spec, max_m_folds=16)
    bench.check(layers, bench.run(layers, p_valid=1.0, p_ready=0.8, seed=63, max_cycles=60000))


def test_every_output_type_saturates_at_its_own_bounds():
    """Every output width 1-32, signed and unsigned (uint32 excepted), back to back: the range (lo, hi) the
    chain makes from the command's out_bits and out_signed (a thermometer code of out_bits, then one LUT per
    bound bit) must clamp exactly at the type's min and max, with values just inside and just outside both."""
    spec = make_spec(cols=4, lanes=2)
    rng = np.random.default_rng(32)
    M, E, F = 4, 2, 3
    unit = QuantParams(bias=np.zeros(M, dtype=np.int64), shift=np.zeros(M, dtype=np.int64),
                       multiplier=np.ones(M, dtype=np.int64))
    layers = []
    for bits in range(1, 33):
        for is_signed in (True, False) if bits < 32 else (True,):     # uint32 does not fit int32 lanes
            out = IntType(bits, signed=is_signed)
            edges = np.array([out.min - 1, out.min, out.min + 1, out.max - 1, out.max, out.max + 1,
                              int32.min, int32.max, 0, -1], dtype=np.int64)
            acc = np.clip(rng.choice(edges, size=(M, E, F)), int32.min, int32.max)
            layers.append(Layer(spec, PostOps(requant=True, out_type=out), acc, unit))
    bench = StreamBench(spec)
    bench.check(layers, bench.run(layers, p_valid=0.9, p_ready=0.8, seed=32, max_cycles=60000))
