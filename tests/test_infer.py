"""infer and stream end to end on a generated avatar with small real models (untrained weights
drive the real pipeline: audio model, prompt, renderer, paste-back, H.264 + AAC)."""

import os
import subprocess
import sys

import av
import cv2
import numpy as np
import pytest
from conftest import run_cli

from dhlive import media
from dhlive.audio.features import n_video_frames
from dhlive.errors import DhliveError
from dhlive.formats import load_avatar
from dhlive.geometry import polygon_mask
from dhlive.infer import infer, stream
from dhlive.metrics import seam_score
from dhlive.render import inputs
from dhlive.render.frames import FramePipeline, InferConfig, pingpong
from dhlive.render.paste import match_edge, match_skin


@pytest.fixture(scope="module")
def rendered(models, speech_wav, face_avatar, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "talk.mp4"
    res = infer(
        speech_wav,
        face_avatar,
        out,
        audio_model=models[0],
        renderer=models[1],
        progress=False,
        cfg=InferConfig(batch=4),
    )
    return out, res


def decode(path):
    return np.stack(list(media.iter_frames(path)))


def test_pingpong_loops_without_jumps():
    seq = [pingpong(t, 4) for t in range(12)]
    assert seq == [0, 1, 2, 3, 2, 1, 0, 1, 2, 3, 2, 1]
    assert all(abs(a - b) == 1 for a, b in zip(seq, seq[1:]))
    assert [pingpong(t, 1) for t in range(3)] == [0, 0, 0]


def test_infer_writes_a_synced_mp4_that_changes_only_the_mouth_region(rendered, speech_wav, face_avatar):
    out, res = rendered
    audio = media.load_audio(speech_wav)
    expected = n_video_frames(len(audio))
    assert abs(res["frames"] - expected) <= 1
    info = media.probe(out)
    with av.open(str(out)) as c:
        assert c.streams.audio, "no audio track"
        assert abs(float(c.streams.audio[0].duration * c.streams.audio[0].time_base) - len(audio) / 16000) < 0.1
    frames = decode(out)
    assert abs(len(frames) - expected) <= 1
    avatar = load_avatar(face_avatar)
    assert frames.shape[1:3] == (avatar.source_size[1], avatar.source_size[0]) and info.width == avatar.source_size[0]
    src = decode(avatar.source_video_path)
    n = avatar.n_frames
    for t in (0, n + 3, len(frames) - 1):  # also after the loop turned (ping-pong)
        i = pingpong(t, n)
        region = polygon_mask(avatar.lower_face_pixels[i], avatar.source_size[1], avatar.source_size[0])
        diff = np.abs(frames[t].astype(int) - src[i].astype(int)).mean(-1)
        far = region == 0
        far[:] &= np.pad(np.ones_like(region[8:-8, 8:-8], bool), 8)  # ignore the frame border
        near = cv2.dilate((region > 0).astype(np.uint8), np.ones((25, 25), np.uint8)) > 0
        assert diff[far & ~near].mean() < 3.0  # outside the repaint region: the source, up to the codec
        assert diff[region > 0.99].mean() > 6.0  # inside: repainted


def test_stream_matches_infer(rendered, models, speech_wav, face_avatar, tmp_path):
    out, _ = rendered
    res = stream(
        speech_wav,
        face_avatar,
        tmp_path / "live.mp4",
        audio_model=models[0],
        renderer=models[1],
        cfg=InferConfig(batch=4),
    )
    a, b = decode(out), decode(tmp_path / "live.mp4")
    assert a.shape == b.shape and res["frames"] == len(a)
    assert np.abs(a.astype(int) - b.astype(int)).mean() < 1.0
    assert res["latency_ms"]["max"] > 0 and res["lookahead_ms"] == 160


def test_cut_and_paste_workers_keep_frame_order(rendered, models, speech_wav, face_avatar, tmp_path):
    # what a many-core GPU machine does (several threads cut and paste each batch) must give the
    # same video as the single cutter and paster of a 2-core machine
    import cv2

    out, _ = rendered
    cv_threads = cv2.getNumThreads()
    res = infer(
        speech_wav,
        face_avatar,
        tmp_path / "workers.mp4",
        audio_model=models[0],
        renderer=models[1],
        progress=False,
        cfg=InferConfig(batch=4, workers=3),
    )
    a, b = decode(out), decode(tmp_path / "workers.mp4")
    assert a.shape == b.shape and res["frames"] == len(a)
    assert np.array_equal(a, b)
    assert cv2.getNumThreads() == cv_threads  # the workers' single-threaded OpenCV is undone


def test_stream_raw_frames_from_stdin_pcm(models, speech, face_avatar):
    pcm = (np.clip(speech, -1, 1) * 32767).astype("<i2").tobytes()
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "dhlive.cli",
            "stream",
            "--audio",
            "-",
            "--avatar",
            str(face_avatar),
            "--audio-model",
            str(models[0]),
            "--renderer",
            str(models[1]),
        ],
        input=pcm,
        capture_output=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr.decode()[-500:]
    w, h = load_avatar(face_avatar).source_size
    assert len(r.stdout) == n_video_frames(len(speech)) * w * h * 3
    assert b"latency" in r.stderr


