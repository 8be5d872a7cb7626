"""`dhlive inspect`: an avatar folder checked for everything `infer` and training read from
it, so that "valid" means usable."""

from __future__ import annotations

import cv2
from tqdm import tqdm

from .. import media
from ..errors import DhliveError
from ..formats import Avatar, load_avatar


def verify_avatar(path, progress: bool = False) -> Avatar:
    """The avatar at `path`, after load_avatar's checks of its files and arrays, with every
    crop decoding to its size and the source video holding the avatar's frames at its size; any
    problem is one DhliveError naming the file."""
    avatar = load_avatar(path)
    size = (avatar.crop_size, avatar.crop_size)
    for i in tqdm(range(avatar.n_frames), desc="checking crops", unit="frame", disable=not progress, leave=False):
        crop = cv2.imread(str(avatar.image_path(i)), cv2.IMREAD_UNCHANGED)
        if crop is None:
            raise DhliveError(f"{avatar.image_path(i)}: does not decode (cut short or damaged)")
        if crop.shape[:2] != size:
            raise DhliveError(
                f"{avatar.image_path(i)}: is {crop.shape[1]}x{crop.shape[0]}, the avatar's crops "
                f"are {size[0]}x{size[1]}"
            )
    w, h = avatar.source_size
    need = int(avatar.source_video_frames[-1]) + 1
    n = 0
    for frame in media.iter_frames(avatar.source_video_path, avatar.fps):
        if frame.shape[1] < w or frame.shape[0] < h:
            raise DhliveError(
                f"{avatar.source_video_path}: frames are {frame.shape[1]}x{frame.shape[0]}, the avatar's source {w}x{h}"
            )
        n += 1
        if n == need:
            break
    if n < need:
        raise DhliveError(f"{avatar.source_video_path}: has {n} frames, the avatar needs {need}")
    if avatar.audio_path is not None and len(media.load_audio(avatar.audio_path)) == 0:
        raise DhliveError(f"{avatar.audio_path}: has no samples")
    return avatar
