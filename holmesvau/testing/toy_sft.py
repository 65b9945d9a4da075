"""A toy training set (generated videos + instructions + meta file) to smoke-test fine-tuning on any machine.

    python -m holmesvau.testing.toy_sft work_dirs/toy                  # writes videos/, train.jsonl, meta.json
    python tools/make_tiny_model.py work_dirs/tiny --format native
    GPUS=0 MODEL=work_dirs/tiny META=work_dirs/toy/meta.json MAX_STEPS=20 BATCH_SIZE=1 PER_DEVICE_BATCH_SIZE=1 \
        sh shell/internvl2_2b_finetune_lora.sh --clip_max_frames 2 --clip_min_frames 2 --event_frames 2 \
        --video_frames 2 --learning_rate 5e-3

Videos are 160x120 and short; answers are fixed sentences, so a model can memorise them (the loss falls).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from holmesvau.files import atomic_write_json
from holmesvau.jsonl import write_jsonl_atomic

TOY_ROWS = [
    ("clip", "What happens in the video?", "A man is walking on the street.", None),
    ("event", "Is there an anomaly?", "Yes, there is a fire near the car.", [(0, 30)]),
    ("video", "Describe the video.", "People are running in the store.", None),
]


def make_toy_data(
    root: str | Path, num_frames: int = 30, repeat_time: float = 1.0, test_format: bool = True
) -> Path:
    """Write the toy set under `root`; returns the meta file. With `test_format`, the last row uses the
    test-format keys (`prompt`/`anwser`) to exercise the on-the-fly conversion."""
    from holmesvau.testing.synthetic import make_video

    root = Path(root)
    rows = []
    for i, (level, question, answer, bright) in enumerate(TOY_ROWS):
        video = f"toy/{level}_{i}.mp4"
        make_video(root / "videos" / video, num_frames, bright_ranges=bright)
        row = {"id": i, "type": level, "task": "caption", "video": video}
        if test_format and i == len(TOY_ROWS) - 1:
            row.update(prompt=question, anwser=answer)
        else:
            row["conversations"] = [
                {"from": "human", "value": f"<video>\n{question}"},
                {"from": "gpt", "value": answer},
            ]
        rows.append(row)
    write_jsonl_atomic(root / "train.jsonl", rows)
    meta = root / "meta.json"
    entry = {"root": "videos", "annotation": "train.jsonl", "repeat_time": repeat_time}
    atomic_write_json(meta, {"toy": entry})
    return meta


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="Write a toy fine-tuning set (videos/, train.jsonl, meta.json).")
    ap.add_argument("out_dir", help="folder to write into")
    print(json.dumps({"meta": str(make_toy_data(ap.parse_args().out_dir))}))
