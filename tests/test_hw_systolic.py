"""The systolic array (`hwgen.hw.systolic`): a fixed-latency pipeline of exact column sums.

Golden model: the vector presented at cycle ``t`` with bank tag ``b`` yields ``acts @ W_b`` (NumPy) at cycle
``t + array_latency(rows, cols)``, where ``W_b`` is the weight set loaded into bank ``b`` for that vector.
"""

from math import ceil

import numpy as np
import pytest
from amaranth.hdl import Fragment
from amaranth.sim import Simulator

from hwgen.hw.systolic import SystolicArray, array_latency
from hwgen.hw.target import Target
from hwgen.dtypes import int32, parse_dtype
from hwgen.schedule import fold_period
from hwgen.spec import AcceleratorSpec


def pack(values, bits):
    word = 0
    for lane, value in enumerate(values):
        word |= (int(value) & ((1 << bits) - 1)) << (lane * bits)
    return word


def unpack(word, bits, lanes, is_signed):
    values = []
    for lane in range(lanes):
        value = (word >> (lane * bits)) & ((1 << bits) - 1)
        if is_signed and value >> (bits - 1):
            value -= 1 << bits
        values.append(value)
    return values


def small_spec(rows, cols, *, act_type="int8", weight_type="int8", acc_type=int32):
    """A spec whose buffers are a whole number of words for any shape (64 words each)."""
    a, w, acc = (parse_dtype(t, what="dtype") for t in (act_type, weight_type, acc_type))
    return AcceleratorSpec(rows=rows, cols=cols, act_type=a, weight_type=w, acc_type=acc,
                           act_buffer_bytes=8 * rows * a.bits, weight_buffer_bytes=8 * cols * w.bits,
                           acc_buffer_bytes=8 * cols * acc.bits)


class ArrayBench:
    """Drives a `SystolicArray` one cycle at a time from per-cycle plans and records its output every cycle."""

    def __init__(self, rows, cols, act_type="int8", weight_type="int8", platform=None):
        self.platform = platform    # e.g. a Target limiting the PEs on hard multipliers
        self.spec = small_spec(rows, cols, act_type=act_type, weight_type=weight_type)
        spec = self.spec
        self.dut = SystolicArray(rows=rows, cols=cols, act_type=spec.act_type, weight_type=spec.weight_type,
                                 psum_bits=spec.psum_bits)
        self.is_signed = spec.act_type.signed or spec.weight_type.signed
        self.loads = {}    # cycle -> (row, bank, weights of that row)
        self.vectors = {}  # cycle -> (acts, bank)

    def load(self, cycle, row, bank, weights):
        assert cycle not in self.loads, "one weight row per cycle"
        self.loads[cycle] = (row, bank, weights)

    def load_set(self, start, bank, weights):
        """All rows of ``weights[rows, cols]``, one per cycle from ``start``."""
        for row in range(self.spec.rows):
            self.load(start + row, row, bank, weights[row])

    def vector(self, cycle, acts, bank):
        self.vectors[cycle] = (acts, bank)

    def run(self, cycles):
        spec, dut, outputs = self.spec, self.dut, []

        async def testbench(ctx):
            for cycle in range(cycles):
                acts, bank = self.vectors.get(cycle, ([0] * spec.rows, 0))
                ctx.set(dut.acts, pack(acts, spec.act_type.bits))
                ctx.set(dut.bank, bank)
                row, load_bank, weights = self.loads.get(cycle, (0, 0, None))
                ctx.set(dut.load_en, weights is not None)
                ctx.set(dut.load_row, row)
                ctx.set(dut.load_bank, load_bank)
                ctx.set(dut.load_data, pack(weights if weights is not None else [0] * spec.cols,
                                            spec.weight_type.bits))
                outputs.append(unpack(ctx.get(dut.psums), spec.psum_bits, spec.cols, self.is_signed))
                await ctx.tick()

        sim = Simulator(dut if self.platform is None else Fragment.get(dut, self.platform))
        sim.add_clock(1e-6)
        sim.add_testbench(testbench)
        sim.run()
        return outputs


