"""The float network compiler (``hwgen compile --precision bf16|fp16``, ``BuildConfig(precision=...)``): the cast
step (weights rounded to bf16/fp16 to nearest even, biases to fp32), the map onto one float weight-stationary
accelerator with the layers chained on chip, the program's float reference (the hardware's order of additions,
padding lanes included) against the float model, the whole program on the Amaranth simulator and (cocotb,
Icarus) on the Verilog bit for bit with cycles equal to the model, and the named errors for what the float
datapath does not run."""

import json
import os

import numpy as np
import pytest

pytest.importorskip("onnx")

from hwgen import AcceleratorSpec, floats   # noqa: E402
from hwgen.cli import main   # noqa: E402
from hwgen.compiler import import_onnx   # noqa: E402
from hwgen.compiler.build import BuildConfig, build, check_inputs   # noqa: E402
from hwgen.compiler.cast import CastNetwork, cast   # noqa: E402
from hwgen.compiler.design import NetworkDesign   # noqa: E402
from hwgen.compiler.graph import FloatLayer, FloatNetwork   # noqa: E402
from hwgen.errors import MappingError   # noqa: E402
from tests.onnx_graphs import lenet_like, onnx, run_ort   # noqa: E402

SIM = os.environ.get("SIM", "icarus")


def tiny_network(seed=0):
    """conv 2->6 3x3 pad 1 + ReLU + maxpool, conv 6->5 3x3 pad 1 + ReLU, flatten, FC 80->10 + ReLU, FC 10->3: on a
    4x4 array the second conv, the FC layers and their inputs have padding lanes (6, 5, 10 and 3 channels)."""
    rng = np.random.default_rng(seed)
    layers = [
        FloatLayer(name="conv1", kind="conv2d", weight=rng.standard_normal((6, 2, 3, 3)) * 0.3,
                   bias=rng.standard_normal(6) * 0.1, in_shape=(2, 8, 8), pad=(1, 1), relu=True, pool="max"),
        FloatLayer(name="conv2", kind="conv2d", weight=rng.standard_normal((5, 6, 3, 3)) * 0.3,
                   bias=rng.standard_normal(5) * 0.1, in_shape=(6, 4, 4), pad=(1, 1), relu=True),
        FloatLayer(name="fc1", kind="linear", weight=rng.standard_normal((10, 80, 1, 1)) * 0.2,
                   bias=rng.standard_normal(10) * 0.1, in_shape=(80, 1, 1), relu=True, flatten_from=(5, 4, 4)),
        FloatLayer(name="fc2", kind="linear", weight=rng.standard_normal((3, 10, 1, 1)) * 0.2,
                   bias=rng.standard_normal(3) * 0.1, in_shape=(10, 1, 1)),
    ]
    return FloatNetwork(name="tiny", layers=tuple(layers), input_layout=(2, 8, 8))


@pytest.fixture(scope="module", params=["bf16", "fp16"])
def tiny_build(request):
    return build(BuildConfig(model=tiny_network(), precision=request.param, array=(4, 4), batch=2,
                             stop_after="schedule"))


# The cast step --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["bf16", "fp16"])
def test_cast_rounds_weights_to_the_format_and_biases_to_fp32(fmt, tmp_path):
    net = tiny_network()
    b = build(BuildConfig(model=net, precision=fmt, array=(4, 4), output=tmp_path, stop_after="cast"))
    assert b.done == ["import", "cast"] and isinstance(b.network, CastNetwork) and b.network.fmt == fmt
    for layer, original in zip(b.network.layers, net.layers):
        np.testing.assert_array_equal(layer.weight, floats.encode(original.weight, fmt))
        np.testing.assert_array_equal(layer.bias, floats.encode(original.bias, "fp32"))
        # Rounding to nearest: within half a unit in the last place of the format.
        ulp = 2.0 ** -(floats.FORMATS[fmt][1] + 1)
        assert np.all(np.abs(floats.decode(layer.weight, fmt) - original.weight)
                      <= ulp * np.abs(original.weight) + 1e-30)
    # Every tensor between layers is in the format (narrowed by a scale of 1.0); the logits stay fp32.
    assert [layer.out_format for layer in b.network.layers] == [fmt, fmt, fmt, "fp32"]
    assert all(str(layer.postops.out_type) == fmt for layer in b.network.layers[:-1])
    assert all(layer.params.multiplier is not None for layer in b.network.layers[:-1])
    assert int(b.network.layers[0].params.multiplier[0]) == 0x3F800000
    assert not b.network.layers[-1].postops.requant
    # The intermediate: printed, saved and loaded back the same.
    assert f"rounded to {fmt}" in str(b.network) and "max rel. weight change" in str(b.network)
    again = CastNetwork.load(tmp_path / "network")
    assert again.fmt == fmt and [layer.name for layer in again.layers] == ["conv1", "conv2", "fc1", "fc2"]
    for one, two in zip(again.layers, b.network.layers):
        np.testing.assert_array_equal(one.weight, two.weight)
        np.testing.assert_array_equal(one.bias, two.bias)
        assert one.postops == two.postops and one.flatten_from == two.flatten_from


