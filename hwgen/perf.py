"""The cycle model: exact cycles of a layer (one command or a tiled sequence) from its schedule alone, with
every source valid from the first ``cfg`` handshake on and the sink always ready.

``cycles`` counts clock edges from the first ``cfg`` handshake to the handshake of the last output beat. The
recurrences below follow the two engines of `hw.top.AcceleratorTop` handshake by handshake; the cocotb
regression and the Amaranth-simulator tests assert equality on every no-stall run.

Whole networks (`hwgen.compiler.program`) are command sequences too, with three more things followed exactly:
a command on the other engine of a two-engine accelerator starts only once the previous engine has drained
(``ARRAY_DRAIN``, ``MV_DRAIN``); a command that loads from the on-chip feedback writes each word when it
arrives (every beat sent there is timed: `_chain_times` + the post-op latency + ``FEEDBACK_LAG``), and the model
refuses a run whose feedback FIFO would fill (`FeedbackOverflowError`: the producer would stall, which it does
not follow); a command fed by the host from earlier ``out`` beats gets its first word ``HOST_TURNAROUND``
cycles after the last of them (``acts_after``).
"""

from dataclasses import dataclass, asdict

import numpy as np

from .hw.accumulator import Accumulator
from .hw.fifo import BlockRAMFIFO, BlockRAMHeadFIFO
from .hw.mv import MatrixVectorEngine
from .hw.sparse_mv import SparseEngine
from .hw.os_array import output_latency
from .hw.postops import PostOpPipeline
from .hw.slot_queue import SlotQueue
from .hw.systolic import array_latency

__all__ = ["CycleEstimate", "FeedbackOverflowError", "predict", "predict_commands", "predict_plan",
           "single_command_cycles"]

# Loader: a command is taken (the cfg handshake) whenever the loader is idle, and checked from the next cycle
# on until its bank, its parameter bank and the hand-off slot are free; acted on (c) a cycle after that; then
# one activation beat per cycle, then one cycle to hand it on.
TAKE_TO_DECIDE = 1
DECIDE = 1                # the decision is registered and acted on a cycle later
LOAD_HANDOFF = 2          # a loading command is handed to the compute engine at c + act_words + 2
NO_LOAD_HANDOFF = 1       # a command that reuses its bank at c + 1
# Compute engine: takes the hand-off (IDLE), starts the sequencer (START), whose first cycle is the pre-slot
# that only starts fold 0's weight load; the first pixel slot follows.
TAKE_TO_FIRST_SLOT = 3
# Weight-stationary: the sequencer's slots reach the issue stage through the slot queue.
QUEUED_SLOT = SlotQueue.PUSH_TO_ISSUE
DONE_TO_IDLE = 2          # after a command's last slot the engine is idle again (and its bank released) 2 later
BUFFER_READ = 2           # activation buffer read latency, and the register its read data goes into
OUTPUT_FIFO = 2           # write into the buffered output FIFO -> into the post-op chain
POSTOPS = PostOpPipeline.LATENCY   # the post-op chain -> handshake on `out` (0 when built without it)
# The post-op chain's settings of every emitting command wait in a queue from the command's start until its
# last beat enters the chain; a command that emits starts only while the queue has room.
EMIT_QUEUE_DEPTH = 4


def postops_latency(spec):
    """Cycles from a beat entering the post-op chain to its handshake on `out`: none without the chain (the
    output FIFO drives `out` itself)."""
    return PostOpPipeline.latency_for(spec) if spec.postops else 0