def random_values(rng, dtype, shape):
    return rng.integers(dtype.min, dtype.max + 1, shape, dtype=np.int64)


SHAPES = [(1, 1), (1, 4), (4, 1), (3, 5), (4, 4), (5, 2)]


@pytest.mark.parametrize("rows, cols", SHAPES)
def test_latency_equals_array_latency(rows, cols):
    bench = ArrayBench(rows, cols)
    assert bench.dut.latency == array_latency(rows=rows, cols=cols) == rows + cols + 3
    bench.load_set(0, 0, np.ones((rows, cols), dtype=np.int64))
    start = rows + 3
    bench.vector(start, [1] * rows, 0)
    outputs = bench.run(start + bench.dut.latency + 3)
    arrival = [cycle for cycle, out in enumerate(outputs) if any(out)]
    # All columns arrive together (de-skewed), exactly `latency` cycles later, and only once.
    assert arrival == [start + bench.dut.latency]
    assert outputs[arrival[0]] == [rows] * cols


@pytest.mark.parametrize("rows, cols, act_type", [(3, 5, "int8"), (4, 4, "int8"), (4, 4, "uint8"),
                                                  (2, 3, "int16"), (1, 4, "int8"), (4, 1, "int8")])
def test_back_to_back_vectors_give_exact_column_sums(rows, cols, act_type):
    bench = ArrayBench(rows, cols, act_type=act_type)
    spec = bench.spec
    rng = np.random.default_rng(rows * 10 + cols)
    weights = random_values(rng, spec.weight_type, (rows, cols))
    acts = random_values(rng, spec.act_type, (24, rows))
    acts[0], acts[1] = spec.act_type.min, spec.act_type.max   # the corners every run
    bench.load_set(0, 0, weights)
    first = rows    # the first vector right after the last weight row
    for n, vector in enumerate(acts):
        bench.vector(first + n, vector, 0)
    outputs = bench.run(first + len(acts) + bench.dut.latency + 2)
    latency = bench.dut.latency
    got = np.array(outputs[first + latency:first + latency + len(acts)])
    assert np.array_equal(got, acts @ weights)
    # Before the first result and after the last one the output is the sum of zero activations.
    assert not np.any(outputs[:first + latency]) and not np.any(outputs[first + latency + len(acts):])


@pytest.mark.parametrize("cells", [0, 5, 7])
def test_pes_beyond_the_hard_multipliers_multiply_in_logic_with_the_same_sums(cells):
    """A platform that gives the array ``cells`` hard multipliers: column 0's three PEs and two of column 1's
    take them (5), or column 0 and all of column 1 (7 of 3x4 = 12 would be 6: one of column 2), or none; the
    rest multiply in logic. Same latency, same exact sums."""
    bench = ArrayBench(3, 4, platform=Target(None, pe_multiplier_cells=cells))
    spec, rows, cols = bench.spec, 3, 4
    fragment = Fragment.get(bench.dut, bench.platform)
    columns = [fragment.find_subfragment(f"col_{j}") for j in range(cols)]
    logic_pes = sum(not column.find_subfragment(f"pe_{i}").origins[0].multiplier_cell
                    for column in columns for i in range(rows))
    assert logic_pes == rows * cols - cells
    rng = np.random.default_rng(cells)
    weights = random_values(rng, spec.weight_type, (rows, cols))
    acts = random_values(rng, spec.act_type, (16, rows))
    acts[0], acts[1] = spec.act_type.min, spec.act_type.max
    bench.load_set(0, 0, weights)
    for n, vector in enumerate(acts):
        bench.vector(rows + n, vector, 0)
    outputs = bench.run(rows + len(acts) + bench.dut.latency + 2)
    got = np.array(outputs[rows + bench.dut.latency:rows + bench.dut.latency + len(acts)])
    assert np.array_equal(got, acts @ weights)


