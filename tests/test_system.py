"""The accelerator as a system (`hwgen.hw.system`): a whole network from DRAM, one start register write.

Host side (fast): the descriptor encoding, and that the gathers a layer reads its input with from an earlier
layer's output region (`hwgen.system.image.gather_runs`) rebuild exactly the activation words the compiler's
host packing makes. RTL (cocotb on Icarus, cocotbext-axi `AxiRam` as DRAM and `AxiLiteMaster` as host): every
output region of DRAM equal to the NumPy reference network's bytes, the registers and counters, random
back-pressure on every AXI channel and a slower DRAM, an injected read error reported through the registers
and a clean run after it, the watchdog, and a malformed program.

The exact cycle model (`hwgen.system.exact`) against the RTL on the testbench's `ExactDram` (fixed latency,
fixed bandwidth, no back-pressure): measured ``CYCLES`` equal to the model for every network, mode and DRAM
timing here, LeNet-5 included (``-m slow``).
"""

import dataclasses
import shutil

import numpy as np
import pytest

from hwgen.compiler.program import compile_program
from hwgen.system.image import (CHANNELS, DESC_BYTES, MAGIC, Descriptor, build_image, gather_runs, interpret,
                                stream_word_bits)
from hwgen.system.layout import bytes_to_words
from tests.test_network_program import random_accelerator, random_network

needs_icarus = pytest.mark.skipif(shutil.which("iverilog") is None, reason="Icarus Verilog is not installed")


def compiled(seed, batch=1, chain=True, narrow=False):
    """A random network on a random accelerator with a post-op lane per column (the exact model's class; as
    `hwgen compile` builds a network's accelerator), or ``narrow``: the spec's own post-op lanes."""
    layers, spec = random_network(seed), random_accelerator(seed)
    if not narrow:
        spec = dataclasses.replace(spec, postop_lanes=spec.cols, postop_fifo_depth=None)
    program = compile_program(spec, layers, batch=batch, chain=chain)
    rng = np.random.default_rng(seed)
    return spec, program, [rng.integers(-128, 128, layers[0].in_shape) for _ in range(batch)]


# (latency, cycles per beat) of the exact DRAM: 8, 4 and 2 bytes per cycle on the 64-bit bus
EXACT_TIMINGS = ((1, 1), (10, 1), (1, 2), (10, 2), (3, 4))


def test_descriptor_encoding():
    raw = Descriptor("out", addr=0x1234, bytes=96, narrow=True, wait=3, macs=77).encode()
    assert len(raw) == DESC_BYTES
    w = [int.from_bytes(raw[i:i + 4], "little") for i in range(0, 16, 4)]
    assert w[0] & 15 == CHANNELS["out"] and w[0] >> 4 & 1 == 1 and w[0] >> 8 & 255 == MAGIC and w[0] >> 16 == 3
    assert w[1:] == [0x1234, 96, 77]
    assert Descriptor("end").encode()[0] & 15 == 15


@pytest.mark.parametrize("seed", [2, 10, 12, 13, 14, 15])
def test_gathers_rebuild_the_host_packing(seed):
    """The command processor's golden model (`interpret`) feeds every stream the words `Program.streams` would
    send; in particular, reading the consumer's runs of narrowed output beats gives the host's packing."""
    spec, program, inputs = compiled(seed)
    image = build_image(program, inputs)
    words, _, goldens = program.streams(inputs)
    memory = bytearray(image.size)
    for addr, raw in image.segments:
        memory[addr:addr + len(raw)] = raw
    for addr, expected, _ in image.outputs:          # what a correct run leaves in DRAM
        memory[addr:addr + len(expected)] = expected
    fed, writes = interpret(image, spec, memory)
    for name in ("cfg", "weights", "mv_weights", "params"):
        assert fed.get(name, []) == words[name], name
    assert [(a, n) for a, n, _ in writes] == [(a, len(e)) for a, e, _ in image.outputs]
    acts = fed["acts"]
    # Lanes beyond a layer's channels hold whatever the producer's padding lanes held (its output zero point);
    # their weights are zero. Compare the real lanes: those a tensor of ones packs as 1.
    real = []
    for image_plans in program._image_plans():
        previous_shape = program.layers[0].layer.in_shape
        for pl, plan in zip(program.layers, image_plans):
            if pl.source in ("stream", "host"):
                ones = np.ones(previous_shape if pl.source == "host" else pl.layer.in_shape, dtype=np.int64)
                real += plan.act_stream(pl.hardware_input(ones))
            previous_shape = pl.layer.out_shape
    lane = spec.act_type.bits
    lane_mask = (1 << lane) - 1
    masks = [sum(lane_mask << (lane * j) for j in range(spec.rows) if (word >> (lane * j)) & lane_mask)
             for word in real]
    assert len(acts) == len(words["acts"]) == len(masks)
    assert [a & k for a, k in zip(acts, masks)] == [w & k for w, k in zip(words["acts"], masks)]
    assert any(pl.source == "host" for pl in program.layers)


