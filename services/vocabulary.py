"""The words and typed documents that handlers share with the services.

Handlers may not import models/ (an import-linter contract), yet they validate against a video's
statuses and fields and a job's states, and hold the users, jobs and videos (as a user is shown them)
that the services hand them. Those names are declared once, beside the documents and queries that use
them (models/, which cannot import upward); the services own them and hand them up from here, under the
same names.
"""

from __future__ import annotations

from models.jobs import STATES, Job
from models.users import User
from models.videos import STATUSES, AudioTrack, VideoFields, VideoPatch
from services.catalogue import VideoView

__all__ = ["STATES", "STATUSES", "AudioTrack", "Job", "User", "VideoFields", "VideoPatch", "VideoView"]