@pytest.mark.parametrize("rows, act_type, weight_type", [(4, "int8", "int8"), (5, "int8", "int8"),
                                                         (8, "uint8", "int8"), (3, "uint8", "uint8"),
                                                         (2, "int16", "int16")])
def test_psum_width_holds_a_column_of_extreme_products(rows, act_type, weight_type):
    bench = ArrayBench(rows, 2, act_type=act_type, weight_type=weight_type)
    a, w = bench.spec.act_type, bench.spec.weight_type
    weights = np.array([[w.min, w.max]] * rows)
    bench.load_set(0, 0, weights)
    cases = [[a.min] * rows, [a.max] * rows]
    for n, vector in enumerate(cases):
        bench.vector(rows + n, vector, 0)
    outputs = bench.run(rows + len(cases) + bench.dut.latency)
    got = outputs[rows + bench.dut.latency:rows + bench.dut.latency + len(cases)]
    assert got == (np.array(cases) @ weights).tolist()


@pytest.mark.parametrize("rows, cols", [(3, 5), (4, 4), (2, 7)])
def test_bank_switch_mid_stream(rows, cols):
    """Vectors tagged bank 0 then bank 1 back to back, no bubble: each uses its own weight set."""
    bench = ArrayBench(rows, cols)
    rng = np.random.default_rng(rows + cols)
    sets = [random_values(rng, bench.spec.weight_type, (rows, cols)) for _ in range(2)]
    bench.load_set(0, 0, sets[0])
    bench.load_set(rows, 1, sets[1])
    first, count = 2 * rows, 6
    acts = random_values(rng, bench.spec.act_type, (2 * count, rows))
    banks = [0] * count + [1] * count
    for n, (vector, bank) in enumerate(zip(acts, banks)):
        bench.vector(first + n, vector, bank)
    outputs = bench.run(first + 2 * count + bench.dut.latency)
    got = np.array(outputs[first + bench.dut.latency:first + bench.dut.latency + 2 * count])
    expected = np.array([vector @ sets[bank] for vector, bank in zip(acts, banks)])
    assert np.array_equal(got, expected)


def stream_folds(bench, rng, *, folds, pixels, period):
    """The sequencer's pattern: fold ``k`` issues ``pixels`` vectors then bubbles, tagged bank ``k % 2``; its
    weights go into that bank one row per cycle starting one cycle before its first vector."""
    rows, cols = bench.spec.rows, bench.spec.cols
    sets, expected = [], []
    first = 1
    for fold in range(folds):
        weights = random_values(rng, bench.spec.weight_type, (rows, cols))
        sets.append(weights)
        start = first + fold * period
        bench.load_set(start - 1, fold % 2, weights)
        for t in range(period):
            vector = random_values(rng, bench.spec.act_type, rows)
            bench.vector(start + t, vector, fold % 2)   # bubbles carry junk too: it must not matter
            if t < pixels:
                expected.append((start + t, vector @ weights))
    outputs = bench.run(first + folds * period + bench.dut.latency)
    return [(cycle, outputs[cycle + bench.dut.latency], want) for cycle, want in expected]


@pytest.mark.parametrize("rows, cols, pixels", [(2, 2, 1), (3, 5, 1), (3, 5, 2), (2, 7, 1), (2, 7, 4),
                                                (4, 4, 3), (5, 2, 5), (1, 6, 2), (6, 1, 1)])
def test_just_in_time_weights_at_the_tightest_fold_period(rows, cols, pixels):
    """Three or more weight sets through two banks at `schedule.fold_period`: every fold's sums are exact."""
    bench = ArrayBench(rows, cols)
    period = fold_period(pixels=pixels, rows=rows, cols=cols)
    results = stream_folds(bench, np.random.default_rng(pixels), folds=5, pixels=pixels, period=period)
    for cycle, got, want in results:
        assert got == want.tolist(), f"vector issued at cycle {cycle}"


