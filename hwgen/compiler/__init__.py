"""The network compiler: a trained model in, one accelerator's program out, as named steps.

import -> quantize (the front end: `hwgen.compiler.network` and friends) -> map -> tile -> schedule -> emit
(`hwgen.compiler.program`). Each step leaves an intermediate a user can print and save.
"""

from .program import IntLayer, Program, ProgramLayer, compile_program, reference_network

__all__ = ["IntLayer", "Program", "ProgramLayer", "compile_program", "reference_network"]
