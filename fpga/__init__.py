"""`hwgen.fpga` (the fpga/ folder of the repository): the open-source FPGA flow for hwgen accelerators: Yosys + nextpnr (YoWASP builds from PyPI).

* :mod:`hwgen.fpga.devices` -- device database (ECP5 LFE5U-85F CABGA381, iCE40 UP5K SG48) and tool arguments;
* :mod:`hwgen.fpga.tools` -- running YoWASP (or native) Yosys/nextpnr/packers in a build directory, with progress;
* :mod:`hwgen.fpga.reports` -- parsing Yosys ``stat -json`` and the nextpnr ``--report`` JSON into a summary;
* :mod:`hwgen.fpga.fit` -- DSP / block-RAM estimates from an :class:`~hwgen.spec.AcceleratorSpec`, fit checks;
* :mod:`hwgen.fpga.wrapper` -- the pin-light top (serial load, registered read-out) around a stream component;
* :mod:`hwgen.fpga.flow` -- ``synthesize()``: spec -> RTLIL -> netlist -> place & route -> summary;
* :mod:`hwgen.fpga.boards` -- ULX3S-85F and iCEBreaker bitstreams through ``amaranth-boards``;
* :mod:`hwgen.fpga.baselines` -- regression baselines (``fpga/baselines/*.json`` in the repository);
* :mod:`hwgen.fpga.cli` -- ``hwgen synth``.
"""

from .devices import DEVICES, Device, get_device
from .fit import FitError, FitEstimate, estimate_fit

__all__ = ["DEVICES", "Device", "get_device", "FitError", "FitEstimate", "estimate_fit"]
