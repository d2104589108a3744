"""The accelerator: stream ports, buffers, sequencer, systolic array, accumulator, output FIFO.

Per layer: one ``cfg`` beat; then the ``weights`` and ``acts`` streams fill their buffers (concurrently, one
beat each per cycle); then the compute phase streams results on ``out`` (``m_folds * pixels`` beats of ``cols``
accumulators). The compute pipeline has one enable: it advances only while the output FIFO has room, so a
stalled sink freezes the pipeline instead of losing results.
"""

from amaranth.hdl import EnableInserter, Module, Mux, Signal, unsigned
from amaranth.lib import fifo, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ..spec import AcceleratorSpec
from .accumulator import Accumulator
from .addrgen import FoldSequencer
from .config import config_layout
from .systolic import SystolicArray, array_latency

__all__ = ["AcceleratorTop", "OUTPUT_FIFO_DEPTH"]

OUTPUT_FIFO_DEPTH = 4


class AcceleratorTop(wiring.Component):
    def __init__(self, spec):
        if not isinstance(spec, AcceleratorSpec):
            raise TypeError(f"AcceleratorTop needs an AcceleratorSpec, not {spec!r}")
        self.spec = spec
        # Plain wide unsigned payloads at the top: struct/array port views slow simulators down a lot.
        super().__init__({
            "cfg": In(stream.Signature(unsigned(config_layout(spec).size))),
            "weights": In(stream.Signature(unsigned(spec.weight_word_bits))),
            "acts": In(stream.Signature(unsigned(spec.act_word_bits))),
            "out": Out(stream.Signature(unsigned(spec.acc_word_bits))),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        spec = self.spec

        cfg = Signal(config_layout(spec))
        m.submodules.weight_buffer = weight_buffer = memory.Memory(
            shape=unsigned(spec.weight_word_bits), depth=max(spec.weight_depth, 2), init=[])
        m.submodules.act_buffer = act_buffer = memory.Memory(
            shape=unsigned(spec.act_word_bits), depth=max(spec.act_depth, 2), init=[])
        weight_write, weight_read = weight_buffer.write_port(), weight_buffer.read_port()
        act_write, act_read = act_buffer.write_port(), act_buffer.read_port()

        m.submodules.sequencer = seq = FoldSequencer(spec)
        array = SystolicArray(rows=spec.rows, cols=spec.cols, act_type=spec.act_type,
                              weight_type=spec.weight_type, psum_bits=spec.psum_bits)
        m.submodules.accumulator = acc = Accumulator(spec)
        m.submodules.out_fifo = out_fifo = fifo.SyncFIFOBuffered(width=spec.acc_word_bits,
                                                                 depth=OUTPUT_FIFO_DEPTH)
        wiring.connect(m, out_fifo.r_stream, wiring.flipped(self.out))

        en = Signal()
        m.d.comb += [en.eq(out_fifo.w_rdy), seq.cfg.eq(cfg), seq.en.eq(en)]
        # The whole array freezes with the pipeline (skew, PEs, de-skew).
        m.submodules.array = EnableInserter(en)(array)

        # Load phase: both streams fill their buffers; each counts its own words.
        weights_left = Signal(range(max(spec.weight_depth, 2) + 1))
        acts_left = Signal(range(max(spec.act_depth, 2) + 1))
        weight_addr = Signal.like(weight_write.addr)
        act_addr = Signal.like(act_write.addr)
        m.d.comb += [
            weight_write.addr.eq(weight_addr), weight_write.data.eq(self.weights.payload),
            weight_write.en.eq(self.weights.valid & self.weights.ready),
            act_write.addr.eq(act_addr), act_write.data.eq(self.acts.payload),
            act_write.en.eq(self.acts.valid & self.acts.ready),
        ]
        with m.If(weight_write.en):
            m.d.sync += [weight_addr.eq(weight_addr + 1), weights_left.eq(weights_left - 1)]
        with m.If(act_write.en):
            m.d.sync += [act_addr.eq(act_addr + 1), acts_left.eq(acts_left - 1)]

        # Compute pipeline: issue (cycle 0) -> buffers read (1) -> array (1 + latency) -> accumulate.
        latency = array_latency(rows=spec.rows, cols=spec.cols)
        padded_d, bank_d = Signal(), Signal()
        m.d.comb += [
            act_read.addr.eq(seq.act_addr), act_read.en.eq(en),
            weight_read.addr.eq(seq.load_addr), weight_read.en.eq(en),
        ]
        load_en_d, load_row_d, load_bank_d = Signal(), Signal.like(seq.load_row), Signal()
        with m.If(en):
            m.d.sync += [padded_d.eq(seq.padded), bank_d.eq(seq.bank),
                         load_en_d.eq(seq.load_en), load_row_d.eq(seq.load_row), load_bank_d.eq(seq.load_bank)]
        m.d.comb += [
            array.acts.eq(Mux(padded_d, 0, act_read.data)), array.bank.eq(bank_d),
            array.load_en.eq(load_en_d & en), array.load_row.eq(load_row_d), array.load_bank.eq(load_bank_d),
            array.load_data.eq(weight_read.data),
        ]

        # Slot control rides a delay line beside the data: `latency` stages to the accumulator read, one more to
        # the sum.
        control = [seq.slot_valid, seq.pixel, seq.first_k, seq.last_k]
        stages = [control]
        for stage in range(latency + 1):
            delayed = [Signal.like(sig, name=f"ctl{stage}_{sig.name}") for sig in control]
            with m.If(en):
                m.d.sync += [d.eq(s) for d, s in zip(delayed, stages[-1])]
            stages.append(delayed)
        read_stage, sum_stage = stages[latency], stages[latency + 1]
        m.d.comb += [
            acc.en.eq(en), acc.psums.eq(array.psums),
            acc.read_valid.eq(read_stage[0]), acc.read_pixel.eq(read_stage[1]),
            acc.sum_valid.eq(sum_stage[0]), acc.sum_pixel.eq(sum_stage[1]),
            acc.sum_first.eq(sum_stage[2]), acc.sum_last.eq(sum_stage[3]),
            out_fifo.w_en.eq(acc.out_valid), out_fifo.w_data.eq(acc.out_data),
        ]

        # Phases.
        drain = Signal(range(latency + 3))
        with m.FSM(name="phase"):
            with m.State("IDLE"):
                m.d.comb += self.cfg.ready.eq(1)
                with m.If(self.cfg.valid):
                    m.d.sync += [cfg.as_value().eq(self.cfg.payload), weight_addr.eq(0), act_addr.eq(0)]
                    m.d.sync += [weights_left.eq(self.cfg.payload[_field_slice(spec, "weight_words")]),
                                 acts_left.eq(self.cfg.payload[_field_slice(spec, "act_words")])]
                    m.next = "LOAD"
            with m.State("LOAD"):
                m.d.comb += [self.busy.eq(1),
                             self.weights.ready.eq(weights_left != 0), self.acts.ready.eq(acts_left != 0)]
                with m.If((weights_left == 0) & (acts_left == 0)):
                    m.d.comb += seq.start.eq(1)
                    m.next = "COMPUTE"
            with m.State("COMPUTE"):
                m.d.comb += self.busy.eq(1)
                with m.If(seq.done):
                    m.d.sync += drain.eq(latency + 2)
                    m.next = "DRAIN"
            with m.State("DRAIN"):
                m.d.comb += self.busy.eq(1)
                with m.If(en & (drain != 0)):
                    m.d.sync += drain.eq(drain - 1)
                with m.If((drain == 0) & (out_fifo.r_level == 0)):
                    m.next = "IDLE"
        return m


def _field_slice(spec, name):
    field = config_layout(spec)[name]
    return slice(field.offset, field.offset + field.width)
