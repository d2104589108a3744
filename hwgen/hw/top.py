"""The accelerator: stream ports, buffers, two engines, systolic array, accumulator, output FIFO.

A layer arrives as one or more *commands* (tiles), one ``cfg`` beat each. Two engines work on them in order:

- the **loader** takes a command and fills its activation bank from the ``acts`` stream (the activation buffer
  has two banks, so the next tile loads while the current one computes), then hands it on;
- the **compute engine** runs the command's folds on the array, reading activations from the bank and weights
  from the weight FIFO, which the ``weights`` stream keeps filling the whole time (weights are used once per
  fold, in stream order, so they are streamed rather than stored).

Results leave on ``out``: ``m_folds * pixels`` beats of ``cols`` accumulators for every command that emits.
The compute pipeline has one enable: it advances only while the output FIFO has room and the weight FIFO has
the word the loader needs, so a stalled stream freezes the pipeline instead of losing data. (On the systolic
array, everything after the issue stage takes that enable through a register, one cycle late; see `_systolic`.)

Whole networks (`AcceleratorSpec.mv_engine`, `AcceleratorSpec.chaining`):

- with ``mv_engine`` the matrix-vector engine sits beside the weight-stationary array; a command's ``engine``
  flag picks one. They share the loader, the activation buffer's read port, the output FIFO and the post-op
  chain, so they take turns: a command is started on one engine only once the other has drained (no beat of
  the previous command is still on its way to the output FIFO). The MV engine's weights have their own port,
  ``mv_weights``, and FIFO. With ``sparse_mv`` too, the sparse engine is a third: a command with the ``sparse``
  flag (and ``engine`` 1) runs there on the words of the ``sparse`` port, once the array has drained.
- with ``chaining`` the post-op chain's output is routed per command (``out_dest``) to ``out`` or into the
  feedback FIFO, each lane narrowed to the activation type (the output was requantized to it): one output beat
  (``cols`` channels of one pixel) is one activation word (``rows`` = ``cols`` channels). A command with
  ``act_source`` = feedback loads its activation bank from that FIFO instead of ``acts``, in arrival order:
  output beat ``mf*P + p`` becomes activation word ``mf*P + p`` = channel group ``mf`` at position ``p`` - the
  next layer's layout (`hwgen.schedule`), so a layer's output is the next layer's input with no re-layout and
  without leaving the chip.
"""

from amaranth.hdl import Cat, EnableInserter, Module, Mux, Signal, unsigned
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from ..postops import params_port_bits
from ..spec import AcceleratorSpec
from . import target
from .accumulator import Accumulator
from .addrgen import FoldSequencer
from .bram import PipelinedMemory
from .fanout import assign_all, flag_copies, follow_unless, registered_copies
from .fifo import BlockRAMFIFO, BlockRAMHeadFIFO
from .slot_queue import SlotQueue
from .mv import MatrixVectorEngine
from .sparse_mv import SparseEngine
from .config import config_layout
from .os_array import OutputStationaryArray, output_latency
from .os_sequencer import OutputStationarySequencer
from .postops import PostOpPipeline
from .systolic import SystolicArray, array_latency, load_select_groups

__all__ = ["AcceleratorTop", "OUTPUT_FIFO_DEPTH"]

OUTPUT_FIFO_DEPTH = 4
SPARSE_FIFO_DEPTH = 32    # the sparse engine's word FIFO (`AcceleratorSpec.sparse_mv`)
# Systolic arrays (both dataflows): the datapath after the issue stage runs on a registered copy of the enable, one cycle
# behind it, so the output FIFO must have room for a write one cycle after the enable was decided; and that
# room is itself decided a cycle ahead (registered), with one more beat of margin.
WS_OUTPUT_FIFO_DEPTH = 7


