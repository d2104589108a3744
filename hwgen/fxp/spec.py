"""The validated description of one fixed-point engine: the single source of truth for its hardware
(`hwgen.hw.fxp_engine`), its command word (`hwgen.fxp.commands`), its golden model (`hwgen.fxp.machine`) and its
cycle model (`hwgen.fxp.perf`)."""

from dataclasses import asdict, dataclass

from ..errors import MappingError

__all__ = ["FxpSpec", "WORD_BITS", "LR_FRAC"]

WORD_BITS = 16        # every stored value: weights, activations, gradients, LSTM state
LR_FRAC = 16          # the update's learning rate is lr_mult / 2**LR_FRAC


def _positive(value, what, fix):
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise MappingError(f"{what} must be a positive integer, not {value!r}; {fix}")
    return value


@dataclass(frozen=True)
class FxpSpec:
    """A ``size`` x ``size`` grid of 16 x 16-bit multipliers with a weight memory of ``weight_words`` tiles
    (``size`` x ``size`` words each) and a vector memory of ``vector_words`` words (``size`` 16-bit lanes each).

    The grid works on one stored weight tile per cycle in one of three ways: row sums (``W @ x``, the forward
    pass and the LSTM gates), column sums (``W.T @ g``, the input gradient: the same tile, summed the other way,
    so W is never transposed) and, with ``training``, per-element products accumulated over a batch (the outer
    product ``g a^T`` of the weight gradient) followed by the SGD update of the tile in place.

    ``frac_bits``: fractional bits of every 16-bit value (Q(16 - frac).frac). ``stochastic``: build the LFSRs
    that round stochastically (one per output lane and, with ``training``, one per tile element), seeded from
    ``seed``; a command picks nearest or stochastic rounding. ``lstm``: the LSTM cell after the grid (sigmoid and
    tanh tables of ``2**segment_bits`` segments, a cell-state memory of ``cell_words`` words of ``size / 4``
    lanes) and the weight stream that feeds the grid a tile per cycle, each step of the sequence.
    """
    size: int = 8
    frac_bits: int = 14
    acc_bits: int = 48
    vector_words: int = 1024
    weight_words: int = 256
    max_batch: int = 16
    max_steps: int = 64
    training: bool = False
    stochastic: bool = False
    seed: int = 1
    lstm: bool = False
    cell_words: int = 256
    segment_bits: int = 8
    weight_fifo_depth: int = 16
    name: str = "hwgen_fxp"

    def __post_init__(self):
        _positive(self.size, "size", "give the grid's side, e.g. size=8")
        if self.size < 2 or self.size > 32:
            raise MappingError(f"size={self.size}: the grid is 2x2 to 32x32 multipliers")
        if not isinstance(self.frac_bits, int) or not 1 <= self.frac_bits <= 14:
            raise MappingError(f"frac_bits={self.frac_bits!r}: a 16-bit word keeps 1 to 14 fractional bits "
                               f"(and at least one integer bit beside the sign)")
        least = 2 * WORD_BITS + self.size.bit_length() + 1
        if not isinstance(self.acc_bits, int) or not least <= self.acc_bits <= 64:
            raise MappingError(f"acc_bits={self.acc_bits!r}: the accumulator must hold the sum of a tile row of "
                               f"products and then some (at least {least} bits, at most 64; each command checks "
                               f"its own reduction)")
        for name in ("vector_words", "weight_words", "max_batch", "max_steps", "cell_words",
                     "weight_fifo_depth"):
            _positive(getattr(self, name), name, "give a size in words (or samples / steps)")
        if self.weight_fifo_depth < 2:
            raise MappingError("weight_fifo_depth must be at least 2 words")
        for flag in ("training", "stochastic", "lstm"):
            if not isinstance(getattr(self, flag), bool):
                raise MappingError(f"{flag} must be True or False, not {getattr(self, flag)!r}")
        if not isinstance(self.seed, int) or not 0 <= self.seed < 1 << 32:
            raise MappingError(f"seed={self.seed!r} must be a 32-bit unsigned integer")
        if self.lstm:
            if self.size % 4:
                raise MappingError(f"lstm=True puts the four gates of size/4 hidden units in one output word: "
                                   f"size must be a multiple of 4, not {self.size}")
            if not 2 <= self.segment_bits <= 12:
                raise MappingError(f"segment_bits={self.segment_bits!r} must be 2 to 12")
            if self.frac_bits > 13:
                raise MappingError(f"lstm=True needs gate pre-activations of a few units: frac_bits="
                                   f"{self.frac_bits} leaves a range of +-{2 ** (15 - self.frac_bits)}; use "
                                   f"frac_bits <= 12 (Q3.12 holds +-8, where sigmoid and tanh have saturated)")
        if not self.name.isidentifier():
            raise MappingError(f"name {self.name!r} must be a valid identifier (it names the Verilog module)")

    # Derived ------------------------------------------------------------------------------------------------

    @property
    def lanes(self):
        return self.size

    @property
    def vector_bits(self):
        return self.size * WORD_BITS

    @property
    def tile_bits(self):
        return self.size * self.size * WORD_BITS

    @property
    def max_reduction_blocks(self):
        """The most tiles one output may sum over: the worst case (every product -2**15 * -2**15, plus a bias)
        stays inside the accumulator."""
        return ((1 << (self.acc_bits - 1)) - (1 << (2 * WORD_BITS - 2))) // (self.size << (2 * WORD_BITS - 2))

    @property
    def update_acc_bits(self):
        """The per-element accumulator of the weight gradient: a product (31 bits and sign) summed over a batch."""
        return 2 * WORD_BITS + max(self.max_batch - 1, 1).bit_length()

    @property
    def field_bits(self):
        """One width for every address and count of the command word."""
        largest = max(self.vector_words, self.weight_words, self.cell_words, self.max_batch, self.max_steps,
                      self.size, 4) + 1
        return largest.bit_length()

    @property
    def cell_lanes(self):
        return self.size // 4

    def to_dict(self):
        data = asdict(self)
        data.update(lanes=self.lanes, vector_bits=self.vector_bits, tile_bits=self.tile_bits)
        return data

    @classmethod
    def from_dict(cls, data):
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in names})
