"""Load InternVL2 / HolmesVAU-2B natively: original folder (converted on the fly), converted folder, or hub id."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from .convert import DEFAULT_SYSTEM_MESSAGE, convert_checkpoint, is_original_checkpoint
from .errors import CheckpointError
from .tokenizer import IM_END, IMG_CONTEXT, load_tokenizer

DEFAULT_MODEL = "ppxin321/HolmesVAU-2B"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass
class LoadedModel:
    """A native InternVL model with what prompting it needs."""

    model: torch.nn.Module
    tokenizer: object
    path: Path
    device: torch.device
    dtype: torch.dtype
    num_image_token: int
    system_message: str
    im_end_id: int
    image_token_id: int
    random_weights: bool | None = None  # True for test models (holmesvau.testing); None: not known

    @property
    def metadata(self) -> dict:
        """What a report records about the model."""
        out = {
            "name": self.path.name,
            "path": str(self.path),
            "dtype": str(self.dtype).removeprefix("torch."),
            "device": str(self.device),
        }
        if self.random_weights is not None:
            out["random_weights"] = self.random_weights
        return out

    @property
    def vision_hidden_size(self) -> int:
        return self.model.config.vision_config.hidden_size


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def default_dtype(device: torch.device | str) -> torch.dtype:
    """bf16 on GPUs that support it, fp16 on older GPUs, float32 on CPU."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def default_attention(device: torch.device | str) -> str:
    """sdpa everywhere; flash_attention_2 when flash-attn is installed and we are on a GPU."""
    if torch.device(device).type == "cuda" and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"


def default_cache_dir() -> Path:
    """Our cache: `$HOLMESVAU_CACHE`, default ~/.cache/holmesvau (the released scorer, converted folders for
    training). Hub downloads go to the Hugging Face cache (`$HF_HOME`, default ~/.cache/huggingface) unless a
    cache_dir is passed (then `<cache_dir>/hub`)."""
    return Path(os.environ.get("HOLMESVAU_CACHE", Path.home() / ".cache" / "holmesvau"))


DTYPES = {
    **dict.fromkeys(("bf16", "bfloat16"), torch.bfloat16),
    **dict.fromkeys(("fp16", "float16", "half"), torch.float16),
    **dict.fromkeys(("fp32", "float32", "float"), torch.float32),
}


def parse_dtype(dtype: torch.dtype | str | None) -> torch.dtype | None:
    """None, a torch dtype, or one of DTYPES' names (bf16 / bfloat16, fp16 / float16, fp32 / float32)."""
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    key = str(dtype).lower().removeprefix("torch.")
    if key not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r} (expected one of {', '.join(DTYPES)})")
    return DTYPES[key]


def locate_checkpoint(name_or_path: str | Path, cache_dir: str | Path | None = None) -> Path:
    """A local model folder for `name_or_path` (downloading a hub id once), in either format."""
    path = Path(name_or_path).expanduser()
    if not path.exists():
        if not _HUB_ID.match(str(name_or_path)):
            raise CheckpointError(f"{name_or_path}: no such folder (and not a hub id like owner/name)")
        path = _download(str(name_or_path), cache_dir)
    if not path.is_dir():
        raise CheckpointError(f"{path}: a model must be a folder (config.json + safetensors + tokenizer)")
    if not (path / "config.json").is_file():
        raise CheckpointError(f"{path}: no config.json — not a model folder")
    return path


def resolve_checkpoint(name_or_path: str | Path, cache_dir: str | Path | None = None) -> Path:
    """A NATIVE-format folder on disk for training and LoRA merging: an original-format folder is converted once
    into `<cache>/converted/<name>-<key>/` (`load_model` converts in memory instead)."""
    path = locate_checkpoint(name_or_path, cache_dir)
    return _converted(path, cache_dir) if is_original_checkpoint(path) else path