def test_ties_round_to_even():
    """1 + 2**-8 is halfway between two bf16 values (1 and 1 + 2**-7): it rounds to the even one, 1.0;
    1 + 3 * 2**-8 to 1 + 2**-6 (even)."""
    net = tiny_network()
    layer = net.layers[-1]
    weight = np.full(layer.weight.shape, 1 + 2.0 ** -8)
    weight[0, 0] = 1 + 3 * 2.0 ** -8
    tweaked = FloatNetwork(name="t", layers=net.layers[:-1] + (FloatLayer(
        name="fc2", kind="linear", weight=weight, bias=layer.bias, in_shape=layer.in_shape),), input_layout=(2, 8, 8))
    w = cast(tweaked, "bf16").layers[-1].weight
    assert int(w[0, 1, 0, 0]) == 0x3F80 and int(w[0, 0, 0, 0]) == 0x3F82


# The map: one float accelerator, every layer on the array, chained on chip ---------------------------------

def test_float_build_maps_every_layer_on_the_array_chained(tiny_build):
    b = tiny_build
    fmt = b.config.precision
    assert b.spec.is_float and b.spec.float_format == fmt and str(b.spec.acc_type) == "fp32"
    assert not b.spec.mv_engine and b.spec.chaining
    assert [pl.engine for pl in b.program.layers] == ["weight_stationary"] * 4
    assert b.program.notes == ["conv1 -> conv2: on chip", "conv2 -> fc1: on chip", "fc1 -> fc2: on chip"]
    assert [(pl.source, pl.dest) for pl in b.program.layers] == [
        ("stream", "feedback"), ("feedback", "feedback"), ("feedback", "feedback"), ("feedback", "out")]


def test_float_reference_is_close_to_the_float_model(tiny_build):
    b = tiny_build
    fmt = b.config.precision
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 2, 8, 8))
    patterns = check_inputs(b.network, x)
    np.testing.assert_array_equal(patterns, floats.encode(x, fmt))
    program = b.program_for(1)
    got = np.array([program.output_values(program.reference(p)[-1]).ravel() for p in patterns])
    want = tiny_network().forward(floats.decode(patterns.astype(np.uint64), fmt))
    np.testing.assert_allclose(got, want, rtol=0.05, atol=0.02)
    assert not np.array_equal(got, want)
    assert list(b.predict(x)) == [int(np.argmax(row)) for row in got]


def test_integer_valued_float_network_is_exact():
    """Small integer weights and inputs, no narrowing loss (every value below 2**8): the float program's
    reference equals the float64 model exactly - the storage order of the flattened input and the chained
    padding lanes included."""
    rng = np.random.default_rng(2)
    net = tiny_network()
    layers = []
    for layer in net.layers:
        weight = rng.integers(-1, 2, layer.weight.shape).astype(float)
        weight[(rng.random(weight.shape) < 0.7)] = 0
        layers.append(FloatLayer(name=layer.name, kind=layer.kind, weight=weight, bias=rng.integers(-2, 3, len(weight)),
                                  in_shape=layer.in_shape, pad=layer.pad, relu=layer.relu, pool=layer.pool,
                                  flatten_from=layer.flatten_from))
    exact = FloatNetwork(name="ints", layers=tuple(layers), input_layout=(2, 8, 8))
    b = build(BuildConfig(model=exact, precision="bf16", array=(4, 4), stop_after="schedule"))
    x = rng.integers(-3, 4, (2, 2, 8, 8)).astype(float)
    program = b.program
    for sample, want in zip(check_inputs(b.network, x), exact.forward(x)):
        outs = program.reference(sample)
        assert np.abs(floats.decode(outs[-1].astype(np.uint64), "fp32")).max() < 256
        np.testing.assert_array_equal(program.output_values(outs[-1]).ravel(), want)


