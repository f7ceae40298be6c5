#!/bin/bash
# Loudness: measure (ebur128 -> file, loudnorm json), then 2-pass linear loudnorm to -16 LUFS into the audio rendition.
# Usage: loudness.sh SRC OUTDIR
set -e; . /work/scratch-cmaf/env.sh; SRC=$1; OUT=$2; mkdir -p $OUT
T=$(date +%s.%N)
# (a) measurement #1: ebur128 with metadata -> ametadata writes key=value lines to a FILE (no log parsing); last I = integrated
$FF -hide_banner -nostdin -loglevel error -i $SRC -map 0:a:0 -af "ebur128=metadata=1:peak=true,ametadata=mode=print:key=lavfi.r128.I:file=$OUT/r128.txt" -f null -
echo "ebur128 integrated: $(grep -o 'lavfi.r128.I=.*' $OUT/r128.txt | tail -1)  ($(echo "$(date +%s.%N) - $T" | bc) s)"
T=$(date +%s.%N)
# (b) pass 1: loudnorm analysis, JSON printed at the end of stderr
$FF -hide_banner -nostdin -i $SRC -map 0:a:0 -af loudnorm=I=-16:TP=-1.5:LRA=11:print_format=json -f null - 2> $OUT/pass1.log
python3 - "$OUT/pass1.log" > $OUT/pass1.json <<'PY'
import json,sys; t=open(sys.argv[1]).read(); print(json.dumps(json.loads(t[t.rindex('{'):t.rindex('}')+1])))
PY
cat $OUT/pass1.json; echo "pass1 $(echo "$(date +%s.%N) - $T" | bc) s"
M=$(python3 -c "import json;d=json.load(open('$OUT/pass1.json'));print(f\"measured_I={d['input_i']}:measured_TP={d['input_tp']}:measured_LRA={d['input_lra']}:measured_thresh={d['input_thresh']}:offset={d['target_offset']}\")")
T=$(date +%s.%N)
# (c) pass 2: linear loudnorm inside the audio rendition's encode (AAC once, fMP4 HLS); loudnorm outputs 192 kHz -> aresample
mkdir -p $OUT/2pass && $FF -hide_banner -nostdin -y -loglevel error -i $SRC -map 0:a:0 \
 -af "atrim=start_sample=1024,loudnorm=I=-16:TP=-1.5:LRA=11:$M:linear=true,aresample=48000" -c:a aac -b:a 128k -ac 2 \
 -f hls -hls_time 4 -hls_playlist_type event -hls_segment_type fmp4 -hls_fmp4_init_filename init.mp4 -start_number 1 \
 -hls_segment_filename $OUT/2pass/seg_%05d.m4s $OUT/2pass/index.m3u8
echo "pass2 encode $(echo "$(date +%s.%N) - $T" | bc) s"
T=$(date +%s.%N)
# (d) 1-pass (dynamic) loudnorm for comparison
mkdir -p $OUT/1pass && $FF -hide_banner -nostdin -y -loglevel error -i $SRC -map 0:a:0 \
 -af "atrim=start_sample=1024,loudnorm=I=-16:TP=-1.5:LRA=11,aresample=48000" -c:a aac -b:a 128k -ac 2 \
 -f hls -hls_time 4 -hls_playlist_type event -hls_segment_type fmp4 -hls_fmp4_init_filename init.mp4 -start_number 1 \
 -hls_segment_filename $OUT/1pass/seg_%05d.m4s $OUT/1pass/index.m3u8
echo "1pass encode $(echo "$(date +%s.%N) - $T" | bc) s"
for v in 2pass 1pass; do
 $FF -hide_banner -nostdin -loglevel error -i $OUT/$v/index.m3u8 -af "ebur128=metadata=1,ametadata=mode=print:key=lavfi.r128.I:file=$OUT/$v.r128.txt" -f null -
 echo "$v result: $(grep -o 'lavfi.r128.I=.*' $OUT/$v.r128.txt | tail -1)"
done