def _download(repo_id: str, cache_dir: str | Path | None) -> Path:
    from huggingface_hub import snapshot_download

    hub_cache = None if cache_dir is None else str(Path(cache_dir) / "hub")
    patterns = ["*.json", "*.safetensors", "*.model", "*.txt"]
    try:
        return Path(snapshot_download(repo_id, cache_dir=hub_cache, allow_patterns=patterns))
    except Exception as e:  # noqa: BLE001 - offline, unknown repo, auth: one clear message
        raise CheckpointError(
            f"could not fetch {repo_id!r} from the Hugging Face hub ({type(e).__name__}: {e}). "
            f"Offline? Download it elsewhere (e.g. `hf download {repo_id} --local-dir HolmesVAU-2B`) "
            "and pass the local folder instead: --model path/to/HolmesVAU-2B"
        ) from e


def _converted(src: Path, cache_dir: str | Path | None) -> Path:
    """Convert an original-format folder once; the result is cached under a key of its weights' identity."""
    stat = [(f.name, f.stat().st_size, int(f.stat().st_mtime)) for f in sorted(src.glob("*")) if f.is_file()]
    key = hashlib.sha1(repr((str(src.resolve()), stat)).encode()).hexdigest()[:12]
    root = Path(cache_dir) if cache_dir else default_cache_dir()
    dst = root / "converted" / f"{src.name}-{key}"
    if not (dst / "config.json").is_file():
        convert_checkpoint(src, dst)
    return dst


def _load_original(src: Path, dtype: torch.dtype, attn: str):
    """(native model on the CPU, tokenizer) of an original-format folder, converted in memory (the tokenizer files
    go through a temporary folder)."""
    import tempfile

    from transformers import InternVLForConditionalGeneration

    from .convert import build_native_model
    from .tokenizer import save_native_tokenizer

    converted, _ = build_native_model(src, dtype)
    # from_pretrained builds what the state dict lacks (rotary buffers) and sets the attention in every sub-model
    model = InternVLForConditionalGeneration.from_pretrained(
        None,
        config=converted.config,
        state_dict=converted.state_dict(),
        dtype=dtype,
        attn_implementation=attn,
    )
    del converted
    with tempfile.TemporaryDirectory(prefix="holmesvau-tokenizer-") as tmp:
        save_native_tokenizer(src, tmp, DEFAULT_SYSTEM_MESSAGE)
        tokenizer = load_tokenizer(tmp)
    return model, tokenizer


def load_model(
    name_or_path: str | Path = DEFAULT_MODEL,
    device: str | torch.device | None = None,
    dtype: torch.dtype | str | None = None,
    attn_implementation: str | None = None,
    cache_dir: str | Path | None = None,
) -> LoadedModel:
    """Load a model for inference (eval mode) with its tokenizer: a hub id (downloaded once), a native folder, or an
    original-format folder (converted in memory at every load; nothing is written)."""
    from safetensors import SafetensorError
    from transformers import InternVLForConditionalGeneration

    device = torch.device(device) if device is not None else default_device()
    dtype = parse_dtype(dtype) or default_dtype(device)
    attn = attn_implementation or default_attention(device)
    path = locate_checkpoint(name_or_path, cache_dir)
    if is_original_checkpoint(path):
        model, tokenizer = _load_original(path, dtype, attn)
    else:
        try:
            model = InternVLForConditionalGeneration.from_pretrained(
                str(path), dtype=dtype, attn_implementation=attn, local_files_only=True
            )
        except (OSError, ValueError, RuntimeError, SafetensorError) as e:  # a damaged weights file too
            raise CheckpointError(f"{path}: cannot load as a native InternVL checkpoint ({e})") from e
        tokenizer = load_tokenizer(path)
    model.to(device).eval()
    extra = getattr(model.config, "holmesvau", None) or {}
    img = tokenizer.convert_tokens_to_ids(IMG_CONTEXT)
    if img != model.config.image_token_id:
        raise CheckpointError(
            f"{path}: tokenizer's {IMG_CONTEXT} id {img} != config.image_token_id {model.config.image_token_id}"
        )
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        path=path,
        device=device,
        dtype=dtype,
        num_image_token=int(model.config.image_seq_length),
        system_message=extra.get("system_message", DEFAULT_SYSTEM_MESSAGE),
        im_end_id=int(tokenizer.convert_tokens_to_ids(IM_END)),
        image_token_id=int(img),
        random_weights=extra.get("random_weights"),
    )