# Named errors before any Verilog ------------------------------------------------------------------------------

def test_what_the_float_datapath_does_not_run_is_a_named_error(tmp_path):
    avg = import_onnx(lenet_like(pool="AveragePool"))
    with pytest.raises(MappingError, match="average pooling is integer-only"):
        build(BuildConfig(model=avg, precision="bf16", array=(4, 4), verilog=False))
    with pytest.raises(MappingError, match="weight_bits=.*integer-only"):
        BuildConfig(model=avg, precision="bf16", weight_bits={"linear": 4})
    with pytest.raises(MappingError, match="sparsity=.*integer-only"):
        BuildConfig(model=avg, precision="fp16", sparsity=0.5)
    with pytest.raises(MappingError, match="'cast' step instead of 'quantize'"):
        BuildConfig(model=avg, precision="bf16", stop_after="quantize")
    with pytest.raises(MappingError, match="precision must be one of"):
        BuildConfig(model=avg, precision="fp8")
    net = tiny_network()
    int_spec = AcceleratorSpec(rows=4, cols=4, act_buffer_bytes=4096, weight_buffer_bytes=4096,
                               acc_buffer_bytes=4096, name="int4x4")
    with pytest.raises(MappingError, match="precision='bf16' but the spec"):
        build(BuildConfig(model=net, precision="bf16", spec=int_spec, verilog=False))
    fp16 = build(BuildConfig(model=net, precision="fp16", array=(4, 4), stop_after="map")).spec
    with pytest.raises(MappingError, match="is a fp16 accelerator"):
        build(BuildConfig(model=net, calibration=np.zeros((1, 2, 8, 8)), spec=fp16, verilog=False))
    with pytest.raises(MappingError, match="cast to fp16"):
        build(BuildConfig(model=cast(net, "fp16"), precision="bf16", verilog=False))
    quantized = build(BuildConfig(model=net, calibration=np.ones((2, 2, 8, 8)), stop_after="quantize")).network
    with pytest.raises(MappingError, match="comes quantized"):
        build(BuildConfig(model=quantized, precision="bf16", verilog=False))
    with pytest.raises(MappingError, match="beyond the range of fp16"):
        big = FloatNetwork(name="big", layers=net.layers[:-1] + (FloatLayer(
            name="fc2", kind="linear", weight=np.full((3, 10, 1, 1), 1e6), bias=np.zeros(3),
            in_shape=(10, 1, 1)),), input_layout=(2, 8, 8))
        cast(big, "fp16")
    with pytest.raises(MappingError, match="give float inputs"):
        check_inputs(cast(net, "bf16"), np.zeros((1, 2, 8, 8), dtype=np.int64))
    with pytest.raises(MappingError, match="is int8 but the spec"):
        NetworkDesign(name="mixed", spec=fp16, network=quantized)


# The whole program on the hardware ----------------------------------------------------------------------------

def _inputs(network, seed, specials=False):
    rng = np.random.default_rng(seed)
    x = check_inputs(network, rng.standard_normal((2,) + tuple(network.input_layout)))
    if specials:     # an infinity and a NaN: the padding lanes of the layers after them turn NaN
        x[1, 0, 2, 3] = 0x7F80 if network.fmt == "bf16" else 0x7C00
        x[1, 1, 5, 5] = 0xFFC0 if network.fmt == "bf16" else 0xFE00
    return list(x)


def test_float_program_on_the_amaranth_simulator():
    """The whole program (batch 2, the second input with an infinity and a NaN) on `AcceleratorTop` in
    Amaranth's simulator: every output beat - padding lanes included - as the reference, cycles = model."""
    from hwgen.sim.pysim import run_streams
    b = build(BuildConfig(model=tiny_network(), precision="bf16", array=(4, 4), batch=2, stop_after="schedule"))
    inputs = _inputs(b.network, 5, specials=True)
    words, expected, goldens = b.program.streams(inputs)
    assert np.isnan(b.program.output_values(goldens[1][-1])).all()      # the NaN reached every logit
    run = run_streams(b.spec, cfg=words["cfg"], weights=words["weights"], acts=words["acts"],
                      params=words["params"], expect_beats=len(expected), acts_gates=b.program.acts_gates())
    assert run.out_beats == expected
    assert run.cycles == b.program.predict().cycles