@pytest.mark.parametrize("rows, cols, pixels", [(2, 8, 1), (2, 7, 2), (3, 6, 3)])
def test_spare_bank_reuse_bound_is_tight(rows, cols, pixels):
    """The array's own bound, apart from the schedule: with ``2 * period >= pixels + cols - 1`` every fold is
    exact; one slot less and the next-but-one fold's weights reach the last columns before the old fold's
    last vector has passed them."""
    bound = max(pixels, rows, ceil((pixels + cols - 1) / 2))
    assert bound > max(pixels, rows), "the case must be limited by the bank reuse"
    assert fold_period(pixels=pixels, rows=rows, cols=cols) >= bound
    results = stream_folds(ArrayBench(rows, cols), np.random.default_rng(3), folds=4, pixels=pixels,
                           period=bound)
    assert [cycle for cycle, got, want in results if got != want.tolist()] == []
    results = stream_folds(ArrayBench(rows, cols), np.random.default_rng(3), folds=4, pixels=pixels,
                           period=bound - 1)
    assert [cycle for cycle, got, want in results if got != want.tolist()], "one slot less should corrupt"


@pytest.mark.parametrize("groups,registered", [(None, True), (2, True), (4, True), (4, False), (2, False)])
def test_enable_copies_freeze_the_array_one_cycle_after_en(groups, registered):
    """``enable_copies=True``: every register group takes ``en`` through its own flip-flop, so the array captures
    its inputs at the edge after each cycle with ``en`` high and holds otherwise; sampled that way it computes
    exactly what the always-enabled array computes. ``enable_groups=G`` (the top's form): ``en`` is G copies of
    the same enable, each column's copies taking their group's bit - the same. ``enable_registered=False`` (the
    top's form since the copies moved out): the bits are the clock enables themselves, so the array captures
    at the edge of each cycle with ``en`` high."""
    rows, cols, steps = 3, 4, 40
    rng = np.random.default_rng(7)
    spec = small_spec(rows, cols)
    stimulus = [dict(acts=pack(random_values(rng, spec.act_type, rows), 8), bank=int(rng.integers(2)),
                     load_en=int(rng.random() < 0.5), load_row=int(rng.integers(rows)), load_bank=int(rng.integers(2)),
                     load_data=pack(random_values(rng, spec.weight_type, cols), 8)) for _ in range(steps)]

    def simulate(dut, enables):
        seen = []

        async def testbench(ctx):
            captured = 0
            for en in enables:
                for name, value in stimulus[min(captured, steps - 1)].items():
                    ctx.set(getattr(dut, name), value)
                if hasattr(dut, "en"):
                    ctx.set(dut.en, en * ((1 << len(dut.en)) - 1))
                seen.append((captured, ctx.get(dut.psums)))
                await ctx.tick()
                # the copies of the previous cycle's en decide this edge (this cycle's, unregistered)
                if not hasattr(dut, "en"):
                    captured += 1
                else:
                    captured += previous[0] if registered else en
                previous[0] = en
        previous = [0]
        sim = Simulator(dut)
        sim.add_clock(1e-6)
        sim.add_testbench(testbench)
        sim.run()
        return seen

    make = lambda copies: SystolicArray(rows=rows, cols=cols, act_type=spec.act_type,  # noqa: E731
                                        weight_type=spec.weight_type, psum_bits=spec.psum_bits,
                                        enable_copies=copies, enable_groups=groups if copies else None,
                                        enable_registered=registered or not copies)
    reference = dict(simulate(make(False), [1] * steps))
    stalled = simulate(make(True), [int(rng.random() < 0.6) for _ in range(3 * steps)])
    assert max(k for k, _ in stalled) > steps // 2
    for captured, psums in stalled:
        if captured < steps:
            assert psums == reference[captured], captured
