"""ECP5-85F benchmark: int8 weight-stationary arrays, one DSP per MAC, post-route figures.

    python benchmarks/fpga_ecp5.py                       # 8x8 and the largest array that fits (12x12)
    python benchmarks/fpga_ecp5.py --sizes 4x4,8x8 --freq 150
    python benchmarks/fpga_ecp5.py --no-postops          # built without the post-op chain (raw accumulators)
    python benchmarks/fpga_ecp5.py --seeds 1,2,3         # one place and route per seed (Fmax spread)
    python benchmarks/fpga_ecp5.py --packing             # two int8 MACs per MULT18X18D: what Yosys infers

Prints a table, and one machine-readable JSON line per design (prefixed ``BENCH ``). GOPS = 2 * MACs * Fmax.
Shares are of the LFE5U-85F: LUT (TRELLIS_COMB: LUT4s and carry halves), FF, DSP (MULT18X18D), EBR (DP16KD).
Place and route of a 12x12 takes several minutes on two cores.
"""

import argparse
import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from amaranth.hdl import Module, Signal, signed, unsigned  # noqa: E402
from amaranth.lib import stream, wiring  # noqa: E402
from amaranth.lib.wiring import In, Out  # noqa: E402

from hwgen.fpga.cli import nextpnr_options  # noqa: E402
from hwgen.fpga.devices import get_device  # noqa: E402
from hwgen.fpga.flow import synthesize  # noqa: E402
from hwgen.fpga.tools import Progress  # noqa: E402
from hwgen.spec import AcceleratorSpec  # noqa: E402

DEPTHS = {"act": 2048, "weight": 2048, "acc": 256}   # the spec defaults of an 8x8 int8 array


def array_spec(rows, cols, postops=True):
    return AcceleratorSpec(rows=rows, cols=cols, act_buffer_bytes=DEPTHS["act"] * rows,
                           weight_buffer_bytes=DEPTHS["weight"] * cols, acc_buffer_bytes=DEPTHS["acc"] * cols * 4,
                           postops=postops, name=f"ws{rows}x{cols}" + ("" if postops else "_nopost"))


def largest_square(device, postops=True):
    """The largest n x n array whose elaborated top (PE and post-op multipliers, memories) fits the device."""
    from hwgen.fpga.fit import estimate_fit
    from hwgen.fpga.flow import default_component, elaborate_fitted
    for n in range(math.isqrt(device.dsps), 0, -1):
        spec = array_spec(n, n, postops)
        if estimate_fit(spec, device, check=False).problems:
            continue
        _, estimate = elaborate_fitted(spec, default_component(spec), device, io_bits=8, name=spec.name,
                                       check_fit=False)
        if not estimate.problems:
            return n
    return 0


def row(summary):
    util = summary.get("utilization", {})
    return {
        "bench": "fpga_ecp5", "design": summary["design"], "device": summary["device"],
        "rows": summary["spec"]["rows"], "cols": summary["spec"]["cols"], "macs": summary["macs"],
        "lut4": summary["lut4"], "carry": summary["carry"], "ff": summary["ff"], "dsp": summary["dsp"],
        "ebr": summary["bram"], "lutram": summary.get("lutram"),
        "comb_used": util.get("lut", {}).get("used"),
        "fmax_mhz": summary.get("fmax_mhz"), "target_mhz": summary["freq_mhz"],
        "timing_met": summary.get("timing_met"), "gops": summary.get("gops"),
        "share_pct": {"lut": summary["share"].get("lut4"), "ff": summary["share"].get("ff"),
                      "dsp": summary["share"].get("dsp"), "ebr": summary["share"].get("bram")},
        "critical_path": summary.get("critical_path"),
        "seconds": summary.get("seconds"), "seed": summary.get("seed"),
    }


def print_table(rows):
    head = ("design", "seed", "MACs", "LUT4", "carry", "FF", "DSP", "EBR", "Fmax MHz", "GOPS", "LUT%", "FF%", "DSP%",
            "EBR%")
    lines = [head]
    for r in rows:
        s = r["share_pct"]
        lines.append((r["design"], str(r["seed"]), str(r["macs"]), str(r["lut4"]), str(r["carry"]), str(r["ff"]), str(r["dsp"]),
                      str(r["ebr"]), f"{r['fmax_mhz']:.1f}" if r["fmax_mhz"] else "-",
                      f"{r['gops']:.1f}" if r["gops"] else "-",
                      *[f"{s[k]:.1f}" if s[k] is not None else "-" for k in ("lut", "ff", "dsp", "ebr")]))
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    for index, line in enumerate(lines):
        print("  ".join(c.rjust(w) for c, w in zip(line, widths)))
        if index == 0:
            print("  ".join("-" * w for w in widths))
    for r in rows:
        path = r["critical_path"]
        if path:
            print(f"{r['design']} (seed {r['seed']}): critical path {path['from']} -> {path['to']} ({path['delay_ns']:.2f} ns: "
                  f"{path['logic_ns']:.2f} logic + {path['routing_ns']:.2f} routing)")


