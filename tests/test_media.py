from fractions import Fraction

import av
import cv2
import numpy as np
import pytest
from conftest import astronaut_frame, write_clip

from dhlive import media
from dhlive.errors import DhliveError


def numbered_frames(n, w=64, h=48):
    """Frames whose brightness encodes their index (survives H.264 well)."""
    return [np.full((h, w, 3), 5 * i, np.uint8) for i in range(n)]


def frame_index(img):
    return int(round(img.mean() / 5))


def write_vfr(path, times, w=64, h=48):
    """Variable frame rate mp4: frame i shown at times[i] seconds."""
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=1000)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.time_base = Fraction(1, 1000)
        s.codec_context.time_base = Fraction(1, 1000)
        for i, t in enumerate(times):
            f = av.VideoFrame.from_ndarray(np.full((h, w, 3), 5 * i, np.uint8), format="rgb24")
            f.pts = int(round(t * 1000))
            f.time_base = Fraction(1, 1000)
            c.mux(s.encode(f))
        c.mux(s.encode(None))


def test_resample_30_to_25_keeps_duration_and_order(tmp_path):
    path = write_clip(tmp_path / "a.mp4", numbered_frames(30), fps=30)
    out = list(media.iter_frames(path, fps=25))
    assert len(out) == 25  # 1 s at 25 fps
    idx = [frame_index(f) for f in out]
    # output frame k shows the source frame nearest to k/25 s
    expected = [int(round(k / 25 * 30)) for k in range(25)]
    assert max(abs(a - b) for a, b in zip(idx, expected)) <= 1
    assert idx == sorted(idx)


def test_variable_frame_rate_follows_timestamps(tmp_path):
    # a 2 s clip whose first second has 5 frames and second second 20
    times = list(np.arange(5) * 0.2) + list(1.0 + np.arange(20) * 0.05)
    write_vfr(tmp_path / "vfr.mp4", times)
    out = [frame_index(f) for f in media.iter_frames(tmp_path / "vfr.mp4", fps=25)]
    assert abs(len(out) - 50) <= 1
    # at t=0.5 s (output 12) the nearest source frame is #2 (t=0.4) or #3 (t=0.6)
    assert out[12] in (2, 3)
    # at t=1.5 s (output 37) it is #15 (t=1.5)
    assert abs(out[37] - 15) <= 1


def test_rotation_metadata_is_honoured(tmp_path):
    upright = np.zeros((80, 48, 3), np.uint8)  # portrait: tall
    upright[:20, :24] = 255  # a bright block top-left
    path = write_clip(tmp_path / "portrait.mp4", [upright] * 5, rotation=90)
    info = media.probe(path)
    assert (info.width, info.height, info.rotation) == (48, 80, 90)
    frame = next(media.iter_frames(path))
    assert frame.shape == (80, 48, 3)
    assert frame[:20, :24].mean() > 200 and frame[40:, 24:].mean() < 50


def test_audio_loads_as_16k_mono(tmp_path, speech):
    stereo_44k = np.stack([speech, speech])  # av writes what it is given; resample first
    path = tmp_path / "speech.m4a"
    with av.open(str(path), "w") as c:
        s = c.add_stream("aac", rate=44100, layout="stereo")
        a44 = media.resample_audio(speech, 16000, 44100)
        frame = av.AudioFrame.from_ndarray(np.stack([a44, a44]), format="fltp", layout="stereo")
        frame.sample_rate = 44100
        c.mux(s.encode(frame))
        c.mux(s.encode(None))
    assert stereo_44k.shape[0] == 2
    audio = media.load_audio(path)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(audio.size - speech.size) < 0.05 * 16000  # same duration (AAC adds a little padding)
    assert 0.1 < np.abs(audio).max() <= 1.0


def test_mp4_writer_writes_h264_and_aac(tmp_path, speech):
    frames = numbered_frames(25, 65, 49)  # odd size: padded for yuv420p
    path = tmp_path / "out.mp4"
    with media.Mp4Writer(path, 25, 65, 49, audio=speech[:16000]) as w:
        for f in frames:
            w.write(f)
    assert not list(tmp_path.glob(".*part*"))
    with av.open(str(path)) as c:
        assert c.streams.video[0].codec_context.name == "h264"
        assert c.streams.audio[0].codec_context.name == "aac"
    assert len(list(media.iter_frames(path))) == 25
    assert abs(media.load_audio(path).size - 16000) < 0.05 * 16000


def test_writer_failure_leaves_nothing(tmp_path):
    path = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError):
        with media.Mp4Writer(path, 25, 64, 48) as w:
            w.write(numbered_frames(1)[0])
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p, "no such file"),
        (lambda p: (p.write_text("this is not a video\n" * 20), p)[1], "not a readable"),
        (lambda p: (p.write_bytes(b""), p)[1], "empty"),
    ],
)
def test_bad_files_raise_clear_errors(tmp_path, make, message):
    path = make(tmp_path / "clip.mp4")
    with pytest.raises(DhliveError, match=message) as e:
        list(media.iter_frames(path))
    assert str(path) in str(e.value)


def test_truncated_mp4_is_an_error_or_shorter(tmp_path):
    path = write_clip(tmp_path / "full.mp4", numbered_frames(50))
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DhliveError, match="cut.mp4"):
        list(media.iter_frames(cut))


def test_zero_length_video_and_audio_only(tmp_path, speech):
    empty = tmp_path / "empty.mp4"
    with av.open(str(empty), "w") as c:  # a valid mp4 whose video stream has no frames
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        c.start_encoding()
    assert empty.stat().st_size > 0
    with pytest.raises(DhliveError, match="no video frames|no frames"):
        list(media.iter_frames(empty))
    wav = tmp_path / "speech.wav"
    media.write_wav(wav, speech)
    with pytest.raises(DhliveError, match="no video stream"):
        list(media.iter_frames(wav))
    assert not media.probe(wav).has_video
    with pytest.raises(DhliveError, match="no audio stream"):
        media.load_audio(write_clip(tmp_path / "silent.mp4", numbered_frames(3)))


def test_truncated_faststart_mp4_decodes_what_is_there_and_says_so(tmp_path):
    path = tmp_path / "web.mp4"
    with av.open(str(path), "w", options={"movflags": "+faststart"}) as c:  # index at the front
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for f in numbered_frames(50):
            c.mux(s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        c.mux(s.encode(None))
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size * 85 // 100])  # the index is most of a tiny file
    warnings = []
    frames = list(media.iter_frames(cut, warnings=warnings))
    assert 0 < len(frames) < 50
    assert [frame_index(f) for f in frames] == list(range(len(frames)))
    assert len(warnings) == 1 and "truncated" in warnings[0] and "cut.mp4" in warnings[0]


@pytest.mark.parametrize("colorspace", [2, 1])  # untagged (read as BT.601), BT.709
def test_fast_colour_conversion_matches_swscale(colorspace):
    """frame_to_rgb's OpenCV path gives swscale's colours (within rounding), for either matrix."""
    rgb = cv2.resize(astronaut_frame(), (160, 120), interpolation=cv2.INTER_AREA)
    frame = media.rgb_to_frame(rgb)
    assert frame.format.name == "yuv420p"
    frame.colorspace = colorspace
    want = frame.to_ndarray(format="rgb24").astype(int)
    got = media.frame_to_rgb(frame).astype(int)
    assert np.abs(got - want).mean() < 1.5 and np.abs(got - want).max() <= 8
    if colorspace == 2:  # and the round trip through yuv420p keeps the picture
        assert np.abs(got - rgb).mean() < 3