def test_fence_makes_every_layer_wait():
    spec, program, inputs = compiled(15)
    free, fenced = build_image(program, inputs), build_image(program, inputs, fence=True)
    assert [d.wait for d in free.descriptors if d.channel in ("cfg", "weights")] == [0, 0, 0, 0, 0, 0]
    assert [d.wait for d in fenced.descriptors if d.channel == "cfg"] == [0, 1, 2]


def test_gather_refuses_what_is_not_one_beat_per_word():
    from hwgen.errors import MappingError
    spec, program, _ = compiled(15)
    producer, consumer = program.layers[0], program.layers[1]
    object.__setattr__(producer.layer, "host_pool", (3, 2))
    try:
        with pytest.raises(MappingError, match="pools"):
            gather_runs(producer, consumer)
    finally:
        object.__setattr__(producer.layer, "host_pool", None)


@pytest.mark.cocotb
@needs_icarus
def test_system_runs_a_network_from_dram(tmp_path):
    """Two layers whose inputs come from DRAM (gathered from the previous output), one start, bit-exact."""
    from hwgen.sim.system_runner import run_system
    spec, program, inputs = compiled(15)
    image = build_image(program, inputs)
    result = run_system(image, spec, build_root=tmp_path)
    (run,) = result.runs
    assert result.exact, run
    assert run["done"] and not run["busy"] and not run["error"] and run["irq_after_clear"] == 0
    regs = run["registers"]
    assert regs["DESCRIPTORS"] == image.count - 1
    assert run["macs"] == image.macs
    beat = 8
    assert regs["BYTES_READ"] >= image.bytes_read() and regs["BYTES_READ"] % beat == 0
    assert image.bytes_written() <= regs["BYTES_WRITTEN"] < image.bytes_written() + 2 * beat * len(image.outputs)
    assert 0 < regs["CYCLES"] <= run["irq_cycles"]


