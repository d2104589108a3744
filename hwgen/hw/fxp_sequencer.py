"""The fixed-point engine's slot sequencer: loops ``t, o, r, b`` over a command, one slot per enabled cycle,
with every address the slot needs. Golden model: `hwgen.fxp.machine.slots`.

Addresses come from running offsets, no multipliers: ``o*R + r`` (the tile of a forward or update slot),
``r*O + o`` (the same matrix's tile read in the other order, backward), ``b*R + r`` (an input word of sample
``b``), ``b*O + o`` (an output word of sample ``b``; the LSTM cell address) and ``t*step_words`` (the LSTM step's
input vectors). Each command kind adds its bases to the offsets it uses (see `hwgen.fxp.commands`).

An LSTM command stops issuing after the last slot of a step until ``drained`` says the pipeline is empty (the
next step reads the hidden state this one writes), then goes on with the step after it.
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..fxp.commands import KINDS, command_layout

__all__ = ["FxpSequencer"]


def kind_is(cmd, *names):
    return sum((cmd.kind == KINDS.index(n) for n in names[1:]), cmd.kind == KINDS.index(names[0]))


class FxpSequencer(wiring.Component):
    def __init__(self, spec):
        self.spec = spec
        bits = spec.field_bits
        super().__init__({
            "cmd": In(command_layout(spec)),
            "start": In(1),            # pulse: take `cmd` (held from here to the end of the command)
            "en": In(1),               # the pipeline advances: a presented slot issues
            "drained": In(1),          # nothing in flight (for the step barrier)
            "busy": Out(1),            # slots left to issue
            "valid": Out(1),           # a slot is presented this cycle
            "step_last": Out(1),       # ... and it is the last of its LSTM step
            "o": Out(bits), "r": Out(bits), "b": Out(bits),
            "first": Out(1), "last": Out(1), "first_b": Out(1), "last_b": Out(1),
            "w_addr": Out(bits), "a_addr": Out(bits), "b_addr": Out(bits), "y_addr": Out(bits),
            "c_addr": Out(bits), "pop": Out(1), "zero_a": Out(1), "zero_c": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        spec, cmd = self.spec, self.cmd
        bits = spec.field_bits
        O, R, B, T = (Signal(bits, name=f"lim_{x}") for x in "ORBT")
        t, o, r, b = (Signal(bits, name=f"cnt_{x}") for x in "torb")
        tile_f, tile_b, br, ob, tbase = (Signal(bits + 1, name=n) for n in ("tile_f", "tile_b", "br", "ob",
                                                                                "tbase"))
        waiting = Signal()
        last_b, last_r, last_o, last_t = b == B - 1, r == R - 1, o == O - 1, t == T - 1
        issue = Signal()
        m.d.comb += [self.valid.eq(self.busy & ~waiting), issue.eq(self.valid & self.en),
                     self.step_last.eq(last_b & last_r & last_o)]

        with m.If(self.start):
            read_v, read_w = kind_is(cmd, "read_vectors"), kind_is(cmd, "read_weights")
            grid = kind_is(cmd, "read_vectors", "read_weights", "forward", "backward", "update", "lstm")
            m.d.sync += [
                O.eq(Mux(read_v | read_w, cmd.count, cmd.outer)),
                R.eq(Mux(read_v, 1, Mux(read_w, spec.size, cmd.reduce))),
                B.eq(Mux(read_v | read_w, 1, cmd.batch)),
                T.eq(Mux(kind_is(cmd, "lstm"), cmd.steps, 1)),
                t.eq(0), o.eq(0), r.eq(0), b.eq(0), tile_f.eq(0), tile_b.eq(0), br.eq(0), ob.eq(0), tbase.eq(0),
                waiting.eq(0),
                self.busy.eq(grid & Mux(read_v | read_w, cmd.count != 0, 1)),
            ]
        with m.Elif(waiting):
            with m.If(self.drained):
                m.d.sync += waiting.eq(0)
        with m.Elif(issue):
            with m.If(~last_b):
                m.d.sync += [b.eq(b + 1), br.eq(br + R), ob.eq(ob + O)]
            with m.Else():
                m.d.sync += b.eq(0)
                with m.If(~last_r):
                    m.d.sync += [r.eq(r + 1), br.eq(r + 1), ob.eq(o), tile_f.eq(tile_f + 1),
                                 tile_b.eq(tile_b + O)]
                with m.Else():
                    m.d.sync += [r.eq(0), br.eq(0), tile_f.eq(tile_f + 1)]
                    with m.If(~last_o):
                        m.d.sync += [o.eq(o + 1), ob.eq(o + 1), tile_b.eq(o + 1)]
                    with m.Else():
                        m.d.sync += [o.eq(0), ob.eq(0), tile_b.eq(0), tile_f.eq(0)]
                        with m.If(~last_t):
                            m.d.sync += [t.eq(t + 1), tbase.eq(tbase + cmd.step_words), waiting.eq(1)]
                        with m.Else():
                            m.d.sync += self.busy.eq(0)

        lstm_kind = kind_is(cmd, "lstm")
        fwd, bwd, upd = kind_is(cmd, "forward"), kind_is(cmd, "backward"), kind_is(cmd, "update")
        first_step = lstm_kind & cmd.zero_state & (t == 0)
        step_base = cmd.a_base + tbase
        m.d.comb += [
            self.o.eq(o), self.r.eq(r), self.b.eq(b),
            self.first.eq(r == 0), self.last.eq(last_r), self.first_b.eq(b == 0), self.last_b.eq(last_b),
            self.w_addr.eq(cmd.w_base + Mux(bwd, tile_b, Mux(kind_is(cmd, "read_weights"), o, tile_f))),
            self.a_addr.eq(Mux(lstm_kind, step_base + br,
                               cmd.a_base + Mux(upd, ob, Mux(kind_is(cmd, "read_vectors"), o, br)))),
            self.b_addr.eq(cmd.b_base + Mux(fwd | lstm_kind, o, Mux(bwd, ob, br))),
            # LSTM: h_t goes into word x_blocks + o // 4 of sample b's input vector of step t + 1.
            self.y_addr.eq(Mux(lstm_kind, step_base + cmd.step_words + (br - r) + cmd.x_blocks + (o >> 2),
                               cmd.y_base + ob)),
            self.c_addr.eq(ob),
            self.pop.eq(lstm_kind & (b == 0)),
            self.zero_a.eq(first_step & (r >= cmd.x_blocks)),
            self.zero_c.eq(first_step),
        ]
        return m
