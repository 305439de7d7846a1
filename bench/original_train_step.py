#!/usr/bin/env python3
"""Times the original guided-diffusion classifier training step (classifier_train.py's forward_backward_log +
MixedPrecisionTrainer.optimize, fp32) on random data, for side-by-side comparison with `train-step`.

usage: python3 bench/original_train_step.py GUIDED_DIFFUSION_CHECKOUT [--classifier_width 128] [--batch_size 16]
       [--warmup 3] [--steps 10] [--threads 2]
The checkout is openai/guided-diffusion (not part of this repository; bench/run-issue16.sh fetches it into a
temporary folder). Needs Debian's python3-torch (PyTorch 1.13) and numpy only: the script imports the model,
diffusion, schedule sampler and fp16_util modules, not dist_util/train_util (mpi4py, blobfile).
Last line: one JSON object, the same keys as train-step's where they mean the same.
"""
import argparse
import json
import os
import resource
import statistics
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("checkout")
parser.add_argument("--classifier_width", type=int, default=128)
parser.add_argument("--batch_size", type=int, default=16)
parser.add_argument("--warmup", type=int, default=3)
parser.add_argument("--steps", type=int, default=10)
parser.add_argument("--threads", type=int, default=2)
args = parser.parse_args()
sys.path.insert(0, os.path.abspath(args.checkout))
os.environ.setdefault("OPENAI_LOGDIR", os.path.join(os.environ.get("TMPDIR", "/tmp"), "gd-original-bench-log"))

import torch as th  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from guided_diffusion import logger  # noqa: E402
from guided_diffusion.fp16_util import MixedPrecisionTrainer  # noqa: E402
from guided_diffusion.resample import create_named_schedule_sampler  # noqa: E402
from guided_diffusion.script_util import (  # noqa: E402
    classifier_and_diffusion_defaults, create_classifier_and_diffusion)

th.set_num_threads(args.threads)
th.manual_seed(0)
logger.configure(format_strs=[])
flags = classifier_and_diffusion_defaults()
flags["classifier_width"] = args.classifier_width
model, diffusion = create_classifier_and_diffusion(**flags)
sampler = create_named_schedule_sampler("uniform", diffusion)
trainer = MixedPrecisionTrainer(model=model, use_fp16=False, initial_lg_loss_scale=16.0)
opt = th.optim.AdamW(trainer.master_params, lr=3e-4, weight_decay=0.0)
images = th.rand(args.batch_size, 3, 64, 64) * 2 - 1
labels = th.randint(0, 1000, (args.batch_size,))

def blas_library():
    """The BLAS this process mapped (resolved path of libblas.so.3 or an OpenBLAS), from /proc/self/maps."""
    with open("/proc/self/maps", encoding="utf-8") as maps:
        paths = {line.split()[-1] for line in maps if "blas" in line.split()[-1]}
    return sorted(os.path.realpath(p) for p in paths)


times, cpu = [], []
for i in range(args.warmup + args.steps):
    start = time.perf_counter()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    t, _ = sampler.sample(images.shape[0], "cpu")
    batch = diffusion.q_sample(images, t)
    logits = model(batch, timesteps=t)
    loss = F.cross_entropy(logits, labels, reduction="none")
    trainer.zero_grad()
    trainer.backward(loss.mean())
    trainer.optimize(opt)
    logger.dumpkvs()
    if i >= args.warmup:
        times.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_SELF)
        cpu.append((after.ru_utime - usage.ru_utime, after.ru_stime - usage.ru_stime))
    print(f"\rstep {i + 1}/{args.warmup + args.steps}: {time.perf_counter() - start:.3f} s", end="", file=sys.stderr)
print(file=sys.stderr)
print(json.dumps({
    "benchmark": "original-train-step",
    "torch": th.__version__,
    "classifier_width": args.classifier_width,
    "batch_size": args.batch_size,
    "threads": args.threads,
    "steps": args.steps,
    "median_s_per_step": round(statistics.median(times), 4),
    "min_s_per_step": round(min(times), 4),
    "images_per_s": round(args.batch_size / statistics.median(times), 2),
    "load_average_1min": os.getloadavg()[0],
    "user_cpu_s_per_step": round(statistics.mean(u for u, _ in cpu), 3),
    "system_cpu_s_per_step": round(statistics.mean(s for _, s in cpu), 3),
    # What decides the original's speed besides the model: which BLAS the libblas.so.3 alternative gives Debian's
    # torch (reference BLAS is ~6x slower than OpenBLAS) and how OpenBLAS's own threads meet torch's OpenMP ones.
    "blas": blas_library(),
    "env": {k: os.environ.get(k, "(unset)") for k in
            ("OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS", "OPENBLAS_L2_SIZE", "OMP_WAIT_POLICY", "OMP_NUM_THREADS")},
}))
