"""Benchmark `dhlive infer` and `dhlive stream` end to end on a 512x512 avatar.

    .venv/bin/python scripts/bench_infer.py [--seconds 20] [--renderer CKPT] [--audio-model DIR]
        [--devices cpu,cuda] [--stream-device cpu] [--precision auto] [--backend auto]
        [--avatar DIR --speech WAV]
        [--json bench_infer.json]

The avatar is made from scikit-image's 512x512 astronaut photo (`dhlive prepare` on a
photo: 4 s of camera sway, looped ping-pong), the speech by espeak-ng, so the benchmark
needs nothing but the installed package. --avatar and --speech give them ready-made, for
a machine without mediapipe or espeak-ng (a lent GPU machine). The avatar's crop size
does not change the work measured (inference cuts its windows from the 512x512 source
frames), so one prepared with `--size 256` travels at a quarter of the size. Without
--renderer / --audio-model, freshly initialised `fast` models of the shipped shapes are
used: speed does not depend on the weights.

Reported: frames/s and real-time factor end to end, the seconds each stage spent (they
overlap on threads), stream latency paced in real time (its first 20 s), on CPU (all
cores) and, when a GPU is visible, on CUDA (twice: the process's first job, then the
throughput), with the renderer's arithmetic (--precision; auto: bf16 where the CPU has it
natively) in each run's `precision` and what ran it (--backend; auto: OpenVINO on a CPU) in
its `backend`; the JSON records the CPU model and ISA flags. Targets (issue 5): >= 25
frames/s on the 2-core CPU, >= 200 on an H100, stream latency <= 200 ms (look-ahead
included).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import cv2
import numpy as np
import torch
from benchlib import machine
from skimage import data as skdata

from dhlive import __version__, media
from dhlive.audio.inference import save_audio_model
from dhlive.audio.model import AudioModel, AudioModelConfig
from dhlive.data.prepare import PrepareConfig, prepare
from dhlive.device import PRECISIONS
from dhlive.formats import SHIPPED_AUDIO_MODEL, SHIPPED_STREAM_AUDIO_MODEL
from dhlive.infer import InferConfig, infer, stream
from dhlive.metrics import seam_score
from dhlive.models import load_models
from dhlive.mouth import fit_basis, save_basis
from dhlive.render.checkpoint import save_renderer
from dhlive.render.frames import FramePipeline, pingpong
from dhlive.render.model import Renderer, preset
from dhlive.render.runtime import BACKENDS
from dhlive.speech import synthesize

STREAM_SECONDS = 20  # the stream run is paced in real time: its first 20 s are enough for latency
TEXT = (
    "The quick brown fox jumps over the lazy dog. She sells sea shells by the sea shore, "
    "and the shells she sells are surely sea shells. "
)


def untrained_models(root: Path):
    rng = np.random.default_rng(0)
    basis = fit_basis(
        rng.normal(0, 0.01, (200, 120)).astype(np.float32),
        rng.normal(0, 1, (200, 1350)).astype(np.float32),
        "lips+pixels",
    )
    (root / "audio").mkdir()
    save_basis(root / "audio" / "pca.pkl", basis)
    model = AudioModel(AudioModelConfig())
    model.closed.copy_(torch.from_numpy(basis.closed))
    save_audio_model(root / "audio" / "audio_model.pt", model, root / "audio" / "pca.pkl", {})
    save_renderer(root / "render.pt", Renderer(preset("fast")))
    return root / "audio", root / "render.pt"


def astronaut_avatar(tmp: Path) -> Path:
    photo = tmp / "astronaut.png"
    cv2.imwrite(str(photo), cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR))
    return prepare(photo, "astronaut", tmp / "avatars", PrepareConfig(), progress=False).path


def espeak_speech(path: Path, seconds: float) -> Path:
    speech = np.zeros(0, np.float32)
    while len(speech) < seconds * 16000:
        speech = np.concatenate([speech, synthesize(TEXT), np.zeros(4000, np.float32)])
    media.write_wav(path, speech[: int(seconds * 16000)])
    return path


def first_seconds(speech: Path, seconds: float, path: Path) -> Path:
    audio = media.load_audio(speech, 16000)
    media.write_wav(path, audio[: int(seconds * 16000)])
    return path


def seam_scores(video: Path, avatar: Path, audio_model, renderer, every: int = 5) -> dict:
    """Mean seam score along the paste-back edge of the generated frames, and of the real
    source frames under the same mask (the anchor)."""
    _, basis, _ = load_models(audio_model, renderer)
    pipe = FramePipeline(avatar, renderer, basis, InferConfig(device="cpu"))
    try:
        gen, real = [], []
        for t, frame in enumerate(media.iter_frames(video)):
            if t % every:
                continue
            i = pingpong(t, pipe.avatar.n_frames)
            mask = pipe.frame_mask(i)
            gen.append(seam_score(frame, mask))
            real.append(seam_score(np.asarray(pipe.source[i]), mask))
    finally:
        pipe.close()
    mean = lambda rows: {k: round(float(np.mean([r[k] for r in rows])), 3) for k in rows[0]}  # noqa: E731
    return {"frames": len(gen), "generated": mean(gen), "real": mean(real)}


def stream_audio_model(audio_model):
    """The audio model `dhlive stream` would pair with `audio_model`: the shipped 120 ms
    look-ahead model for the shipped 160 ms one, the same model otherwise."""
    if audio_model and Path(audio_model).resolve() == SHIPPED_AUDIO_MODEL.resolve():
        return SHIPPED_STREAM_AUDIO_MODEL
    return audio_model


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--renderer")
    ap.add_argument("--audio-model")
    ap.add_argument(
        "--stream-audio-model",
        help="audio model for the stream run [default: checkpoints/audio_live when --audio-model is "
        "the shipped checkpoints/audio, as `dhlive stream` would use; else --audio-model]",
    )
    ap.add_argument("--devices", help="comma-separated [default: cpu, and cuda when visible]")
    ap.add_argument("--stream-device", default="cpu")
    ap.add_argument("--avatar", help="a prepared 512x512 avatar [default: made from the astronaut photo]")
    ap.add_argument("--speech", help="speech recording [default: espeak-ng, --seconds long]")
    ap.add_argument("--precision", default="auto", choices=PRECISIONS, help="the renderer's arithmetic")
    ap.add_argument("--backend", default="auto", choices=BACKENDS, help="what runs the renderer on a CPU")
    ap.add_argument("--json", default="bench_infer.json")
    args = ap.parse_args()
    devices = args.devices.split(",") if args.devices else ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        avatar = Path(args.avatar) if args.avatar else astronaut_avatar(tmp)
        speech = Path(args.speech) if args.speech else espeak_speech(tmp / "speech.wav", args.seconds)
        audio_model, renderer = (args.audio_model, args.renderer)
        if not (audio_model and renderer):
            audio_model, renderer = untrained_models(tmp)
        report = {
            "dhlive": __version__,
            "machine": machine(),
            "cpu_cores": os.cpu_count(),
            "torch": torch.__version__,
            "avatar": args.avatar or "skimage astronaut photo, 512x512",
            "audio_seconds": round(len(media.load_audio(speech, 16000)) / 16000, 2),
            "renderer": str(args.renderer or "untrained fast"),
            "runs": {},
        }
        for dev in devices:
            # on CUDA the process's first job also pays for the warm-up (kernel choice, first
            # allocations): it is reported apart, the second job is the throughput
            for run in ["first", ""] if dev == "cuda" else [""]:
                res = infer(
                    speech,
                    avatar,
                    tmp / f"out_{dev}.mp4",
                    audio_model=audio_model,
                    renderer=renderer,
                    cfg=InferConfig(device=dev, precision=args.precision, backend=args.backend),
                    progress=False,
                )
                report["runs"][f"infer_{dev}{'_' + run if run else ''}"] = res
                print(
                    f"infer on {dev} ({res['backend']}, {res['precision']}){' (' + run + ' job)' if run else ''}: "
                    f"{res['fps']:.1f} frames/s, real-time factor {res['real_time_factor']:.2f}, "
                    f"stage seconds {res['stage_seconds']}",
                    flush=True,
                )
        report["seam"] = seam_scores(tmp / f"out_{devices[0]}.mp4", avatar, audio_model, renderer)
        print(
            "seam along the paste-back edge (colour step, 0..255): "
            f"generated {report['seam']['generated']['colour_step']:.2f}, "
            f"real frames {report['seam']['real']['colour_step']:.2f}",
            flush=True,
        )
        live_model = args.stream_audio_model or stream_audio_model(audio_model)
        report["stream_audio_model"] = str(live_model)
        live = stream(
            first_seconds(speech, STREAM_SECONDS, tmp / "stream.wav"),
            avatar,
            tmp / "live.mp4",
            renderer=renderer,
            audio_model=live_model,
            cfg=InferConfig(device=args.stream_device, precision=args.precision, backend=args.backend),
            realtime=True,
        )
        report["runs"][f"stream_{args.stream_device}_realtime"] = live
        print(
            f"stream on {args.stream_device} ({live['backend']}, {live['precision']}), paced in real time: "
            f"latency {live['latency_ms']} "
            f"(look-ahead {live['lookahead_ms']} ms)"
        )
    if torch.cuda.is_available():
        report["gpu"] = torch.cuda.get_device_name(0)
    report["targets"] = {"cpu_fps": ">= 25", "cuda_fps": ">= 200", "stream_latency_ms": "<= 200"}
    Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
