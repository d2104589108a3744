"""The energy model (`hwgen.energy`): its access counts equal what the hardware does, counted on the top in
Amaranth's simulator (every enable of the activation buffer, weight FIFO, accumulator, parameter memory and
feedback FIFO), and its energies follow the table; DRAM dominates batch-1 fully connected layers."""

import numpy as np
import pytest

from hwgen.compiler.program import compile_program
from hwgen.energy import DEFAULT_TABLE, EnergyTable, access_counts, layer_energy, network_energy
from hwgen.hw.top import AcceleratorTop
from hwgen.postops import PostOps
from hwgen.tiling import plan_layer
from tests.test_network_program import SPEC, small_cnn
from tests.top_bench import conv, make_spec, random_operands, run_top


@pytest.fixture
def probed_top(monkeypatch):
    """AcceleratorTop keeps its submodules (act_buffer, weight_fifo, accumulator, postops, feedback) on itself."""
    original = AcceleratorTop.elaborate

    def elaborate(self, platform):
        m = original(self, platform)
        self.parts = {name: (entry[0] if isinstance(entry, tuple) else entry)
                      for name, entry in m._named_submodules.items()}
        return m
    monkeypatch.setattr(AcceleratorTop, "elaborate", elaborate)


def probes_of(dut):
    def probes():
        p = dut.parts
        watched = {"act_reads": p["act_buffer"].read_en, "act_writes": p["act_buffer"].write_en,
                   "weight_in": p["weight_fifo"].w_stream.valid & p["weight_fifo"].w_stream.ready,
                   "weight_out": p["weight_fifo"].r_en}
        if "accumulator" in p:
            acc = p["accumulator"]
            watched["acc_reads"] = acc.en & acc.read_valid
            watched["acc_writes"] = acc.en & acc.sum_valid & ~acc.sum_last
        if "postops" in p:
            post = p["postops"]
            watched["param_writes"] = post.params_en
            # a read per lane group entering the chain (the whole pipe advances: o empty or taken)
            watched["param_reads"] = post.i.valid & (~post.o.valid | post.o.ready)
        if "feedback" in p:
            watched["feedback_in"] = p["feedback"].w_stream.valid & p["feedback"].w_stream.ready
            watched["feedback_out"] = p["feedback"].r_en & p["feedback"].r_rdy
        return watched
    return probes


LAYERS = [
    (conv("pad_stride", C=5, M=6, H=7, W=6, R=3, stride=2, pad=1), PostOps(bias=True, requant=True, relu=True)),
    (conv("pooled_tiled", C=3, M=5, H=8, W=6, R=3, pad=1), PostOps(bias=True, requant=True, pool="max")),
]


@pytest.mark.parametrize("index", range(len(LAYERS)))
def test_layer_counts_equal_the_hardware(probed_top, index):
    problem, postops = LAYERS[index]
    spec = make_spec(4, 4, bank=64, acc=32, max_out_channels=4)
    plan = plan_layer(spec, problem, postops)
    ops = random_operands(spec, problem, index)
    dut = AcceleratorTop(spec)
    run = run_top(spec, cfg=plan.config_words(), weights=plan.weight_stream(ops.weight),
                  acts=plan.act_stream(ops.act), params=plan.params_stream(ops.params),
                  expect_beats=plan.out_beats, dut=dut, probes=probes_of(dut))
    c, got = access_counts(plan), run.probe_counts
    assert got["act_reads"] == c["act_reads"] and got["act_writes"] == c["act_writes"]
    assert got["weight_in"] == got["weight_out"] == c["weight_words"]
    assert got["acc_reads"] == c["acc_reads"] and got["acc_writes"] == c["acc_writes"]
    assert got["param_writes"] == c["param_writes"] and got["param_reads"] == c["param_reads"]


