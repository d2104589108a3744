"""Which FPGA family the hardware is elaborated for: the few blocks that have a device primitive ask here.

Elaboration is target-independent except for leaf primitives whose inferred form costs Fmax on a device (see
`multiplier` and `bram`): they instantiate the device cell when `family(platform)` names its family and an
equivalent Amaranth description otherwise (simulation, Verilog for any tool, iCE40, where Yosys infers the
cells). Both forms have the same ports and the same cycle behaviour, so the cycle model holds for both.
iCE40 has no primitives here, but a block may choose its form by it (`wide_multiplier`: one ``*`` that Yosys
tiles over SB_MAC16, instead of 18-bit tiles).

An Amaranth vendor platform (e.g. amaranth-boards' ULX3S, a ``LatticePlatform``) carries its family; for
out-of-context synthesis and for simulating the device form, pass ``Target("ecp5")`` (or ``Target("ice40")``)
as the platform. A
platform with ``multiplier_cells = False`` gets no multiplier cells (the FPGA flow's LUT-multiplier fallback);
one with ``pe_multiplier_cells = N`` lets only N of the array's PEs use the hard multiplier and builds the rest
in logic (the fallback for arrays with more PEs than the device has multipliers: the rest stay hard).
Where the array's products go to hard cells, two neighbouring PEs whose products are narrow enough share one
(`pe_pair`; ``pair_products`` turns that off, or on for the generic form).

A platform may also carry a `library.ModuleLibrary` (``Target(family, library=...)``, ``family=None`` for the
generic form): blocks of many identical components (the array's PEs) then instantiate one shared module
instead of elaborating every copy (`hwgen.verilog.generate` does this).
"""

from dataclasses import dataclass, field

__all__ = ["FAMILIES", "Target", "family", "multiplier_cells", "pe_multiplier_cells", "pair_operand_bits",
           "module_library"]

FAMILIES = ("ecp5", "ice40")     # families the hardware knows (names lower-case: Amaranth says "iCE40")


@dataclass(frozen=True)
class Target:
    """Stands in for a vendor platform when elaborating for ``family`` outside a board build (``None``: the
    generic form)."""
    family: str | None
    multiplier_cells: bool = True
    library: object = field(default=None, compare=False)    # a `library.ModuleLibrary`, or None
    pe_multiplier_cells: int | None = None                  # the array's PEs on hard multipliers (None: all)
    pair_products: bool | None = None       # two narrow PE products per multiplier (None: on a family with cells)

    def __post_init__(self):
        cells = self.pe_multiplier_cells
        if cells is not None and (not isinstance(cells, int) or isinstance(cells, bool) or cells < 0):
            raise ValueError(f"pe_multiplier_cells must be a count of PEs >= 0 or None (all), not {cells!r}")
        if self.pair_products not in (None, True, False):
            raise ValueError(f"pair_products must be True, False or None (the family's default), not "
                             f"{self.pair_products!r}")
        if self.family is not None and self.family not in FAMILIES:
            raise ValueError(f"no hardware forms for FPGA family {self.family!r}; choose one of {FAMILIES} "
                             f"(or None for the generic form)")


def family(platform):
    """The family of ``platform`` if the hardware knows it (see `FAMILIES`), or ``None`` for the generic form."""
    name = getattr(platform, "family", None)
    name = name.lower() if isinstance(name, str) else None
    return name if name in FAMILIES else None


def multiplier_cells(platform):
    """Whether multipliers become the device's hard multiplier cells under ``platform``."""
    return family(platform) is not None and bool(getattr(platform, "multiplier_cells", True))


def pe_multiplier_cells(platform):
    """How many of an array's PEs multiply on a hard cell under ``platform`` (the others in logic), or ``None``
    for all of them."""
    cells = getattr(platform, "pe_multiplier_cells", None)
    return cells if isinstance(cells, int) and not isinstance(cells, bool) else None


# Signed operand bits of each family's hard multiplier: MULT18X18D, SB_MAC16; the generic form's `*` (Yosys
# infers a cell of the family it maps to) is paired only when asked (``Target(None, pair_products=True)``).
_OPERAND_BITS = {"ecp5": 18, "ice40": 16, None: 18}


def pair_operand_bits(platform):
    """The operand width of the hard multiplier that two neighbouring PEs share (`pe_pair.PackedPEPair`) when
    their product types allow, or ``None`` when PEs are not paired under ``platform``.

    Pairing is on by default wherever the array's products go to hard multiplier cells (`multiplier_cells`), and
    can be set either way with the platform's ``pair_products`` (``Target(..., pair_products=...)``)."""
    asked = getattr(platform, "pair_products", None)
    on = multiplier_cells(platform) if asked is None else bool(asked)
    return _OPERAND_BITS[family(platform)] if on else None


def module_library(platform):
    """The `library.ModuleLibrary` that ``platform`` carries, or ``None`` (every component its own module)."""
    from .library import ModuleLibrary
    library = getattr(platform, "library", None)
    return library if isinstance(library, ModuleLibrary) else None
