"""Data preparation: video or photo -> avatar folder (landmarks, pose, repaint region, crops).

Entry point: `dhlive.data.prepare.prepare` (behind `dhlive prepare`).
"""
