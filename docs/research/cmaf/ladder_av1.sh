#!/bin/bash
# Follow-up AV1 pass on the SAME segment boundaries: decode once, cascade-scale, SVT-AV1 per rung, fMP4 HLS per rung.
# Usage: ladder_av1.sh SRC LADDER_DIR [PRESET] [CRF] [SEG_S] [RUNGS e.g. "1080 720 360"]
set -e; . /work/scratch-cmaf/env.sh
SRC=$1; OUT=$2; P=${3:-10}; CRF=${4:-35}; SEG=${5:-4}; RUNGS=${6:-"1080 720 360"}; FPS=30; GOP=$((FPS*SEG))
HLS="-f hls -hls_time $SEG -hls_playlist_type event -hls_flags independent_segments+temp_file -hls_segment_type fmp4 -hls_fmp4_init_filename init.mp4 -start_number 1"
KEY="-g $GOP -force_key_frames expr:gte(t,n_forced*$SEG) -svtav1-params keyint=$GOP:irefresh-type=2:scd=0"
set -- $RUNGS; N=$#; GRAPH="[0:v:0]format=yuv420p[c0]"; OUTS=""; i=0
for h in $RUNGS; do
  w=$(( (h*16/9+1)/2*2 )); rm -rf $OUT/av1-${h}p; mkdir -p $OUT/av1-${h}p
  if [ $i -lt $((N-1)) ]; then GRAPH="$GRAPH;[c$i]scale=$w:$h:flags=bicubic,setsar=1,split=2[v$i][c$((i+1))]"
  else GRAPH="$GRAPH;[c$i]scale=$w:$h:flags=bicubic,setsar=1[v$i]"; fi
  OUTS="$OUTS -map [v$i] -c:v libsvtav1 -preset $P -crf $CRF $KEY $HLS -hls_segment_filename $OUT/av1-${h}p/seg_%05d.m4s $OUT/av1-${h}p/index.m3u8"
  i=$((i+1))
done
/usr/bin/time -f "av1 wall %e s, user %U s" $FF -hide_banner -nostdin -y -loglevel error -i $SRC -filter_complex "$GRAPH" $OUTS
