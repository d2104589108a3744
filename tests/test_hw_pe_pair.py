"""Two PEs on one hard multiplier (`hwgen.hw.pe_pair`, `systolic.SystolicColumnPair`).

Golden model: each PE's product is ``act * weight`` exactly (NumPy int64), whatever the packing; an array with
paired columns gives the same column sums in the same cycle as one without (`test_hw_systolic`'s bench).
"""

import numpy as np
import pytest
from amaranth.hdl import Cat, Fragment, Module, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In
from amaranth.sim import Simulator

from hwgen.dtypes import parse_dtype
from hwgen.hw.pe_pair import PackedPEPair, pair_weight_shape
from hwgen.hw.systolic import SystolicArray
from hwgen.hw.target import Target, pair_operand_bits
from hwgen.schedule import fold_period
from tests.test_hw_systolic import ArrayBench, random_values, stream_folds

PAIRED = Target(None, pair_products=True)


def shapes(act, weight):
    return (parse_dtype(act, what="act").amaranth_shape(), parse_dtype(weight, what="weight").amaranth_shape())


@pytest.mark.parametrize("act, weight, bits, fits", [
    ("int8", "int4", 18, True), ("uint8", "int4", 18, True), ("int8", "uint4", 18, True),
    ("int8", "int2", 18, True), ("int8", "int5", 18, False), ("uint8", "uint4", 18, True),
    ("int8", "int8", 18, False), ("int8", "int4", 16, False), ("int8", "int3", 16, True),
    ("int16", "int2", 18, False)])
def test_which_products_pair(act, weight, bits, fits):
    """W + 1 + (A + W) packed bits (one more sign bit for unsigned activations on the other operand)."""
    assert (pair_weight_shape(*shapes(act, weight), operand_bits=bits) is not None) == fits


def test_pairing_follows_the_platform():
    assert pair_operand_bits(None) is None
    assert pair_operand_bits(Target(None)) is None                       # generic: Yosys' own `*`
    assert pair_operand_bits(PAIRED) == 18
    assert pair_operand_bits(Target("ecp5")) == 18                        # MULT18X18D
    assert pair_operand_bits(Target("ice40")) == 16                       # SB_MAC16
    assert pair_operand_bits(Target("ecp5", pair_products=False)) is None
    assert pair_operand_bits(Target("ecp5", multiplier_cells=False)) is None     # LUT multipliers: no pairs
    with pytest.raises(ValueError, match="pair_products"):
        Target("ecp5", pair_products="yes")
    with pytest.raises(ValueError, match="do not fit one multiplier"):
        PackedPEPair(act_shape=shapes("int8", "int8")[0], weight_shape=shapes("int8", "int8")[1],
                     psum_shape=32)


@pytest.mark.parametrize("act, weight, cell", [("int8", "int4", True), ("uint8", "int4", True),
                                               ("int8", "uint4", True), ("int8", "int2", True),
                                               ("int8", "int4", False)])
def test_every_operand_pair_splits_exactly(act, weight, cell):
    """Every activation against every (w0, w1) of the weight type, one per cycle through one pair with
    psum_in = 0: both products exact, 5 registers after the activation (the PE's timing)."""
    a_shape, w_shape = shapes(act, weight)
    at, wt = parse_dtype(act, what="a"), parse_dtype(weight, what="w")
    dut = PackedPEPair(act_shape=a_shape, weight_shape=w_shape, psum_shape=signed(32), multiplier_cell=cell)
    ws = np.arange(wt.min, wt.max + 1)
    pairs = [(w0, w1) for w0 in ws for w1 in ws]
    acts = np.arange(at.min, at.max + 1)
    mask = (1 << wt.bits) - 1
    got, want = [], []

    async def bench(ctx):
        pending = []
        for n, (w0, w1) in enumerate(pairs):
            bank = n % 2
            ctx.set(dut.load_en, 1)
            ctx.set(dut.load_bank, bank)
            ctx.set(dut.load_data, (int(w0) & mask) | ((int(w1) & mask) << wt.bits))
            ctx.set(dut.act_in, 0)          # the load cycle carries a zero activation through the pipeline
            pending.append((0, 0))
            await ctx.tick()
            if len(pending) >= 5:
                want.append(pending[-5])
                got.append((ctx.get(dut.psum0_out), ctx.get(dut.psum1_out)))
            ctx.set(dut.load_en, 0)
            for k, a in enumerate(acts):
                ctx.set(dut.act_in, int(a))
                ctx.set(dut.bank_in, bank)
                pending.append((int(a) * int(w0), int(a) * int(w1)))
                await ctx.tick()
                if len(pending) >= 5:
                    want.append(pending[-5])
                    got.append((ctx.get(dut.psum0_out), ctx.get(dut.psum1_out)))
            # the tail of this weight pair (the next pair loads into the other bank meanwhile)
        for _ in range(4):
            await ctx.tick()
            want.append(pending[len(want)])
            got.append((ctx.get(dut.psum0_out), ctx.get(dut.psum1_out)))

    sim = Simulator(Fragment.get(dut, PAIRED))
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert len(got) == len(pairs) * (len(acts) + 1)
    assert got == want


def paired_bench(rows, cols, act="int8", weight="int4", **target):
    return ArrayBench(rows, cols, act_type=act, weight_type=weight, platform=Target(None, pair_products=True,
                                                                                    **target))


@pytest.mark.parametrize("rows, cols, act, weight", [(3, 4, "int8", "int4"), (4, 5, "int8", "int4"),
                                                     (2, 2, "uint8", "int4"), (3, 3, "int8", "int2"),
                                                     (1, 6, "int8", "uint4"), (4, 1, "int8", "int4")])
