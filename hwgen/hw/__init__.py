"""Amaranth hardware generators. Each module is one block; `top.AcceleratorTop` assembles them."""
