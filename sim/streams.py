"""Amaranth `lib.stream` ports driven by cocotbext-axi's AXI-Stream models.

An Amaranth stream is AXI-Stream without the side channels: ``payload``/``valid``/``ready`` are
``tdata``/``tvalid``/``tready``. `StreamBus` maps the names, so the maintained AXI-Stream source, sink and
monitor (with their pause generators for random stalls) drive the accelerator directly.
"""

import logging
import random

from cocotbext.axi import AxiStreamBus, AxiStreamMonitor, AxiStreamSink, AxiStreamSource
from cocotb_bus.bus import Bus

__all__ = ["StreamBus", "source", "sink", "monitor", "random_pauses"]


class StreamBus(AxiStreamBus):
    """The ``<name>__payload``/``__valid``/``__ready`` ports Amaranth emits for a stream member."""

    def __init__(self, entity, name):
        Bus.__init__(self, entity, name, {"tdata": "payload", "tvalid": "valid", "tready": "ready"},
                     bus_separator="__")


def _quiet(model):
    # The models log every frame at INFO; a layer is thousands of beats.
    model.log.setLevel(logging.WARNING)
    return model


def source(dut, name):
    """One list element per beat (``byte_lanes=1`` makes a 'byte' the whole payload)."""
    return _quiet(AxiStreamSource(StreamBus(dut, name), dut.clk, dut.rst, byte_lanes=1))


def sink(dut, name):
    return _quiet(AxiStreamSink(StreamBus(dut, name), dut.clk, dut.rst, byte_lanes=1))


def monitor(dut, name):
    return _quiet(AxiStreamMonitor(StreamBus(dut, name), dut.clk, dut.rst, byte_lanes=1))


def random_pauses(seed, probability):
    """An endless pause pattern: each cycle paused with `probability` (deterministic for a seed)."""
    rng = random.Random(seed)
    while True:
        yield rng.random() < probability
