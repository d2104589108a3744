"""A 4x4 weight-stationary accelerator in floating point: bf16 activations and weights, exact products, fp32
accumulation rounded to nearest even (`hwgen.floats` states the whole numeric policy: subnormals flushed,
IEEE infinities, one canonical NaN). The layers are the same loop nests as for integers - the types live on
the spec - and the post-op chain runs in fp32: bias, a per-channel scale with the output rounded back to bf16,
ReLU and 2x2 max pooling.
"""

from hwgen import AcceleratorSpec, Design, Layer, PostOps, conv2d, linear

design = Design(
    name="bf16_ws4",
    spec=AcceleratorSpec(rows=4, cols=4, dataflow="weight_stationary", act_type="bf16", weight_type="bf16",
                         acc_type="fp32", act_buffer_bytes=4 * 1024, weight_buffer_bytes=4 * 1024,
                         acc_buffer_bytes=4 * 1024, max_out_channels=64, name="bf16_ws4"),
    layers=(
        Layer(conv2d(name="conv1", in_channels=3, out_channels=8, height=12, width=12, kernel=3, padding=1),
              postops=PostOps(bias=True, requant=True, out_type="bf16", relu=True, pool="max")),
        Layer(conv2d(name="conv2", in_channels=8, out_channels=12, height=6, width=6, kernel=3),
              postops=PostOps(bias=True, relu=True)),
        Layer(linear(name="fc", in_features=48, out_features=10), postops=PostOps(bias=True)),
    ),
)
