"""An 8x8 weight-stationary array running fully connected layers: matrix-vector (batch 1) and
matrix-matrix (batch 4) products."""

from hwgen import AcceleratorSpec, Design, Mapping, linear, loop_nest, tensor


@loop_nest
def fc_mv(X: tensor(1, 200), W: tensor(40, 200), O: tensor(1, 40)):
    for n in range(1):
        for m in range(40):
            for k in range(200):
                O[n, m] += X[n, k] * W[m, k]


design = Design(
    name="fc_mv",
    spec=AcceleratorSpec(rows=8, cols=8, act_type="int8", weight_type="int8", acc_type="int32",
                         act_buffer_bytes=4 * 1024, weight_buffer_bytes=16 * 1024, acc_buffer_bytes=1024,
                         name="fc_mv"),
    layers=(
        (fc_mv, Mapping(rows="k", cols="m", resident="W")),
        linear(name="fc_mm_batch4", in_features=120, out_features=84, batch=4),
        linear(name="fc_out", in_features=84, out_features=10, batch=1),
    ),
)
