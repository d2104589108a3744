"""The weight-stationary PE (`hwgen.hw.pe`) against an ideal cycle model, plus directed timing and range checks."""

import gc

import numpy as np
import pytest
from amaranth.hdl import Fragment, signed, unsigned
from amaranth.sim import Simulator

from hwgen.dtypes import IntType
from hwgen.hw.multiplier import PipelinedMultiplier
from hwgen.hw.pe import WeightStationaryPE
from hwgen.spec import AcceleratorSpec


class PEModel:
    """The ideal PE: two weight banks, a selected-weight register, the multiplier's operand and product
    registers, one more product register, a psum register. `step` is one clock edge.

    ``act_out``/``bank_out`` = inputs delayed 1; ``weight`` = ``w[bank_in]`` delayed 1 (weights as they were
    before the edge); ``product`` = ``act_out * weight`` delayed 2; ``product_d`` = ``product`` delayed 1;
    ``psum_out`` = ``psum_in + product_d`` delayed 1. A load lands at the edge.
    """

    def __init__(self, psum_type):
        self.psum_type = psum_type
        self.weights = [0, 0]
        self.operands = (0, 0)
        self.product = self.product_d = self.weight = 0
        self.act_out = self.bank_out = self.psum_out = 0

    def outputs(self):
        return {"act_out": self.act_out, "bank_out": self.bank_out, "psum_out": self.psum_out}

    def step(self, *, act_in, bank_in, psum_in, load_en, load_bank, load_data):
        psum = psum_in + self.product_d
        assert self.psum_type.contains(psum), "stimulus must keep the partial sum in range"
        self.psum_out = psum
        self.product_d = self.product
        self.product = self.operands[0] * self.operands[1]
        self.operands = (self.act_out, self.weight)
        self.weight = self.weights[bank_in]
        self.act_out, self.bank_out = act_in, bank_in
        if load_en:
            self.weights[load_bank] = load_data


def make_pe(act_type, weight_type, rows=4, multiplier_cell=True):
    """A PE shaped as `SystolicArray` shapes it for an array of ``rows`` rows."""
    spec = AcceleratorSpec(rows=rows, cols=4, act_type=act_type, weight_type=weight_type)
    psum_signed = spec.act_type.signed or spec.weight_type.signed
    psum_type = IntType(spec.psum_bits, psum_signed)
    pe = WeightStationaryPE(act_shape=spec.act_type.amaranth_shape(),
                            weight_shape=spec.weight_type.amaranth_shape(),
                            psum_shape=psum_type.amaranth_shape(), multiplier_cell=multiplier_cell)
    return pe, spec, psum_type


IDLE = dict(act_in=0, bank_in=0, psum_in=0, load_en=0, load_bank=0, load_data=0)


def run_cycles(pe, cycles):
    """Apply one input dict per cycle; return the outputs visible in each cycle (before its edge)."""
    seen = []

    async def testbench(ctx):
        for inputs in cycles:
            for name, value in {**IDLE, **inputs}.items():
                ctx.set(getattr(pe, name), value)
            seen.append({name: ctx.get(getattr(pe, name)) for name in ("act_out", "bank_out", "psum_out")})
            await ctx.tick()

    sim = Simulator(pe)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    return seen


DTYPE_PAIRS = [("int8", "int8"), ("uint8", "int8"), ("uint8", "uint8"), ("int4", "int4"), ("int16", "int8"),
               ("int2", "uint4")]


@pytest.mark.parametrize("multiplier_cell", [True, False], ids=["cell", "logic"])
@pytest.mark.parametrize("act_name, weight_name", DTYPE_PAIRS)
def test_pe_equals_model_every_cycle(act_name, weight_name, multiplier_cell):
    """Either multiplier form: the device's (the generic ``*`` here) or partial products in logic."""
    pe, spec, psum_type = make_pe(act_name, weight_name, multiplier_cell=multiplier_cell)
    a, w = spec.act_type, spec.weight_type
    rng = np.random.default_rng(len(act_name) * 31 + len(weight_name))
    headroom = psum_type.max - spec.max_abs_product()
    low = max(psum_type.min + spec.max_abs_product(), -headroom)
    stimulus = []
    for _ in range(300):
        # Extremes often, so the corners are hit on every run.
        pick = lambda t: int(rng.choice([t.min, t.max, rng.integers(t.min, t.max + 1)]))
        stimulus.append(dict(act_in=pick(a), bank_in=int(rng.integers(2)),
                             psum_in=int(rng.integers(low, headroom + 1)), load_en=int(rng.random() < 0.3),
                             load_bank=int(rng.integers(2)), load_data=pick(w)))
    seen = run_cycles(pe, stimulus)
    model = PEModel(psum_type)
    for cycle, inputs in enumerate(stimulus):
        assert seen[cycle] == model.outputs(), f"cycle {cycle}"
        model.step(**inputs)


def test_loads_both_banks_and_each_activation_selects_its_bank():
    pe, _, _ = make_pe("int8", "int8")
    seen = run_cycles(pe, [
        dict(load_en=1, load_bank=0, load_data=3),
        dict(load_en=1, load_bank=1, load_data=-5),
        dict(act_in=7, bank_in=0),
        dict(act_in=7, bank_in=1),
        dict(act_in=-2, bank_in=0),
        dict(act_in=-2, bank_in=1),
        {}, {}, {}, {}, {},
    ])
    # An activation at cycle t selects its weight at the edge into t+1, enters the multiplier at the edge into
    # t+2, is multiplied at the edge into t+3, registered again into t+4 and summed into psum_out into t+5.
    assert [s["psum_out"] for s in seen[7:11]] == [21, -35, -6, 10]
    assert [s["act_out"] for s in seen[3:7]] == [7, 7, -2, -2]
    assert [s["bank_out"] for s in seen[3:7]] == [0, 1, 0, 1]


