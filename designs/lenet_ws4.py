"""The default design: a 4x4 weight-stationary accelerator running LeNet-5's conv and FC shapes.

Small enough that `hwgen sim lenet_ws4` proves every layer on Icarus in seconds.
"""

from hwgen import AcceleratorSpec, Design, conv2d, linear

design = Design(
    name="lenet_ws4",
    spec=AcceleratorSpec(rows=4, cols=4, act_type="int8", weight_type="int8", acc_type="int32",
                         act_buffer_bytes=4 * 1024, weight_buffer_bytes=48000, acc_buffer_bytes=16 * 784,
                         name="lenet_ws4"),
    layers=(
        conv2d(name="conv1", in_channels=1, out_channels=6, height=28, width=28, kernel=5, padding=2),
        conv2d(name="conv2", in_channels=6, out_channels=16, height=14, width=14, kernel=5),
        linear(name="fc1", in_features=400, out_features=120),
        linear(name="fc2", in_features=120, out_features=84),
        linear(name="fc3", in_features=84, out_features=10),
    ),
)
