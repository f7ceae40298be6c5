#!/bin/bash
# ONE FFmpeg pass, one hls(fmp4) OUTPUT per rendition (no -var_stream_map): each dir gets init.mp4 + seg_NNNNN.m4s
# + an EVENT index.m3u8; audio encoded once into audio/. Python (cmaf_manifest.py) then writes master.m3u8 + manifest.mpd.
# Usage: ladder_cmaf.sh SRC OUTDIR [SEG_S] [CRF] [PRESET]
set -e; . /work/scratch-cmaf/env.sh
SRC=$1; OUT=$2; SEG=${3:-4}; CRF=${4:-23}; PRESET=${5:-veryfast}; FPS=30; GOP=$((FPS*SEG))
rm -rf $OUT; mkdir -p $OUT/{1080p,720p,360p,120p,audio}
HLS="-f hls -hls_time $SEG -hls_playlist_type event -hls_flags independent_segments+temp_file -hls_segment_type fmp4 -hls_fmp4_init_filename init.mp4 -start_number 1"
KEY="-g $GOP -keyint_min $GOP -sc_threshold 0 -force_key_frames expr:gte(t,n_forced*$SEG)"
rung() { # name w h level maxk
  echo "-map [v$1] -c:v libx264 -preset $PRESET -profile:v high -level:v $4 -crf $CRF -maxrate $5k -bufsize $(($5*2))k $KEY $HLS -hls_segment_filename $OUT/$1/seg_%05d.m4s $OUT/$1/index.m3u8"
}
/usr/bin/time -f "ladder wall %e s, user %U s" $FF -hide_banner -nostdin -y -loglevel error -i $SRC \
 -filter_complex "[0:v:0]format=yuv420p,split=2[sthumb][c4];[c4]scale=1920:1080:flags=bicubic,setsar=1,split=2[v1080p][c3];[c3]scale=1280:720:flags=bicubic,setsar=1,split=2[v720p][c2];[c2]scale=640:360:flags=bicubic,setsar=1,split=2[v360p][c1];[c1]scale=214:120:flags=bicubic,setsar=1[v120p];[sthumb]select='gte(t\,1)',scale=640:-2,thumbnail=25[thumb]" \
 $(rung 120p 214 120 3.0 250) $(rung 360p 640 360 3.0 900) $(rung 720p 1280 720 3.1 3000) $(rung 1080p 1920 1080 4.0 6000) \
 -map 0:a:0 -af atrim=start_sample=1024 -c:a aac -b:a 128k -ac 2 $HLS -hls_segment_filename $OUT/audio/seg_%05d.m4s $OUT/audio/index.m3u8 \
 -map "[thumb]" -frames:v 1 -update 1 -q:v 3 $OUT/thumbnail.jpg
