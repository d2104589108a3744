"""Fixed-point training on the engine (issue 17): the digits experiment and the cycles of an SGD step.

    python benchmarks/training.py                        # the experiment (150 epochs) + step cycles, PNG
    python benchmarks/training.py --epochs 20 --no-plot  # shorter
    python benchmarks/training.py --rtl                  # also 3 SGD steps on the Verilog (Icarus): exact, cycles

The experiment (Gupta et al., ICML 2015, "Deep learning with limited numerical precision"): the MLP 64 -> 32 -> 10
trained with SGD on scikit-learn's digits (1,438 training / 359 held-out images, mini-batches of 10, cross-entropy)
in float32 and in the engine's exact arithmetic - 16-bit words with ``f`` fractional bits everywhere (weights,
activations, gradients), every rounding point round-to-nearest or stochastic (the engine's LFSRs) - at two
fractional lengths. The fixed-point runs *are* the golden model of the RTL (`hwgen.fxp.machine` running the
engine's commands: forward, ``W^T g`` from the stored tiles, outer-product update); the cocotb tests prove the
RTL equal to it step by step.

Round-to-nearest loses every update smaller than half an LSB (2**-(f+1)); with a small learning rate that is
most of them, and training stalls, while stochastic rounding keeps them in expectation and tracks float32. The
table's "changed" column is the fraction of the weights one SGD step changes.

Prints the tables and one ``BENCH {...}`` JSON line; writes benchmarks/results/training_digits.png.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hwgen.fxp import FxpSpec, ProgramBuilder, predict   # noqa: E402
from hwgen.fxp.perf import ideal_cycles   # noqa: E402
from hwgen.fxp.spec import LR_FRAC   # noqa: E402
from hwgen.fxp.training import FixedPointMLP, digits_data, init_weights, train_digits   # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def experiment(args, data):
    settings = [("float", None)] + [(r, f) for f in args.frac for r in ("nearest", "stochastic")]
    curves = []
    for rounding, frac in settings:
        started = time.perf_counter()
        curve = train_digits(rounding=rounding, frac_bits=frac or 14, hidden=args.hidden, epochs=args.epochs,
                             batch=args.batch, lr=args.lr, data=data)
        curve.seconds = time.perf_counter() - started
        curves.append(curve)
        print(f"  {curve.label:<22} final train error {curve.train_error[-1]:.3f}  ({curve.seconds:.0f} s)",
              flush=True)
    return curves


def print_curves(curves, epochs):
    marks = sorted({1, epochs // 10, epochs // 4, epochs // 2, epochs} - {0})
    print(f"\ntraining error (fraction of the 1,438 training images misclassified) after epoch:")
    print(f"{'setting':<24}" + "".join(f"{e:>8}" for e in marks) + f"{'test':>8}{'changed':>9}")
    for c in curves:
        print(f"{c.label:<24}" + "".join(f"{c.train_error[e - 1]:>8.3f}" for e in marks)
              + f"{c.test_error[-1]:>8.3f}{np.mean(c.changed):>9.1%}")


def plot(curves, args, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(args.frac), figsize=(5.2 * len(args.frac), 4), sharey=True)
    axes = np.atleast_1d(axes)
    epochs = np.arange(1, args.epochs + 1)
    base = next(c for c in curves if c.rounding == "float")
    for ax, frac in zip(axes, args.frac):
        ax.plot(epochs, base.train_error, color="black", lw=2, label="float32")
        for c in curves:
            if c.frac_bits == frac:
                style = dict(color="tab:red", ls="--") if c.rounding == "nearest" else dict(color="tab:blue")
                ax.plot(epochs, c.train_error, lw=1.5, label=f"{c.rounding} rounding", **style)
        ax.set_title(f"16-bit words, {frac} fractional bits (Q{15 - frac}.{frac})")
        ax.set_xlabel("epoch")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.legend()
    axes[0].set_ylabel("training error")
    fig.suptitle(f"SGD on sklearn digits, MLP 64-{args.hidden}-10, batch {args.batch}, lr {args.lr:g}: "
                 f"the engine's fixed-point arithmetic vs float32", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def step_program(spec, hidden, batch, steps, rounding, data):
    """``steps`` SGD steps of the digits MLP on the engine, weights read back after each; returns the program."""
    x, y, _, _ = data
    mlp = FixedPointMLP(spec, (65, hidden, 10), batch=batch, logit_scale=8.0)
    builder = ProgramBuilder(spec)
    mlp.load(builder, init_weights(mlp.sizes, seed=0))
    for s in range(steps):
        idx = np.arange(s * batch, (s + 1) * batch)
        mlp.step(builder, x[idx] * 0.25, y[idx], lr_mult=int(0.05 * (1 << LR_FRAC)), rounding=rounding,
                 read_back=steps > 1)
    return builder.program()


def step_cycles(spec, hidden, batch, data):
    """One SGD step's commands: modelled cycles against the grid's bound of one tile per cycle."""
    program = step_program(spec, hidden, batch, 1, "stochastic", data)
    timing = predict(program)
    rows = []
    for command, event in zip(program.commands, timing.commands):
        if command.kind == "load_weights":
            continue
        rows.append({"kind": command.kind, "O": command.outer, "R": command.reduce, "B": command.batch,
                     "cycles": event["done"] - event["accept"] + 1, "bound": ideal_cycles(spec, command),
                     "macs": command.slots * spec.size ** 2 if command.kind in ("forward", "backward", "update")
                     else 0})
    start = next(e["accept"] for c, e in zip(program.commands, timing.commands) if c.kind != "load_weights")
    total = timing.done[-1] - start + 1
    return rows, total


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--frac", type=int, nargs="+", default=[14, 10], help="fractional lengths (default 14 10)")
    parser.add_argument("--no-plot", action="store_true")
    parser.add_argument("--png", type=Path, default=RESULTS / "training_digits.png")
    parser.add_argument("--rtl", action="store_true", help="run 3 SGD steps on the Verilog through cocotb")
    parser.add_argument("--sim", default="icarus", choices=("icarus", "verilator"))
    args = parser.parse_args()
    data = digits_data()

    spec = FxpSpec(size=8, frac_bits=14, training=True, stochastic=True, seed=1, max_batch=16, vector_words=512,
                   weight_words=64, name="fxp_train8")
    rows, total = step_cycles(spec, args.hidden, args.batch, data)
    macs = sum(r["macs"] for r in rows)
    print(f"one SGD step of the MLP 64-{args.hidden}-10, batch {args.batch}, on an {spec.size}x{spec.size} engine "
          f"(cycle model = RTL; the host's loss gradient waits for the logits):")
    print(f"{'command':<14}{'O':>4}{'R':>4}{'B':>4}{'cycles':>9}{'bound':>8}{'MACs':>9}")
    for r in rows:
        shape = (f"{r['O']:>4}{r['R']:>4}{r['B']:>4}" if r["macs"] else f"{'-':>4}{'-':>4}{'-':>4}")
        print(f"{r['kind']:<14}{shape}{r['cycles']:>9}{r['bound']:>8}{r['macs']:>9}")
    print(f"step: {total} cycles for {macs} MACs ({macs / (total * spec.size ** 2):.1%} of the grid's "
          f"{spec.size ** 2} MACs/cycle); W^T g reads the forward tiles (no transposed copy)")

    rtl = None
    if args.rtl:
        from hwgen.sim.fxp_runner import run_fxp
        small = FxpSpec(size=8, frac_bits=14, training=True, stochastic=True, seed=2024, max_batch=16,
                        vector_words=512, weight_words=64, name="fxp_train8")
        program = step_program(small, args.hidden, 4, 3, "stochastic", data)
        result = run_fxp(program, simulator=args.sim, tag="bench-train")
        rtl = {"steps": 3, "batch": 4, "exact": result.exact, "cycle_exact": result.cycle_exact,
               "measured_cycles": result.measured.cycles(), "model_cycles": result.model.cycles(),
               "sim_seconds": result.wall_seconds}
        print(f"\nRTL ({args.sim}): 3 SGD steps (batch 4, stochastic rounding, weights read back after each): "
              f"values {'exact' if result.exact else 'WRONG'}, {rtl['measured_cycles']} cycles measured, "
              f"{rtl['model_cycles']} modelled ({'equal' if result.cycle_exact else 'DIFFER'})")

    print(f"\nthe experiment: {args.epochs} epochs, lr {args.lr:g}, batch {args.batch}, fractional lengths "
          f"{args.frac}")
    curves = experiment(args, data)
    print_curves(curves, args.epochs)
    if not args.no_plot:
        plot(curves, args, args.png)
        print(f"\nwrote {args.png}")
    bench = {"benchmark": "fxp_training", "mlp": [64, args.hidden, 10], "batch": args.batch, "lr": args.lr,
             "epochs": args.epochs,
             "curves": [{"label": c.label, "rounding": c.rounding, "frac_bits": c.frac_bits,
                         "final_train_error": c.train_error[-1], "final_test_error": c.test_error[-1],
                         "train_error": [round(e, 4) for e in c.train_error],
                         "changed_per_step": float(np.mean(c.changed))} for c in curves],
             "step": {"spec": spec.to_dict(), "cycles": total, "macs": macs, "commands": rows}, "rtl": rtl}
    print("BENCH " + json.dumps(bench))


if __name__ == "__main__":
    main()