@pytest.mark.cocotb
@pytest.mark.parametrize("fmt, stall, lanes", [("bf16", 0.0, None), ("fp16", 0.0, None), ("bf16", 0.3, None),
                                               ("bf16", 0.0, 1), ("fp16", 0.3, 2)],
                         ids=["bf16", "fp16", "bf16_random_stall", "bf16_narrow_chain",
                              "fp16_narrow_chain_random_stall"])
def test_float_program_on_the_verilog(fmt, stall, lanes):
    """The compiled program on the Verilog: the compiler's full-width chain (``postop_lanes=None``), and a
    narrow one (``BuildConfig(postop_lanes=...)``: a beat in 4 or 2 groups, through the chain's FIFO)."""
    from hwgen.sim.runner import run_program
    b = build(BuildConfig(model=tiny_network(), precision=fmt, array=(4, 4), batch=2, stop_after="schedule",
                          postop_lanes=lanes))
    assert b.spec.postop_lanes == (lanes or 4)
    inputs = _inputs(b.network, 7, specials=fmt == "fp16" or lanes == 1)
    result = run_program(b.program, inputs, simulator=SIM, stall=stall, seed=3,
                         tag=f"float_net_{fmt}" + (f"_lanes{lanes}" if lanes else ""))
    assert result.exact, result.report
    for got, x in zip(result.outputs, inputs):
        np.testing.assert_array_equal(got, b.program.reference(x)[-1])
    if stall:
        assert result.measured_cycles >= result.model_cycles
    else:
        assert result.measured_cycles == result.model_cycles
        assert result.layer_ends == result.layer_model_ends


# The command line ----------------------------------------------------------------------------------------------

@pytest.mark.cocotb
def test_compile_and_run_a_float_onnx_model(tmp_path, capsys):
    """`hwgen compile MODEL.onnx --precision bf16` (no calibration) then `hwgen run` on the Verilog: exact,
    cycles = model, the same top-1 as onnxruntime on the float model."""
    proto = lenet_like()
    onnx.save(proto, str(tmp_path / "tiny.onnx"))
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, (2, 1, 12, 12)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "design"
    assert main(["compile", str(tmp_path / "tiny.onnx"), "--array", "4x4", "--precision", "bf16", "--stop-after",
                 "cast", "-o", str(out)]) == 0
    assert "CastNetwork 'tiny': input 1x12x12 rounded to bf16" in capsys.readouterr().out
    assert main(["compile", str(tmp_path / "tiny.onnx"), "--array", "4x4", "--precision", "bf16", "-o",
                 str(out)]) == 0
    capsys.readouterr()
    for name in ("graph/network.json", "network/network.json", "map.json", "tiles.json", "program.json",
                 "design.py", "tiny.v", "report.txt"):
        assert (out / name).is_file(), name
    assert json.loads((out / "network" / "network.json").read_text())["format"] == "hwgen.CastNetwork"
    assert main(["run", str(out), "--inputs", str(tmp_path / "x.npy"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["exact"] and summary["cycles_measured"] == summary["cycles_model"]
    assert summary["predictions"] == summary["reference_predictions"]
    assert summary["predictions"] == list(np.argmax(run_ort(proto, x)[0], axis=1))


def test_compile_rejects_int8_options_with_a_float_precision(tmp_path, capsys):
    onnx.save(lenet_like(), str(tmp_path / "tiny.onnx"))
    np.save(tmp_path / "calib.npy", np.zeros((2, 1, 12, 12), dtype=np.float32))
    for extra, words in ((["--calibrate", str(tmp_path / "calib.npy")], "--calibrate sets up int8"),
                         (["--weight-bits", "linear=4"], "--weight-bits sets up int8"),
                         (["--stop-after", "quantize"], "'cast' step instead of 'quantize'")):
        assert main(["compile", str(tmp_path / "tiny.onnx"), "--precision", "fp16", "-o", str(tmp_path / "o")]
                    + extra) == 2
        assert words in capsys.readouterr().err
