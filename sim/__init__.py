"""cocotb verification of generated accelerators: stream drivers, monitors, scoreboard, runner glue."""
