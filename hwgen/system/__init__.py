"""The accelerator as a system on a memory bus, host side: the DRAM layout of streams (`layout`), the DRAM image
of a compiled network with its program of DMA descriptors and the bytes a run must leave (`image`), the exact
cycle model on a DRAM of fixed latency and bandwidth (`exact`), and a closed-form roofline estimate with a hard
lower bound (`dram_model`). The hardware is in `hwgen.hw` (`axi`, `skid`, `gearbox`, `dma`, and
`system`: the register file and command processor around the accelerator)."""
