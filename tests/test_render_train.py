"""train-render: real training steps on a tiny generated avatar, packs, checkpoints, resume, errors."""

import shutil

import cv2
import numpy as np
import pytest
import torch
from conftest import TINY_MODEL, run_cli

from dhlive.errors import DhliveError
from dhlive.formats import RENDER_MODEL_FORMAT, load_checkpoint, load_render_pack, save_checkpoint
from dhlive.render.checkpoint import load_renderer, save_renderer
from dhlive.render.model import Renderer, preset
from dhlive.train import packs as P
from dhlive.train import render as T
from dhlive.train.perceptual import STLPIPS

TINY = dict(
    model=TINY_MODEL,
    batch=2,
    perceptual_layers=1,
    perceptual_window=2,
    warmup=2,
    gan_start=2,
    log_every=2,
    sample_every=2,
    checkpoint_every=2,
    holdout=0.25,
)


@pytest.fixture(scope="module")
def pack(face_avatar, tmp_path_factory):
    return P.ensure_pack(face_avatar, 128, tmp_path_factory.mktemp("packs"), progress=False)


def test_pack_round_trip_and_cache(pack, face_avatar):
    meta, arrays = load_render_pack(pack)
    n = len(arrays["aperture"])
    assert meta["size"] == 128 and n == 50
    assert arrays["canonical_to_window"].shape == (n, 2, 4) and arrays["landmarks"].shape == (n, 478, 2)
    before = pack.stat().st_mtime_ns
    assert P.ensure_pack(face_avatar, 128, pack.parent, progress=False) == pack  # unchanged avatar: reused
    assert pack.stat().st_mtime_ns == before


