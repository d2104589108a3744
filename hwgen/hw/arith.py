"""Small arithmetic building blocks shared by the generators."""

from amaranth.hdl import Cat

__all__ = ["add_with_carry"]


def add_with_carry(a, b, carry):
    """``a + b + carry`` of two unsigned values and a one-bit carry, ``max(len(a), len(b)) + 1`` bits, as ONE
    adder: ``(2a + c) + (2b + c) = 2 (a + b + c)``, so the carry enters the chain's bottom bit and synthesis
    makes a single carry chain (a three-operand sum may become two)."""
    return (Cat(carry, a) + Cat(carry, b))[1:]
