"""The float units (`hwgen.hw.fpu`) bit for bit against the golden model (`hwgen.floats`), with the corner cases
of the numeric policy: cancellation to zero, ties to even, overflow, inf - inf, 0 * inf, subnormals flushed."""

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from hwgen import floats
from hwgen.hw.fpu import (Fp32Adder, FloatProductPipe, float_product, fp32_mul_operands, fp32_mul_round,
                          fp32_round_to, fp32_to_format)

SPECIALS32 = [0x00000000, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00001, 0x7F800001,
              0x00000001, 0x807FFFFF, 0x00800000, 0x80800000, 0x7F7FFFFF, 0xFF7FFFFF, 0x3F800000, 0xBF800000,
              0x00800001, 0x80800001, 0x01000000]


def adder_vectors(rng, n):
    """Random fp32 pairs weighted to the hard cases."""
    pairs = [(a, b) for a in SPECIALS32 for b in SPECIALS32]
    for _ in range(n):
        kind = rng.integers(8)
        a = int(rng.integers(0, 1 << 32))
        if kind == 0:                       # random bits (many NaN/inf/huge/tiny)
            b = int(rng.integers(0, 1 << 32))
        elif kind == 1:                     # close exponents, opposite signs: cancellation
            b = (a ^ 0x80000000) + int(rng.integers(-3 << 23, 3 << 23))
        elif kind == 2:                     # exact negation: x + (-x) = +0
            b = a ^ 0x80000000
        elif kind == 3:                     # ties: b's bits just past a's ulp
            shift = int(rng.integers(23, 27))
            b = (a & 0xFF800000) - (shift << 23) + int(rng.integers(0, 4) << 20) | int(rng.integers(2)) << 31
        elif kind == 4:                     # near overflow
            a = 0x7F000000 | int(rng.integers(0, 1 << 23)) | int(rng.integers(2)) << 31
            b = 0x7F000000 | int(rng.integers(0, 1 << 23)) | int(rng.integers(2)) << 31
        elif kind == 5:                     # near the smallest normal: results that flush
            a = int(rng.integers(0x00800000, 0x01800000)) | int(rng.integers(2)) << 31
            b = int(rng.integers(0x00800000, 0x01800000)) | int(rng.integers(2)) << 31
        elif kind == 6:                     # random normal values of similar size
            a = int(rng.integers(0x30000000, 0x50000000)) | int(rng.integers(2)) << 31
            b = int(rng.integers(0x30000000, 0x50000000)) | int(rng.integers(2)) << 31
        else:                               # exponent differences around the sticky range
            b = ((a & 0x7F800000) - (int(rng.integers(20, 30)) << 23)) | int(rng.integers(0, 1 << 23)) \
                | int(rng.integers(2)) << 31
        pairs.append((a & 0xFFFFFFFF, b & 0xFFFFFFFF))
    return pairs


def run_comb(dut, inputs, output):
    got = []

    async def testbench(ctx):
        for values in inputs:
            for name, value in values.items():
                ctx.set(getattr(dut, name), value)
            got.append(ctx.get(getattr(dut, output)))

    sim = Simulator(dut)
    sim.add_testbench(testbench)
    sim.run()
    return got


def test_golden_adder_policy_examples():
    add = lambda a, b: int(floats.add(np.array([a]), np.array([b]))[0])   # noqa: E731
    one, m_one = 0x3F800000, 0xBF800000
    assert add(one, m_one) == 0                               # x + (-x) = +0
    assert add(0x80000000, 0x80000000) == 0x80000000          # -0 + -0 = -0
    assert add(0x00000000, 0x80000000) == 0                   # +0 + -0 = +0
    assert add(0x7F800000, 0xFF800000) == floats.CANONICAL_NAN
    assert add(0xFFC00001, one) == floats.CANONICAL_NAN
    assert add(0x7F7FFFFF, 0x7F7FFFFF) == 0x7F800000          # overflow to inf
    assert add(0x00000001, one) == one                        # a subnormal reads as zero
    assert add(0x00C00000, 0x80A00000) == 0                   # 2**-126 * (1.5 - 1.25): subnormal -> +0
    assert add(0x80C00000, 0x00A00000) == 0x80000000          # ... with the result's sign
    assert add(one, 0x33800000) == one                        # 1 + 2**-24: a tie, to even (1.0)
    assert add(0x3F800001, 0x33800000) == 0x3F800002          # 1+ulp + 2**-24: a tie, to even (up)


