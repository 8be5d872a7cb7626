"""The time base every stage shares: video frames, audio samples and how they line up.

Avatars, the audio model and every output run at FPS; audio is resampled to SAMPLE_RATE
on reading. Everything else is derived here, once.
"""

FPS = 25  # video frames per second: avatars, the audio model's output, every video written
SAMPLE_RATE = 16000  # Hz: the audio model's input and every stored audio.wav
SAMPLES_PER_FRAME = SAMPLE_RATE // FPS  # 640 samples: the 40 ms of sound of one video frame
FRAME_MS = 1000 // FPS  # 40
LOOKAHEAD_FRAMES = 4  # future audio the audio model hears before it decides a frame (160 ms)