class AcceleratorTop(wiring.Component):
    OUT_FIFO_READ_PARTS = 4     # copies of the post-op FIFO's block RAM read enables (one per part of its columns)

    def __init__(self, spec):
        if not isinstance(spec, AcceleratorSpec):
            raise TypeError(f"AcceleratorTop needs an AcceleratorSpec, not {spec!r}")
        self.spec = spec
        # Plain wide unsigned payloads at the top: struct/array port views slow simulators down a lot.
        ports = {
            "cfg": In(stream.Signature(unsigned(config_layout(spec).size))),
            "weights": In(stream.Signature(unsigned(spec.weight_word_bits))),
            "acts": In(stream.Signature(unsigned(spec.act_word_bits))),
            "params": In(stream.Signature(unsigned(params_port_bits(spec)))),   # 1 bit, unused, without post-ops
            "out": Out(stream.Signature(unsigned(spec.acc_word_bits))),
            "busy": Out(1),
            # A beat leaves the post-op chain (to `out` or, chaining, to the feedback): for a testbench that
            # times every layer of a chained network, whose inner layers never reach `out`.
            "emitted": Out(1),
        }
        if spec.mv_engine:
            ports["mv_weights"] = In(stream.Signature(unsigned(spec.mv_weight_word_bits)))
        if spec.sparse_mv:
            ports["sparse"] = In(stream.Signature(unsigned(spec.sparse_word_bits)))
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        spec = self.spec
        layout = config_layout(spec)
        bank_depth = spec.act_bank_depth

        # Both read in the issue stage and answer from a register two enabled steps later (`bram`).
        m.submodules.act_buffer = act_buffer = PipelinedMemory(width=spec.act_word_bits, depth=2 * bank_depth)
        m.submodules.weight_fifo = weight_fifo = BlockRAMFIFO(width=spec.weight_word_bits,
                                                              depth=spec.weight_depth)
        wiring.connect(m, wiring.flipped(self.weights), weight_fifo.w_stream)

        if spec.sparse_mv:
            m.submodules.sparse_fifo = sparse_fifo = BlockRAMFIFO(width=spec.sparse_word_bits,
                                                                  depth=SPARSE_FIFO_DEPTH)
            wiring.connect(m, wiring.flipped(self.sparse), sparse_fifo.w_stream)

        if spec.mv_engine:
            m.submodules.mv_weight_fifo = mv_weight_fifo = BlockRAMFIFO(width=spec.mv_weight_word_bits,
                                                                        depth=spec.mv_weight_depth)
            wiring.connect(m, wiring.flipped(self.mv_weights), mv_weight_fifo.w_stream)

        out_depth = OUTPUT_FIFO_DEPTH if spec.dataflow == "matrix_vector" else WS_OUTPUT_FIFO_DEPTH
        # A post-op chain narrower than the array (postop_groups > 1) takes a beat in several cycles: finished
        # beats wait in a block-RAM FIFO, and the engines issue a slot that finishes one only while the FIFO
        # has room for it (`credit`, below), so it never fills and never stalls the pipeline.
        narrow = spec.postops and spec.postop_groups > 1
        if narrow:
            # A free-running chain tells its next `i.ready` a cycle ahead: on ECP5 (block RAM columns as separate
            # cells) the FIFO's output-register enables are then flip-flop copies and its read enables a gate
            # from them (`read_parts`, `next_r_en`, driven in `_postops`).
            m.submodules.out_fifo = out_fifo = BlockRAMHeadFIFO(
                width=spec.acc_word_bits, depth=spec.postop_fifo_depth, write_parts=Accumulator.WRITE_PARTS,
                read_parts=(self.OUT_FIFO_READ_PARTS if PostOpPipeline.free_running(spec)
                            and target.family(platform) == "ecp5" else 1))
        else:
            m.submodules.out_fifo = out_fifo = fifo.SyncFIFOBuffered(width=spec.acc_word_bits, depth=out_depth)
        feedback = None
        if spec.postops:
            m.submodules.postops = postops = PostOpPipeline(spec, max_m_folds=spec.max_param_folds,
                                                            max_out_w=spec.max_pool_width)
            if spec.chaining:
                # Each beat leaves to `out` or, narrowed to activation lanes, into the feedback FIFO.
                # In block RAM: it may have to hold a layer's output while the loader finishes an earlier load.
                m.submodules.feedback = feedback = BlockRAMFIFO(width=spec.act_word_bits, depth=spec.feedback_depth)
                abits, acc_bits = spec.act_type.bits, spec.acc_type.bits
                narrowed = Cat(*(postops.o.payload[j * acc_bits:j * acc_bits + abits] for j in range(spec.cols)))
                m.d.comb += [
                    self.out.payload.eq(postops.o.payload),
                    self.out.valid.eq(postops.o.valid & ~postops.o_dest),
                    feedback.w_stream.payload.eq(narrowed),
                    feedback.w_stream.valid.eq(postops.o.valid & postops.o_dest),
                    postops.o.ready.eq(Mux(postops.o_dest, feedback.w_stream.ready, self.out.ready)),
                ]
            else:
                wiring.connect(m, postops.o, wiring.flipped(self.out))
            m.d.comb += self.emitted.eq(postops.o.valid & postops.o.ready)
        else:
            # No post-op chain: the accumulators leave straight from the output FIFO; `params` never accepts
            # (the host rejects layers with post-ops, so no command has parameter words).
            postops = None
            wiring.connect(m, out_fifo.r_stream, wiring.flipped(self.out))
            m.d.comb += self.emitted.eq(self.out.valid & self.out.ready)
        # Post-op parameter banks: busy from the load of a command's parameters until its last beat has
        # entered the chain.
        param_busy = Signal(2)
        set_param_busy, clear_param_busy = Signal(2), Signal(2)
        m.d.sync += param_busy.eq((param_busy | set_param_busy) & ~clear_param_busy)

        # Bank bookkeeping: the loader marks a bank full, the compute engine empties it on `release`.
        full = Signal(2)
        set_full, clear_full = Signal(2), Signal(2)
        m.d.sync += full.eq((full | set_full) & ~clear_full)

        # Loader ----------------------------------------------------------------------------------------------
        incoming = data.View(layout, self.cfg.payload)
        # The command registers (load_cmd, handoff, compute_cmd) follow their source while their stage is
        # free and hold from the cycle it takes a command: their clock enables are flip-flops, not the
        # handshake logic (hundreds of bits each).
        # Each stage's "busy" flag has several identical flip-flops, one per part of its command register.
        pieces = -(-layout.size // 48)
        load_cmd, handoff, compute_cmd = Signal(layout), Signal(layout), Signal(layout)
        loader_busy = flag_copies("loader_busy", pieces)
        handoff_valids = flag_copies("handoff_valid", pieces)
        compute_busy = flag_copies("compute_busy", pieces)
        loader_idle, handoff_valid, compute_idle = ~loader_busy[0], handoff_valids[0], ~compute_busy[0]
        handoff_take = Signal()
        has_params = Signal()          # load_cmd.param_words != 0, registered with it
        follow_unless(m, load_cmd, incoming, loader_busy)
        with m.If(loader_idle):
            m.d.sync += has_params.eq(incoming.param_words != 0)
        follow_unless(m, handoff, load_cmd, handoff_valids)
        follow_unless(m, compute_cmd, handoff, compute_busy)
        handed, hand_now, loader_loading = Signal(), Signal(), Signal()
        acts_left = Signal(range(bank_depth + 1))
        # acts_left != 0 and params_left != 0, kept as registers (they gate the streams' ready)
        # acts_more has three flip-flops, each gating one group of the writes' fan-out: the loader's own
        # counters, the block RAM's write port, and the interlock's write pointer.
        acts_mores, params_more = flag_copies("acts_more", 3), Signal()
        acts_more = acts_mores[0]
        writes = [Signal(name=f"writes_{k}") for k in range(3)]
        # The words come from `acts`, or (chaining) from the feedback FIFO when the command says so.
        source_valid, source_data = self.acts.valid, self.acts.payload
        if feedback is not None:
            from_feedback = Signal()          # load_cmd.act_source, registered with it
            with m.If(loader_idle):
                m.d.sync += from_feedback.eq(incoming.act_source)
            source_valid = Mux(from_feedback, feedback.r_rdy, self.acts.valid)
            source_data = Mux(from_feedback, feedback.r_data, self.acts.payload)
            m.d.comb += feedback.r_en.eq(from_feedback & acts_mores[0])
        m.d.comb += [write.eq(source_valid & copy) for write, copy in zip(writes, acts_mores)]
        act_addr = Signal(range(bank_depth + 1))   # reaches bank_depth after a full bank: no wrap to 0
        # Two more counters that move with act_addr: the write address in the buffer (from the bank's base),
        # and the write pointer the slot queue's interlock compares with (its own flip-flops: a wide fan-out).
        write_addr = Signal(range(2 * bank_depth))
        # (`written_copies`: one more per slot-queue entry, `SlotQueue.written_at`)
        written = Signal(range(bank_depth + 1), name="written_copy_0")
        written_copies = [Signal.like(written, name=f"written_copy_{k + 1}") for k in range(SlotQueue.DEPTH)]
        param_bank_words = spec.max_param_folds * spec.postop_groups     # parameter words per bank
        params_left = Signal(range(param_bank_words + 1))
        param_addr = Signal(range(param_bank_words))
        params_en = Signal()
        m.d.comb += params_en.eq(self.params.valid & self.params.ready)
        if postops is not None:
            m.d.comb += [
                postops.params_addr.eq(param_addr + Mux(load_cmd.param_bank, postops.bank_words, 0)),
                postops.params_data.eq(self.params.payload),
                postops.params_en.eq(params_en),
            ]
        m.d.comb += [
            act_buffer.write_addr.eq(write_addr),
            act_buffer.write_data.eq(source_data),
            act_buffer.write_en.eq(writes[1]),
        ]
        with m.If(handoff_take):
            m.d.sync += assign_all(handoff_valids, 0)
        # IDLE takes any command into load_cmd (ready is a register); CHECK waits for the banks it loads and for
        # the hand-off slot, then hands a command without loads straight on, or starts LOAD.
        # The streams' ready signals are flip-flops (acts_more and params_more are only set in LOAD).
        # acts_left == 1 and == 2, registered: the last write clears acts_more a gate after the handshake.
        left_1, left_2 = Signal(), Signal()
        with m.If(writes[0]):
            m.d.sync += [act_addr.eq(act_addr + 1), acts_left.eq(acts_left - 1), left_1.eq(left_2),
                         left_2.eq(acts_left == 3), *assign_all(acts_mores, ~left_1)]
        with m.If(writes[1]):
            m.d.sync += write_addr.eq(write_addr + 1)
        with m.If(writes[2]):
            m.d.sync += [w.eq(w + 1) for w in [written, *written_copies]]
        m.d.comb += [self.cfg.ready.eq(loader_idle),
                     self.acts.ready.eq(acts_more & ~from_feedback if feedback is not None else acts_more),
                     self.params.ready.eq(params_more if postops is not None else 0)]
        # A command's load starts on `go` (see CHECK): its counters' clock enable is that flip-flop.
        # `started`: its first start_words activations are in (act_addr >= start_words), as a register.
        go, started, start_m1 = Signal(), Signal(), Signal(range(-1, bank_depth + 1))
        m.d.sync += start_m1.eq(load_cmd.start_words - 1)
        with m.If(writes[0] & (act_addr >= start_m1)):
            m.d.sync += started.eq(1)
        with m.If(go):
            m.d.sync += started.eq(~load_cmd.load_acts | (load_cmd.start_words == 0))
        with m.If(go):
            m.d.sync += [act_addr.eq(0), param_addr.eq(0), handed.eq(0),
                         write_addr.eq(Mux(load_cmd.act_bank, bank_depth, 0)),
                         *(w.eq(0) for w in [written, *written_copies]),
                         acts_left.eq(Mux(load_cmd.load_acts, load_cmd.act_words, 0)),
                         *assign_all(acts_mores, load_cmd.load_acts & (load_cmd.act_words != 0)),
                         left_1.eq(load_cmd.act_words == 1), left_2.eq(load_cmd.act_words == 2),
                         params_left.eq(load_cmd.param_words), params_more.eq(has_params)]
        with m.FSM(name="loader"):
            with m.State("IDLE"):
                with m.If(self.cfg.valid):
                    m.d.sync += assign_all(loader_busy, 1)
                    m.next = "CHECK"
            with m.State("CHECK"):
                # The conditions only ever become true while a command waits here (only this loader sets
                # `full`, `param_busy` and `handoff_valid`): decided into `go`, acted on in the next cycle,
                # so the clock enables of the counters below are a flip-flop.
                bank_free = ~Mux(load_cmd.act_bank, full[1], full[0])
                param_free = ~Mux(load_cmd.param_bank, param_busy[1], param_busy[0])
                m.d.sync += go.eq(~go & ~handoff_valid & (~load_cmd.load_acts | bank_free) &
                                  (~has_params | param_free))
                with m.If(go):
                    with m.If(load_cmd.load_acts | has_params):
                        m.d.comb += set_param_busy.eq(Mux(has_params, Mux(load_cmd.param_bank, 0b10, 0b01), 0))
                        m.next = "LOAD"
                    with m.Else():
                        m.d.sync += [*assign_all(handoff_valids, 1), *assign_all(loader_busy, 0)]
                        m.next = "IDLE"
            with m.State("LOAD"):
                m.d.comb += loader_loading.eq(load_cmd.load_acts)
                with m.If(params_en):
                    m.d.sync += [param_addr.eq(param_addr + 1), params_left.eq(params_left - 1),
                                 params_more.eq(params_left != 1)]
                # Hand the command on once its first start_words are in: the rest load while it computes
                # (the interlock below holds back any read that would overtake the write pointer).
                m.d.comb += hand_now.eq(~handed & started & ~params_more & ~handoff_valid)
                with m.If(hand_now):
                    m.d.sync += [*assign_all(handoff_valids, 1), handed.eq(1)]
                    with m.If(load_cmd.load_acts):
                        m.d.comb += set_full.eq(Mux(load_cmd.act_bank, 0b10, 0b01))
                with m.If(~acts_more & ~params_more & (handed | hand_now)):
                    m.d.sync += assign_all(loader_busy, 0)
                    m.next = "IDLE"

        # Compute engine --------------------------------------------------------------------------------------
        # The array's sequencer (weight- or output-stationary) and/or the matrix-vector engine. With both
        # (mv_engine), `mv_selected` says which one the command taken last runs on.
        starting = Signal()          # the START state, as its own flip-flop: the engine's start
        array_seq = slots = mv = None
        if spec.dataflow == "output_stationary":
            m.submodules.engine = array_seq = OutputStationarySequencer(spec)
        elif spec.dataflow == "weight_stationary":
            m.submodules.engine = array_seq = FoldSequencer(spec)
            m.submodules.slots = slots = SlotQueue(spec)
        if spec.dataflow == "matrix_vector":
            m.submodules.engine = mv = MatrixVectorEngine(spec)
        elif spec.mv_engine:
            m.submodules.mv_engine = mv = MatrixVectorEngine(spec)
        both = array_seq is not None and mv is not None
        mv_selected = Signal(init=int(array_seq is None))
        for engine in (array_seq, mv):
            if engine is not None:
                m.d.comb += engine.cfg.eq(compute_cmd)
        sparse = None
        if spec.sparse_mv:
            # The sparse engine beside the matrix-vector engine: a command's `sparse` flag picks it.
            m.submodules.sparse_engine = sparse = SparseEngine(spec)
            m.d.comb += [sparse.cfg.eq(compute_cmd), sparse.start.eq(starting & compute_cmd.sparse),
                         sparse.word_valid.eq(sparse_fifo.r_rdy), sparse.word.eq(sparse_fifo.r_data),
                         sparse_fifo.r_en.eq(sparse.pop)]
        if both:
            # A sparse command runs on the matrix-vector side (its `engine` is 1) but starts the sparse engine.
            dense_mv = mv_selected if sparse is None else mv_selected & ~compute_cmd.sparse
            m.d.comb += [array_seq.start.eq(starting & ~mv_selected), mv.start.eq(starting & dense_mv)]
        elif sparse is not None:
            m.d.comb += mv.start.eq(starting & ~compute_cmd.sparse)
        else:
            m.d.comb += (array_seq or mv).start.eq(starting)
        # Emitting commands queue their post-op settings; the chain takes them in order, beat-count by count.
        if postops is not None:
            # Buffered: the head the chain reads (its settings, the beat count) is a register, not a LUT-RAM read.
            m.submodules.emit_queue = emit_queue = fifo.SyncFIFOBuffered(width=layout.size, depth=4)
            m.d.comb += [emit_queue.w_data.eq(handoff.as_value()),
                         emit_queue.w_en.eq(handoff_take & handoff.acc_emit)]
            # Its room as a flip-flop, registered from the level after this cycle's write and pop (the queue's
            # `w_rdy` is `level != depth`: its output register refills from its storage in the cycle after a
            # word arrives, so the storage is full only with all `depth` words in), so the hand-off's take
            # starts at flip-flops (the 8x8's critical path at seed 3 after b9e7d05: the queue's level -> w_rdy
            # -> the hand-off -> the queue's write -> its level's enable, 6.75 ns).
            emit_not_full = Signal(init=1, name="emit_not_full")
            emit_pop, level, depth = emit_queue.r_en & emit_queue.r_rdy, emit_queue.level, emit_queue.depth
            m.d.sync += emit_not_full.eq(Mux(emit_queue.w_en, Mux(emit_pop, level != depth, level != depth - 1),
                                             Mux(emit_pop, 1, level != depth)))
            emit_room = ~handoff.acc_emit | emit_not_full
        else:
            emit_room = 1
        # Drained: nothing of an engine's last command is left on its way to the output FIFO (set below).
        array_drained, mv_drained = Signal(), Signal()
        engine_free = Mux(handoff.engine, array_drained, mv_drained) if both else 1
        if array_seq is None:
            array_done = 0
        elif spec.dataflow == "weight_stationary":
            array_done = array_seq.done & slots.drained   # done when the sequencer's last slot has issued
        else:
            array_done = array_seq.done
        done = Mux(mv_selected, mv.done, array_done) if both else (array_done if mv is None else mv.done)
        if sparse is not None:
            done = Mux(compute_cmd.sparse, sparse.done, done)
        with m.FSM(name="compute"):
            with m.State("IDLE"):
                with m.If(handoff_valid & emit_room & engine_free):
                    m.d.comb += handoff_take.eq(1)
                    m.d.sync += [*assign_all(compute_busy, 1), starting.eq(1)]
                    if both:
                        m.d.sync += mv_selected.eq(handoff.engine)
                    m.next = "START"
            with m.State("START"):
                m.d.sync += starting.eq(0)
                m.next = "RUN"
            with m.State("RUN"):
                with m.If(done):
                    with m.If(compute_cmd.release):
                        m.d.comb += clear_full.eq(Mux(compute_cmd.act_bank, 0b10, 0b01))
                    m.d.sync += assign_all(compute_busy, 0)
                    m.next = "IDLE"

        # The pipelines advance only while the output FIFO has room, the weight FIFO has the word needed, and
        # the activation read has been written (its command may still be loading).
        same_bank = loader_loading & (load_cmd.act_bank == compute_cmd.act_bank)
        bank_base = Mux(compute_cmd.act_bank, bank_depth, 0)
        read_addr, read_en, data_en = Signal.like(act_buffer.read_addr), Signal(), Signal()
        out_valid, out_data = Signal(), Signal(spec.acc_word_bits)
        m.d.comb += [act_buffer.read_addr.eq(read_addr), act_buffer.read_en.eq(read_en),
                     act_buffer.data_en.eq(data_en)]
        if narrow:
            m.d.comb += [out_fifo.w_stream.valid.eq(out_valid), out_fifo.w_stream.payload.eq(out_data)]
            # Credits: `free` counts the FIFO's storage words not promised to a beat already issued; an engine
            # issues a slot that finishes a beat only with `credit` (free >= 1 in this cycle, a flip-flop).
            depth = spec.postop_fifo_depth
            free = Signal(range(depth + 1), init=depth)
            credit, beat_issued = Signal(init=1), Signal()
            next_credit = Signal(init=1)
            released = out_fifo.released
            # `released` (combinational from the chain's accept through the FIFO's read) and `beat_issued` (from
            # the slot queue's pop) only select among free + 1, free, free - 1 (8x8 seed 1's critical path:
            # credit -> accept -> released -> the adder; seed 4's: beat_credit -> beat_issued -> the adder).
            m.d.sync += [free.eq(Mux(released, Mux(beat_issued, free, free + 1),
                                     Mux(beat_issued, free - 1, free))),
                         credit.eq(next_credit)]
            m.d.comb += next_credit.eq(Mux(beat_issued & ~released, free >= 2,
                                           Mux(released & ~beat_issued, 1, free >= 1)))
            beats_issued = []
        else:
            m.d.comb += [out_fifo.w_en.eq(out_valid), out_fifo.w_data.eq(out_data)]
        if narrow:
            # The credits keep the FIFO from filling: the pipeline never waits for it.
            out_room = next_out_room = 1
        elif spec.dataflow == "matrix_vector":
            out_room = out_fifo.w_rdy
        else:
            # The datapath writes one cycle after `en` (see `_systolic`): room for one more beat then. r_level
            # counts every beat held and grows by at most one per cycle; registered, so decided from the level
            # of the cycle before: at most depth - 4 then leaves room for the write.
            out_room, next_out_room = Signal(), Signal()
            m.d.comb += next_out_room.eq(out_fifo.r_level <= out_depth - 4)
            m.d.sync += out_room.eq(next_out_room)

        engine_ports = []    # (read_addr, read_en, data_en, out_valid, out_data) of each engine
        in_flights = []
        if array_seq is not None:
            en = Signal()
            if spec.dataflow == "weight_stationary":
                # The sequencer fills the slot queue on its own enable; the pipeline issues the queue's head.
                issue = slots.head
                m.d.comb += [
                    array_seq.en.eq(slots.room),
                    slots.push.eq(array_seq.busy & slots.room),
                    slots.push_data.reads.eq(array_seq.slot_valid & ~array_seq.padded),
                    slots.push_data.act_addr.eq(array_seq.act_addr),
                    slots.push_data.read_addr.eq(array_seq.act_addr + bank_base),
                    slots.push_data.slot_valid.eq(array_seq.slot_valid), slots.push_data.padded.eq(array_seq.padded),
                    slots.push_data.acc_addr.eq(array_seq.acc_addr), slots.push_data.first_k.eq(array_seq.first_k),
                    slots.push_data.last_k.eq(array_seq.last_k), slots.push_data.bank.eq(array_seq.bank),
                    slots.push_data.load_en.eq(array_seq.load_en), slots.push_data.load_row.eq(array_seq.load_row),
                    slots.push_data.load_bank.eq(array_seq.load_bank),
                    slots.written.eq(written), slots.writing.eq(writes[2]), slots.same_bank.eq(same_bank),
                    *(slots.written_at[k].eq(copy) for k, copy in enumerate(written_copies)),
                ]
                if narrow:
                    m.d.comb += [slots.beat_credit.eq(credit), slots.next_beat_credit.eq(next_credit)]
                    beats_issued.append(slots.beat_issued)
                # The enable is decided a cycle ahead from the next values of the registers it is made of
                # (exact: it is the same function of the same registers) and registered as a few copies, each
                # driving a part of its fan-out: the queue's control, the queue's entries, the weight FIFO, the
                # issue stage.
                next_en = next_out_room & slots.next_advance & (~slots.next_load_en | weight_fifo.next_r_rdy)
                en_queue, en_entries, en_weights, en_issue, en_array = registered_copies(m, next_en, name="en",
                                                                                          count=5)
                # And, from the last copy, one flip-flop per array column holding `en` registered (`en_d`): the
                # clock enable of that column's registers (`SystolicArray`'s enable_groups, enable_registered
                # False). No gate sits between a flip-flop and the columns' copies: from the lookahead's gates
                # the route to each column's copy was the 8x8's critical path (3 of 4 seeds, 2.8-3.5 ns of
                # route after four LUT levels).
                en_cols = registered_copies(m, en_array, name="en_col", count=spec.cols)
                m.d.comb += [en.eq(en_issue), slots.pop.eq(en_queue), slots.pop_entries.eq(en_entries),
                             weight_fifo.r_en.eq(issue.load_en & en_weights)]
                ws_valid, ws_data, ws_data_en, flight = self._systolic(m, issue, en, act_buffer, weight_fifo,
                                                                       compute_cmd, en_cols)
                # The buffer is read only for a real, unpadded pixel (bubbles and padding read nothing).
                engine_ports.append((issue.read_addr, en & issue.reads, ws_data_en, ws_valid, ws_data))
                in_flight = flight | ~slots.drained
            else:
                pops = array_seq.issue
                ready = ~(same_bank & pops & (array_seq.act_addr >= act_addr))
                m.d.comb += [array_seq.en.eq(en), en.eq(out_room & ready & (~pops | weight_fifo.r_rdy)),
                             weight_fifo.r_en.eq(pops & en)]
                os_valid, os_data, os_data_en, in_flight = self._output_stationary(m, array_seq, en, act_buffer,
                                                                                   weight_fifo)
                engine_ports.append((array_seq.act_addr + bank_base, en & pops, os_data_en, os_valid, os_data))
            m.d.comb += array_drained.eq(~in_flight & ~array_seq.busy)
            in_flights.append(in_flight)
        if mv is not None:
            # Fed straight from its weight FIFO, one word per issued slot; the interlock holds back a read
            # that would overtake the loader.
            mv_fifo = mv_weight_fifo if both else weight_fifo
            mv_en = Signal(name="mv_en")
            ready = ~(same_bank & mv.issue & (mv.act_addr >= act_addr))
            mv_room = 1 if narrow else out_fifo.w_rdy
            if narrow:
                m.d.comb += mv.credit.eq(credit)
                beats_issued.append(mv.beat_issued)
            m.d.comb += [mv_en.eq(mv_room & ready & (~mv.pop | mv_fifo.r_rdy)), mv.en.eq(mv_en),
                         mv_fifo.r_en.eq(mv.pop & mv_en),
                         mv.act_data.eq(act_buffer.read_data), mv.weight_data.eq(mv_fifo.r_data),
                         mv_drained.eq(~mv.in_flight)]
            engine_ports.append((mv.act_addr + bank_base, mv_en & mv.issue, mv_en, mv.out_valid, mv.out_data))
            in_flights.append(mv.in_flight)
        if both:
            (a_addr, a_en, a_data_en, a_valid, a_data), (v_addr, v_en, v_data_en, v_valid, v_data) = engine_ports
            # The engines take turns (one starts once the other has drained): select by the running one, and
            # let either write the output FIFO.
            e_addr, e_en, e_data_en = (Mux(mv_selected, v_addr, a_addr), Mux(mv_selected, v_en, a_en),
                                       Mux(mv_selected, v_data_en, a_data_en))
            e_valid, e_data = a_valid | v_valid, Mux(v_valid, v_data, a_data)
        else:
            (e_addr, e_en, e_data_en, e_valid, e_data), = engine_ports
        if sparse is not None:     # the engines take turns: any of them writes the output FIFO
            # The sparse engine sends a beat only with the same output-slot credit as the other engines. A
            # sparse command (`engine` 1) starts once the array has drained, and the others start after its
            # `done`, which follows its last beat's write: nothing of it is left in flight.
            m.d.comb += sparse.out_room.eq(credit if narrow else out_fifo.w_rdy)
            if narrow:
                beats_issued.append(sparse.out_valid)
            e_valid, e_data = e_valid | sparse.out_valid, Mux(sparse.out_valid, sparse.out_data, e_data)
            in_flights.append(sparse.busy)
        m.d.comb += [read_addr.eq(e_addr), read_en.eq(e_en), data_en.eq(e_data_en), out_valid.eq(e_valid),
                     out_data.eq(e_data)]
        if narrow:
            # The output FIFO writes its block RAM columns in parts, each at a copy of the write valid: the
            # accumulator's own flip-flop copies when the array is the only engine (the 8x8's critical path
            # at seeds 1 and 3: one valid register gating the write enables of 15 DP16KD, 5.4 ns of route).
            ws_only = spec.dataflow == "weight_stationary" and not both and sparse is None
            m.d.comb += out_fifo.w_valid_parts.eq(m.submodules.accumulator.out_valid_parts if ws_only
                                                  else out_valid.replicate(Accumulator.WRITE_PARTS))
            m.d.comb += beat_issued.eq(Cat(*beats_issued).any())   # the engines take turns: one at a time
        loading = acts_more | params_more
        engines_busy = Cat(*(engine.busy for engine in (array_seq, mv) if engine is not None)).any()
        busy = (loading | handoff_valid | compute_busy[0] | engines_busy | Cat(*in_flights).any() |
                (out_fifo.busy if narrow else out_fifo.r_level != 0))
        if postops is not None:
            self._postops(m, layout, emit_queue, out_fifo, postops, clear_param_busy)
            busy = busy | emit_queue.r_rdy | postops.busy
        if feedback is not None:
            busy = busy | feedback.r_rdy
        m.d.comb += self.busy.eq(busy)
        return m

    def _systolic(self, m, seq, en, act_buffer, weight_fifo, cmd, en_cols):
        """Issue (cycle 0) -> buffer read / weight pop (1) -> activation register (2) -> array (2 + latency) ->
        accumulate and emit. Returns the accumulator's output (valid, data), the enable of the activation
        buffer's data register, and whether a slot is still in flight.

        The activation buffer answers from its output register (block RAM clock-to-out is slow; a padded slot
        replaces the word after it with the command's pad value, registered with the slot at issue), and the
        weight-load path gets the same extra register, so weights and activations keep their relative timing
        (`schedule.fold_period`).

        Two enables: the issue stage (sequencer, buffer read, weight pop, and the first register of every path
        out of it) advances with ``en``; everything after it (the second registers, the array, the control delay
        line, the accumulator) with ``en_d``, ``en`` registered. A stage that moves one cycle after the one
        feeding it sees the same sequence of values (the feeding register holds until the next ``en``, which
        comes no earlier than that cycle), so results and no-stall timing are unchanged; the huge fan-out of the
        pipeline enable starts at a flip-flop instead of at the end of the stall logic. Nothing flows back from
        the ``en_d`` side except the output FIFO's fill level, which ``en`` reads with one beat of margin.
        ``en_cols``: one more flip-flop per array column holding the same value as ``en_d`` every cycle (registered
        from a copy of ``en``), the clock enable of that column's registers."""
        spec = self.spec
        m.submodules.accumulator = acc = Accumulator(spec)
        groups = load_select_groups(spec.cols)
        array = SystolicArray(rows=spec.rows, cols=spec.cols, act_type=spec.act_type,
                              weight_type=spec.weight_type, psum_bits=spec.psum_bits, enable_copies=True,
                              load_select_groups=groups, enable_groups=len(en_cols), enable_registered=False)
        # `en` registered: one copy for the second registers and the control delay line, one for the
        # accumulator; the array's columns take theirs from en_cols (see SystolicArray's enable_registered).
        en_d, en_acc = Signal(name="en_copy_ctl"), Signal(name="en_copy_acc")
        m.d.sync += [en_d.eq(en), en_acc.eq(en)]
        m.submodules.array = array            # skew, PEs and de-skew freeze with the pipeline, on en_d's copies
        m.d.comb += array.en.eq(Cat(*en_cols))
        padded_d, padded_dd, bank_d, bank_dd = Signal(), Signal(), Signal(), Signal()
        pad_d, pad_dd = Signal(spec.act_type.bits), Signal(spec.act_type.bits)
        row_shape = range(spec.rows)
        load_en_d, load_row_d, load_bank_d = Signal(), Signal(row_shape), Signal()
        load_data_d = Signal.like(weight_fifo.r_data)
        load_data_dd = Signal.like(weight_fifo.r_data)
        # The weight-load selects decoded here, a stage early, into a register copy per column group (the
        # array's load_sel): each row select reaches a few columns from a flip-flop (16x16: the decode's
        # fan-out over the whole width was the critical path).
        load_sel_copies = [Signal(spec.rows + 1, name=f"load_sel_copy_{g}") for g in range(groups)]
        with m.If(en):
            m.d.sync += [padded_d.eq(seq.padded), bank_d.eq(seq.bank), load_en_d.eq(seq.load_en),
                         load_row_d.eq(seq.load_row), load_bank_d.eq(seq.load_bank),
                         load_data_d.eq(weight_fifo.r_data), pad_d.eq(cmd.pad_value)]
        with m.If(en_d):
            m.d.sync += [padded_dd.eq(padded_d), bank_dd.eq(bank_d), load_data_dd.eq(load_data_d),
                         pad_dd.eq(pad_d)]
            for copy in load_sel_copies:
                m.d.sync += copy.eq(Cat(*(load_en_d & (load_row_d == i) for i in range(spec.rows)), load_bank_d))
        pad_word = Cat(*([pad_dd] * spec.rows))
        m.d.comb += [
            array.acts.eq(Mux(padded_dd, pad_word, act_buffer.read_data)), array.bank.eq(bank_dd),
            array.load_sel.eq(Cat(*load_sel_copies)), array.load_data.eq(load_data_dd),
        ]

        # Slot control rides a delay line beside the data: `latency` stages to the column sums (the
        # accumulator's read is issued three stages before its sum, its read data registered twice), one more to
        # the sum.
        latency = array_latency(rows=spec.rows, cols=spec.cols) + 1
        control = [seq.slot_valid, seq.acc_addr, seq.first_k, seq.last_k]
        names = ["slot_valid", "acc_addr", "first_k", "last_k"]
        stages = [control]
        for stage in range(latency + 1):
            delayed = [Signal(len(sig), name=f"ctl{stage}_{name}") for sig, name in zip(control, names)]
            with m.If(en if stage == 0 else en_d):
                m.d.sync += [d.eq(s) for d, s in zip(delayed, stages[-1])]
            stages.append(delayed)
        # The read is issued Accumulator.READ_AHEAD stages before its sum (stage latency + 1).
        read_at = latency + 1 - Accumulator.READ_AHEAD
        read_stage, sum_stage = stages[read_at], stages[latency + 1]
        # The read address also as kept copies of its register, each driving a part of the accumulator's block
        # RAM columns (15 DP16KD on the 8x8: one register's route to all of them was 10.9 ns): registered from
        # the stage before, on that stage's enable.
        parts, read_enable = Accumulator.READ_PARTS, en if read_at == 1 else en_d
        read_copies = registered_copies(m, stages[read_at - 1][1], name="acc_read_addr", count=parts,
                                        enable=read_enable)
        # And the read enables of those parts, `en_acc & read_valid` (en_acc is `en` registered): each a copy
        # registered from the next value of both, so no gate sits between a flip-flop and the block RAMs.
        next_read_valid = Mux(read_enable, stages[read_at - 1][0], read_stage[0])
        read_en_copies = registered_copies(m, next_read_valid & en, name="acc_read_en", count=parts)
        m.d.comb += [
            acc.en.eq(en_acc), acc.en_next.eq(en), acc.psums.eq(array.psums),
            acc.read_valid.eq(read_stage[0]), acc.read_pixel.eq(read_stage[1]),
            acc.read_pixel_parts.eq(Cat(*read_copies)), acc.read_en_parts.eq(Cat(*read_en_copies)),
            acc.sum_valid.eq(sum_stage[0]), acc.sum_pixel.eq(sum_stage[1]),
            acc.sum_first_next.eq(stages[latency][2]), acc.sum_last.eq(sum_stage[3]),
        ]
        in_flight = Signal()
        m.d.comb += in_flight.eq(Cat(*(s[0] for s in stages[1:])).any())
        return acc.out_valid, acc.out_data, en_d, in_flight

    def _output_stationary(self, m, seq, en, act_buffer, weight_fifo):
        """Issue (cycle 0) -> buffer read / weight pop (1) -> activation register (2) -> array -> row i's beat
        ``2 + latency + i``. Returns the output (valid, data), the enable of the activation buffer's data
        register, and whether a slot is still in flight.

        The same two enables as `_systolic`: the issue stage and the first register of every path out of it on
        ``en``; the second registers, the activation buffer's output register and the array on ``en_d``
        (``en`` registered), so the enable's fan-out starts at a flip-flop."""
        spec = self.spec
        array = OutputStationaryArray(rows=spec.rows, cols=spec.cols, act_type=spec.act_type,
                                      weight_type=spec.weight_type, acc_type=spec.acc_type)
        en_d = Signal(name="en_copy_os")
        m.d.sync += en_d.eq(en)
        m.submodules.array = EnableInserter(en_d)(array)
        issued = [weight_fifo.r_data, seq.valid, seq.first, seq.last]
        first_regs = [Signal.like(sig, name=f"os_d_{n}") for n, sig in enumerate(issued)]
        second_regs = [Signal.like(sig, name=f"os_dd_{n}") for n, sig in enumerate(issued)]
        with m.If(en):
            m.d.sync += [d.eq(sig) for d, sig in zip(first_regs, issued)]
        with m.If(en_d):
            m.d.sync += [d.eq(sig) for d, sig in zip(second_regs, first_regs)]
        weights_dd, valid_dd, first_dd, last_dd = second_regs
        m.d.comb += [
            array.acts.eq(act_buffer.read_data), array.weights.eq(weights_dd), array.valid.eq(valid_dd),
            array.first.eq(first_dd), array.last.eq(last_dd),
        ]
        # In flight until the last row of the last issued slot has left the array.
        drain = 2 + output_latency(cols=spec.cols) + spec.rows
        since_issue = Signal(range(drain + 1), init=drain)
        with m.If(en & seq.issue):
            m.d.sync += since_issue.eq(0)
        with m.Elif(en_d & (since_issue != drain)):
            m.d.sync += since_issue.eq(since_issue + 1)
        in_flight = Signal()
        m.d.comb += in_flight.eq(since_issue != drain)
        return en_d & array.out_valid, array.out_data, en_d, in_flight

    def _postops(self, m, layout, emit_queue, out_fifo, postops, clear_param_busy):
        """The head of the emit queue describes the beats entering the post-op chain."""
        head = data.View(layout, emit_queue.r_data)
        # head_count + 1 (beats of the head taken, with the one now), compared with emit_words as it is: no
        # subtraction between the head register and the queue's read enable (8x8 seed 1's critical path).
        head_count = Signal.like(head.emit_words, init=1)
        m.d.comb += [
            postops.cfg.bias.eq(head.pp_bias), postops.cfg.requant.eq(head.pp_requant),
            postops.cfg.relu.eq(head.pp_relu), postops.cfg.pool.eq(head.pp_pool),
            postops.cfg.out_bits.eq(head.pp_out_bits), postops.cfg.out_signed.eq(head.pp_out_signed),
            postops.cfg.out_h.eq(head.out_h), postops.cfg.out_w.eq(head.out_w),
            postops.cfg.m_folds.eq(head.m_folds), postops.bank.eq(head.param_bank),
            postops.cfg.zero_point.eq(head.pp_zero_point), postops.cfg.dest.eq(head.out_dest),
            postops.cfg.stochastic.eq(head.pp_stochastic),
            postops.i.payload.eq(out_fifo.r_data),
            postops.i.valid.eq(out_fifo.r_rdy & emit_queue.r_rdy),
        ]
        if postops.free_running(postops.spec):
            # The FIFO's read enable as a flip-flop of its own, the chain's `i.ready` (a flip-flop there too),
            # registered from its next value: the block RAM's output-register enable is then one gate from
            # flip-flops (the 8x8's critical path at seed 1 after 4183756: the emit queue's r_rdy -> the AND
            # below -> the FIFO's move -> a DP16KD `OCEB` 25 tiles away, 7.18 ns). The AND with the emit queue's
            # r_rdy is not needed here: a free-running chain's `i.ready` is high only at a beat's last group,
            # after its other groups were taken, each with `i.valid` (so with the emit queue's head), and that
            # head leaves only with the beat's accept.
            out_pop = Signal(name="out_fifo_r_en")
            m.d.sync += out_pop.eq(postops.next_i_ready)
            m.d.comb += out_fifo.r_en.eq(out_pop)
            if out_fifo.read_parts > 1:
                m.d.comb += out_fifo.next_r_en.eq(postops.next_i_ready)
        else:
            m.d.comb += out_fifo.r_en.eq(postops.i.ready & emit_queue.r_rdy)
        if postops.groups > 1:
            # Registered a cycle ahead, as the chain's position flags (`PostOpPipeline`): a beat of a narrow
            # chain is accepted at least a cycle after its first group was taken, and head_count and the head
            # change only with an accept (the head the cycle after, or when it arrives before the first group).
            head_last = Signal(name="emit_head_last")
            m.d.sync += head_last.eq(head_count == head.emit_words)
        else:
            head_last = head_count == head.emit_words
        with m.If(postops.i.valid & postops.i.ready):
            with m.If(head_last):
                m.d.sync += head_count.eq(1)
                m.d.comb += emit_queue.r_en.eq(1)
                with m.If(head.param_words != 0):
                    m.d.comb += clear_param_busy.eq(Mux(head.param_bank, 0b10, 0b01))
            with m.Else():
                m.d.sync += head_count.eq(head_count + 1)