def test_fp32_adder_matches_golden():
    rng = np.random.default_rng(2026)
    pairs = adder_vectors(rng, 3000)
    got = run_comb(Fp32Adder(), [{"a": a, "b": b} for a, b in pairs], "s")
    assert len(got) == len(pairs)
    want = floats.add(np.array([a for a, _ in pairs], dtype=np.uint64), np.array([b for _, b in pairs],
                                                                                 dtype=np.uint64))
    bad = [(hex(a), hex(b), hex(g), hex(int(w))) for (a, b), g, w in zip(pairs, got, want) if g != int(w)]
    assert not bad, f"{len(bad)} of {len(pairs)} sums differ, e.g. {bad[:5]}"


def product_vectors(rng, fmt, n):
    ebits, fbits = floats.FORMATS[fmt]
    emax = (1 << ebits) - 1
    specials = [0x0000, 0x8000, emax << fbits, (emax << fbits) | 0x8000, (emax << fbits) | 1, 0x0001, 0x8003,
                1 << fbits, ((1 << (ebits - 1)) - 1) << fbits, ((emax - 1) << fbits) | ((1 << fbits) - 1)]
    pairs = [(a, b) for a in specials for b in specials]
    for _ in range(n):
        kind = rng.integers(3)
        if kind == 0:
            a, b = int(rng.integers(0, 1 << 16)), int(rng.integers(0, 1 << 16))
        elif kind == 1:      # exponents whose sum leaves fp32's range (bf16) or sits at its edges
            edge = int(rng.choice([1, 2, emax - 2, emax - 1]))
            a = int(rng.integers(0, 1 << 16)) & ~(emax << fbits) | (edge << fbits)
            b = int(rng.integers(0, 1 << 16)) & ~(emax << fbits) | (int(rng.integers(1, emax)) << fbits)
        else:                # ordinary values
            bias = (1 << (ebits - 1)) - 1
            a = int(rng.integers(0, 1 << 16)) & ~(emax << fbits) | (int(rng.integers(bias - 4, bias + 4)) << fbits)
            b = int(rng.integers(0, 1 << 16)) & ~(emax << fbits) | (int(rng.integers(bias - 4, bias + 4)) << fbits)
        pairs.append((a, b))
    return pairs


@pytest.mark.parametrize("fmt", ["bf16", "fp16"])
def test_float_product_pipe_matches_golden_with_two_cycle_latency(fmt):
    rng = np.random.default_rng(7 if fmt == "bf16" else 8)
    pairs = product_vectors(rng, fmt, 1500)
    dut = FloatProductPipe(fmt)
    got = []

    async def testbench(ctx):
        for a, b in pairs + [(0, 0), (0, 0)]:
            ctx.set(dut.a, a)
            ctx.set(dut.b, b)
            got.append(ctx.get(dut.p))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    want = floats.product(np.array([a for a, _ in pairs], dtype=np.uint64),
                          np.array([b for _, b in pairs], dtype=np.uint64), fmt)
    got = got[FloatProductPipe.LATENCY:]
    assert len(got) == len(pairs)
    bad = [(hex(a), hex(b), hex(g), hex(int(w))) for (a, b), g, w in zip(pairs, got, want) if g != int(w)]
    assert not bad, f"{len(bad)} of {len(pairs)} products differ, e.g. {bad[:5]}"


def test_golden_product_policy_examples():
    prod = lambda a, b, fmt="bf16": int(floats.product(np.array([a]), np.array([b]), fmt)[0])   # noqa: E731
    assert prod(0x3F80, 0x4040) == 0x40400000               # 1 * 3
    assert prod(0x8000, 0x3F80) == 0x80000000               # -0 * 1 = -0
    assert prod(0x0000, 0x7F80) == floats.CANONICAL_NAN     # 0 * inf
    assert prod(0x7F00, 0x7F00) == 0x7F800000               # 2**127 * 2**127: overflow to inf
    assert prod(0x0080, 0x3F00) == 0x00000000               # 2**-126 * 0.5: flushed
    assert prod(0x0001, 0x3F80) == 0                        # subnormal operand reads as zero
    assert prod(0x7BFF, 0x7BFF, "fp16") == floats.encode([65504.0 ** 2], "fp32")[0]   # exact in fp32


def test_float_sum_follows_the_order():
    # (1e8 + 1) - 1e8 = 0 in fp32 but 1e8 - 1e8 + 1 = 1: the order is part of the result.
    big, one = int(floats.encode([1e8], "fp32")[0]), int(floats.encode([1.0], "fp32")[0])
    assert int(floats.float_sum([big, one, big ^ 0x80000000])) == 0
    assert int(floats.float_sum([big, big ^ 0x80000000, one])) == one


