"""The simulation job (`hwgen.sim.job`): what the runner hands the cocotb testbench survives the JSON round trip, and
the testbench's data for a layer has the plan's shape."""

import pytest

from hwgen.dtypes import int4, uint8
from hwgen.postops import PostOps
from hwgen.problem import ConvProblem
from hwgen.spec import AcceleratorSpec
from hwgen.tiling import plan_layer
from hwgen.sim.job import SimJob, make_layer_data
from hwgen.sim.runner import _job_layer

SPEC = AcceleratorSpec(rows=2, cols=2, act_buffer_bytes=48, weight_buffer_bytes=16, acc_buffer_bytes=96,
                       max_out_channels=2, max_pool_width=8, name="job_spec")
PROBLEM = ConvProblem("conv", "conv2d", C=3, H=6, W=3, M=3, E=6, F=3, R=3, S=3, pad_h=1, pad_w=1)

CHAINS = [PostOps(), PostOps(bias=True), PostOps(bias=True, requant=True, relu=True, pool="max"),
          PostOps(requant=True, pool="avg", out_type=uint8), PostOps(bias=True, requant=True, out_type=int4)]


@pytest.mark.parametrize("postops", CHAINS, ids=str)
def test_a_layer_survives_the_json_round_trip(postops):
    job = SimJob(spec=SPEC.to_dict(), layers=[SimJob.layer(PROBLEM, postops)], seed=3, stall=0.25)
    back = SimJob.loads(job.dumps())
    assert back == job
    (plan,) = back.plans()
    assert plan.spec == SPEC and plan.postops == postops
    assert plan.problem.to_dict() == PROBLEM.to_dict() and plan.tiles == plan_layer(SPEC, PROBLEM, postops).tiles


def test_the_runner_accepts_problems_pairs_and_plans():
    postops = CHAINS[2]
    plan = plan_layer(SPEC, PROBLEM, postops)
    assert _job_layer(PROBLEM) == SimJob.layer(PROBLEM)
    assert _job_layer((PROBLEM, postops)) == SimJob.layer(PROBLEM, postops)
    assert _job_layer(plan) == SimJob.layer(PROBLEM, postops, im2col=plan.im2col)


def test_a_plan_given_to_the_runner_is_the_plan_simulated():
    spec = AcceleratorSpec(rows=4, cols=4, act_buffer_bytes=160, weight_buffer_bytes=32, acc_buffer_bytes=512)
    problem = ConvProblem("few_channels", "conv2d", C=2, H=6, W=5, M=5, E=6, F=5, R=3, S=3, pad_h=1, pad_w=1)
    direct = plan_layer(spec, problem, im2col=False)
    assert plan_layer(spec, problem).im2col        # the default lowers this layer: not the plan given
    job = SimJob(spec=spec.to_dict(), layers=[_job_layer(direct)])
    assert job.plans()[0].tiles == direct.tiles


def test_layer_data_is_the_golden_model_on_the_plan():
    plan = plan_layer(SPEC, PROBLEM, CHAINS[2])
    data = make_layer_data(plan, seed=4)
    assert data.config_words == plan.config_words()
    assert len(data.act_words) * SPEC.act_word_bits // 8 == plan.bytes_moved["activations"]
    assert len(data.weight_words) * SPEC.weight_word_bits // 8 == plan.bytes_moved["weights"]
    assert len(data.param_words) == sum(t.schedule.param_words for t in plan.tiles)
    assert len(data.expected_beats) == plan.out_beats
    # Same seed, same data; the expected outputs are requantized to int8, then ReLU and 2x2 max pooling.
    assert make_layer_data(plan, seed=4) == data
    out = plan.unpack_outputs(data.expected_beats)
    assert out.shape == (3, 3, 1) and out.min() >= 0 and out.max() <= 127
    assert make_layer_data(plan, seed=5) != data


def test_scoreboard_names_the_cycle_of_the_first_wrong_beat():
    from hwgen.sim.scoreboard import Scoreboard
    board = Scoreboard(expected=[1, 2, 3, 4], lane_bits=8, lanes=1, describe=lambda beat, lane: f"O[{beat}]")
    assert not board.check([1, 2, 7, 9], times=[(10, 100.0), (12, 120.0), (15, 150.0), (16, 160.0)])
    assert board.first_wrong.beat == 2 and board.first_wrong.cycle == 15
    report = board.report()
    assert report.splitlines()[0] == ("first wrong beat: 2, at cycle 15 after the first cfg handshake "
                                      "(simulation time 150 ns in the waveform)")
    assert "O[2]" in report and "O[3]" in report
    assert Scoreboard(expected=[1], lane_bits=8, lanes=1).check([1])
