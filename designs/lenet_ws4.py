"""The default design: a 4x4 weight-stationary accelerator running LeNet-5's layers as int8 inference.

Every layer's int32 sums are biased, requantized to int8 (per-channel multiplier and rounding shift) and
passed through ReLU on their way out; the conv layers are max-pooled 2x2 in the same pass, so each layer's
output is the int8 tensor the next one consumes. Small enough that `hwgen sim lenet_ws4` proves every layer
on Icarus in seconds.
"""

from hwgen import AcceleratorSpec, Design, Layer, PostOps, conv2d, linear

conv_post = PostOps(bias=True, requant=True, relu=True, pool="max")
fc_post = PostOps(bias=True, requant=True, relu=True)

design = Design(
    name="lenet_ws4",
    spec=AcceleratorSpec(rows=4, cols=4, act_type="int8", weight_type="int8", acc_type="int32",
                         act_buffer_bytes=8 * 1024, weight_buffer_bytes=1024, acc_buffer_bytes=16 * 784,
                         max_out_channels=128, max_pool_width=28, name="lenet_ws4"),
    layers=(
        Layer(conv2d(name="conv1", in_channels=1, out_channels=6, height=28, width=28, kernel=5, padding=2),
              postops=conv_post),
        Layer(conv2d(name="conv2", in_channels=6, out_channels=16, height=14, width=14, kernel=5),
              postops=conv_post),
        Layer(linear(name="fc1", in_features=400, out_features=120), postops=fc_post),
        Layer(linear(name="fc2", in_features=120, out_features=84), postops=fc_post),
        Layer(linear(name="fc3", in_features=84, out_features=10), postops=PostOps(bias=True, requant=True)),
    ),
)
