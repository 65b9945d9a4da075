"""Detection figures (matplotlib `Figure`, no pyplot state): ROC and PR curves over all frames, and
score-vs-ground-truth strips."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from holmesvau.files import atomic_target


def _save(fig, path: Path, written: list[Path]) -> None:
    fig.tight_layout()
    with atomic_target(path, keep_suffix=True) as tmp:
        fig.savefig(tmp, dpi=110)
    written.append(path)


def plot_detection(
    frame_scores: dict[str, np.ndarray],
    frame_labels: dict[str, np.ndarray],
    report: dict,
    out_dir: str | Path,
    videos: list[str] | None = None,
) -> list[Path]:
    """Write curves.png (ROC + PR) and worst_videos.png (one strip per video: score line, GT shaded) into out_dir.
    `videos`: which strips to draw (default: holmesvau.eval.detection.worst_videos(report))."""
    from matplotlib.figure import Figure
    from sklearn.metrics import precision_recall_curve, roc_curve

    from holmesvau.eval.detection import worst_videos

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    names = [n for n in frame_labels if n in frame_scores]
    s = np.concatenate([frame_scores[n] for n in names]) if names else np.zeros(0)
    g = np.concatenate([frame_labels[n] for n in names]) if names else np.zeros(0)

    fig = Figure(figsize=(10, 4.5))
    ax1, ax2 = fig.subplots(1, 2)
    if g.size and 0 < g.sum() < g.size:
        fpr, tpr, _ = roc_curve(g, s)
        prec, rec, _ = precision_recall_curve(g, s)
        ax1.plot(fpr, tpr, label=f"AUC {report['auc']:.4f}")
        ax2.plot(rec, prec, label=f"AP {report['ap']:.4f}")
        ax2.axhline(g.mean(), color="grey", ls=":", label=f"chance {g.mean():.3f}")
    ax1.plot([0, 1], [0, 1], color="grey", ls=":")
    ax1.set(xlabel="false positive rate", ylabel="true positive rate", title=f"ROC ({len(names)} videos)")
    ax2.set(xlabel="recall", ylabel="precision", title="Precision-recall", ylim=(0, 1.02))
    for ax in (ax1, ax2):
        ax.legend(loc="lower right")
        ax.grid(alpha=0.3)
    _save(fig, out_dir / "curves.png", written)

    videos = [n for n in (videos if videos is not None else worst_videos(report)) if n in names]
    if videos:
        fig = Figure(figsize=(10, 1.6 * len(videos)))
        axes = fig.subplots(len(videos), 1, squeeze=False)[:, 0]
        for ax, n in zip(axes, videos):
            x = np.arange(frame_scores[n].size)
            ax.fill_between(
                x, 0, frame_labels[n], step="post", color="tab:red", alpha=0.25, lw=0, label="GT anomaly"
            )
            ax.plot(x, frame_scores[n], color="tab:blue", lw=1, label="score")
            info = report["per_video"].get(n, {})
            auc = info.get("auc")
            ax.set_title(
                f"{n} ({info.get('label', '')})" + (f"  AUC {auc:.3f}" if auc is not None else ""), fontsize=8
            )
            ax.set_ylim(-0.02, 1.02 if frame_scores[n].max() <= 1 else None)
            ax.tick_params(labelsize=7)
        axes[0].legend(loc="upper right", fontsize=7)
        axes[-1].set_xlabel("frame")
        _save(fig, out_dir / "worst_videos.png", written)
    return written
