"""Watch live video streams: online anomaly scores, events with saved clips, HolmesVAU's explanation of each event.

    # a camera over RTSP, HolmesVAU-2B + the released anomaly scorer (fetched once), alerts POSTed to a webhook
    python watch.py --source rtsp://user:pass@camera/stream --out watch_out --webhook http://127.0.0.1:8000/alerts

    # many cameras in one process, one model for all (cameras file: docs/live.md); outputs in watch_out/<camera>/
    python watch.py --cameras cameras.toml --out watch_out

    # other sources: UDP / TCP / HTTP MPEG-TS, RTMP, a V4L2 device, a file (as fast as it decodes, or --realtime)
    python watch.py --source udp://127.0.0.1:5000 --out watch_out
    python watch.py --source /dev/video0 --out watch_out
    python watch.py --source ../shared/videos/robbery.mp4 --realtime --out watch_out

    # event rule and clips: open at --on held for --min-duration-s, close below --off for --gap-s
    python watch.py --source udp://127.0.0.1:5000 --on 0.6 --off 0.4 --min-duration-s 1 --gap-s 3 \
        --pre-roll-s 5 --post-roll-s 5 --window 64

    # offline / local weights; scores, events and clips only (no MLLM explanations)
    python watch.py --source clip.mp4 --model path/to/HolmesVAU-2B --scorer path/to/anomaly_scorer.pth --no-explain

    # a tiny random model to try it on the CPU in seconds (scores and answers are noise; a random scorer's scores
    # sit in a narrow band, so --on 0 --off 0 makes the whole clip one event: docs/live.md picks real thresholds)
    python tools/make_tiny_model.py /tmp/tiny && \
    python -c "from holmesvau.testing import make_random_scorer as m; m('/tmp/tiny_scorer.pth', 64)" && \
    python watch.py --source clip.mp4 --model /tmp/tiny --scorer /tmp/tiny_scorer.pth --on 0 --off 0 --max-new-tokens 8

Writes to --out (appends, never clears; one watcher per folder), per camera (--source: --out itself; --cameras:
--out/<camera>/): events.jsonl (a `run` line at each start, then opened / closed / clip / explained / gap lines),
scores.jsonl (the run line, one line per scored snippet, and the gaps), every line with its schema_version,
camera and run; clips/<event>.mp4 (announced by its `clip` line once complete), clips/<event>_frames/*.jpg (what
HolmesVAU was shown), backlog/ (events still waiting for an explanation; picked up by the next run). Progress on
stderr; a JSON summary on stdout at the end. SIGINT / SIGTERM: open events closed, clips finished, everything
flushed, exit 0. A bad option or cameras file, or a source that cannot be opened: an error naming it, exit 2; an
output that cannot be written (disk full): an error naming it, exit 1.
"""

from __future__ import annotations

import sys

if __name__ == "__main__":
    from holmesvau.live.options import main

    sys.exit(main(doc=__doc__))
