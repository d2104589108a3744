"""LeNet-5 as int8 inference on a 4x4 output-stationary array: the same layers as `lenet_ws4`, other dataflow.

Each PE keeps one output (row = output pixel, column = output channel) while the host-unrolled windows and the
weights stream through; the post-ops (bias, requantization, ReLU, 2x2 max pooling) run on the way out, as on
the weight-stationary design. The first layer is written as its loop nest with an explicit mapping; the
others take the default output-stationary mapping. Compare `hwgen plan lenet_os4` with `hwgen plan lenet_ws4`.
"""

from hwgen import AcceleratorSpec, Design, Layer, Mapping, PostOps, conv2d, linear, loop_nest, tensor

conv_post = PostOps(bias=True, requant=True, relu=True, pool="max")
fc_post = PostOps(bias=True, requant=True, relu=True)


@loop_nest
def conv1(I: tensor(1, 28, 28), W: tensor(6, 1, 5, 5), O: tensor(6, 28, 28)):
    for m in range(6):
        for c in range(1):
            for e in range(28):
                for f in range(28):
                    for r in range(5):
                        for s in range(5):
                            O[m, e, f] += I[c, e + r - 2, f + s - 2] * W[m, c, r, s]


design = Design(
    name="lenet_os4",
    spec=AcceleratorSpec(rows=4, cols=4, dataflow="output_stationary", act_type="int8", weight_type="int8",
                         acc_type="int32", act_buffer_bytes=8 * 1024, weight_buffer_bytes=1024,
                         acc_buffer_bytes=64, max_out_channels=128, max_pool_width=28, name="lenet_os4"),
    layers=(
        Layer(conv1, Mapping(rows="f", cols="m", resident="O", dataflow="output_stationary"), postops=conv_post),
        Layer(conv2d(name="conv2", in_channels=6, out_channels=16, height=14, width=14, kernel=5),
              postops=conv_post),
        Layer(linear(name="fc1", in_features=400, out_features=120), postops=fc_post),
        Layer(linear(name="fc2", in_features=120, out_features=84), postops=fc_post),
        Layer(linear(name="fc3", in_features=84, out_features=10), postops=PostOps(bias=True, requant=True)),
    ),
)
