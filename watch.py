"""Watch a live video stream: online anomaly scores, events with saved clips, HolmesVAU's explanation of each event.

    # a camera over RTSP, HolmesVAU-2B + the released anomaly scorer (fetched once), alerts POSTed to a webhook
    python watch.py --source rtsp://user:pass@camera/stream --out watch_out --webhook http://127.0.0.1:8000/alerts

    # other sources: UDP / TCP / HTTP MPEG-TS, RTMP, a V4L2 device, a file (as fast as it decodes, or --realtime)
    python watch.py --source udp://127.0.0.1:5000 --out watch_out
    python watch.py --source /dev/video0 --out watch_out
    python watch.py --source ../shared/videos/robbery.mp4 --realtime --out watch_out

    # event rule and clips: open at --on held for --min-duration-s, close below --off for --gap-s
    python watch.py --source udp://127.0.0.1:5000 --on 0.6 --off 0.4 --min-duration-s 1 --gap-s 3 \
        --pre-roll-s 5 --post-roll-s 5 --window 64

    # offline / local weights; scores, events and clips only (no MLLM explanations)
    python watch.py --source clip.mp4 --model path/to/HolmesVAU-2B --scorer path/to/anomaly_scorer.pth --no-explain

    # a tiny random model to try it on the CPU in seconds (scores and answers are noise)
    python tools/make_tiny_model.py /tmp/tiny && \
    python -c "from holmesvau.testing import make_random_scorer as m; m('/tmp/tiny_scorer.pth', 64)" && \
    python watch.py --source clip.mp4 --model /tmp/tiny --scorer /tmp/tiny_scorer.pth --on 0 --max-new-tokens 8

Writes to --out (appends, never clears): events.jsonl (one line per opened / closed / explained event and per
stream gap, with a schema_version), scores.jsonl (one line per scored snippet, and the gaps), clips/<event>.mp4,
clips/<event>_frames/*.jpg (the frames HolmesVAU was shown), backlog/ (events still waiting for an explanation;
picked up by the next run). Progress on stderr; a JSON summary on stdout at the end. SIGINT / SIGTERM: the open
event is closed, everything flushed, exit 0. A source that cannot be opened: an error naming it, exit 2.
"""

from __future__ import annotations

import sys

if __name__ == "__main__":
    from holmesvau.live.options import main

    sys.exit(main(doc=__doc__))
