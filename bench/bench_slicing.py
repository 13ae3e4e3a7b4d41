"""Where to slice the bilateral grid: at 1/4 resolution (shipped) or at full resolution, PyTorch, 640x512, 2 threads.

    .venv/bin/python bench/bench_slicing.py
"""

import time, torch
from ivfusion.models.student import StudentFusionNet
torch.set_num_threads(2)
t, v, p = torch.rand(1, 1, 512, 640), torch.rand(1, 3, 512, 640), torch.rand(1, 384)
for full in (False, True):
    net = StudentFusionNet(width=32, full_res_slicing=full).eval()
    with torch.no_grad():
        for _ in range(3): net(t, v, p)
        ts = []
        for _ in range(15):
            s = time.perf_counter(); net(t, v, p); ts.append(time.perf_counter() - s)
    print(f"full_res_slicing={full}: median {sorted(ts)[7]*1e3:.0f} ms")