def packed(window: np.ndarray) -> np.ndarray:
    """A window as a render pack stores it (JPEG) and gives it back."""
    ok, enc = cv2.imencode(".jpg", cv2.cvtColor(window, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, P.JPEG_QUALITY])
    return cv2.cvtColor(cv2.imdecode(enc, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def test_pack_windows_are_the_windows_inference_cuts(pack, face_avatar):
    """Training sees the pixels inference sees: the source frame's window, not a resampled crop's."""
    from dhlive.formats import load_avatar
    from dhlive.media import SourceFrames
    from dhlive.metrics import psnr
    from dhlive.mouth import avatar_rest
    from dhlive.render import inputs

    frames, _ = P.load_frames(pack, 0.0, 5, 128)
    avatar = load_avatar(face_avatar)
    window = inputs.face_window(avatar.lower_face, avatar_rest(avatar).lips, 128)
    source = SourceFrames(avatar)
    try:
        for i in (0, 17, 49):
            at_inference = inputs.cut_window(source[i], window.to_source(avatar.pose[i]), 128)
            x0, y0, side = avatar.crop_boxes[i]  # how version-1 packs cut it: from the crop
            to_crop = window.to_source(avatar.pose[i]) * (avatar.crop_size / side)
            to_crop[:, 2] -= np.array([x0, y0]) * (avatar.crop_size / side)
            from_crop = inputs.cut_window(avatar.read_crop(i), to_crop, 128)
            assert np.array_equal(frames.windows[i], packed(at_inference))  # the very pixels, JPEG and all
            assert psnr(frames.windows[i], packed(from_crop)) < 50
    finally:
        source.close()


def test_a_thinned_pack_keeps_every_kth_frame_and_refuses_the_clip_stage(tmp_path, pack):
    thin = P.thin_pack(pack, tmp_path / "thin.npz", 3)
    meta, a = load_render_pack(pack)
    tmeta, t = load_render_pack(thin)
    n = len(a["aperture"])
    assert tmeta["frame_step"] == 3 and len(t["aperture"]) == (n + 2) // 3
    full, _ = P.load_frames(pack, 0.0, 5, 128)
    part, _ = P.load_frames(thin, 0.0, 5, 128)
    assert (part.windows == full.windows[::3]).all() and (t["landmarks"] == a["landmarks"][::3]).all()
    assert (t["rest_image"] == a["rest_image"]).all()
    with pytest.raises(DhliveError, match="consecutive frames; thinned packs"):
        T.train_render(
            [thin], tmp_path / "clip", T.TrainRenderConfig(**{**TINY, "stage": "clip", "steps": 2}), progress=False
        )


def test_a_broken_pack_is_one_clear_error(tmp_path, pack):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(pack.read_bytes()[:5000])
    with pytest.raises(DhliveError, match="bad.npz"):
        load_render_pack(bad)


def test_perceptual_loss_reads_the_shipped_weights():
    lp = STLPIPS(2)
    torch.manual_seed(0)
    a = torch.rand(2, 3, 48, 48)
    assert lp(a, a).abs().max() < 1e-6
    small = lp(a, (a + 0.02 * torch.randn_like(a)).clamp(0, 1))
    large = lp(a, (a + 0.2 * torch.randn_like(a)).clamp(0, 1))
    assert (small < large).all() and (small > 0).all()
    b = a.clone().requires_grad_()
    lp(b, torch.rand_like(a)).sum().backward()
    assert b.grad.abs().sum() > 0 and all(p.grad is None for p in lp.parameters())


def test_perceptual_target_without_backward_gives_the_same_loss_and_gradient():
    lp = STLPIPS(2)
    torch.manual_seed(1)
    a, target = torch.rand(3, 3, 40, 40), torch.rand(3, 3, 40, 40)
    fast, joint = a.clone().requires_grad_(), a.clone().requires_grad_()
    d_fast = lp(fast, target)  # the target needs no gradient: its features skip the backward pass
    d_joint = lp(joint, target.clone().requires_grad_())  # both in one batch, as for two generated images
    d_fast.sum().backward()
    d_joint.sum().backward()
    assert torch.allclose(d_fast, d_joint, atol=1e-6)
    assert torch.allclose(fast.grad, joint.grad, atol=1e-6) and fast.grad.abs().sum() > 0


def test_perceptual_weights_are_verified(tmp_path):
    fake = tmp_path / "vgg.pth"
    torch.save({"x": torch.zeros(1)}, fake)
    with pytest.raises(DhliveError, match="sha256"):
        STLPIPS(1, path=fake)


def test_perceptual_subset_for_a_gpu_machine(tmp_path, monkeypatch):
    from dhlive.train import perceptual as P

    sub = P.export_weights(tmp_path / "stlpips3.pt", 2)
    assert sub.stat().st_size < 2_000_000  # two blocks: a small fraction of the 59 MB file
    torch.manual_seed(0)
    a, b = torch.rand(2, 3, 40, 40), torch.rand(2, 3, 40, 40)
    assert torch.equal(STLPIPS(2, path=sub)(a, b), STLPIPS(2)(a, b))
    with pytest.raises(DhliveError, match="holds 2 ST-LPIPS blocks, 3 are needed"):
        STLPIPS(3, path=sub)
    monkeypatch.setenv(P.WEIGHTS_ENV, str(sub))  # how training finds it without the wheel
    assert P.weights_path() == sub and torch.equal(STLPIPS(1)(a, b), STLPIPS(1, path=sub)(a, b))
    torch.save({"format": P.SUBSET_FORMAT, "source_sha256": "0" * 64, "layers": 5, "state": {}}, tmp_path / "other.pt")
    with pytest.raises(DhliveError, match="sha256"):
        STLPIPS(1, path=tmp_path / "other.pt")


def tiny_batches(pack, batch: int):
    """The training batches of the tiny pack, prompts through a 4-coefficient PCA fitted on it."""
    from dhlive.mouth import fit_basis, mouth_deltas

    cfg = T.TrainRenderConfig(**{**TINY, "batch": batch, "holdout": 0.0})
    frames, _ = P.load_frames(pack, 0.0, 5, 128)
    d = mouth_deltas(frames.arrays["lips"], frames.arrays["mouth_images"], frames.rest)
    basis = fit_basis(*d, "lips+pixels", n_coeffs=4)
    frames.coeffs = basis.encode(*d)
    return T.Batches([frames], basis, cfg), cfg


def test_training_steps_lower_the_loss(pack):
    batches, cfg = tiny_batches(pack, 4)
    torch.manual_seed(0)
    step = T.RenderStep(Renderer(cfg.render_config()))
    opt = torch.optim.Adam(step.parameters(), lr=3e-3)
    fixed = batches.batch(999)

    def l1(b):
        gen = step(b["source"], b["references"], b["reference_index"])
        return ((gen - b["target"]).abs() * b["paste"]).sum() / (3 * b["paste"].sum())

    step.eval()
    with torch.no_grad():
        before = float(l1(fixed))
    step.train()
    for s in range(40):
        loss = l1(batches.batch(s))
        opt.zero_grad()
        loss.backward()
        opt.step()
    step.eval()
    with torch.no_grad():
        after = float(l1(fixed))
    assert after < 0.6 * before, (before, after)


def test_colour_jitter_changes_a_samples_window_prompt_references_and_target_alike(pack):
    """One colour change per sample, the same in what the network sees and what it must draw:
    the references then tell the colours, memory of other faces does not."""
    plain, cfg = tiny_batches(pack, 2)
    jittered = T.Batches(plain.avatars, plain.basis, T.TrainRenderConfig(**{**TINY, "batch": 2, "colour_jitter": 1.0}))
    a, b = plain.batch(7), jittered.batch(7)
    assert b["references"].shape[0] == 2 and b["reference_index"].tolist() == [0, 1]  # a set per sample
    refs = plain.avatars[0].references.reshape(-1, 4, *plain.avatars[0].references.shape[1:])
    for n in range(2):
        before = a["target"][n].reshape(3, -1).T.numpy()  # the same frame: the colour draw comes after it
        after = b["target"][n].reshape(3, -1).T.numpy()
        inside = (after > 0.02).all(1) & (after < 0.98).all(1)  # not clipped
        m = np.linalg.lstsq(before[inside], after[inside], rcond=None)[0].T  # the colour change, fitted
        assert np.abs(m - np.eye(3)).max() > 0.02  # a real change
        assert np.abs(before[inside] @ m.T - after[inside]).max() < 1e-3  # and linear
        ref_before = refs[:, :3].transpose(0, 2, 3, 1).reshape(-1, 3)
        ref_after = b["references"][n].reshape(-1, 4, *refs.shape[2:])[:, :3].permute(0, 2, 3, 1).reshape(-1, 3)
        ok = (ref_after.numpy() > 0.02).all(1) & (ref_after.numpy() < 0.98).all(1)
        assert np.abs(ref_before[ok] @ m.T - ref_after.numpy()[ok]).max() < 1e-3  # the same change
        assert torch.equal(b["references"][n].reshape(-1, 4, *refs.shape[2:])[:, 3], torch.from_numpy(refs[:, 3]))
    assert np.allclose(T.colour_change(np.random.default_rng(0), 0.0), np.eye(3))


def test_avatars_balance_draws_each_avatar_alike(pack):
    import dataclasses

    plain, _ = tiny_batches(pack, 2)
    big = plain.avatars[0]
    small = dataclasses.replace(big, n_train=10)  # a short clip beside a long one
    by_frames = T.Batches([big, small], plain.basis, T.TrainRenderConfig(**TINY))
    assert by_frames.p[0] == pytest.approx(big.n_train / (big.n_train + 10))
    by_avatar = T.Batches([big, small], plain.basis, T.TrainRenderConfig(**{**TINY, "balance": "avatars"}))
    assert by_avatar.p.tolist() == [0.5, 0.5]
    with pytest.raises(DhliveError, match="balance"):
        T.TrainRenderConfig(**{**TINY, "balance": "people"})


def test_prefetched_batches_equal_the_steps_own(pack):
    # the GPU path builds batches ahead on threads; they must be the very batches of their steps
    batches, _ = tiny_batches(pack, 3)
    ahead = list(batches.prefetch(5, 12, workers=3))
    assert len(ahead) == 7 and len(list(batches.prefetch(5, 6, workers=3))) == 1
    for step, b in zip(range(5, 12), ahead):
        own = batches.batch(step)
        assert all(torch.equal(b[k], own[k]) for k in own)
    assert not torch.equal(ahead[0]["source"], ahead[1]["source"])


def test_train_resume_checkpoint_and_holdout_report(pack, tmp_path):
    cfg = T.TrainRenderConfig(**TINY, steps=4)
    whole = T.train_render([pack], tmp_path / "whole", cfg, progress=False)
    assert whole["steps"] == 4 and set(whole["eval"]) >= {"mouth_psnr", "mouth_ssim", "face_ssim"}
    out = tmp_path / "whole"
    for f in ("render_model.pt", "pca.pkl", "train_state.pt", "log.csv", "loss.png", "eval.json", "eval_strip.png"):
        assert (out / f).exists(), f
    assert list((out / "samples").glob("step_*.png"))
    model, info = load_renderer(out / "render_model.pt")  # weights_only load
    assert info["steps"] == 4 and model.cfg == preset("fast", **TINY_MODEL)

    # killed after step 2, resumed: the same weights as the run that never stopped. The
    # folder holds an earlier run's results: a fresh run removes them, so the stopped run
    # leaves no model that would pass for its own
    shutil.copytree(out, tmp_path / "part", ignore=shutil.ignore_patterns("train_state.pt"))
    part = T.train_render([pack], tmp_path / "part", cfg, progress=False, stop_at=2)
    assert part["stopped"] and not (tmp_path / "part" / "render_model.pt").exists()
    assert not (tmp_path / "part" / "eval.json").exists() and not (tmp_path / "part" / "eval_strip.png").exists()
    T.train_render([pack], tmp_path / "part", cfg, progress=False, resume=True)
    resumed, _ = load_renderer(tmp_path / "part" / "render_model.pt")
    for (k, a), b in zip(model.state_dict().items(), resumed.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-5), k
    rows = (tmp_path / "part" / "log.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["2", "4"]


def test_clip_stage_and_per_avatar_fine_tune(pack, tmp_path):
    base = tmp_path / "base.pt"
    save_renderer(base, Renderer(preset("fast", **TINY_MODEL)))
    cfg = T.TrainRenderConfig(**{**TINY, "stage": "clip", "clip_frames": 2, "batch": 4}, steps=2)
    res = T.train_render([pack], tmp_path / "ft", cfg, init=str(base), progress=False)
    assert res["steps"] == 2 and "eval" in res
    wrong = tmp_path / "wide.pt"
    save_renderer(wrong, Renderer(preset("fast", resolution=128)))
    with pytest.raises(DhliveError, match="differs"):
        T.train_render([pack], tmp_path / "ft2", cfg, init=str(wrong), progress=False)


def test_incompatible_checkpoints_are_clear_errors(tmp_path):
    ckpt = tmp_path / "r.pt"
    save_renderer(ckpt, Renderer(preset("fast", **TINY_MODEL)))
    d = load_checkpoint(ckpt, RENDER_MODEL_FORMAT)
    d["inputs"] = {**d["inputs"], "source_channels": 6}
    save_checkpoint(
        tmp_path / "old.pt", RENDER_MODEL_FORMAT, {k: v for k, v in d.items() if k not in ("format", "version")}
    )
    with pytest.raises(DhliveError, match="input layout"):
        load_renderer(tmp_path / "old.pt")
    d = load_checkpoint(ckpt, RENDER_MODEL_FORMAT)
    d["config"]["width"] = 16
    save_checkpoint(
        tmp_path / "mixed.pt", RENDER_MODEL_FORMAT, {k: v for k, v in d.items() if k not in ("format", "version")}
    )
    with pytest.raises(DhliveError, match="do not fit"):
        load_renderer(tmp_path / "mixed.pt")
    with pytest.raises(DhliveError, match="audio"):  # another kind of checkpoint
        save_checkpoint(tmp_path / "a.pt", "dhlive-audio-model", {"x": 1})
        load_renderer(tmp_path / "a.pt")


def test_cli_errors_are_one_line(tmp_path, face_avatar):
    r = run_cli("train-render", "--avatars", tmp_path / "nobody", "--out", tmp_path / "o", "--steps", "1")
    assert r.returncode == 1 and "nobody" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = run_cli("train-render", "--avatars", face_avatar, "--out", tmp_path / "o", "--init", tmp_path / "none.pt")
    assert r.returncode == 1 and "none.pt" in r.stderr and "Traceback" not in r.stderr


def test_two_process_data_parallel_training_on_cpu(pack, tmp_path):
    """torchrun + DistributedDataParallel (gloo on CPU): rank 0 writes a loadable model."""
    import subprocess
    import sys

    import yaml

    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump({**TINY, "steps": 2, "holdout": 0.0}))
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "dhlive.cli",
            "train-render",
            "--avatars",
            str(pack),
            "--out",
            str(tmp_path / "ddp"),
            "--config",
            str(cfg),
            "--device",
            "cpu",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**__import__("os").environ, "OMP_NUM_THREADS": "1"},
    )
    assert r.returncode == 0, r.stderr[-2000:]
    model, info = load_renderer(tmp_path / "ddp" / "render_model.pt")
    assert info["world_size"] == 2 and info["steps"] == 2