def test_a_paired_array_gives_the_same_sums_in_the_same_cycle(rows, cols, act, weight):
    bench = paired_bench(rows, cols, act, weight)
    fragment = Fragment.get(bench.dut, bench.platform)
    for k in range(cols // 2):
        assert fragment.find_subfragment(f"cols_{2 * k}_{2 * k + 1}") is not None
    if cols % 2:
        assert fragment.find_subfragment(f"col_{cols - 1}") is not None
    spec = bench.spec
    rng = np.random.default_rng(rows * 7 + cols)
    weights = random_values(rng, spec.weight_type, (rows, cols))
    weights[0] = spec.weight_type.min
    acts = random_values(rng, spec.act_type, (20, rows))
    acts[0], acts[1] = spec.act_type.min, spec.act_type.max
    bench.load_set(0, 0, weights)
    for n, vector in enumerate(acts):
        bench.vector(rows + n, vector, 0)
    latency = bench.dut.latency
    outputs = bench.run(rows + len(acts) + latency + 2)
    got = np.array(outputs[rows + latency:rows + latency + len(acts)])
    assert np.array_equal(got, acts @ weights)
    assert not np.any(outputs[:rows + latency]) and not np.any(outputs[rows + latency + len(acts):])


@pytest.mark.parametrize("rows, cols, pixels", [(2, 2, 1), (3, 5, 1), (2, 7, 4), (4, 4, 3), (1, 6, 2)])
def test_paired_columns_take_just_in_time_weights_at_the_tightest_fold_period(rows, cols, pixels):
    """The right PE of a pair multiplies a cycle early: its weights must still be there (loaded with the left
    one's) and its old bank not yet replaced, at `schedule.fold_period`."""
    bench = paired_bench(rows, cols)
    period = fold_period(pixels=pixels, rows=rows, cols=cols)
    results = stream_folds(bench, np.random.default_rng(pixels), folds=5, pixels=pixels, period=period)
    for cycle, got, want in results:
        assert got == want.tolist(), f"vector issued at cycle {cycle}"


@pytest.mark.parametrize("cells", [0, 4, 6, 12])
def test_pairs_beyond_the_hard_multipliers_multiply_in_logic(cells):
    """``pe_multiplier_cells`` counts PEs: a pair takes a hard multiplier for two of them, pair column by pair
    column, top row first."""
    rows, cols = 3, 4
    bench = paired_bench(rows, cols, pe_multiplier_cells=cells)
    fragment = Fragment.get(bench.dut, bench.platform)
    pairs = [fragment.find_subfragment(f"cols_{2 * k}_{2 * k + 1}").find_subfragment(f"pair_{i}")
             for k in range(cols // 2) for i in range(rows)]
    assert sum(p.origins[0].multiplier_cell for p in pairs) == cells // 2
    spec = bench.spec
    rng = np.random.default_rng(cells)
    weights = random_values(rng, spec.weight_type, (rows, cols))
    acts = random_values(rng, spec.act_type, (12, rows))
    bench.load_set(0, 0, weights)
    for n, vector in enumerate(acts):
        bench.vector(rows + n, vector, 0)
    latency = bench.dut.latency
    outputs = bench.run(rows + len(acts) + latency + 1)
    assert np.array_equal(np.array(outputs[rows + latency:rows + latency + len(acts)]), acts @ weights)


def test_int8_weights_do_not_pair():
    bench = ArrayBench(2, 4, platform=PAIRED)
    fragment = Fragment.get(bench.dut, bench.platform)
    assert fragment.find_subfragment("col_0") is not None


class _DecodedSelects(wiring.Component):
    """An array with ``load_select_groups`` behind the plain load ports: the selects decoded here (the top
    registers them a stage early instead)."""

    def __init__(self, array):
        self.array, self.latency = array, array.latency
        ports = {name: member for name, member in array.signature.members.items() if name != "load_sel"}
        super().__init__({**ports, "load_en": In(1), "load_row": In(range(array.rows)), "load_bank": In(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.array = array = self.array
        rows = array.rows
        copy = Cat(*(self.load_en & (self.load_row == i) for i in range(rows)), self.load_bank)
        m.d.comb += array.load_sel.eq(Cat(*([copy] * array.load_select_groups)))
        for name, member in array.signature.members.items():
            if name != "load_sel":
                ours, theirs = getattr(self, name), getattr(array, name)
                m.d.comb += (theirs.eq(ours) if member.flow == In else ours.eq(theirs))
        return m


@pytest.mark.filterwarnings("ignore:.*created but never used")   # the bench's own array, replaced
@pytest.mark.parametrize("rows, cols, groups, weight", [(3, 8, 2, "int4"), (2, 7, 2, "int8"), (4, 5, 5, "int4"),
                                                        (3, 6, 1, "int4")])
def test_grouped_load_selects_load_the_same_weights_in_the_same_cycles(rows, cols, groups, weight):
    """`SystolicArray(load_select_groups=G)` (the top's form): fold after fold at the tightest period, paired
    or not, every column group on its own copy of the selects: the same sums."""
    bench = paired_bench(rows, cols, weight=weight)
    spec = bench.spec
    bench.dut = _DecodedSelects(SystolicArray(rows=rows, cols=cols, act_type=spec.act_type,
                                              weight_type=spec.weight_type, psum_bits=spec.psum_bits,
                                              load_select_groups=groups))
    period = fold_period(pixels=2, rows=rows, cols=cols)
    results = stream_folds(bench, np.random.default_rng(groups), folds=4, pixels=2, period=period)
    assert [cycle for cycle, got, want in results if got != want.tolist()] == []
    with pytest.raises(ValueError, match="load_select_groups"):
        SystolicArray(rows=2, cols=3, act_type=spec.act_type, weight_type=spec.weight_type, psum_bits=20,
                      load_select_groups=4)
