"""An 8x8 weight-stationary convolution accelerator.

Its first layer is written as the loop nest itself; the others use the library form. All run on the same
generated hardware: one configuration word per layer.
"""

from hwgen import AcceleratorSpec, Design, Mapping, conv2d, int8, int32, loop_nest, tensor


@loop_nest
def conv3x3(I: tensor(64, 16, 16), W: tensor(64, 64, 3, 3), O: tensor(64, 16, 16)):
    for m in range(64):
        for c in range(64):
            for e in range(16):
                for f in range(16):
                    for r in range(3):
                        for s in range(3):
                            O[m, e, f] += I[c, e + r - 1, f + s - 1] * W[m, c, r, s]


design = Design(
    name="conv_ws8",
    spec=AcceleratorSpec(rows=8, cols=8, dataflow="weight_stationary", act_type=int8, weight_type=int8,
                         acc_type=int32, act_buffer_bytes=16 * 1024, weight_buffer_bytes=40 * 1024,
                         acc_buffer_bytes=8 * 1024, name="conv_ws8"),
    layers=(
        (conv3x3, Mapping(rows="c", cols="m", resident="W")),
        conv2d(name="down3x3_s2", in_channels=32, out_channels=48, height=16, width=12, kernel=3, stride=2,
               padding=1),
        conv2d(name="pointwise", in_channels=48, out_channels=24, height=8, width=6, kernel=1),
    ),
)
