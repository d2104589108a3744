"""The accelerator as a system on a memory bus, host side: the DRAM layout of streams (`layout`), the DRAM image
of a compiled network with its program of DMA descriptors and the bytes a run must leave (`image`), and the
DRAM-aware cycle model (`dram_model`). The hardware is in `hwgen.hw` (`axi`, `skid`, `gearbox`, `dma`, and
`system`: the register file and command processor around the accelerator)."""
