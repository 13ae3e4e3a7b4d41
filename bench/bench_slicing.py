"""Where to slice the bilateral grid: at 1/4 resolution (shipped) or at full resolution, PyTorch, 640x512, 2 threads.

    .venv/bin/python bench/bench_slicing.py
"""

import torch
from ivfusion.models.student import StudentFusionNet
from ivfusion.runtime.stats import time_calls_ms
torch.set_num_threads(2)
t, v, p = torch.rand(1, 1, 512, 640), torch.rand(1, 3, 512, 640), torch.rand(1, 384)
for full in (False, True):
    net = StudentFusionNet(width=32, full_res_slicing=full).eval()
    with torch.no_grad():
        ts = time_calls_ms(lambda: net(t, v, p), runs=15, warmup=3)
    print(f"full_res_slicing={full}: median {sorted(ts)[7]:.0f} ms")
