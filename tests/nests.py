"""Loop nests shared by the tests: written the way users write them."""

from hwgen.dsl import loop_nest, tensor


def hwc_conv(C, M, H, W_, R, S, sh, sw, ph, pw):
    """A conv written TensorFlow-style: I[h, w, c], W[r, s, c, m], O[e, f, m], loops in a scrambled order."""
    E = (H + 2 * ph - R) // sh + 1
    F = (W_ + 2 * pw - S) // sw + 1

    @loop_nest(name="conv")
    def conv(I: tensor(H, W_, C), W: tensor(R, S, C, M), O: tensor(E, F, M)):
        for e in range(E):
            for r in range(R):
                for f in range(F):
                    for c in range(C):
                        for s in range(S):
                            for m in range(M):
                                O[e, f, m] += W[r, s, c, m] * I[e * sh + r - ph, f * sw + s - pw, c]
    return conv


def larger_input_conv():
    """A 1-D-kernel conv whose declared 17-row input is one row larger than stride 2, pad 1, 3 taps read."""
    @loop_nest
    def conv(I: tensor(2, 17, 4), W, O):
        for m in range(3):
            for c in range(2):
                for e in range(8):
                    for f in range(4):
                        for r in range(3):
                            O[m, e, f] += I[c, 2 * e + r - 1, f] * W[m, c, r]
    return conv