def test_product_is_registered_on_both_sides_of_the_multiplier():
    """``psum_in`` joins the product four cycles after its activation: that is what the row above provides
    (its psum leaves one cycle after its product, and this row's activation arrives one cycle after it)."""
    pe, _, _ = make_pe("int8", "int8")
    seen = run_cycles(pe, [
        dict(load_en=1, load_bank=0, load_data=4),
        dict(act_in=3),                 # the weight 4 is selected at this edge
        {},                             # the operands enter the multiplier at this edge
        {},                             # product 12 is registered at this edge
        {},                             # ... and again (product_d)
        dict(psum_in=100),              # ... and added to this cycle's psum_in
        dict(psum_in=-1000),            # a psum with no product behind it passes through unchanged
        {}, {},
    ])
    assert [s["psum_out"] for s in seen] == [0, 0, 0, 0, 0, 0, 112, -1000, 0]


def test_a_load_is_seen_from_the_next_cycle_and_spares_the_other_bank():
    pe, _, _ = make_pe("int8", "int8")
    seen = run_cycles(pe, [
        dict(load_en=1, load_bank=0, load_data=2),
        dict(act_in=10, bank_in=0, load_en=1, load_bank=0, load_data=5),   # still multiplies by 2
        dict(act_in=10, bank_in=0, load_en=1, load_bank=1, load_data=-7),  # bank 0 keeps 5
        dict(act_in=10, bank_in=0),
        dict(act_in=10, bank_in=1),
        {}, {}, {}, {}, {},
    ])
    assert [s["psum_out"] for s in seen[6:10]] == [20, 50, 50, -70]


@pytest.mark.parametrize("act, weight", [(-128, -128), (-128, 127), (127, -128), (127, 127), (-1, -128),
                                         (0, -128)])
def test_signed_int8_extremes_are_exact(act, weight):
    pe, spec, psum_type = make_pe("int8", "int8")
    # psum_in at the far end of its range, in the direction of the product: the adder must not wrap.
    column_of_extremes = (spec.rows - 1) * spec.max_abs_product() * (1 if act * weight >= 0 else -1)
    seen = run_cycles(pe, [dict(load_en=1, load_bank=1, load_data=weight), dict(act_in=act, bank_in=1), {}, {}, {},
                           dict(psum_in=column_of_extremes), {}])
    assert seen[6]["psum_out"] == act * weight + column_of_extremes
    assert psum_type.contains(act * weight + column_of_extremes)


@pytest.mark.parametrize("act, weight", [(255, -128), (255, 127), (128, -1), (128, 1), (0, -128), (1, -1)])
def test_unsigned_activations_are_not_sign_extended(act, weight):
    """uint8 x int8: an activation of 128 or more is a large positive number, never a negative one."""
    pe, spec, psum_type = make_pe("uint8", "int8")
    assert psum_type.signed
    assert pe.act_shape == unsigned(8) and pe.weight_shape == signed(8)
    seen = run_cycles(pe, [dict(load_en=1, load_bank=0, load_data=weight), dict(act_in=act), {}, {}, {}, {}, {}])
    assert seen[6]["psum_out"] == act * weight
    assert seen[2]["act_out"] == act


@pytest.mark.parametrize("stages", [2, 3])
@pytest.mark.parametrize("a_shape, b_shape", [(signed(8), signed(8)), (unsigned(8), signed(8)),
                                              (signed(5), signed(3)), (unsigned(4), unsigned(5)),
                                              (signed(6), unsigned(7)), (signed(3), signed(1))])
def test_logic_multiplier_is_exact_on_every_pair(a_shape, b_shape, stages):
    """`PipelinedMultiplier(cell=False)` (the PEs beyond a device's hard multipliers): every product of the
    operand types (int8 x int8, uint8 x int8, and odd widths: a lone last partial product, an unsigned b), ``stages``
    enabled cycles after its operands, with ``en`` low in between freezing it."""
    dut = PipelinedMultiplier(a_shape=a_shape, b_shape=b_shape, cell=False, stages=stages)
    assert dut.LATENCY == stages

    def values(shape):
        return range(-2 ** (shape.width - 1), 2 ** (shape.width - 1)) if shape.signed else range(2 ** shape.width)
    pairs = [(a, b) for a in values(a_shape) for b in values(b_shape)]
    got = []

    async def testbench(ctx):
        for n, (a, b) in enumerate(pairs + [(0, 0)] * stages):
            ctx.set(dut.a, a)
            ctx.set(dut.b, b)
            if n == min(100, len(pairs) // 2):     # a frozen cycle: nothing moves, the same product stays
                ctx.set(dut.en, 0)
                before = ctx.get(dut.p)
                await ctx.tick()
                assert ctx.get(dut.p) == before
                ctx.set(dut.en, 1)
            got.append(ctx.get(dut.p))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    assert got[stages:] == [a * b for a, b in pairs]


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_logic_multiplier_stages_are_checked():
    with pytest.raises(ValueError, match="stages must be 2, or 3 for the logic form") as hard:
        PipelinedMultiplier(a_shape=signed(8), b_shape=signed(8), stages=3)
    with pytest.raises(ValueError, match="stages must be 2") as deep:
        PipelinedMultiplier(a_shape=signed(8), b_shape=signed(8), cell=False, stages=4)
    del hard, deep
    gc.collect()        # the half-built components warn when collected: here, under this test's filter


def test_a_float_pe_keeps_its_hard_multiplier():
    pe = WeightStationaryPE(act_shape=16, weight_shape=16, psum_shape=32, fmt="bf16", multiplier_cell=False)
    with pytest.raises(ValueError, match="multiplier_cell=True"):
        Fragment.get(pe, None)