def test_cli_fine_tune_learns_the_shipped_audio_models_prompts(tmp_path, face_avatar):
    """With --init and no --mouth, the prompts go through checkpoints/audio/pca.pkl: the PCA the
    shipped audio model decodes into at inference, not one fitted on the avatar."""
    import yaml

    from dhlive.formats import file_sha256
    from dhlive.models import DEFAULT_AUDIO_MODEL, DEFAULT_RENDERER

    cfg = tmp_path / "short.yaml"
    cfg.write_text(yaml.safe_dump({"steps": 1, "batch": 1, "perceptual_layers": 1, "gan_start": 100}))
    r = run_cli(
        "train-render",
        "--avatars",
        face_avatar,
        "--out",
        tmp_path / "ft",
        "--init",
        DEFAULT_RENDERER,
        "--config",
        cfg,
        "--device",
        "cpu",
        "--quiet",
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert file_sha256(tmp_path / "ft" / "pca.pkl") == file_sha256(DEFAULT_AUDIO_MODEL / "pca.pkl")


def test_a_slices_step_time_leaves_out_warm_up_and_its_last_checkpoint(tmp_path):
    """The fine-tune plans its budget from five timed steps: the first step's warm-up and the
    checkpoint written after the last must not count as the time of every step."""
    import time

    from dhlive.train.loop import TrainRun

    run = TrainRun(tmp_path, "test-state", T.TrainRenderConfig(steps=10), {}, resume=False, stop_at=5, progress=False)
    for step in run.steps("timed"):
        time.sleep(0.3 if step in (0, 4) else 0.02)  # warm-up, steady steps, the slice's checkpoint
    assert 0.015 < run.step_seconds < 0.1, run.step_seconds


def test_detail_loss_weighs_how_much_detail_not_where():
    """The detail gap of a blurred mouth is large, of the same texture moved by two pixels
    small; and its gradient makes a blurred mouth sharper."""
    from skimage import data

    from dhlive.metrics import sharpness
    from dhlive.train.detail import detail_gap
    from dhlive.train.grid import high_pass

    photo = data.astronaut()
    tensor = lambda a: torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].float() / 255  # noqa: E731
    crop = photo[180:244, 150:214]  # lips, chin, collar: 64 px
    real, moved = tensor(crop), tensor(photo[182:246, 152:216])
    blurred = tensor(cv2.GaussianBlur(crop, (0, 0), 1.5))
    assert detail_gap(real, real) == 0
    assert detail_gap(moved, real) < 0.4 * detail_gap(blurred, real)
    grey = lambda x: x.mean(1, keepdim=True)  # noqa: E731
    pixelwise = lambda x: (high_pass(grey(x)) - high_pass(grey(real))).abs().mean()  # noqa: E731
    assert pixelwise(moved) > pixelwise(blurred)  # compared pixel by pixel, the move would cost more than the blur

    image = blurred.clone().requires_grad_(True)
    opt = torch.optim.Adam([image], lr=2e-3)
    for _ in range(30):
        opt.zero_grad()
        detail_gap(image, real).backward()
        opt.step()
    to_uint8 = lambda x: (x[0].detach().clamp(0, 1).permute(1, 2, 0).numpy() * 255).astype(np.uint8)  # noqa: E731
    assert sharpness(to_uint8(image)) > 1.5 * sharpness(to_uint8(blurred))