@pytest.mark.cocotb
@needs_icarus
def test_system_back_pressure_errors_and_recovery(tmp_path):
    """A batch of two on a DRAM of half the bus bandwidth with every AXI channel stalling 30% of cycles: a read
    error is reported (cause, address) and the next run is exact; the watchdog and a malformed program end
    in an error status, never a hang."""
    from hwgen.sim.system_runner import run_system
    spec, program, inputs = compiled(13, batch=2)
    image = build_image(program, inputs)
    weights = next(d for d in image.descriptors if d.channel == "weights")
    bad = build_image(program, inputs, magic=0x00)
    bad_addr = -(-image.size // 64) * 64
    image.segments.append((bad_addr, b"".join(d.encode(magic=0) for d in bad.descriptors)))
    image.size = bad_addr + DESC_BYTES * bad.count
    result = run_system(image, spec, build_root=tmp_path, pause=0.3, interval=2, seed=5,
                        scenarios=[{"fault": (weights.addr, weights.addr + 8)}, {}, {"watchdog": 3},
                                   {"program": (bad_addr, bad.count)}, {}])
    fault, clean, watchdog, malformed, again = result.runs
    assert fault["error"] and fault["cause"] == "read bus error" and not fault["hung"]
    assert fault["registers"]["ERROR_ADDR"] == weights.addr - weights.addr % 8
    assert fault["registers"]["ERROR"] >> 4 == 2          # SLVERR
    for run in (clean, again):
        assert not run["hung"] and not run["error"] and not run["mismatches"], run
        assert run["macs"] == image.macs
    assert watchdog["error"] and watchdog["cause"] == "watchdog" and not watchdog["hung"]
    assert malformed["error"] and malformed["cause"] == "malformed descriptor"
    assert malformed["registers"]["ERROR_ADDR"] == 0 and malformed["registers"]["DESCRIPTORS"] == 0


def test_model_bounds_and_roofline_side():
    """The estimate never falls below the hard lower bound; a slower DRAM turns the run memory bound."""
    from hwgen.system.dram_model import predict_system
    spec, program, inputs = compiled(14)
    image = build_image(program, inputs)
    estimates = [predict_system(program, image, interval=i) for i in (1, 2, 4, 8)]
    assert all(e.lower <= e.cycles for e in estimates)
    assert [e.cycles for e in estimates] == sorted(e.cycles for e in estimates)
    assert estimates[0].bound == "compute" and estimates[-1].bound == "memory"
    assert estimates[-1].read_beats * 8 >= image.bytes_read()


@pytest.mark.cocotb
@needs_icarus
def test_model_against_the_rtl_across_bandwidths(tmp_path):
    """8, 4, 2 and 1 bytes per cycle: measured >= the lower bound, and within the model's tolerance."""
    from hwgen.sim.system_runner import run_system
    from hwgen.system.dram_model import TOLERANCE, predict_system
    spec, program, inputs = compiled(14)
    image = build_image(program, inputs)
    intervals = (1, 2, 4, 8)
    result = run_system(image, spec, build_root=tmp_path, scenarios=[{"interval": i} for i in intervals])
    assert result.exact
    for interval, run in zip(intervals, result.runs):
        model = predict_system(program, image, interval=interval)
        measured = run["registers"]["CYCLES"]
        assert measured >= model.lower, (interval, measured, model)
        assert abs(model.cycles - measured) <= TOLERANCE * measured, (interval, measured, model)


def test_generate_system_option(tmp_path, capsys):
    """`hwgen generate --system`: the system top beside the plain one, with its register map in the manifest."""
    import json
    from hwgen.cli import main
    from hwgen.hw.system import REGISTERS
    assert main(["generate", "fc_mv", "-o", str(tmp_path), "--system"]) == 0
    (verilog,) = tmp_path.glob("*_system.v")
    text = verilog.read_text()
    for port in ("m_axi_arvalid", "m_axi_wstrb", "m_axi_bresp", "s_axil_awaddr", "s_axil_rdata", "irq"):
        assert port in text
    manifest = json.loads(verilog.with_suffix(".json").read_text())
    assert manifest["system"]["registers"]["CTRL"] == f"{REGISTERS['CTRL']:#04x}"
    assert "as a system" in capsys.readouterr().out
    assert main(["generate", "fc_mv", "-o", str(tmp_path)]) == 0      # the plain streams stay available
    assert len(list(tmp_path.glob("*.v"))) == 2


def test_golden_command_processor_rejects_a_malformed_program():
    spec, program, inputs = compiled(15)
    image = build_image(program, inputs, magic=0x00)
    memory = bytearray(image.size)
    for addr, raw in image.segments:
        memory[addr:addr + len(raw)] = raw
    with pytest.raises(ValueError, match="descriptor 0 is malformed"):
        interpret(image, spec, memory)


def test_exact_model_with_words_always_there_is_the_stream_model():
    """The accelerator's half of the exact model (`hwgen.perf.predict_commands` with ``arrivals``): every word
    offered from cycle 0 gives the stream-fed model's cycles on a program with no boundary through DRAM."""
    from hwgen.perf import predict_commands
    from hwgen.system.exact import _words_per_channel
    for seed in (1, 4, 9):
        spec, program, inputs = compiled(seed)
        assert all(pl.source != "host" for pl in program.layers)
        totals = _words_per_channel(build_image(program, inputs), spec)
        arrivals = {name: [0] * n for name, n in totals.items()}
        arrivals.update({f"{name}_ready": [0] * totals[name] for name in ("weights", "mv_weights") if name in totals})
        record = {}
        assert predict_commands(program.commands(), arrivals=arrivals, record=record).cycles == \
            program.predict().cycles
        assert not record["inexact"]
        assert len(record["out"]) == sum(pl.plan.out_beats for pl in program.layers if pl.dest == "out")
    # A narrow post-op chain (fewer lanes than columns, behind a FIFO) is outside the exact class: said so.
    spec, program, inputs = compiled(1, narrow=True)
    assert spec.postop_lanes < spec.cols
    totals = _words_per_channel(build_image(program, inputs), spec)
    record = {}
    predict_commands(program.commands(), arrivals={name: [0] * n for name, n in totals.items()}, record=record)
    assert any("narrow post-op chain" in reason for reason in record["inexact"])


def test_exact_model_bounds_and_monotone():
    """Never below the hard lower bound; more latency or fewer bytes per cycle never make a run faster."""
    from hwgen.system.dram_model import predict_system
    from hwgen.system.exact import predict_exact
    spec, program, inputs = compiled(13)
    image = build_image(program, inputs)
    cycles = {}
    for latency, interval in EXACT_TIMINGS:
        result = predict_exact(program, image, latency=latency, interval=interval)
        assert result.exact, result.reasons
        assert result.cycles >= predict_system(program, image, interval=interval).lower
        cycles[latency, interval] = result.cycles
    assert cycles[1, 1] < cycles[10, 1] < cycles[10, 2] and cycles[1, 1] < cycles[1, 2] < cycles[3, 4]


@pytest.mark.cocotb
@needs_icarus
@pytest.mark.parametrize("seed, mode", [(14, "prefetch"), (15, "prefetch"), (13, "prefetch"), (13, "fence"),
                                        (13, "baseline"), (13, "batch2"), (14, "bus256")])
def test_exact_model_equals_the_rtl(tmp_path, seed, mode):
    """Measured CYCLES = the exact model on a fixed-latency, fixed-bandwidth DRAM: layers fed from DRAM
    (gathered from an earlier output) and on chip, both engines, prefetch and fenced, without chaining, a batch
    of two, a 256-bit bus; five DRAM timings each; bit-exact values."""
    from hwgen.sim.system_runner import run_system
    from hwgen.system.exact import predict_exact
    spec, program, inputs = compiled(seed, batch=2 if mode == "batch2" else 1, chain=mode != "baseline")
    image = build_image(program, inputs, fence=mode in ("fence", "baseline"))
    width = 256 if mode == "bus256" else 64
    result = run_system(image, spec, build_root=tmp_path, data_width=width,
                        scenarios=[{"latency": latency, "interval": interval} for latency, interval in EXACT_TIMINGS])
    assert result.exact
    for (latency, interval), run in zip(EXACT_TIMINGS, result.runs):
        model = predict_exact(program, image, beat_bytes=width // 8, latency=latency, interval=interval)
        assert model.exact, model.reasons
        assert run["registers"]["CYCLES"] == model.cycles, (latency, interval, run["registers"]["CYCLES"], model)


@pytest.mark.slow
@pytest.mark.cocotb
@needs_icarus
def test_lenet_from_one_start_cycles_equal_the_model(tmp_path):
    """LeNet-5 (8x8 array + MV engine) from one start register write at 8 bytes/cycle, DRAM latency 1 and 10:
    bit-exact, measured CYCLES = the exact model (16,708 and 16,735; about 4 minutes on Icarus)."""
    from benchmarks.networks import LENET_SPEC, lenet
    from hwgen.sim.system_runner import run_system
    from hwgen.system.exact import predict_exact
    layers = lenet()
    program = compile_program(LENET_SPEC, layers)
    image = build_image(program, [np.random.default_rng(0).integers(-128, 128, layers[0].in_shape)])
    timings = ((1, 1), (10, 1))
    result = run_system(image, LENET_SPEC, build_root=tmp_path, timeout_cycles=400_000,
                        scenarios=[{"latency": latency, "interval": interval} for latency, interval in timings])
    assert result.exact
    for (latency, interval), run in zip(timings, result.runs):
        model = predict_exact(program, image, latency=latency, interval=interval)
        assert model.exact, model.reasons
        assert run["registers"]["CYCLES"] == model.cycles, (latency, run["registers"]["CYCLES"], model.cycles)


def packed_compiled(seed, bits=(2, 4)):
    """`compiled(seed)` with the fully connected layers' weights narrowed to int2 / int4 (``bits``, in order),
    packed on the matrix-vector engine: the weight stream carries a word every 4 (2) slots."""
    spec, program, inputs = compiled(seed)
    spec = dataclasses.replace(spec, mv_engine=True, packed_weight_bits=(4, 2), name=f"{spec.name}_packed")
    layers, fcs = [], 0
    for layer in random_network(seed):
        if layer.problem.kind == "linear":
            b = bits[min(fcs, len(bits) - 1)]
            fcs += 1
            layer = dataclasses.replace(layer, weight=np.clip(layer.weight // (1 << (8 - b)), -(1 << (b - 1)),
                                                              (1 << (b - 1)) - 1), weight_bits=b)
        layers.append(layer)
    return spec, compile_program(spec, layers, chain=True), inputs


PACKED_SEEDS = (13, 3)     # conv, conv (through the host), int2 FC, int4 FC; int2 FC, int4 FC


@pytest.mark.parametrize("seed", PACKED_SEEDS)
def test_exact_model_of_packed_fc_weights(seed):
    """The exact model follows the packed pops (a word every 4 / 2 slots, `hwgen.perf`): in its exact class at
    every DRAM timing, and with a quarter (half) of the FC weight bytes faster than the int8 program on every
    DRAM (seed 3 at 2 bytes/cycle: 742 cycles against 1,157)."""
    from hwgen.system.exact import predict_exact
    spec, program, inputs = packed_compiled(seed)
    assert {pl.plan.tiles[0].schedule.packed_bits for pl in program.layers if pl.layer.weight_bits != 8} == {2, 4}
    image = build_image(program, inputs)
    int8_spec = dataclasses.replace(spec, packed_weight_bits=())
    int8_program = compile_program(int8_spec, random_network(seed), chain=True)
    int8_image = build_image(int8_program, inputs)
    for latency, interval in EXACT_TIMINGS:
        result = predict_exact(program, image, latency=latency, interval=interval)
        assert result.exact, result.reasons
        assert result.cycles < predict_exact(int8_program, int8_image, latency=latency, interval=interval).cycles


@pytest.mark.cocotb
@needs_icarus
@pytest.mark.parametrize("seed", PACKED_SEEDS)
def test_exact_model_of_packed_fc_weights_equals_the_rtl(tmp_path, seed):
    """int2 (and int4) FC weights from DRAM: measured CYCLES = the exact model at five DRAM timings, bit-exact."""
    from hwgen.sim.system_runner import run_system
    from hwgen.system.exact import predict_exact
    spec, program, inputs = packed_compiled(seed)
    image = build_image(program, inputs)
    result = run_system(image, spec, build_root=tmp_path,
                        scenarios=[{"latency": latency, "interval": interval} for latency, interval in EXACT_TIMINGS])
    assert result.exact
    for (latency, interval), run in zip(EXACT_TIMINGS, result.runs):
        model = predict_exact(program, image, latency=latency, interval=interval)
        assert model.exact, model.reasons
        assert run["registers"]["CYCLES"] == model.cycles, (latency, interval, run["registers"]["CYCLES"], model)
