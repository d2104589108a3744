"""A matrix-vector engine (8 lanes x 8-wide dot products, the MACs of an 8x8 array) running a batch-1 MLP.

On a systolic array a batch-1 fully connected layer keeps one row of PEs busy per fold; this engine is bound
only by the weight stream (one 64-weight word per cycle), so it runs at the weight-bandwidth roof.
"""

from hwgen import AcceleratorSpec, Design, Layer, PostOps, linear

hidden = PostOps(bias=True, requant=True, relu=True)

design = Design(
    name="mlp_mv",
    spec=AcceleratorSpec(rows=8, cols=8, dataflow="matrix_vector", act_type="int8", weight_type="int8",
                         acc_type="int32", act_buffer_bytes=2 * 1024, weight_buffer_bytes=4 * 1024,
                         acc_buffer_bytes=1024, max_out_channels=256, name="mlp_mv"),
    layers=(
        Layer(linear(name="fc1", in_features=256, out_features=128), postops=hidden),
        Layer(linear(name="fc2", in_features=128, out_features=64), postops=hidden),
        Layer(linear(name="fc3", in_features=64, out_features=10), postops=PostOps(bias=True, requant=True)),
    ),
)