# Two int8 MACs per MULT18X18D ------------------------------------------------------------------------------

class TwoProducts(wiring.Component):
    """Two int8 products of one activation with two weights, registered in and out.

    ``packed=False``: two multipliers (what the array does: one MULT18X18D each).
    ``packed=True``: one multiplier of ``a * (w1 * 2**shift + w2)``, products split afterwards with the sign
    correction ``p1 = hi + (lo < 0)``. The two 16-bit products only separate with ``shift >= 16``, which makes
    the packed operand 24 bits: wider than the 18-bit MULT18X18D port.
    """

    def __init__(self, *, packed, shift=16):
        self.packed, self.shift = packed, shift
        super().__init__({"weights": In(stream.Signature(unsigned(16))), "acts": In(stream.Signature(unsigned(8))),
                          "out": Out(stream.Signature(unsigned(32)))})

    def elaborate(self, platform):
        m = Module()
        a, w1, w2 = Signal(signed(8)), Signal(signed(8)), Signal(signed(8))
        p1, p2 = Signal(signed(16)), Signal(signed(16))
        valid = Signal(2)
        m.d.comb += [self.weights.ready.eq(1), self.acts.ready.eq(1), self.out.valid.eq(valid[1]),
                     self.out.payload.eq(p2.as_unsigned() | (p1.as_unsigned() << 16))]
        with m.If(self.weights.valid):
            m.d.sync += [w1.eq(self.weights.payload[8:]), w2.eq(self.weights.payload[:8])]
        m.d.sync += [a.eq(self.acts.payload), valid.eq(valid << 1 | self.acts.valid)]
        if not self.packed:
            m.d.sync += [p1.eq(a * w1), p2.eq(a * w2)]
        else:
            s = self.shift
            packed = Signal(signed(8 + s + 1))
            m.d.comb += packed.eq((w1 << s) + w2)
            product = Signal(signed(16 + s + 1))
            m.d.comb += product.eq(a * packed)
            lo = product[:s].as_signed()
            m.d.sync += [p2.eq(lo), p1.eq(product[s:].as_signed() + lo[-1])]
        return m


def check_packing_arithmetic(shift):
    """Exhaustive check over activations and a weight grid that the packed product splits exactly."""
    for a in range(-128, 128):
        for w1 in range(-128, 128, 5):
            for w2 in (-128, -77, -1, 0, 1, 63, 127):
                product = a * ((w1 << shift) + w2)
                lo = product & ((1 << shift) - 1)
                lo = lo - (1 << shift) if lo >> (shift - 1) else lo
                hi = (product >> shift) + (1 if lo < 0 else 0)
                if (lo, hi) != (a * w2, a * w1):
                    return False
    return True


def packing_experiment(args, progress):
    spec = AcceleratorSpec(rows=1, cols=2, act_buffer_bytes=2, weight_buffer_bytes=4, acc_buffer_bytes=16,
                           name="pack")
    results = []
    for packed, shift in ((False, 16), (True, 16), (True, 9)):
        label = "two multipliers" if not packed else f"packed a*(w1<<{shift} + w2)"
        name = "mul2" if not packed else f"packed{shift}"
        summary = synthesize(spec, args.device, component=TwoProducts(packed=packed, shift=shift),
                             name=name, freq_mhz=args.freq, build_dir=Path(args.out) / name, seed=args.seed,
                             progress=progress, check_memory=False)
        correct = True if not packed else check_packing_arithmetic(shift)
        result = {"bench": "fpga_ecp5_packing", "variant": label, "mult18x18d": summary["dsp"],
                  "alu54b": summary["yosys_cells"].get("ALU54B", 0),
                  "lut4": summary["lut4"], "carry": summary["carry"], "ff": summary["ff"],
                  "fmax_mhz": summary.get("fmax_mhz"), "products_per_dsp": 2 / max(summary["dsp"], 1),
                  "exact": correct}
        results.append(result)
        print("BENCH " + json.dumps(result), flush=True)
    print()
    print(f"{'variant':34} {'MULT18X18D':>10} {'LUT4':>5} {'carry':>5} {'FF':>4} {'Fmax':>7}  exact")
    for r in results:
        print(f"{r['variant']:34} {r['mult18x18d']:>10} {r['lut4']:>5} {r['carry']:>5} {r['ff']:>4} "
              f"{r['fmax_mhz'] or 0:>7.1f}  {r['exact']}")
    return results


