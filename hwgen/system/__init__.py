"""The accelerator as a system on a memory bus, host side: the DRAM layout of streams (`layout`), the program
format and its assembler, packer and golden interpreter (`isa`, `program`), the register map's driver view, and
the DMA cycle model (`dma_model`). The hardware is in `hwgen.hw` (`axi`, `gearbox`, `dma`, `regs`, `cmdproc`,
`system`)."""
