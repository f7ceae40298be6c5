#!/usr/bin/env python3
"""A stand-in for FFmpeg with a failure mode, for the supervisor's edge cases.

Usage: fake_ffmpeg.py MODE STATE_DIR REAL_FFMPEG [ffmpeg arguments...]
  hang   print some progress, then ignore SIGTERM and sleep for ever
  crash  die of SIGSEGV
  fail   complain on stderr and exit 1
  slow   print progress slowly for ~1 s, then run the real FFmpeg
  stall  advance to 0.3 s, then keep reporting that same time for ever (an encode that is stuck)
  flaky  fail the first time (per STATE_DIR), run the real FFmpeg after
  audio-hang  the video and the loudness measurement are the real FFmpeg; the audio rendition's encode
         ignores SIGTERM and sleeps for ever
Each run appends a line to STATE_DIR/runs. The audio rendition's FFmpegs (loudness measurement and
encode, `-vn`: they run beside the ladder's) are the real FFmpeg, not counted: the modes are the video's
(but for audio-hang).
"""

import os
import signal
import sys
import time

mode, state, real, args = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
if "-vn" in args:
    if mode == "audio-hang" and "hls" in args:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        with open(os.path.join(state, "audio-hangs"), "a") as hangs:
            hangs.write(f"{os.getpid()}\n")
        while True:
            time.sleep(1)
    os.execv(real, [real, *args])
with open(os.path.join(state, "runs"), "a") as runs:
    runs.write(f"{os.getpid()} {mode}\n")


def progress(seconds: float) -> None:
    sys.stdout.write(f"out_time_us={int(seconds * 1e6)}\nprogress=continue\n")
    sys.stdout.flush()


if mode == "hang":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    progress(0.1)
    while True:
        time.sleep(1)
elif mode == "crash":
    os.kill(os.getpid(), signal.SIGSEGV)
elif mode == "fail":
    sys.stderr.write("fake_ffmpeg: Invalid data found when processing input\n")
    sys.exit(1)
elif mode == "stall":
    for step in range(4):
        progress(0.1 * step)
    while True:
        progress(0.3)
        time.sleep(0.1)
elif mode == "slow":
    for step in range(5):
        progress(0.2 * step)
        time.sleep(0.2)
elif mode == "flaky":
    marker = os.path.join(state, "failed-once")
    if not os.path.exists(marker):
        open(marker, "w").close()
        sys.stderr.write("fake_ffmpeg: transient trouble\n")
        sys.exit(1)
os.execv(real, [real, *args])