def test_network_counts_equal_the_hardware(probed_top):
    program = compile_program(SPEC, small_cnn())
    x = np.random.default_rng(0).integers(-128, 128, (2, 8, 8))
    words, expected, _ = program.streams([x])
    dut = AcceleratorTop(SPEC)
    from hwgen.sim.pysim import run_streams
    run = run_streams(SPEC, cfg=words["cfg"], weights=words["weights"], mv_weights=words["mv_weights"],
                      acts=words["acts"], params=words["params"], expect_beats=len(expected), dut=dut,
                      probes=probes_of(dut))
    total = {key: sum(access_counts(pl.plan, source=pl.source, dest=pl.dest)[key] for pl in program.layers)
             for key in ("act_reads", "act_writes", "acc_reads", "acc_writes", "param_writes", "param_reads",
                         "feedback_beats")}
    got = run.probe_counts
    assert got["act_reads"] == total["act_reads"] and got["act_writes"] == total["act_writes"]
    assert got["acc_reads"] == total["acc_reads"] and got["acc_writes"] == total["acc_writes"]
    assert got["param_writes"] == total["param_writes"] and got["param_reads"] == total["param_reads"]
    assert got["feedback_in"] == got["feedback_out"] == total["feedback_beats"]


def test_energies_follow_the_table():
    table = EnergyTable.load(DEFAULT_TABLE)
    assert table.mult(8) == 0.2 and table.add(32) == 0.1 and table.dram_64b == 2000.0
    assert table.sram(8192, 64) == pytest.approx(10.0) and table.sram(32768, 64) == pytest.approx(20.0)
    assert 10.0 < table.sram(16384, 64) < 20.0 and table.sram(1 << 30, 64) == pytest.approx(100.0)
    assert table.sram(8192, 32) == pytest.approx(5.0)
    plan = plan_layer(make_spec(4, 4, bank=64, acc=32), *LAYERS[0])
    e = layer_energy(plan, table)
    c = e["counts"]
    assert e["compute"]["macs"] == pytest.approx(c["macs_performed"] * (0.2 + 0.1))
    assert e["dram_pj"] == pytest.approx(e["dram_bytes"] / 8 * 2000.0)
    assert e["total_pj"] == pytest.approx(e["dram_pj"] + e["sram_pj"] + e["compute_pj"])


def test_dram_dominates_batch1_fully_connected_layers():
    energy = network_energy(compile_program(SPEC, small_cnn()))
    fc = energy["layers"][2]
    assert fc["dram_pj"] > 10 * (fc["sram_pj"] + fc["compute_pj"])
    conv2 = energy["layers"][1]
    assert conv2["pj_per_mac"] < fc["pj_per_mac"]
    assert energy["inferences_per_joule"] == pytest.approx(1e12 / energy["total_pj"])


def test_a_float_layer_costs_the_tables_float_operations():
    """fp16 x fp16 with fp32 accumulation: a MAC is the table's fp16 multiply plus fp32 add, the post-op lanes
    fp32 adds and multiplies; the counts are the integer layer's."""
    from hwgen.spec import AcceleratorSpec
    table = EnergyTable.load()
    layer = conv("c", C=6, M=8, H=6, W=6, R=3)
    args = dict(rows=4, cols=4, act_buffer_bytes=4096, weight_buffer_bytes=4096, acc_buffer_bytes=2048)
    int8 = plan_layer(AcceleratorSpec(**args, name="i"), layer, PostOps(bias=True, requant=True))
    fp16 = plan_layer(AcceleratorSpec(**args, act_type="fp16", weight_type="fp16", acc_type="fp32", name="f"),
                      layer, PostOps(bias=True, requant=True, out_type="fp16"))
    e8, e16 = layer_energy(int8, table), layer_energy(fp16, table)
    assert e16["counts"]["macs_performed"] == e8["counts"]["macs_performed"]
    assert e16["compute"]["macs"] == pytest.approx(e8["counts"]["macs_performed"] * (1.1 + 0.9))
    assert e8["compute"]["macs"] == pytest.approx(e8["counts"]["macs_performed"] * (0.2 + 0.1))
    assert e16["compute"]["postops"] == pytest.approx(e8["counts"]["postop_beats"] * 4 * (0.9 + 3.7))
