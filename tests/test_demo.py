"""The shipped base models and `dhlive demo`: the first run works out of the box."""

import av
import numpy as np
from conftest import REPO, run_cli

from dhlive import media
from dhlive.audio.inference import load_audio_model
from dhlive.data.landmarks import FaceLandmarker
from dhlive.facemesh import aperture
from dhlive.formats import file_sha256
from dhlive.render.checkpoint import load_renderer

CHECKPOINTS = REPO / "checkpoints"


def test_shipped_checkpoints_match_their_hashes_and_load_safely():
    sums = (CHECKPOINTS / "SHA256SUMS").read_text().split("\n")
    entries = [line.split() for line in sums if line.strip()]
    assert {name for _, name in entries} == {
        "audio/audio_model.pt",
        "audio/pca.pkl",
        "audio_live/audio_model.pt",
        "audio_live/pca.pkl",
        "render_fast.pt",
    }
    for digest, name in entries:
        assert file_sha256(CHECKPOINTS / name) == digest, name
    assert sum((CHECKPOINTS / name).stat().st_size for _, name in entries) <= 30e6
    model, basis = load_audio_model(CHECKPOINTS / "audio")  # weights_only loads inside
    live, _ = load_audio_model(CHECKPOINTS / "audio_live")
    assert (model.config.lookahead, live.config.lookahead) == (4, 3)
    renderer, info = load_renderer(CHECKPOINTS / "render_fast.pt")
    assert renderer.cfg.resolution == 256 and info["steps"] > 0 and model.config.n_coeffs == basis.n_coeffs


def test_demo_makes_a_talking_video(tmp_path):
    out = tmp_path / "demo.mp4"
    r = run_cli("demo", "--out", out, "--work", tmp_path / "work", "--quiet")
    assert r.returncode == 0, r.stderr[-1500:]
    assert str(out) in r.stdout
    with av.open(str(out)) as c:
        assert c.streams.video and c.streams.audio
    frames = list(media.iter_frames(out))
    speech = media.load_audio(next((tmp_path / "work").glob("speech-*.wav")))
    assert abs(len(frames) - len(speech) / 640) <= 1.5
    # the mouth moves with the speech: the aperture the face model reads off the video
    # varies while the astronaut talks and is wider on loud frames than on quiet ones
    with FaceLandmarker(video=True) as lm:
        ap = np.array([aperture(lm.detect(f, 40 * i)[0].landmarks) for i, f in enumerate(frames)])
    loud = np.array([np.sqrt(np.mean(speech[i * 640 : (i + 1) * 640] ** 2)) for i in range(len(frames))])
    assert ap.std() > 0.02, ap.std()
    talking = loud > np.percentile(loud, 60)
    quiet = loud < np.percentile(loud, 20)
    assert ap[talking].mean() > ap[quiet].mean() + 0.02, (ap[talking].mean(), ap[quiet].mean())
