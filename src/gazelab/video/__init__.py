"""Video: frames in (file or folder), head tracks, model protocols over time, smoothing, annotated mp4 out.

See ``docs/video.md`` and the ``gazelab video`` command.
"""

from gazelab.video.reader import VideoFrame, VideoSource
from gazelab.video.runner import FrameResult, PersonResult, run_video
from gazelab.video.smoothing import TrackSmoother
from gazelab.video.tracks import IoUTracker, Tracks, detect_tracks, load_tracks
from gazelab.video.writer import VideoWriter

__all__ = [
    "FrameResult",
    "IoUTracker",
    "PersonResult",
    "TrackSmoother",
    "Tracks",
    "VideoFrame",
    "VideoSource",
    "VideoWriter",
    "detect_tracks",
    "load_tracks",
    "run_video",
]
