"""Ask HolmesVAU about a video: anomaly-focused frame sampling (ATS), then the MLLM's answer.

    # the original's example: robbery.mp4 of the original repository (fetched once, verified), HolmesVAU-2B,
    # ATS with the released scorer, "Could you specify the anomaly events present in the video?"
    python inference.py

    # HolmesVAU-2B from the hub + the released anomaly scorer (both fetched once and cached)
    python inference.py --video examples/robbery.mp4 \
        --prompt "Could you specify the anomaly events present in the video?" \
        --output result.json --plot curve.png

    # offline / local files
    python inference.py --video clip.mp4 --prompt "..." --model path/to/HolmesVAU-2B \
        --scorer path/to/anomaly_scorer.pth

    # the hierarchical report: events on the anomaly curve, each described (judgement, description, analysis,
    # clip captions), plus the video-level answers -> report_dir/report.json and a self-contained report.html
    python inference.py --video examples/robbery.mp4 --report report_dir/

    # uniform sampling only (no scorer needed), or explicit frames
    python inference.py --video clip.mp4 --prompt "..." --no-ats --select-frames 8
    python inference.py --video clip.mp4 --prompt "..." --frame-indices 0,39,79,119

    # a tiny random model to try the pipeline on CPU in seconds (answers are noise)
    python tools/make_tiny_model.py /tmp/tiny && python inference.py --video clip.mp4 --prompt "hi" \
        --model /tmp/tiny --no-ats --max-new-tokens 8

ATS runs when the video has more than dense_stride x select_frames frames (as the original), else uniform sampling.
--output writes the full result as JSON; --plot the anomaly curve with the sampled frames marked.
"""

import sys

from holmesvau.cli.inference import main

if __name__ == "__main__":
    sys.exit(main())
