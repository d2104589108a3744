"""`hwgen.sim` (the sim/ folder of the repository): cocotb verification of generated accelerators: stream drivers, monitors, scoreboard, runner glue."""
