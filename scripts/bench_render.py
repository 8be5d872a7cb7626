"""Benchmark the renderer's speed: ms per frame at 256x256 for the `fast` and `large` presets
next to a reference network of DH_live's size (36 GMAC per frame), measured in the same run.

    .venv/bin/python scripts/bench_render.py [--threads 2] [--json bench_render.json] [--repeats 20]

CPU: batch 1 (what streaming needs) and batch 8, on --threads threads (2 = this project's
CPU target), in fp32; and batch 1 and 2 as `infer` runs them on this CPU: in bf16 where the
CPU has it natively (`--precision auto`), by PyTorch in channels_last (`--backend torch`) and
by OpenVINO (`--backend openvino`, what auto picks on a CPU). The JSON records the CPU model
and ISA flags. CUDA, when a GPU is visible: batch
1, 32 and 128, fp32 and bf16 autocast, channels_last or not (CUDA_RUNS).
Reference features are cached and BatchNorm folded into the convolutions, as inference
runs the renderer (the reference network gets no such help).
Target (issue 4): `fast` >= 10x the reference network's throughput on the 2-core CPU.

The reference network stands in for DH_live's DINet_five_Ref at its cost: a conv encoder to
64x64x256, residual blocks there and a decoder back to 256x256, sized to 36 GMAC per frame.
It is built here, not loaded: only its arithmetic matters for a speed ratio.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import time
from pathlib import Path

import torch
from benchlib import machine
from torch import nn

from dhlive import __version__
from dhlive.device import pick_precision
from dhlive.render.model import (
    REFERENCE_CHANNELS,
    SOURCE_CHANNELS,
    Renderer,
    count_macs,
    fuse_for_inference,
    macs_of,
    preset,
)
from dhlive.render.runtime import compile_openvino

RESOLUTION = 256
# (batch, dtype, memory layout) timed on CUDA: batch 1 is streaming, 32 is what `infer` sends
CUDA_RUNS = [
    (1, "fp32", ""),
    (1, "bf16", ""),
    (32, "fp32", ""),
    (32, "bf16", ""),
    (32, "bf16", "_channels_last"),
    (128, "bf16", ""),
    (128, "bf16", "_channels_last"),
]


def conv(cin, cout, stride=1):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.body = nn.Sequential(conv(c, c), nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c))

    def forward(self, x):
        return torch.relu(x + self.body(x))


class ReferenceNetwork(nn.Module):
    """DH_live-sized stand-in: source 6 ch + cached 256-ch reference features -> RGB."""

    def __init__(self, blocks: int = 4):
        super().__init__()
        self.encode = nn.Sequential(conv(6, 64), conv(64, 128, 2), conv(128, 256, 2))
        self.fuse = conv(512, 256)
        self.blocks = nn.Sequential(*[Block(256) for _ in range(blocks)])
        self.decode = nn.Sequential(
            nn.Upsample(scale_factor=2),
            conv(256, 128),
            nn.Upsample(scale_factor=2),
            conv(128, 64),
            nn.Conv2d(64, 3, 3, 1, 1),
            nn.Sigmoid(),
        )

    def forward(self, source, reference_features):
        s = self.encode(source)
        return self.decode(self.blocks(self.fuse(torch.cat([s, reference_features.expand(s.shape[0], -1, -1, -1)], 1))))


def networks():
    out = {}
    for name in ("fast", "large"):
        model = Renderer(preset(name, resolution=RESOLUTION)).eval()
        refs = torch.rand(1, REFERENCE_CHANNELS * model.cfg.n_refs, RESOLUTION, RESOLUTION)
        with torch.no_grad():
            feats = model.encode_references(refs)
        macs = count_macs(model)
        out[name] = (fuse_for_inference(model), feats, SOURCE_CHANNELS, macs)  # as inference runs it
    ref = ReferenceNetwork().eval()
    feats = torch.rand(1, 256, RESOLUTION // 4, RESOLUTION // 4)
    out["dh_live_size_reference"] = (ref, feats, 6, macs_of(ref, torch.rand(1, 6, RESOLUTION, RESOLUTION), feats))
    return out


def time_ms(fn, repeats: int, sync=lambda: None) -> float:
    for _ in range(3):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--json", default="bench_render.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    bf16 = pick_precision("auto", torch.device("cpu")) == torch.bfloat16
    precision = "bf16" if bf16 else "fp32"
    nets = networks()
    has_openvino = importlib.util.find_spec("openvino") is not None
    report = {
        "dhlive": __version__,
        "machine": machine(),
        "torch": torch.__version__,
        "threads": args.threads,
        "cpu_precision_as_infer_runs": precision,
        "cpu_backend_as_infer_runs": "openvino" if has_openvino else "torch",
        "resolution": RESOLUTION,
        "networks": {},
    }
    for name, (model, feats, cin, macs) in nets.items():
        row = {
            "gmac_per_frame": round(macs / 1e9, 2),
            "parameters_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
        }
        for batch in (1, 8):
            src = torch.rand(batch, cin, RESOLUTION, RESOLUTION)
            with torch.inference_mode():
                ms = time_ms(lambda m=model, s=src, f=feats: m(s, f), max(3, args.repeats // batch))
            row[f"cpu_ms_per_frame_batch{batch}"] = round(ms / batch, 2)
        # as `infer` runs it on this CPU: channels_last, and bf16 where the CPU has it natively
        model.to(memory_format=torch.channels_last)
        for batch in (1, 2):
            src = torch.rand(batch, cin, RESOLUTION, RESOLUTION).contiguous(memory_format=torch.channels_last)

            def run(m=model, s=src, f=feats):
                with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    m(s, f)

            row[f"cpu_{precision}_channels_last_ms_per_frame_batch{batch}"] = round(
                time_ms(run, max(3, args.repeats // batch)) / batch, 2
            )
        model.to(memory_format=torch.contiguous_format)
        # as `infer` runs it by default on a CPU: OpenVINO, in the same precision (where installed)
        if has_openvino:
            compiled = compile_openvino(
                model,
                (torch.zeros(1, cin, RESOLUTION, RESOLUTION), feats),
                0,
                torch.bfloat16 if bf16 else torch.float32,
                args.threads,
            )
            request = compiled.create_infer_request()
            for batch in (1, 2):
                inputs = [torch.rand(batch, cin, RESOLUTION, RESOLUTION).numpy(), feats.numpy()]
                row[f"cpu_{precision}_openvino_ms_per_frame_batch{batch}"] = round(
                    time_ms(lambda r=request, x=inputs: r.infer(x), max(3, args.repeats // batch)) / batch, 2
                )
        report["networks"][name] = row
        print(
            f"{name:24s} {row['gmac_per_frame']:6.2f} GMAC  CPU ({args.threads} threads): "
            f"{row['cpu_ms_per_frame_batch1']:7.1f} ms/frame (batch 1), "
            f"{row['cpu_ms_per_frame_batch8']:7.1f} (batch 8)",
            flush=True,
        )
    ref = report["networks"]["dh_live_size_reference"]
    as_run = f"cpu_{precision}_channels_last_ms_per_frame_batch1"
    ov_run = f"cpu_{precision}_openvino_ms_per_frame_batch1"
    for name in ("fast", "large"):
        r = report["networks"][name]
        r["cpu_speedup_vs_reference"] = round(ref["cpu_ms_per_frame_batch1"] / r["cpu_ms_per_frame_batch1"], 2)
        r[f"cpu_{precision}_channels_last_speedup_vs_reference"] = round(ref[as_run] / r[as_run], 2)
        if has_openvino:
            r[f"cpu_{precision}_openvino_speedup_vs_reference"] = round(ref[ov_run] / r[ov_run], 2)
    if torch.cuda.is_available():
        report["gpu"] = torch.cuda.get_device_name(0)
        for name, (model, feats, cin, _) in nets.items():
            model.cuda()
            f = feats.cuda()
            for batch, dtype, layout in CUDA_RUNS:
                fmt = torch.channels_last if layout == "_channels_last" else torch.contiguous_format
                model.to(memory_format=fmt)
                src = torch.rand(batch, cin, RESOLUTION, RESOLUTION, device="cuda").to(memory_format=fmt)

                def run(model=model, src=src, f=f, bf16=dtype == "bf16"):
                    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
                        model(src, f)

                ms = time_ms(run, args.repeats, torch.cuda.synchronize)
                report["networks"][name][f"cuda_{dtype}{layout}_ms_per_frame_batch{batch}"] = round(ms / batch, 3)
            print(name, {k: v for k, v in report["networks"][name].items() if k.startswith("cuda")}, flush=True)
    fast = report["networks"]["fast"]
    report["target"] = {
        "fast_speedup_vs_reference": ">= 10",
        "measured": fast["cpu_speedup_vs_reference"],
        "fast_ms_per_frame": "<= 25",
        "measured_ms": fast["cpu_ms_per_frame_batch1"],
    }
    print(
        f"fast vs DH_live-size reference on CPU: {fast['cpu_speedup_vs_reference']:.1f}x "
        f"({fast['cpu_ms_per_frame_batch1']:.1f} vs {ref['cpu_ms_per_frame_batch1']:.1f} ms per frame); "
        f"as infer runs them ({precision}, channels_last): "
        f"{fast[f'cpu_{precision}_channels_last_speedup_vs_reference']:.1f}x "
        f"({fast[as_run]:.1f} vs {ref[as_run]:.1f} ms)"
        + (
            f"; OpenVINO ({precision}, infer's default): {fast[f'cpu_{precision}_openvino_speedup_vs_reference']:.1f}x "
            f"({fast[ov_run]:.1f} vs {ref[ov_run]:.1f} ms)"
            if has_openvino
            else "; OpenVINO is not installed"
        )
    )
    Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