# What Fmax the array could reach with the DSP's own registers ---------------------------------------------

class DspRegisteredArray(wiring.Component):
    """Timing experiment (not a functional accelerator): a rows x cols weight-stationary array whose
    multipliers are MULT18X18D instances with their input and output registers enabled
    (``REG_INPUTA/B_CLK``, ``REG_OUTPUT_CLK`` = CLK0), fed from a block-RAM activation buffer whose read data is
    registered once in the fabric. Yosys never folds fabric flip-flops into MULT18X18D, so an inferred ``a * w``
    always runs combinationally through the DSP (about 4 ns on a -6 part); this shows what the registered
    slice buys. ``instantiate=False`` gives the same array with the inferred multiplier, for comparison."""

    def __init__(self, rows, cols, *, instantiate=True, depth=2048):
        self.rows, self.cols, self.instantiate, self.depth = rows, cols, instantiate, depth
        super().__init__({"weights": In(stream.Signature(unsigned(8 * cols))),
                          "acts": In(stream.Signature(unsigned(8 * rows))),
                          "out": Out(stream.Signature(unsigned(32 * cols)))})

    def elaborate(self, platform):
        from amaranth.hdl import Cat, ClockSignal, Const, Instance
        from amaranth.lib import memory
        m = Module()
        rows, cols = self.rows, self.cols
        m.submodules.buf = buf = memory.Memory(shape=unsigned(8 * rows), depth=self.depth, init=[])
        wr, rd = buf.write_port(), buf.read_port()
        waddr, raddr = Signal(range(self.depth)), Signal(range(self.depth))
        m.d.comb += [self.acts.ready.eq(1), wr.en.eq(self.acts.valid), wr.addr.eq(waddr),
                     wr.data.eq(self.acts.payload), rd.addr.eq(raddr), self.weights.ready.eq(1)]
        with m.If(self.acts.valid):
            m.d.sync += waddr.eq(waddr + 1)
        m.d.sync += raddr.eq(raddr + 1)
        data = Signal(8 * rows)
        m.d.sync += data.eq(rd.data)                  # fabric register after the EBR
        w = [[Signal(signed(8), name=f"w_{i}_{j}") for j in range(cols)] for i in range(rows)]
        row = Signal(range(max(rows, 2)))
        with m.If(self.weights.valid):
            m.d.sync += row.eq(Mux_(row == rows - 1, 0, row + 1))
            for i in range(rows):
                with m.If(row == i):
                    m.d.sync += [w[i][j].eq(self.weights.payload[8 * j:8 * j + 8]) for j in range(cols)]
        psum_prev = [Const(0, signed(32))] * cols
        for i in range(rows):
            a = data[8 * i:8 * i + 8].as_signed()
            for stage in range(i):
                d = Signal(signed(8), name=f"skew_{i}_{stage}")
                m.d.sync += d.eq(a)
                a = d
            for j in range(cols):
                a_reg = Signal(signed(8), name=f"a_{i}_{j}")
                m.d.sync += a_reg.eq(a)
                product = Signal(signed(36), name=f"p_{i}_{j}")
                if self.instantiate:
                    a18, b18 = Signal(signed(18)), Signal(signed(18))
                    m.d.comb += [a18.eq(a_reg), b18.eq(w[i][j])]
                    ports = {f"i_A{k}": a18[k] for k in range(18)}
                    ports.update({f"i_B{k}": b18[k] for k in range(18)})
                    ports.update({f"i_C{k}": Const(0) for k in range(18)})
                    ports.update({f"o_P{k}": product[k] for k in range(36)})
                    m.submodules[f"mult_{i}_{j}"] = Instance(
                        "MULT18X18D",
                        p_REG_INPUTA_CLK="CLK0", p_REG_INPUTB_CLK="CLK0", p_REG_OUTPUT_CLK="CLK0",
                        p_REG_INPUTC_CLK="NONE", p_REG_PIPELINE_CLK="NONE",
                        p_REG_INPUTA_CE="CE0", p_REG_INPUTB_CE="CE0", p_REG_OUTPUT_CE="CE0",
                        p_REG_INPUTA_RST="RST0", p_REG_INPUTB_RST="RST0", p_REG_OUTPUT_RST="RST0",
                        p_GSR="DISABLED", p_RESETMODE="SYNC",
                        i_CLK0=ClockSignal(), i_CLK1=0, i_CLK2=0, i_CLK3=0,
                        i_CE0=1, i_CE1=0, i_CE2=0, i_CE3=0, i_RST0=0, i_RST1=0, i_RST2=0, i_RST3=0,
                        i_SIGNEDA=1, i_SIGNEDB=1, i_SOURCEA=0, i_SOURCEB=0, **ports)
                else:
                    p1 = Signal(signed(16), name=f"pr_{i}_{j}")
                    m.d.sync += [p1.eq(a_reg * w[i][j])]
                    m.d.comb += product.eq(p1)
                psum = Signal(signed(32), name=f"s_{i}_{j}")
                m.d.sync += psum.eq(psum_prev[j] + product[:16].as_signed())
                psum_prev[j] = psum
                a = a_reg
        outs = []
        for j in range(cols):
            p = psum_prev[j]
            for stage in range(cols - 1 - j):
                d = Signal(signed(32), name=f"deskew_{j}_{stage}")
                m.d.sync += d.eq(p)
                p = d
            outs.append(p)
        out = Signal(32 * cols)
        m.d.sync += out.eq(Cat(*outs))
        m.d.comb += [self.out.payload.eq(out), self.out.valid.eq(1)]
        return m


