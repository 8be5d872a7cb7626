"""Training loops for the audio model and the renderer (see the audio model and renderer issues)."""
