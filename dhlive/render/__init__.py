"""Render stage: simplified DINet that repaints the lower face from a mouth prompt (see the renderer issue)."""
