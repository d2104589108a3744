"""The memory wall per layer (`hwgen.roofline`): DRAM bytes from what the commands stream, on-chip boundaries
moving nothing, and the bound at a bandwidth - convolutions compute bound, batch-1 fully connected layers memory
bound, as the field measures."""

import json

import pytest

from hwgen.cli import main
from hwgen.compiler.program import compile_program
from hwgen.roofline import layer_traffic, roofline
from tests.test_network_program import SPEC, small_cnn


def test_on_chip_boundaries_move_no_activations():
    chained = compile_program(SPEC, small_cnn())
    host = compile_program(SPEC, small_cnn(), chain=False)
    rows_chained, rows_host = roofline(chained, 8), roofline(host, 8)
    assert [r["act_bytes"] for r in rows_chained][1:] == [0, 0, 0]
    assert all(r["act_bytes"] > 0 for r in rows_host)
    assert [r["out_bytes"] for r in rows_chained][:-1] == [0, 0, 0]
    # The same weights either way; the first input and the last output always.
    assert [r["weight_bytes"] for r in rows_chained] == [r["weight_bytes"] for r in rows_host]
    plan = chained.layers[0].plan
    assert rows_chained[0]["weight_bytes"] == sum(s.weight_words for s in plan.commands) * SPEC.cols
    assert rows_chained[0]["act_bytes"] == plan.commands[0].act_words * SPEC.rows


def test_convolutions_are_compute_bound_and_batch1_fc_memory_bound():
    rows = roofline(compile_program(SPEC, small_cnn()), 4)
    # (the small CNN's last layer, 7 -> 3, is all pipeline latency: no ceiling describes it)
    assert [r["bound"] for r in rows[:3]] == ["compute", "compute", "memory"]
    assert min(r["intensity"] for r in rows[:2]) > max(r["intensity"] for r in rows[2:])
    fc = rows[2]
    assert fc["memory_cycles"] == -(-fc["dram_bytes"] // 4)
    assert fc["intensity"] == pytest.approx(fc["macs"] / fc["dram_bytes"])
    assert fc["attainable_macs_per_cycle"] == pytest.approx(fc["intensity"] * 4)


def test_bad_bandwidth_is_rejected():
    with pytest.raises(ValueError, match="positive number of bytes per cycle"):
        roofline(compile_program(SPEC, small_cnn()), 0)


def test_plan_prints_the_roofline(capsys):
    assert main(["plan", "lenet_ws4", "--dram-bw", "4"]) == 0
    out = capsys.readouterr().out
    assert "roofline at 4 DRAM bytes/cycle" in out and "memory" in out and "compute" in out
    assert main(["plan", "lenet_ws4", "--dram-bw", "4", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [row["bound"] for row in doc["roofline"]][:2] == ["compute", "compute"]
    assert main(["plan", "lenet_ws4", "--dram-bw", "-1"]) == 2
