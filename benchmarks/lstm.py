"""LSTM layers on the fixed-point engine (issue 17): the DeepBench shape, its cycles against the weight-bandwidth
roof, its error against PyTorch's nn.LSTM, and conv vs FC vs LSTM on the roofline.

    python benchmarks/lstm.py                          # tables, the roofline figure, BENCH line
    python benchmarks/lstm.py --rtl --sim verilator    # also the batch-1 sequence on the Verilog (exact, cycles)
    python benchmarks/lstm.py --rtl --rtl-batch 16 --no-alexnet   # the batch-16 one (1.7 M cycles)
    python benchmarks/lstm.py --no-plot --no-alexnet   # without the figure / the AlexNet layers

The shape: DeepBench's character-level language model LSTM, hidden 128 (inputs of 128), T = 50 steps, batch 1
and 16, on an 8x8 engine of 16-bit multipliers (64 MACs per cycle; the weight stream carries one 8x8 tile of
16-bit weights, 128 bytes, per cycle). Every step the four gates are one matrix-vector product over
``[x_t, h_(t-1)]`` (512 x 256: 2,048 tiles), streamed again every step as a batch-1 RNN kernel reads its weights
from DRAM every step; a tile is held for the whole batch. So at batch 1 the engine is at the weight stream's roof
(one tile per cycle, 2 bytes per MAC) and at batch 16 the same stream feeds 16x the MACs (1/8 byte per MAC).

The error: the same weights (PyTorch's default initialisation, seeded) and inputs (uniform in [-1, 1]) through
the engine's golden model (`hwgen.fxp.machine`, which the cocotb tests prove equal to the RTL) in Q3.12 with
sigmoid/tanh tables of 256 segments, against ``torch.nn.LSTM`` in float32: max and mean |h_fixed - h_torch| over
every step, sample and unit.

The roofline figure: AlexNet's conv and FC layers (int8, batch 1) on the 16x16 array of benchmarks/networks.py,
their DRAM bytes as `hwgen.roofline` counts them (what the commands stream), and the LSTM (16-bit, batch 1 and
16) on the engine: bytes per MAC and the roofline at ``--dram-bw`` bytes per cycle.

Prints the tables and one ``BENCH {...}`` JSON line; writes benchmarks/results/roofline_conv_fc_lstm.png.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hwgen.activation import PiecewiseLinear   # noqa: E402
from hwgen.fxp import predict   # noqa: E402
from hwgen.fxp.lstm_layer import (LstmShape, deepbench_spec, float_lstm, hidden_states, lstm_program,   # noqa: E402
                                  torch_lstm)

RESULTS = Path(__file__).resolve().parent / "results"
HIDDEN, INPUT, STEPS = 128, 128, 50


def lstm_run(batch, steps=STEPS, seed=0, read_back=False):
    """One sequence: (shape, spec, program builder, the engine's h, PyTorch's h, NumPy float64's h).
    ``read_back``: the program ends reading every step's h back (what an RTL run compares)."""
    shape = LstmShape(INPUT, HIDDEN, batch, steps)
    spec = deepbench_spec(shape)
    x = np.random.default_rng(seed + batch).uniform(-1, 1, (steps, batch, INPUT))
    ref, w_ih, w_hh, bias = torch_lstm(x, INPUT, HIDDEN, seed=seed)
    builder, base = lstm_program(spec, shape, x, w_ih, w_hh, bias, emit=False, read_back=read_back)
    h = hidden_states(spec, shape, builder.machine, base)
    return shape, spec, builder, h, ref, float_lstm(x, w_ih, w_hh, bias)


def lstm_row(batch, dram_bw):
    shape, spec, builder, h, ref, exact = lstm_run(batch)
    program = builder.program()
    timing = predict(program)
    lstm_index = next(i for i, c in enumerate(program.commands) if c.kind == "lstm")
    event = timing.commands[lstm_index]
    cycles = event["done"] - event["accept"] + 1
    xb, hb, R, O = shape.blocks(spec)
    tiles = STEPS * O * R                          # tiles streamed: the weight-bandwidth roof, a tile per cycle
    macs = shape.macs()
    weight_bytes = tiles * spec.tile_bits // 8
    io_bytes = STEPS * batch * (R * spec.vector_bits // 8) * 2     # u in, h out (16-bit), every step
    dram_bytes = weight_bytes + io_bytes
    err = np.abs(h - ref)
    return {"batch": batch, "steps": STEPS, "hidden": HIDDEN, "input": INPUT, "macs": macs,
            "cycles": cycles, "cycles_per_step": cycles / STEPS,
            "weight_roof_cycles": tiles, "compute_roof_cycles": -(-macs // spec.size ** 2),
            "grid_cycles": tiles * batch,
            "of_roof": max(tiles, tiles * batch) / cycles,
            "weight_bytes": weight_bytes, "dram_bytes": dram_bytes, "bytes_per_mac": dram_bytes / macs,
            "intensity": macs / dram_bytes,
            "dram_bound_cycles": int(max(dram_bytes / dram_bw, -(-macs // spec.size ** 2))),
            "max_error": float(err.max()), "mean_error": float(err.mean()),
            "float64_vs_torch_max": float(np.abs(exact - ref).max()),
            "h_range": [float(ref.min()), float(ref.max())], "spec": spec.to_dict(), "pes": spec.size ** 2}


def alexnet_rows(bw):
    """AlexNet's layers (batch 1) on the 16x16 array: `hwgen.roofline` per layer."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from networks import ALEXNET_SPEC, alexnet

    from hwgen.compiler.program import compile_program
    from hwgen.roofline import roofline
    program = compile_program(ALEXNET_SPEC, alexnet(), batch=1)
    return [{**row, "pes": ALEXNET_SPEC.pes} for row in roofline(program, bw)], ALEXNET_SPEC.pes


def plot(conv_fc, lstm_rows, bw, pes_array, pes_fxp, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.6))
    names, values, colors = [], [], []
    for row in conv_fc:
        names.append(row["layer"])
        values.append(row["dram_bytes"] / row["macs"])
        colors.append("tab:green" if row["layer"].startswith("conv") else "tab:orange")
    for row in lstm_rows:
        names.append(f"LSTM b{row['batch']}")
        values.append(row["bytes_per_mac"])
        colors.append("tab:purple")
    ax1.bar(names, values, color=colors)
    ax1.set_yscale("log")
    ax1.set_ylabel("DRAM bytes per MAC")
    ax1.set_title("bytes per MAC: conv (green), FC (orange) int8 batch 1;\nLSTM h=128 16-bit (purple)",
                  fontsize=10)
    ax1.tick_params(axis="x", rotation=45)
    ax1.grid(axis="y", alpha=0.3)

    x = np.logspace(-1.5, 3, 200)
    for pes, style, label in ((pes_array, "-", f"16x16 int8 array ({pes_array} MACs/cycle)"),
                              (pes_fxp, "--", f"8x8 16-bit engine ({pes_fxp} MACs/cycle)")):
        ax2.plot(x, np.minimum(pes, bw * x), "k" + style, lw=1.2, label=label)
    groups = {}      # layers of (nearly) one intensity share a label
    for row in conv_fc:
        groups.setdefault(round(np.log10(row["intensity"]), 1), []).append(row)
    for k, members in enumerate(groups.values()):
        conv = members[0]["layer"].startswith("conv")
        for row in members:
            ax2.scatter(row["intensity"], min(pes_array, bw * row["intensity"]), marker="o",
                        color="tab:green" if conv else "tab:orange", zorder=3)
        row = members[0]
        label = ", ".join(m["layer"] for m in members)
        ax2.annotate(label, (row["intensity"], min(pes_array, bw * row["intensity"])), fontsize=7,
                     xytext=((-10, -11) if k % 2 == 0 else (-10, 6)) if conv else (5, -4), textcoords="offset points")
    for row in lstm_rows:
        y = min(pes_fxp, bw * row["intensity"])
        ax2.scatter(row["intensity"], y, marker="s", color="tab:purple", zorder=3)
        ax2.annotate(f"LSTM b{row['batch']}", (row["intensity"], y), fontsize=7, xytext=(3, 3),
                     textcoords="offset points")
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    ax2.set_xlabel("operational intensity (MACs per DRAM byte)")
    ax2.set_ylabel("attainable MACs per cycle")
    ax2.set_title(f"roofline at {bw:g} DRAM bytes per cycle", fontsize=10)
    ax2.grid(alpha=0.3, which="both")
    ax2.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dram-bw", type=float, default=32.0, help="DRAM bytes per cycle (default 32)")
    parser.add_argument("--no-plot", action="store_true")
    parser.add_argument("--no-alexnet", action="store_true", help="skip compiling AlexNet for the figure")
    parser.add_argument("--png", type=Path, default=RESULTS / "roofline_conv_fc_lstm.png")
    parser.add_argument("--rtl", action="store_true", help="run the sequence on the Verilog")
    parser.add_argument("--rtl-batch", type=int, default=1, help="batch of the RTL run (default 1)")
    parser.add_argument("--rtl-steps", type=int, default=STEPS, help="steps of the RTL run (default 50)")
    parser.add_argument("--sim", default="verilator", choices=("icarus", "verilator"))
    args = parser.parse_args()

    tables = {f: PiecewiseLinear(f, 12, 8).max_error() for f in ("sigmoid", "tanh")}
    print("activation tables (Q3.12, 256 segments, piecewise linear), against float over all 65,536 inputs:")
    for f, (worst, mean) in tables.items():
        print(f"  {f:<8} max error {worst:.2e} ({worst * 4096:.2f} LSB), mean {mean:.2e}")

    rows = []
    for batch in (1, 16):
        started = time.perf_counter()
        rows.append(lstm_row(batch, args.dram_bw))
        rows[-1]["golden_seconds"] = time.perf_counter() - started
    spec = rows[0]["spec"]
    print(f"\nLSTM hidden {HIDDEN}, input {INPUT}, T = {STEPS} on an {spec['size']}x{spec['size']} engine "
          f"(Q3.12): cycles (model = RTL) vs the roofs")
    print(f"{'batch':>5}{'MACs':>12}{'cycles':>10}{'cyc/step':>10}{'w-stream roof':>15}{'compute roof':>14}"
          f"{'of roof':>9}{'B/MAC':>8}{f'@{args.dram_bw:g} B/cyc':>12}")
    for r in rows:
        print(f"{r['batch']:>5}{r['macs']:>12}{r['cycles']:>10}{r['cycles_per_step']:>10.1f}"
              f"{r['weight_roof_cycles']:>15}{r['compute_roof_cycles']:>14}{r['of_roof']:>9.1%}"
              f"{r['bytes_per_mac']:>8.3f}{r['dram_bound_cycles']:>12}")
    print("  w-stream roof: one 8x8 tile (128 B) of the 512x256 gate matrix per cycle, every step; compute roof: "
          "MACs/64. Batch 1 sits on the weight roof; at batch 16 each tile serves 16 samples, the grid is the "
          "bound and the stream needs 8 B/cycle.")
    print(f"\nerror of the fixed-point LSTM against torch.nn.LSTM (float32), same weights, |h| over all steps:")
    print(f"{'batch':>5}{'max':>11}{'mean':>11}{'float64 vs torch':>18}{'h range':>18}")
    for r in rows:
        print(f"{r['batch']:>5}{r['max_error']:>11.2e}{r['mean_error']:>11.2e}{r['float64_vs_torch_max']:>18.1e}"
              f"{'[%.2f, %.2f]' % tuple(r['h_range']):>18}")

    rtl = None
    if args.rtl:
        from hwgen.sim.fxp_runner import run_fxp
        shape, spec_obj, builder, *_ = lstm_run(args.rtl_batch, steps=args.rtl_steps, read_back=True)
        program = builder.program()
        assert program.out_beats == args.rtl_steps * args.rtl_batch * sum(shape.blocks(spec_obj)[:2])
        result = run_fxp(program, simulator=args.sim, tag="bench-lstm")
        rtl = {"batch": args.rtl_batch, "steps": args.rtl_steps, "exact": result.exact, "cycle_exact": result.cycle_exact,
               "out_beats_compared": program.out_beats, "measured_cycles": result.measured.cycles(), "model_cycles": result.model.cycles(),
               "simulator": args.sim, "build_seconds": result.build_seconds, "sim_seconds": result.wall_seconds}
        print(f"\nRTL ({args.sim}), batch {args.rtl_batch}, {args.rtl_steps} steps (the whole program: loads, the "
              f"lstm command, the read-back of every h): {program.out_beats} words of hidden states "
              f"{'exact' if result.exact else 'WRONG'}, {rtl['measured_cycles']} cycles measured, "
              f"{rtl['model_cycles']} modelled ({'equal' if result.cycle_exact else 'DIFFER'}), "
              f"simulation {result.wall_seconds:.0f} s")

    conv_fc, pes_array = [], None
    if not args.no_alexnet:
        conv_fc, pes_array = alexnet_rows(args.dram_bw)
        print(f"\nbytes per MAC and the bound at {args.dram_bw:g} DRAM bytes/cycle (ridge: array "
              f"{pes_array / args.dram_bw:g}, engine {64 / args.dram_bw:g} MACs/byte):")
        print(f"{'layer':<10}{'machine':<14}{'MACs':>12}{'DRAM bytes':>12}{'B/MAC':>9}{'MACs/B':>9}  bound")
        for r in conv_fc:
            print(f"{r['layer']:<10}{'16x16 int8':<14}{r['macs']:>12}{r['dram_bytes']:>12}"
                  f"{r['dram_bytes'] / r['macs']:>9.3f}{r['intensity']:>9.1f}  {r['bound']}")
        for r in rows:
            bound = "memory" if r["intensity"] * args.dram_bw < r["pes"] else "compute"
            print(f"{'LSTM b' + str(r['batch']):<10}{'8x8 16-bit':<14}{r['macs']:>12}{r['dram_bytes']:>12}"
                  f"{r['bytes_per_mac']:>9.3f}{r['intensity']:>9.1f}  {bound}")
        if not args.no_plot:
            plot(conv_fc, rows, args.dram_bw, pes_array, rows[0]["pes"], args.png)
            print(f"\nwrote {args.png}")

    bench = {"benchmark": "fxp_lstm", "hidden": HIDDEN, "input": INPUT, "steps": STEPS, "dram_bw": args.dram_bw,
             "activation_max_error": {f: e[0] for f, e in tables.items()},
             "lstm": [{k: v for k, v in r.items() if k != "spec"} for r in rows], "spec": spec,
             "rtl": rtl, "roofline": [{k: r[k] for k in ("layer", "macs", "dram_bytes", "intensity", "bound")}
                                      for r in conv_fc]}
    print("BENCH " + json.dumps(bench))


if __name__ == "__main__":
    main()
