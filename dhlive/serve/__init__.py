"""`dhlive serve`: the toolkit behind a local web page (app.py): live talk over WebRTC (live.py)
and a queue of video jobs (jobs.py)."""

from .app import ServeConfig, make_app, serve

__all__ = ["ServeConfig", "make_app", "serve"]