def test_match_edge_removes_a_colour_cast_at_the_edge():
    paste = inputs.paste_mask(
        inputs.repaint_mask(np.array([[20, 40], [108, 40], [108, 120], [20, 120]], np.float32), 128)
    )
    window = np.full((128, 128, 3), 120.0, np.float32)
    generated = window + np.array([25.0, -10.0, 5.0])
    fixed = match_edge(generated, window, paste)
    band = (paste > 0.02) & (paste < 0.9)
    assert np.abs(fixed[band] - window[band]).max() < 2.0
    composite = inputs.composite(fixed, window, paste[..., None]).astype(np.uint8)
    assert (
        seam_score(composite, paste)["colour_step"]
        < seam_score(inputs.composite(generated, window, paste[..., None]).astype(np.uint8), paste)["colour_step"]
    )
    # where the drawn jaw crosses the band (a dark patch there, not a colour cast), the rest
    # of the face keeps the right shift instead of taking the patch's offset
    jaw = np.zeros((128, 128), bool)
    jaw[104:124, 30:98] = True
    generated[jaw] -= 80
    fixed = match_edge(generated, window, paste)
    assert np.abs(fixed[48:96, 40:88] - window[48:96, 40:88]).max() < 2.0
    assert np.abs(fixed[band & ~jaw] - window[band & ~jaw]).max() < 2.0


