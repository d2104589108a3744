"""Device database: capacities of the supported FPGAs and the Yosys / nextpnr arguments that target them."""

from dataclasses import dataclass, field

__all__ = ["Device", "DEVICES", "get_device", "BlockRam"]


@dataclass(frozen=True)
class BlockRam:
    """One kind of block RAM: its name, its count and the (depth, width) shapes one block can take."""
    cell: str                    # the Yosys / nextpnr cell name, e.g. "DP16KD"
    count: int
    bits: int                    # capacity of one block in bits (with parity bits where usable)
    shapes: tuple                # ((depth, width), ...) usable for a simple dual-port memory
    single_port_only: bool = False


@dataclass(frozen=True)
class Device:
    key: str                     # the ``--device`` name
    family: str                  # "ecp5" | "ice40"
    part: str                    # vendor part number
    package: str
    luts: int                    # LUT4s
    ffs: int
    dsps: int                    # hard multipliers (MULT18X18D / SB_MAC16)
    dsp_cell: str
    dsp_max_operand_bits: int    # widest signed operand one multiplier takes
    brams: tuple                 # BlockRam kinds, preferred first
    io: int                      # user I/O pins of the package
    nextpnr: str                 # tool name without prefix, e.g. "nextpnr-ecp5"
    nextpnr_args: tuple
    synth_cmd: str               # Yosys synthesis command (without -top / -json), multipliers on DSPs
    synth_cmd_nodsp: str         # the same with every multiplier in LUTs
    packer: str                  # bitstream packer
    default_freq_mhz: float
    # Utilization keys of the nextpnr --report JSON for each summary metric.
    pnr_keys: dict = field(default_factory=dict)

    @property
    def bram_bits(self):
        return sum(b.count * b.bits for b in self.brams)


ECP5_85F = Device(
    key="ecp5-85f", family="ecp5", part="LFE5U-85F-6BG381C", package="CABGA381",
    luts=83640, ffs=83640,
    dsps=156, dsp_cell="MULT18X18D", dsp_max_operand_bits=18,
    brams=(BlockRam("DP16KD", 208, 18432,
                    shapes=((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36))),),
    io=205,
    nextpnr="nextpnr-ecp5", nextpnr_args=("--85k", "--package", "CABGA381", "--speed", "6"),
    synth_cmd="synth_ecp5", synth_cmd_nodsp="synth_ecp5 -nodsp", packer="ecppack",
    default_freq_mhz=150.0,
    pnr_keys={"lut": "TRELLIS_COMB", "ff": "TRELLIS_FF", "dsp": "MULT18X18D", "bram": "DP16KD",
              "io": "TRELLIS_IO"},
)

ICE40_UP5K = Device(
    key="ice40-up5k", family="ice40", part="iCE40UP5K-SG48", package="SG48",
    luts=5280, ffs=5280,
    dsps=8, dsp_cell="SB_MAC16", dsp_max_operand_bits=16,
    brams=(BlockRam("SB_RAM40_4K", 30, 4096, shapes=((2048, 2), (1024, 4), (512, 8), (256, 16))),
           BlockRam("SB_SPRAM256KA", 4, 262144, shapes=((16384, 16),), single_port_only=True)),
    io=39,
    nextpnr="nextpnr-ice40", nextpnr_args=("--up5k", "--package", "sg48"),
    # -dsp: without it synth_ice40 never uses the 8 SB_MAC16; -spram lets single-port memories use SPRAM.
    synth_cmd="synth_ice40 -dsp -spram", synth_cmd_nodsp="synth_ice40 -spram", packer="icepack",
    default_freq_mhz=24.0,
    pnr_keys={"lut": "ICESTORM_LC", "ff": "ICESTORM_LC", "dsp": "ICESTORM_DSP", "bram": "ICESTORM_RAM",
              "spram": "ICESTORM_SPRAM", "io": "SB_IO"},
)

DEVICES = {d.key: d for d in (ECP5_85F, ICE40_UP5K)}

_ALIASES = {"ecp5": "ecp5-85f", "lfe5u-85f": "ecp5-85f", "85f": "ecp5-85f",
            "ice40": "ice40-up5k", "up5k": "ice40-up5k", "ice40up5k": "ice40-up5k"}


def get_device(name):
    key = _ALIASES.get(name.lower(), name.lower())
    try:
        return DEVICES[key]
    except KeyError:
        raise ValueError(f"unknown device {name!r}; choose one of {', '.join(DEVICES)}") from None
