"""dhlive: offline talking heads from a video or photo and a speech recording."""

__version__ = "0.1.0"
