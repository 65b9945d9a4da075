"""LoRA fine-tuning of InternVL2 / HolmesVAU-2B on HIVAU-70k: data (data, dataset), SFT tokenisation (sft),
batching (collate), training (train, trainer, checkpoints) and merging the adapter (merge)."""