def test_match_skin_gives_the_skin_the_real_colour_and_smoothness_but_keeps_the_mouth():
    """A base renderer that never saw the face paints a reddish, stubbly lower face: both go
    outside the mouth; the mouth keeps its own contrast; a moved jaw does not drag the rest."""
    size = 128
    rng = np.random.default_rng(0)
    paste = inputs.paste_mask(
        inputs.repaint_mask(np.array([[10, 30], [118, 30], [118, 125], [10, 125]], np.float32), size)
    )
    lips = np.c_[48 + 32 * np.cos(np.linspace(0, 2 * np.pi, 40)), 70 + 10 * np.sin(np.linspace(0, 2 * np.pi, 40))]
    mouth = inputs.mouth_region([lips], size)  # what match_skin leaves its contrast to
    window = np.full((size, size, 3), (200.0, 150.0, 130.0), np.float32)  # smooth skin
    generated = window + (20.0, -8.0, -12.0) + rng.normal(0, 12, (size, size, 1)).astype(np.float32)  # redder, stubbly
    teeth = np.where((np.arange(size) // 4 % 2)[None, :, None] == 0, 60.0, -60.0)  # high-contrast teeth in the mouth
    generated[62:78, 30:66] += teeth[:16, :36]
    generated[112:122, 80:110] -= 80  # a shadow where the jaw moved: not skin to compare
    fixed = match_skin(generated, window, paste, [lips])
    skin = (paste > 0.95) & (mouth < 0.01)
    skin[108:126, 76:114] = False
    before, after = (generated - window)[skin], (fixed - window)[skin]
    assert np.abs(after.mean(0)).max() < 2.0 < np.abs(before.mean(0)).max()  # the tint is gone
    assert after.std(0).max() < 0.65 * before.std(0).max()  # the stubble is damped
    teeth_before, teeth_after = generated[64:76, 40:56].std((0, 1)), fixed[64:76, 40:56].std((0, 1))
    assert (teeth_after > 0.95 * teeth_before).all()  # the mouth keeps its contrast
    # the edge match leaves the stubble (it shifts colour only)
    assert (match_edge(generated, window, paste) - window)[skin].std(0).max() > 0.9 * before.std(0).max()


def test_seam_score_sees_a_pasted_box():
    rng = np.random.default_rng(0)
    frame = (100 + rng.normal(0, 2, (96, 96, 3))).clip(0, 255).astype(np.uint8)
    mask = np.zeros((96, 96), np.float32)
    mask[30:70, 30:70] = 1
    boxed = frame.copy()
    boxed[30:70, 30:70] = np.clip(boxed[30:70, 30:70].astype(int) + 30, 0, 255)
    assert seam_score(boxed, mask)["colour_step"] > 20
    assert seam_score(frame, mask)["colour_step"] < 3


@pytest.mark.parametrize("case", ["avatar", "empty_audio", "text_audio", "out_dir", "renderer_kind"])
def test_bad_input_is_one_line_and_leaves_nothing(case, models, speech_wav, face_avatar, tmp_path):
    args = {
        "--audio": speech_wav,
        "--avatar": face_avatar,
        "--out": tmp_path / "o.mp4",
        "--audio-model": models[0],
        "--renderer": models[1],
    }
    expect = None
    if case == "avatar":
        args["--avatar"] = expect = tmp_path / "nobody"
    elif case == "empty_audio":
        args["--audio"] = expect = tmp_path / "empty.wav"
        media.write_wav(expect, np.zeros(0, np.float32))
    elif case == "text_audio":
        args["--audio"] = expect = tmp_path / "notes.m4a"
        expect.write_text("not audio")
    elif case == "out_dir":
        args["--out"] = expect = tmp_path / "missing" / "o.mp4"
    elif case == "renderer_kind":
        args["--renderer"] = expect = models[0] / "audio_model.pt"
    r = run_cli("infer", *[x for kv in args.items() for x in kv], "--quiet")
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert expect.name in r.stderr
    assert not (tmp_path / "o.mp4").exists() and not list(tmp_path.glob(".*part*"))


def test_wrong_fps_avatar_is_refused(models, face_avatar, tmp_path, speech_wav):
    import json
    import shutil

    copy = tmp_path / "av30"
    shutil.copytree(face_avatar, copy)
    meta = json.loads((copy / "meta.json").read_text())
    meta["fps"] = 30
    (copy / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(DhliveError, match="fps"):
        infer(speech_wav, copy, tmp_path / "x.mp4", audio_model=models[0], renderer=models[1], progress=False)


def test_colour_match_modes_and_a_clear_error_for_an_unknown_one(models, speech_wav, face_avatar, tmp_path):
    from dhlive.mouth import load_basis

    basis = load_basis(models[0] / "pca.pkl")
    frames = {}
    for mode in ("skin", "edge", "off"):
        pipe = FramePipeline(face_avatar, models[1], basis, InferConfig(colour_match=mode))
        try:
            frame = pipe.prepare(3, np.zeros(basis.n_coeffs, np.float32))
            frames[mode] = pipe.paste(frame, pipe.render([frame])[0]).astype(int)
            outside = pipe.frame_mask(frame.index) == 0
            assert np.array_equal(frames[mode][outside], np.asarray(pipe.source[frame.index]).astype(int)[outside])
        finally:
            pipe.close()
    assert np.abs(frames["skin"] - frames["edge"]).max() > 0 and np.abs(frames["edge"] - frames["off"]).max() > 0
    with pytest.raises(DhliveError, match="colour match must be one of skin, edge, off"):
        infer(
            speech_wav,
            face_avatar,
            tmp_path / "x.mp4",
            audio_model=models[0],
            renderer=models[1],
            progress=False,
            cfg=InferConfig(colour_match="auto"),
        )
    assert not (tmp_path / "x.mp4").exists()


def test_infer_keeps_the_recordings_rate_and_channels(models, speech, face_avatar, tmp_path):
    import wave

    left = media.resample_audio(speech, 16000, 44100)
    pcm = (np.stack([left, 0.5 * left], 1) * 32767).astype("<i2")
    wav = tmp_path / "stereo44k.wav"
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(44100)
        w.writeframes(pcm.tobytes())
    out = tmp_path / "hifi.mp4"
    infer(wav, face_avatar, out, audio_model=models[0], renderer=models[1], progress=False, cfg=InferConfig(batch=4))
    with av.open(str(out)) as c:
        a = c.streams.audio[0]
        assert a.rate == 44100 and a.channels == 2
        assert abs(float(a.duration * a.time_base) - len(left) / 44100) < 0.1
    track, rate = media.load_audio_native(out)
    assert rate == 44100 and track.shape[0] == 2
    n = min(track.shape[1], len(left)) - 4096
    ratio = np.std(track[1, 2048:n]) / np.std(track[0, 2048:n])
    assert 0.4 < ratio < 0.6  # the right channel is still half the left: not mixed to mono


def test_precision_auto_follows_the_cpu(monkeypatch):
    from dhlive import device as D

    cpu = D.pick_device("cpu")
    monkeypatch.setattr(D, "native_bf16", lambda: False)
    assert D.pick_precision("auto", cpu) == D.torch.float32
    with pytest.raises(DhliveError, match="no native bf16"):
        D.pick_precision("bf16", cpu)
    monkeypatch.setattr(D, "native_bf16", lambda: True)
    assert D.pick_precision("auto", cpu) == D.torch.bfloat16
    assert D.pick_precision("fp32", cpu) == D.torch.float32
    with pytest.raises(DhliveError, match="precision must be one of auto, fp32, bf16"):
        InferConfig(precision="int8")


def test_every_backend_and_precision_draws_what_torch_fp32_draws(face_avatar):
    """The shipped renderer run by OpenVINO, and in bf16 where this CPU has it, against PyTorch
    fp32 on real frames: the speed issue's bar is 40 dB."""
    from dhlive.audio.inference import load_audio_model
    from dhlive.device import native_bf16
    from dhlive.models import DEFAULT_AUDIO_MODEL, DEFAULT_RENDERER

    _, basis = load_audio_model(DEFAULT_AUDIO_MODEL)
    coeffs = np.random.default_rng(0).normal(0, 0.7, (6, basis.n_coeffs)).astype(np.float32)
    runs = [("torch", "fp32"), ("openvino", "fp32")]
    runs += [("torch", "bf16"), ("openvino", "bf16")] if native_bf16() else []
    drawn = {}
    for backend, precision in runs:
        pipe = FramePipeline(face_avatar, DEFAULT_RENDERER, basis, InferConfig(precision=precision, backend=backend))
        try:
            assert (pipe.backend, pipe.precision) == (backend, precision)
            drawn[backend, precision] = pipe.render([pipe.prepare(t, c) for t, c in enumerate(coeffs)]).astype(float)
        finally:
            pipe.close()
    for run in runs[1:]:
        mse = ((drawn["torch", "fp32"] - drawn[run]) ** 2).mean()
        assert 10 * np.log10(255**2 / max(mse, 1e-9)) >= 40, run
    assert drawn["torch", "fp32"].std() > 10  # a face was drawn, not a flat image


def test_backend_auto_prefers_openvino_and_falls_back_to_torch(monkeypatch):
    """auto runs OpenVINO on a CPU; when its output disagrees with PyTorch's (or openvino is
    missing) auto runs torch and an explicit --backend openvino stops with one line."""
    import torch

    from dhlive.models import DEFAULT_RENDERER
    from dhlive.render import runtime as RT
    from dhlive.render.checkpoint import load_renderer
    from dhlive.render.model import REFERENCE_CHANNELS, fuse_for_inference

    model = fuse_for_inference(load_renderer(DEFAULT_RENDERER)[0])
    size = model.cfg.resolution
    with torch.inference_mode():
        refs = model.encode_references(torch.rand(1, REFERENCE_CHANNELS * model.cfg.n_refs, size, size))
    runtime = RT.renderer_runtime(model, refs, "auto", torch.float32, 2)
    assert runtime.name == "openvino" and RT.agreement_db(runtime, model, refs) >= RT.MIN_AGREEMENT_DB
    for batch in (1, 3):  # any batch size, as the pipeline sends them
        assert runtime(torch.zeros(batch, 7, size, size)).shape == (batch, 3, size, size)
    assert RT.renderer_runtime(model, refs, "torch", torch.float32, 2).name == "torch"
    with pytest.raises(DhliveError, match="backend must be one of"):
        RT.renderer_runtime(model, refs, "onnx", torch.float32, 2)

    def missing():
        raise ImportError("No module named 'openvino'")

    with monkeypatch.context() as m:
        m.setattr(RT, "import_openvino", missing)  # a machine without openvino (a lent GPU machine)
        assert RT.renderer_runtime(model, refs, "auto", torch.float32, 2).name == "torch"
        with pytest.raises(DhliveError, match="openvino package is not installed"):
            RT.renderer_runtime(model, refs, "openvino", torch.float32, 2)
    monkeypatch.setattr(RT, "agreement_db", lambda *a: 12.0)  # a conversion that draws something else
    assert RT.renderer_runtime(model, refs, "auto", torch.float32, 2).name == "torch"
    with pytest.raises(DhliveError, match=r"--backend openvino: its output differs from PyTorch's \(12.0 dB"):
        RT.renderer_runtime(model, refs, "openvino", torch.float32, 2)


def test_live_session_records_stay_bounded_and_time_each_frame_by_its_own_sound(
    models, face_avatar, speech, monkeypatch
):
    """An hours-long live session keeps only its recent latency records; each frame's latency
    counts from when its own 40 ms of sound arrived (the look-ahead later)."""
    import dhlive.infer as I
    from dhlive.constants import SAMPLES_PER_FRAME
    from dhlive.models import load_models

    monkeypatch.setattr(I, "RECORD_FRAMES", 8)
    model, basis, renderer = load_models(models[0], models[1], avatar=face_avatar)
    pipe = FramePipeline(face_avatar, renderer, basis, InferConfig())
    try:
        session = I.LiveSession(pipe, model, InferConfig(), live=False)
        arrivals, frames = [], []
        for k in range(30):
            arrivals.append(1000.0 + k)  # a made-up clock: chunk k arrived at 1000 + k
            frames += session.push(speech[k * SAMPLES_PER_FRAME : (k + 1) * SAMPLES_PER_FRAME], arrivals[-1])
        frames += session.finish()
    finally:
        pipe.close()
    assert [arrived for _, arrived in frames[:30]] == arrivals[: len(frames[:30])]
    assert len(session.arrival) <= len(arrivals) - len(frames) + 2
    for _, arrived in frames:
        session.delivered(arrived)
    assert len(session.latency) == 8


def test_openvino_sends_no_usage_reports(tmp_path):
    """openvino, as dhlive imports it, writes no telemetry client id (it would, then report
    each import to Intel): a fresh HOME stays empty after a model is converted and run."""
    code = (
        "import torch\n"
        "from dhlive.models import DEFAULT_RENDERER\n"
        "from dhlive.render.checkpoint import load_renderer\n"
        "from dhlive.render.runtime import renderer_runtime\n"
        "m = load_renderer(DEFAULT_RENDERER)[0]\n"
        "r = renderer_runtime(m, torch.zeros(1, 128, 32, 32), 'openvino', torch.float32, 1)\n"
        "print(r.name, tuple(r(torch.zeros(1, 7, 256, 256)).shape))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "TF_BUILD", "JENKINS_URL")}  # those turn it off too
    env["HOME"] = str(tmp_path)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "openvino (1, 3, 256, 256)" in out.stdout
    assert list(tmp_path.iterdir()) == []