@dataclass(frozen=True)
class CycleEstimate:
    layer: str
    cycles: int
    commands: int
    macs: int
    pes: int

    @property
    def ideal_cycles(self):
        return -(-self.macs // self.pes)

    @property
    def utilization(self):
        return self.macs / (self.pes * self.cycles)

    def to_dict(self):
        data = asdict(self)
        data.update(ideal_cycles=self.ideal_cycles, utilization=self.utilization)
        return data


class FeedbackOverflowError(ValueError):
    """The on-chip feedback FIFO would fill: the producing command would stall, which the model does not
    follow. The compiler treats the plan as not chainable (its output goes through `out` instead)."""


# On-chip feedback (chaining): a beat accepted by the feedback FIFO in cycle t is its head from t + FEEDBACK_LAG.
FEEDBACK_LAG = BlockRAMFIFO.WRITE_TO_READ
# Engines that take turns (an array and the matrix-vector engine beside it): the first cycle an engine counts as
# drained (nothing of its last command on its way to the output FIFO), after its last issued slot.
ARRAY_DRAIN = 3                   # + array_latency: the systolic control line, one stage per cycle
MV_DRAIN = MatrixVectorEngine.LATENCY + 1
QUEUE_DRAINED = 1                 # the slot queue reports drained the cycle after its last slot issued
# A host that sends words made from `out` beats offers the first of them this many cycles after the last beat's
# handshake (what the cocotb testbench's host takes: its sink reports the beat, it queues the words, the source
# drives them).
HOST_TURNAROUND = 3
# A word written into the (empty) sparse FIFO can be popped by the sparse engine this many cycles later.
SPARSE_WRITE_TO_POP = BlockRAMFIFO.WRITE_TO_READ


def _to_chain(spec):
    return BUFFER_READ + array_latency(rows=spec.rows, cols=spec.cols) + Accumulator.LATENCY + OUTPUT_FIFO


def _emitted_pixels(s):
    """(m-fold, pixel) of the pixel whose beat carries each emitted output beat, in emission order: every pixel,
    or with pooling the bottom-right pixel of every kept 2x2 window."""
    p = s.problem
    if s.postops.pool == "none":
        pixels = np.arange(s.pixels)
    else:
        e_out, f_out = s.out_size
        e, f = np.divmod(np.arange(e_out * f_out), f_out)
        pixels = (2 * e + 1) * p.F + 2 * f + 1
    mf = np.repeat(np.arange(s.m_folds), len(pixels))
    return mf, np.tile(pixels, s.m_folds)


def _chain_times(s, first_slot):
    """The cycle each emitted beat enters the post-op chain (or, without it, leaves the output FIFO), in
    emission order, for a command whose first slot issues at `first_slot`."""
    spec = s.spec
    mf, pixel = _emitted_pixels(s)
    if s.sparse_words is not None:
        # The sparse engine: beat b is written into the output FIFO EMIT + b cycles after the last word's pop.
        return first_slot + s.sparse_words - 1 + SparseEngine.EMIT + mf + OUTPUT_FIFO
    if s.dataflow == "matrix_vector":
        # Slots for mf: for n: for kg; a sum reaches the output FIFO LATENCY cycles after its last slot.
        last_slot = first_slot + (mf * s.pixels + pixel) * s.c_groups + s.c_groups - 1
        return last_slot + MatrixVectorEngine.LATENCY + OUTPUT_FIFO
    if s.dataflow == "output_stationary":
        # Pixel p of m-fold mf is row p % rows of tile p // rows: its beat enters the output FIFO 1 + latency +
        # row cycles after the tile's last slot.
        tile, row = np.divmod(pixel, spec.rows)
        to_fifo = BUFFER_READ + output_latency(cols=spec.cols) + OUTPUT_FIFO
        return first_slot + (mf * s.pixel_tiles + tile + 1) * s.fold_period - 1 + row + to_fifo
    # Weight-stationary: a pixel's sum is final in the last k-fold of its m-fold.
    last_fold = first_slot + ((mf + 1) * s.k_folds - 1) * s.fold_period
    return last_fold + pixel + _to_chain(spec)


def _beat_slots(s):
    """Issue slot (from the command's first) of every beat the command sends into the post-op chain, in order:
    the pixel slots of each m-fold's last k-fold (matrix-vector: the last slot of each reduction)."""
    if s.sparse_words is not None:
        # The sparse engine: its beats one per cycle, EMIT cycles after the last word's pop (a "slot" each).
        return s.sparse_words - 1 + SparseEngine.EMIT + np.arange(s.m_folds * s.pixels)
    mf, p = np.divmod(np.arange(s.m_folds * s.pixels), s.pixels)
    if s.dataflow == "matrix_vector":
        return (mf * s.pixels + p) * s.c_groups + s.c_groups - 1
    return (mf * s.k_folds + s.k_folds - 1) * s.fold_period + p


def _beat_to_fifo(s):
    """Cycles from a beat's issue slot to its write into the post-op FIFO (the engine's output)."""
    if s.sparse_words is not None:
        return 0            # the sparse engine writes a beat in the cycle it sends it (with the credit)
    if s.dataflow == "matrix_vector":
        return MatrixVectorEngine.LATENCY
    return BUFFER_READ + array_latency(rows=s.spec.rows, cols=s.spec.cols) + Accumulator.LATENCY


class _PostOpFifo:
    """The narrow post-op chain's input FIFO (`AcceleratorSpec.postop_groups` > 1), beat by beat over the whole
    run (`hw.top`, `hw.fifo.BlockRAMHeadFIFO`, `hw.postops`):

    - beat ``j`` (in issue order, over all commands) may issue in cycle ``t`` only with a credit: fewer than
      ``depth`` beats issued before and not yet latched out of the storage, i.e. ``t >= latched[j - depth] + 1``;
      otherwise its engine issues bubbles, which delays every later slot of the command;
    - it is written ``_beat_to_fifo`` cycles after its issue (``W``), latched out of the storage at
      ``max(W + 1, r[j - 1] - 1)`` (the latch frees as the previous beat moves to the FIFO's head) and is the
      head from two cycles later, but not before the previous beat's ``groups`` have all entered the chain:
      its first group enters at ``r[j] = max(latched + 2, r[j - 1] + groups)``, its last ``groups - 1`` later;
    - it leaves the chain on ``out`` `POSTOPS` cycles after its last group entered."""

    def __init__(self, spec):
        self.depth, self.groups = spec.postop_fifo_depth, spec.postop_groups
        self.latched = []       # per beat: the cycle it left the storage (its credit returns the cycle after)
        self.r_last = -(1 << 40)

    def run(self, s, first_slot):
        """The command's beats through the FIFO: ``(r, held)``, the cycle each beat's first group enters the chain
        and the cycles its slots were held back in all."""
        depth, groups, latched = self.depth, self.groups, self.latched
        pipe = _beat_to_fifo(s)
        held, r_prev = 0, self.r_last
        entries = []
        for slot in (first_slot + _beat_slots(s)).tolist():
            issue = slot + held
            j = len(latched)
            if j >= depth and issue <= latched[j - depth]:
                held += latched[j - depth] + 1 - issue
                issue = latched[j - depth] + 1
            out_of_storage = max(issue + pipe + 1, r_prev - 1)
            r_prev = max(out_of_storage + 2, r_prev + groups)
            latched.append(out_of_storage)
            entries.append(r_prev)
        self.r_last = r_prev
        return np.asarray(entries, dtype=np.int64), held


def _loaded_at(decide, arrivals):
    """Cycles the loader writes each word, from `decide` on at one word per cycle, none before it arrives."""
    index = np.arange(len(arrivals))
    earliest = np.maximum.accumulate(np.asarray(arrivals) - index) if len(arrivals) else arrivals
    return np.maximum(decide + 1 + index, earliest + index)


def _mv_emerge(slots, stalls, latency):
    """The cycle each MV slot's sum leaves the engine: `latency` enabled cycles after its slot, the engine
    frozen in the `stalls` cycles (sorted)."""
    from bisect import bisect_right
    out = []
    for slot in slots:
        k = bisect_right(stalls, slot)
        end, j = slot + latency, k
        while j < len(stalls) and stalls[j] <= end:
            end += 1
            j += 1
        out.append(end)
    return np.asarray(out)


def _known(log, known, engine, cache):
    """Every stall cycle of `engine`: those found so far and those a previous pass found (sorted; kept in
    `cache` while the log does not grow)."""
    hit = cache.get(engine)
    if hit is not None and hit[0] == len(log[engine]):
        return hit[1]
    cycles = set(c for c, _ in log[engine])
    if known:
        cycles |= set(known.get(engine, ()))
    result = sorted(cycles)
    cache[engine] = (len(log[engine]), result)
    return result


def predict_commands(schedules, *, name=None, macs=None, timeline=None, acts_after=None, sparse_after=None,
                     out_cycles=None, arrivals=None, record=None, _stalls=None):
    """Cycles of `schedules` (commands issued back to back) from the first cfg handshake to the last beat on
    ``out``.

    Commands may run on either engine of an accelerator that has two (`LayerSchedule.engine`), and may send
    their output to the on-chip feedback and load their activations from it (`out_dest`, `act_source`): a
    feedback load writes its words as they arrive. ``acts_after[i]``, when given and not 0, says that command
    ``i``'s activations come from the host only after it has received that many ``out`` beats (a layer whose
    input is the output of an earlier one that did not stay on chip); they are then offered one per cycle from
    `HOST_TURNAROUND` cycles after the last of those beats. ``sparse_after[i]``, when given and not None, does the
    same for a sparse command's words: ``(beats, offset)``, the host offers the layer's sparse words one per cycle
    from `HOST_TURNAROUND` cycles after the ``beats``-th ``out`` beat, this command's first being word ``offset``
    of them (a pruned layer fed by the host). `timeline`, a list, receives one dict per command with the
    cycles of its accept, decide, hand-off, take, first and last slot, and last output (relative to the first
    accept) - what `hwgen plan` and the network report print. `out_cycles`, a list, receives the cycle of every
    beat on ``out`` (relative to the first accept).

    ``arrivals`` (the system top, `hwgen.system.exact`): the cycle each word of the ``cfg``, ``params`` and
    ``acts`` streams is first offered to the accelerator (absolute cycles; replaces ``acts_after``), and
    ``weights_ready`` / ``mv_weights_ready``: the cycle from which each weight word can be popped from the
    accelerator's weight FIFO. A late word is followed: a command's cfg handshake and the loader's writes wait
    for it; an issue slot of the weight-stationary array or of the matrix-vector engine waits, the engine
    frozen, until its weight word can be popped and the activation word it reads has been written (the
    read-after-write interlock), and the results in that engine's pipeline wait with it (a later command's
    stall that freezes an earlier one's results is solved by passes until the stalls settle). What is not
    followed (the output-stationary array, the sparse engine) appends a reason to ``record["inexact"]``.
    ``record`` (a dict) receives every handshake: ``cfg``, ``params``, ``acts``, ``weights`` and
    ``mv_weights`` pops, ``out`` (the cycle each beat is offered), and for the loader's words and the pops the
    earliest cycle each could happen whatever the arrivals (``*_earliest``; ``*_gap``: slots after the previous
    pop) - what `hwgen.system.exact`'s memory side takes."""
    schedules = list(schedules)
    if not schedules:
        raise ValueError("no commands")
    spec = schedules[0].spec
    to_chain = _to_chain(spec)
    accept = -1               # cfg handshake of the previous command
    loader_free = 0           # first cycle the loader is idle again
    handoff_clear = 0         # first cycle the hand-off register is empty
    compute_idle = 0          # first cycle the compute engine is idle
    bank_free = [0, 0]        # first cycle each activation bank may be loaded
    param_free = [0, 0]       # first cycle each post-op parameter bank may be loaded
    drained = {"array": 0, "mv": 0}   # first cycle each engine has nothing in flight
    emit_pops = []            # cycle each emitting command's settings leave the emit queue (its last beat in)
    fifo = _PostOpFifo(spec) if spec.postops and spec.postop_groups > 1 else None
    both = len(spec.engines) > 1
    out_times = []            # cycle of every beat on `out`, in order
    fed = []                  # cycle each beat sent to the feedback leaves the post-op chain, in order
    taken = []                # cycle the loader takes each of them
    last_out = None
    events = []
    if record is not None:
        for key in ("cfg", "params", "acts", "weights", "mv_weights", "out", "inexact", "acts_earliest",
                    "params_earliest", "weights_earliest", "mv_weights_earliest", "weights_gap", "mv_weights_gap"):
            record.setdefault(key, [])
    used = {"cfg": 0, "params": 0, "acts": 0, "weights": 0, "mv_weights": 0}

    def take_words(port, count):
        first = used[port]
        used[port] += count
        times = arrivals.get(port) if arrivals is not None else None
        if times is None:
            return None
        got = np.asarray(times[first:first + count], dtype=np.int64)
        if len(got) < count:
            raise ValueError(f"the {port} stream has {len(times)} words, the commands take more")
        return got

    def inexact(reason):
        if record is not None and len(record["inexact"]) < 20:
            record["inexact"].append(reason)

    stall_log = {"array": [], "mv": []}     # (cycle, command) the engine's pipeline was frozen
    stall_cache = {}
    windows = []                            # (engine, command, first issue, last emergence)
    for index, s in enumerate(schedules):
        mv_modelled = False
        act_writes = None
        accept = max(accept + 1, loader_free)
        cfg_at = take_words("cfg", 1)
        if cfg_at is not None:
            accept = max(accept, int(cfg_at[0]))
        decide = DECIDE + max(accept + TAKE_TO_DECIDE, handoff_clear, bank_free[s.act_bank] if s.load_acts else 0,
                              param_free[s.param_bank] if s.param_words else 0)
        if s.load_acts and s.act_source == "feedback":
            first = len(taken)
            if first + s.act_words > len(fed):
                raise ValueError(f"{s.problem.name}: loads {s.act_words} words from the feedback but earlier "
                                 f"commands sent only {len(fed) - first} more")
            writes = _loaded_at(decide, np.asarray(fed[first:first + s.act_words]) + FEEDBACK_LAG)
            act_writes = writes
            taken.extend(int(w) for w in writes)
            start_written = int(writes[s.start_words - 1]) if s.start_words else decide
            params_done = decide + s.param_words
            if arrivals is not None and s.param_words:
                params_in = _loaded_at(decide, take_words("params", s.param_words))
                params_done = int(params_in[-1])
                if record is not None:
                    record["params"].extend(int(w) for w in params_in)
                    record["params_earliest"].extend(decide + 1 + k for k in range(len(params_in)))
            handoff = max(start_written, params_done) + LOAD_HANDOFF
            loader_free = max(int(writes[-1]) if len(writes) else decide, params_done) + LOAD_HANDOFF
        elif arrivals is not None and ((s.load_acts and s.act_source != "feedback") or s.param_words):
            # Words offered by the system's DMA channels: each written when it is there and the loader is.
            act_times = take_words("acts", s.act_words) if s.load_acts else np.zeros(0, dtype=np.int64)
            param_times = take_words("params", s.param_words) if s.param_words else np.zeros(0, dtype=np.int64)
            writes = _loaded_at(decide, act_times)
            act_writes = writes if s.load_acts else None
            params_in = _loaded_at(decide, param_times)
            params_done = int(params_in[-1]) if len(params_in) else decide
            start_written = int(writes[s.start_words - 1]) if s.load_acts and s.start_words else decide
            handoff = max(start_written, params_done) + LOAD_HANDOFF
            loader_free = max(int(writes[-1]) if len(writes) else decide, params_done) + LOAD_HANDOFF
            if record is not None:
                record["acts"].extend(int(w) for w in writes)
                record["params"].extend(int(w) for w in params_in)
                # The loader takes each word from decide + 1 + k on, as soon as it is there.
                record["acts_earliest"].extend(decide + 1 + k for k in range(len(writes)))
                record["params_earliest"].extend(decide + 1 + k for k in range(len(params_in)))
        elif s.load_acts and acts_after and acts_after[index]:
            # The host sends these words once it has the `out` beats they are made from: one per cycle from
            # the cycle after the last of them.
            need = acts_after[index]
            if need > len(out_times):
                raise ValueError(f"{s.problem.name}: its activations wait for {need} output beats, but only "
                                 f"{len(out_times)} leave before it")
            gate = out_times[need - 1] + HOST_TURNAROUND
            written = lambda i: max(decide + 1 + i, gate + i)      # noqa: E731
            start_written = written(s.start_words - 1) if s.start_words else decide
            handoff = max(start_written, decide + s.param_words) + LOAD_HANDOFF
            loader_free = max(written(s.act_words - 1), decide + s.param_words) + LOAD_HANDOFF
        elif s.load_acts or s.param_words:
            # Activations and parameters load side by side; the command is handed on once its parameters and
            # its first start_words activations are in, and the loader is free when all are.
            handoff = decide + max(s.start_words, s.param_words) + LOAD_HANDOFF
            loader_free = decide + max(s.act_words if s.load_acts else 0, s.param_words) + LOAD_HANDOFF
        else:
            handoff = decide + NO_LOAD_HANDOFF
            loader_free = decide + 1
        if record is not None:
            record["cfg"].append(accept)
        engine = "mv" if s.dataflow == "matrix_vector" else "array"
        take = max(handoff, compute_idle)
        if both:   # the engines take turns: the other one must have drained
            take = max(take, drained["array" if engine == "mv" else "mv"])
        if s.acc_emit and spec.postops and len(emit_pops) >= EMIT_QUEUE_DEPTH:
            take = max(take, emit_pops[-EMIT_QUEUE_DEPTH] + 1)
        handoff_clear = take + 1
        if s.sparse_words is not None:
            # One word per cycle from the cycle after START; "last slot": the last beat's write (done follows).
            first_slot = take + TAKE_TO_FIRST_SLOT - 1
            if sparse_after and sparse_after[index]:
                # Words the host makes from `out` beats: word i enters the sparse FIFO at gate + offset + i (the
                # FIFO has room: the engine has not popped this command's words yet, and it holds more than the
                # latency) and can be popped SPARSE_WRITE_TO_POP cycles later, so every pop moves by one max.
                need, offset = sparse_after[index]
                if need > len(out_times):
                    raise ValueError(f"{s.problem.name}: its sparse words wait for {need} output beats, but only "
                                     f"{len(out_times)} leave before it")
                first_slot = max(first_slot, out_times[need - 1] + HOST_TURNAROUND + offset + SPARSE_WRITE_TO_POP)
            last_slot = first_slot + s.sparse_words - 1 + SparseEngine.EMIT + s.m_folds - 1
            if arrivals is not None:
                inexact(f"{s.problem.name}: the sparse engine is not modelled with arrivals")
        elif s.dataflow == "matrix_vector":
            # No pre-slot: one weight word per cycle from the cycle after START.
            first_slot = take + TAKE_TO_FIRST_SLOT - 1
            last_slot = first_slot + s.mv_slots - 1
            port = "mv_weights" if spec.mv_engine else "weights"
            ready_at = None
            if arrivals is not None and f"{port}_ready" in arrivals:
                first = used[port]
                used[port] += s.weight_words
                ready_at = np.asarray(arrivals[f"{port}_ready"][first:first + s.weight_words], dtype=np.int64)
            if ready_at is not None:
                # Slot j (for mf: for n: for kg) pops weight word j // k when j % k == 0 (k = slots_per_word:
                # 2 for packed int4 words, 4 for int2)
                # and reads activation word kg * plane + n; it waits, the engine frozen, until the word can be
                # popped and (the interlock) the activation word was written in an earlier cycle.
                j = np.arange(s.mv_slots)
                need = np.full(s.mv_slots, -1, dtype=np.int64)
                word, popping = j // s.slots_per_word, j % s.slots_per_word == 0
                need[popping] = ready_at[word[popping]]
                earliest = first_slot + j
                if act_writes is not None and len(act_writes):
                    kg, rest = j % s.c_groups, j // s.c_groups
                    n = rest % s.pixels
                    addr = kg * s.problem.H * s.problem.W + n
                    read_ok = act_writes[np.minimum(addr, len(act_writes) - 1)] + 1
                    need = np.maximum(need, read_ok)
                    earliest = np.maximum(earliest, read_ok)
                pops = _loaded_at(first_slot - 1, need)
                if record is not None:
                    # Each pop as soon as its word can be popped, from the slot's arrival-free earliest on and
                    # (`gap`) a slot after the previous pop.
                    slots_popping = np.flatnonzero(popping)
                    record[f"{port}_earliest"].extend(int(earliest[k]) for k in slots_popping)
                    record[f"{port}_gap"].extend([0] + [int(g) for g in np.diff(slots_popping)])
                mv_stalls = sorted(set(range(first_slot, int(pops[-1]) + 1)) - set(int(p) for p in pops))
                mv_modelled = True
                last_slot = int(pops[-1])
                stall_log["mv"].extend((c, index) for c in mv_stalls)
                if record is not None:
                    record[port].extend(int(p) for p, pop in zip(pops, popping) if pop)
            elif record is not None:
                # Word t is popped by slot k*t (k = slots_per_word).
                k = s.slots_per_word
                record[port].extend(first_slot + k * t for t in range(s.weight_words))
                record[f"{port}_earliest"].extend(first_slot + k * t for t in range(s.weight_words))
                record[f"{port}_gap"].extend([0] + [k] * (s.weight_words - 1))
            drained["mv"] = last_slot + MV_DRAIN
        elif s.dataflow == "output_stationary":
            # No pre-slot; tile after tile, `fold_period` slots each, the reduction in the last K.
            first_slot = take + TAKE_TO_FIRST_SLOT - 1
            last_slot = first_slot + s.os_slots - 1
            if arrivals is not None:
                inexact(f"{s.problem.name}: the output-stationary array's weight pops are not modelled")
                used["weights"] += s.weight_words
                if record is not None:
                    record["weights"].extend(first_slot + j for j in range(s.weight_words))
                    record["weights_earliest"].extend(first_slot + j for j in range(s.weight_words))
                    record["weights_gap"].extend([0] * s.weight_words)
        else:
            first_slot = take + TAKE_TO_FIRST_SLOT + QUEUED_SLOT
            last_slot = first_slot + s.folds * s.fold_period - 1          # bubbles of the last fold included
            # Drained once the last real slot has left the control line and the queue has issued the
            # bubbles after it.
            last_valid = first_slot + (s.folds - 1) * s.fold_period + s.pixels - 1
            drained["array"] = max(last_valid + array_latency(rows=spec.rows, cols=spec.cols) + ARRAY_DRAIN,
                                   last_slot + QUEUE_DRAINED)
            # Weight pops: `rows` words from the pre-slot, and from the last slot of every fold but the last.
            fold, row = np.divmod(np.arange(s.weight_words), spec.rows)
            pop_slot = fold * s.fold_period - 1 + row          # slot index (-1: the pre-slot)
            ws_issue = None
            if arrivals is not None and "weights_ready" in arrivals:
                first = used["weights"]
                used["weights"] += s.weight_words
                ready_at = np.asarray(arrivals["weights_ready"][first:first + s.weight_words], dtype=np.int64)
                # Every slot (the pre-slot first) issues one per cycle, each once its weight word can be popped
                # and (the interlock) the activation word it reads was written CHECK_LAG cycles before.
                count = s.folds * s.fold_period + 1
                need = np.full(count, -1, dtype=np.int64)
                need_acts = None
                if act_writes is not None and len(act_writes):
                    reads = [(k + 1, slot.act_addr) for k, slot in enumerate(s.slots())
                             if slot.valid and not slot.padded]
                    if reads:
                        at, addr = np.asarray(reads).T
                        np.maximum.at(need, at, act_writes[np.minimum(addr, len(act_writes) - 1)] + SlotQueue.CHECK_LAG)
                        need_acts = need.copy()
                act_only = _loaded_at(first_slot - 2, np.where(need_acts >= 0, need_acts, -1)) \
                    if need_acts is not None else first_slot - 1 + np.arange(count)
                np.maximum.at(need, pop_slot + 1, ready_at)
                ws_issue = _loaded_at(first_slot - 2, need)          # ws_issue[k]: slot k - 1
                stalled = sorted(set(range(first_slot - 1, int(ws_issue[-1]) + 1)) - set(int(p) for p in ws_issue))
                # The pipeline after the issue stage takes the enable a cycle late.
                ws_stalls = [c + 1 for c in stalled]
                stall_log["array"].extend((c, index) for c in ws_stalls)
                last_slot = int(ws_issue[-1])
                last_valid = int(ws_issue[(s.folds - 1) * s.fold_period + s.pixels])
                all_stalls = _known(stall_log, _stalls, "array", stall_cache)
                drained["array"] = max(int(_mv_emerge([last_valid], all_stalls,
                                                      array_latency(rows=spec.rows, cols=spec.cols) + ARRAY_DRAIN)[0]),
                                       last_slot + QUEUE_DRAINED)
                pops = ws_issue[pop_slot + 1]
                earliest = act_only[pop_slot + 1]
            else:
                pops = earliest = first_slot + pop_slot
            if record is not None:
                record["weights"].extend(int(p) for p in pops)
                record["weights_earliest"].extend(int(p) for p in earliest)
                record["weights_gap"].extend([0] + [int(g) for g in np.diff(pop_slot)])
        # A narrow post-op chain: the beats pass its FIFO, and a slot that finishes one waits for room.
        entries, held = fifo.run(s, first_slot) if (fifo is not None and s.acc_emit) else (None, 0)
        if entries is not None and arrivals is not None:
            inexact(f"{s.problem.name}: a narrow post-op chain (postop_lanes < cols) is not modelled with arrivals")
        if held:
            if s.sparse_words is not None:
                last_slot += held
            elif s.dataflow == "matrix_vector":
                last_slot += held
                drained["mv"] = last_slot + MV_DRAIN
            elif s.dataflow == "weight_stationary":
                last_slot += held
                # Drained once the last real slot has left the control line and the queue has issued the
                # bubbles after it.
                last_valid = first_slot + (s.folds - 1) * s.fold_period + s.pixels - 1 + held
                drained["array"] = max(last_valid + array_latency(rows=spec.rows, cols=spec.cols) + ARRAY_DRAIN,
                                       last_slot + QUEUE_DRAINED)
        compute_idle = last_slot + DONE_TO_IDLE
        if s.release:
            bank_free[s.act_bank] = last_slot + DONE_TO_IDLE
        out_time = None
        if s.acc_emit:
            chain = _chain_times(s, first_slot)
            last_computed = None
            if entries is not None:
                # Each beat's last group enters the chain `groups - 1` cycles after its first.
                mf, pixel = _emitted_pixels(s)
                last_group = entries + spec.postop_groups - 1
                chain = last_group[mf * s.pixels + pixel]
                last_computed = int(last_group[-1])
            elif s.dataflow == "matrix_vector" and mv_modelled:
                mf, pixel = _emitted_pixels(s)
                slot_index = (mf * s.pixels + pixel) * s.c_groups + s.c_groups - 1
                all_stalls = _known(stall_log, _stalls, "mv", stall_cache)
                chain = _mv_emerge([int(pops[j]) for j in slot_index], all_stalls, MatrixVectorEngine.LATENCY) \
                    + OUTPUT_FIFO
                windows.append(("mv", index, int(pops[0]), int(chain[-1])))
            elif s.dataflow == "weight_stationary" and ws_issue is not None and s.sparse_words is None:
                mf, pixel = _emitted_pixels(s)
                slot_index = ((mf + 1) * s.k_folds - 1) * s.fold_period + pixel
                all_stalls = _known(stall_log, _stalls, "array", stall_cache)
                depth = _to_chain(spec) - OUTPUT_FIFO
                chain = _mv_emerge([int(ws_issue[j + 1]) for j in slot_index], all_stalls, depth) + OUTPUT_FIFO
                last_index = (s.folds - 1) * s.fold_period + s.pixels - 1
                last_computed = int(_mv_emerge([int(ws_issue[last_index + 1])], all_stalls, depth)[0]) + OUTPUT_FIFO
                windows.append(("array", index, int(ws_issue[0]), int(chain[-1])))
            if entries is not None:
                last_beat_in_chain = last_computed
            elif s.dataflow == "matrix_vector" or s.postops.pool == "none":
                last_beat_in_chain = int(chain[-1])
            elif last_computed is not None:
                last_beat_in_chain = last_computed
            else:   # the last pixel computed, not the last one kept
                last_beat_in_chain = int(_chain_times_last_pixel(s, first_slot))
            # The chain frees the parameter bank, and the emit queue the command's settings, when the command's
            # last beat enters it.
            if s.param_words:
                param_free[s.param_bank] = last_beat_in_chain + 1
            if spec.postops:
                emit_pops.append(last_beat_in_chain)
            leave = chain + postops_latency(spec)
            if s.out_dest == "feedback":
                fed.extend(int(t) for t in leave)
            else:
                last_out = int(leave[-1])
                out_times.extend(int(t) for t in leave)
                if record is not None:
                    record["out"].extend(int(t) for t in leave)
            out_time = int(leave[-1])
        if index == 0:   # not `s is schedules[0]`: a command may run twice
            first_accept = accept
        events.append(dict(command=index, layer=s.problem.name, engine=s.dataflow, accept=accept, decide=decide,
                           handoff=handoff, take=take, first_slot=first_slot, last_slot=last_slot,
                           last_beat=out_time))
    if last_out is None:
        raise ValueError("no command emits outputs to `out`")
    # A stall of a later command freezes what an earlier one still has in the same pipeline: solved again with
    # every stall known from the start, until they no longer change.
    known = {engine: sorted(set(c for c, _ in log)) for engine, log in stall_log.items()}
    previous = {engine: list((_stalls or {}).get(engine, [])) for engine in known}
    if arrivals is not None and known != previous:
        if any(c <= end for engine, command, begin, end in windows
               for c, k in stall_log[engine] if k > command):
            depth = (_stalls or {}).get("depth", 0)
            if depth < 50:
                if record is not None:
                    for key in record:
                        record[key] = []
                return predict_commands(schedules, name=name, macs=macs, timeline=timeline, arrivals=arrivals,
                                        record=record, _stalls={**known, "depth": depth + 1})
            inexact("the pipelines' stalls did not settle")
    _check_feedback_room(spec, fed, taken)
    if out_cycles is not None:
        out_cycles.extend(t - first_accept for t in out_times)
    if timeline is not None:
        timeline.extend({k: (v - first_accept if isinstance(v, int) and k not in ("command",) else v)
                         for k, v in event.items()} for event in events)
    return CycleEstimate(layer=name or schedules[0].problem.name, cycles=last_out - first_accept,
                         commands=len(schedules), macs=macs if macs is not None else
                         sum(s.macs for s in schedules), pes=spec.pes)


def _chain_times_last_pixel(s, first_slot):
    """Chain entry of the command's last computed pixel (pooling may drop it from the output)."""
    spec = s.spec
    pixel, mf = s.pixels - 1, s.m_folds - 1
    if s.dataflow == "output_stationary":
        tile, row = divmod(pixel, spec.rows)
        to_fifo = BUFFER_READ + output_latency(cols=spec.cols) + OUTPUT_FIFO
        return first_slot + (mf * s.pixel_tiles + tile + 1) * s.fold_period - 1 + row + to_fifo
    return first_slot + (s.folds - 1) * s.fold_period + pixel + _to_chain(spec)


def _check_feedback_room(spec, fed, taken):
    """Raise `FeedbackOverflowError` if the feedback FIFO would ever hold more beats than its depth (then it
    would refuse one and stall the chain, which the model does not follow)."""
    if not fed:
        return
    if len(taken) != len(fed):
        raise ValueError(f"the commands send {len(fed)} beats to the on-chip feedback but load {len(taken)}")
    fed, taken = np.asarray(fed), np.asarray(taken)      # both in order: beat i is taken after it is sent
    # After the handshake of beat i, beats 0..i are in and those taken by then are out.
    held = np.arange(1, len(fed) + 1) - np.searchsorted(taken, fed, side="right")
    worst = int(held.max())
    if worst > spec.feedback_depth:
        raise FeedbackOverflowError(
            f"the on-chip feedback would hold {worst} beats at once, more than its feedback_depth="
            f"{spec.feedback_depth}: the command that loads them starts too late; build the accelerator with "
            f"feedback_depth >= {worst}, or send this output through `out`")


def predict(schedule):
    """One command on an idle accelerator."""
    return predict_commands([schedule])


def predict_plan(plan):
    """A tiled layer (`hwgen.tiling.LayerPlan`): its commands back to back."""
    return predict_commands(plan.commands, name=plan.problem.name, macs=plan.macs)


def single_command_cycles(*, start_words, folds, fold_period, pixels, rows, cols, postops=True, groups=1):
    """The closed form of `predict` for one command without pooling (documented in the README).

    ``groups``: `AcceleratorSpec.postop_groups`, the cycles a beat takes through the post-op chain. With more
    than one, the last m-fold's ``pixels`` beats pass the chain one per ``groups`` cycles behind its FIFO
    (`BlockRAMHeadFIFO.WRITE_TO_HEAD` = 3 instead of the full-width chain's `OUTPUT_FIFO` = 2) and the chain's
    latency is one more (`PostOpPipeline.latency_for`: its pooling pair takes two stages); the form holds
    when that FIFO is empty as they start, e.g. with one m-fold (a later m-fold's beats may still wait for an
    earlier one's otherwise: `predict` follows them)."""
    to_chain = BlockRAMHeadFIFO.WRITE_TO_HEAD if postops and groups > 1 else OUTPUT_FIFO
    beats = (groups if postops else 1) * pixels - 1
    return (start_words + TAKE_TO_DECIDE + DECIDE + LOAD_HANDOFF + TAKE_TO_FIRST_SLOT + QUEUED_SLOT
            + (folds - 1) * fold_period + beats
            + BUFFER_READ + array_latency(rows=rows, cols=cols) + Accumulator.LATENCY + to_chain
            + (POSTOPS + int(groups > 1) if postops else 0))   # a narrow chain's pair takes two stages