def test_encode_decode_round_trip_and_relu_max():
    values = np.array([0.0, -0.0, 1.5, -2.25, np.inf, -np.inf, 3.0e38])
    for fmt in ("bf16", "fp16", "fp32"):
        bits = floats.encode(values[:6], fmt)
        assert np.array_equal(floats.decode(bits, fmt), values[:6])
        assert np.array_equal(np.signbit(floats.decode(bits, fmt)), np.signbit(values[:6]))
    assert int(floats.encode([1.0 + 2 ** -8], "bf16")[0]) == 0x3F80       # tie to even
    assert int(floats.encode([1.0 + 3 * 2 ** -8], "bf16")[0]) == 0x3F82   # tie to even (up)
    relu = floats.relu(np.array([0x80000000, 0xBF800000, 0x3F800000, floats.CANONICAL_NAN]))
    assert relu.tolist() == [0, 0, 0x3F800000, floats.CANONICAL_NAN]
    mx = floats.maximum(np.array([0x80000000, 0xBF800000, 0x3F800000]), np.array([0, 0xC0000000, 0xFF800000]))
    assert mx.tolist() == [0, 0xBF800000, 0x3F800000]


class _MulNarrow(wiring.Component):
    """fp32 multiply (combinational here: the chain pipelines the significand product) and the narrowings."""

    def __init__(self):
        super().__init__({"a": In(32), "b": In(32), "p": Out(32), "bf": Out(16), "hf": Out(16),
                          "bf32": Out(32), "hf32": Out(32)})

    def elaborate(self, platform):
        m = Module()
        sa, sb, meta = fp32_mul_operands(m, self.a, self.b, "mul")
        m.d.comb += self.p.eq(fp32_mul_round(m, sa * sb, meta, "mul"))
        bf = fp32_round_to(m, self.a, "bf16", "bf")
        hf = fp32_round_to(m, self.a, "fp16", "hf")
        m.d.comb += [self.bf32.eq(bf), self.hf32.eq(hf), self.bf.eq(fp32_to_format(bf, "bf16")),
                     self.hf.eq(fp32_to_format(hf, "fp16"))]
        return m


def test_fp32_multiply_and_narrowing_match_golden():
    rng = np.random.default_rng(99)
    pairs = adder_vectors(rng, 2500)
    # Values at the edges of fp16/bf16 rounding and range: 65504..65536, around 2**-14, ties at bit 13 and 16.
    edges = [0x477FE000, 0x477FEFFF, 0x477FF000, 0x477FFFFF, 0x38800000, 0x387FF000, 0x387FEFFF, 0x387FE000,
             0x3F801000, 0x3F803000, 0x3F802000, 0x3F808000, 0x3F818000, 0x7F7FFFFF, 0x7F7F8000, 0x00800000]
    pairs += [(e | s, 0x3F800000) for e in edges for s in (0, 0x80000000)]
    dut = _MulNarrow()
    got = []

    async def testbench(ctx):
        for a, b in pairs:
            ctx.set(dut.a, a)
            ctx.set(dut.b, b)
            got.append(tuple(ctx.get(getattr(dut, name)) for name in ("p", "bf", "hf", "bf32", "hf32")))

    sim = Simulator(dut)
    sim.add_testbench(testbench)
    sim.run()
    a = np.array([x for x, _ in pairs], dtype=np.uint64)
    b = np.array([y for _, y in pairs], dtype=np.uint64)
    want = list(zip(floats.mul(a, b).tolist(), floats.narrow(a, "bf16").tolist(), floats.narrow(a, "fp16").tolist(),
                    floats.round_to(a, "bf16").tolist(), floats.round_to(a, "fp16").tolist()))
    assert len(got) == len(want)
    bad = [(hex(x), hex(y), [hex(v) for v in g], [hex(v) for v in w])
           for (x, y), g, w in zip(pairs, got, want) if tuple(g) != tuple(w)]
    assert not bad, f"{len(bad)} of {len(pairs)} differ, e.g. {bad[:4]}"


class _CombProduct(wiring.Component):
    def __init__(self, fmt):
        self.fmt = fmt
        super().__init__({"a": In(16), "b": In(16), "p": Out(32)})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.p.eq(float_product(m, self.a, self.b, self.fmt, "mul"))
        return m


@pytest.mark.parametrize("fmt", ["bf16", "fp16"])
def test_combinational_float_product_matches_golden(fmt):
    """The output-stationary PE's multiplier."""
    rng = np.random.default_rng(17 if fmt == "bf16" else 18)
    pairs = product_vectors(rng, fmt, 1500)
    got = run_comb(_CombProduct(fmt), [{"a": a, "b": b} for a, b in pairs], "p")
    want = floats.product(np.array([a for a, _ in pairs], dtype=np.uint64),
                          np.array([b for _, b in pairs], dtype=np.uint64), fmt)
    assert len(got) == len(pairs)
    bad = [(hex(a), hex(b), hex(g), hex(int(w))) for (a, b), g, w in zip(pairs, got, want) if g != int(w)]
    assert not bad, f"{len(bad)} of {len(pairs)} products differ, e.g. {bad[:5]}"
