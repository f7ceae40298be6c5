#!/bin/bash
# VMAF of one rung (any playlist/file) against the source scaled to the rung's size.
# Usage: vmaf.sh DISTORTED SOURCE W H JSON_LOG [N_SUBSAMPLE]
. /work/scratch-cmaf/env.sh
$FF -hide_banner -nostdin -loglevel error -i "$1" -i "$2" -lavfi \
 "[0:v]setpts=PTS-STARTPTS[d];[1:v]scale=$3:$4:flags=bicubic,setpts=PTS-STARTPTS[r];[d][r]libvmaf=model=version=vmaf_v0.6.1:n_threads=2:n_subsample=${6:-1}:log_fmt=json:log_path=$5" \
 -f null - && python3 -c "import json,sys;print(round(json.load(open(sys.argv[1]))['pooled_metrics']['vmaf']['mean'],2))" "$5"
