# source me
export FF=/work/main/.venv/lib/python3.11/site-packages/imageio_ffmpeg/binaries/ffmpeg-linux-x86_64-v9.0.2
export S=/work/scratch-cmaf