def Mux_(sel, a, b):
    from amaranth.hdl import Mux
    return Mux(sel, a, b)


def dsp_register_experiment(args, progress):
    results = []
    n = int(args.dsp_registers)
    spec = AcceleratorSpec(rows=n, cols=n, act_buffer_bytes=2048 * n, weight_buffer_bytes=2048 * n,
                           acc_buffer_bytes=256 * n * 4, name=f"dspreg{n}")
    for instantiate in (False, True):
        name = f"{'dspreg' if instantiate else 'inferred'}{n}x{n}"
        summary = synthesize(spec, args.device, component=DspRegisteredArray(n, n, instantiate=instantiate),
                             name=name, freq_mhz=args.freq, build_dir=Path(args.out) / name, seed=args.seed,
                             progress=progress, check_memory=False)
        result = {"bench": "fpga_ecp5_dsp_registers", "variant": name,
                  "multiplier": "MULT18X18D with input+output registers" if instantiate else "inferred a*w",
                  "dsp": summary["dsp"], "lut4": summary["lut4"], "ff": summary["ff"], "ebr": summary["bram"],
                  "fmax_mhz": summary.get("fmax_mhz"), "gops": summary.get("gops"),
                  "critical_path": summary.get("critical_path")}
        results.append(result)
        print("BENCH " + json.dumps(result), flush=True)
    for r in results:
        path = r["critical_path"] or {}
        print(f"{r['variant']:16} {r['multiplier']:40} Fmax {r['fmax_mhz']:.1f} MHz  "
              f"({path.get('from')} -> {path.get('to')})")
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="ecp5-85f")
    parser.add_argument("--sizes", help="comma-separated RxC list (default: 8x8 and the largest that fits)")
    parser.add_argument("--no-postops", action="store_true",
                        help="accelerators built without the post-op chain (postops=False)")
    parser.add_argument("--freq", type=float, default=150.0, help="target MHz (150)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--seeds", help="comma-separated nextpnr seeds: one run per seed and size (Fmax moves a "
                                        "few MHz from seed to seed; the table shows every run)")
    parser.add_argument("--router", choices=["router1", "router2"], help="nextpnr router")
    parser.add_argument("--placer", choices=["heap", "static", "sa"], help="nextpnr placer")
    parser.add_argument("--out", default="build/fpga/bench")
    parser.add_argument("--packing", action="store_true", help="run the two-int8-per-DSP experiment only")
    parser.add_argument("--dsp-registers", metavar="N",
                        help="timing experiment: NxN array with registered MULT18X18D instances vs inferred")
    parser.add_argument("-q", "--quiet", action="store_true")
    args = parser.parse_args(argv)
    progress = Progress(enabled=not args.quiet)
    if args.packing:
        packing_experiment(args, progress)
        return 0
    if args.dsp_registers:
        dsp_register_experiment(args, progress)
        return 0
    device = get_device(args.device)
    postops = not args.no_postops
    if args.sizes:
        sizes = args.sizes.split(",")
    else:
        n = largest_square(device, postops)
        sizes = ["8x8", f"{n}x{n}"]
    seeds = [int(seed) for seed in args.seeds.split(",")] if args.seeds else [args.seed]
    rows = []
    for size in sizes:
        r, c = (int(x) for x in size.lower().split("x"))
        spec = array_spec(r, c, postops)
        for seed in seeds:
            build = Path(args.out) / (f"{spec.name}-{device.key}" + (f"-seed{seed}" if len(seeds) > 1 else ""))
            summary = synthesize(spec, device, freq_mhz=args.freq, seed=seed, build_dir=build, progress=progress,
                                 nextpnr_extra=nextpnr_options(args))
            rows.append(row(summary))
            print("BENCH " + json.dumps(rows[-1]), flush=True)
    print()
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
