"""InternLM2 tokenizer, rebuilt as a standard `tokenizers` BPE so `AutoTokenizer` loads it with no remote code.

Spaces become "▁" (no prefix), BPE merges in sentencepiece piece order with byte fallback; control pieces special,
user-defined pieces (`<|im_end|>`, ...) added but *not* special (`skip_special_tokens` keeps them, as the original
does); a `<s>` prepended. `decode_like_original` reproduces the original's decoding with special tokens, quirks
included.
"""

from __future__ import annotations

import json
from pathlib import Path

from .errors import CheckpointError

IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
IMG_START = "<img>"
IMG_END = "</img>"
IMG_CONTEXT = "<IMG_CONTEXT>"

# sentencepiece piece types (sentencepiece_model.proto)
_CONTROL, _USER_DEFINED = 3, 4

# internlm2-chat template with its system message (what InternVL2's chat() builds); `messages` may hold a system turn.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% if messages[0]['role'] == 'system' %}{% set system = messages[0]['content'] %}"
    "{% set messages = messages[1:] %}{% else %}{% set system = default_system_message %}{% endif %}"
    "{{ '<|im_start|>system\\n' + system + '<|im_end|>' }}"
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def build_fast_tokenizer(src: str | Path):
    """Build a `tokenizers.Tokenizer` equal to the original InternLM2Tokenizer of checkpoint folder `src`.

    Returns (tokenizer, special_tokens: dict) where special_tokens names bos/eos/unk/pad and the added specials.
    """
    from sentencepiece import sentencepiece_model_pb2 as pb
    from tokenizers import AddedToken, Tokenizer, decoders, normalizers, processors
    from tokenizers.models import BPE
    from transformers.tokenization_utils_base import generate_merges

    src = Path(src)
    model_file = src / "tokenizer.model"
    if not model_file.is_file():
        raise CheckpointError(f"{src}: missing tokenizer.model (the InternLM2 sentencepiece model)")
    proto = pb.ModelProto()
    try:
        proto.ParseFromString(model_file.read_bytes())
    except Exception as e:  # noqa: BLE001 - protobuf raises its own DecodeError
        raise CheckpointError(f"{model_file}: not a sentencepiece model ({e})") from e
    if not proto.pieces:
        raise CheckpointError(f"{model_file}: sentencepiece model has no pieces")
    if proto.trainer_spec.model_type != 2:
        raise CheckpointError(
            f"{model_file}: expected a BPE sentencepiece model, got model_type {proto.trainer_spec.model_type}"
        )
    norm = proto.normalizer_spec
    if norm.add_dummy_prefix or norm.remove_extra_whitespaces or norm.precompiled_charsmap:
        raise CheckpointError(
            f"{model_file}: unsupported normaliser (dummy prefix / whitespace folding / charsmap)"
        )

    cfg_file = src / "tokenizer_config.json"
    tok_cfg = json.loads(cfg_file.read_text()) if cfg_file.is_file() else {}
    added = _added_tokens(src, tok_cfg)

    vocab = {p.piece: i for i, p in enumerate(proto.pieces)}
    skip = {p.piece for p in proto.pieces if p.type in (_CONTROL, _USER_DEFINED)}
    merges = generate_merges(vocab, skip_tokens=skip)
    unk = proto.pieces[proto.trainer_spec.unk_id].piece
    tok = Tokenizer(BPE(vocab, merges, unk_token=unk, fuse_unk=True, byte_fallback=True))
    tok.normalizer = normalizers.Replace(" ", "▁")
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])

    bos = _content(tok_cfg.get("bos_token", proto.pieces[proto.trainer_spec.bos_id].piece))
    eos = _content(tok_cfg.get("eos_token", proto.pieces[proto.trainer_spec.eos_id].piece))
    pad = _content(tok_cfg.get("pad_token", eos))

    # sentencepiece's own control/user pieces, added after the checkpoint's added tokens
    to_add = [
        AddedToken(p.piece, special=p.type == _CONTROL or p.piece == unk, normalized=False)
        for i, p in enumerate(proto.pieces)
        if p.type in (_CONTROL, _USER_DEFINED) or i == proto.trainer_spec.unk_id
    ]
    # the checkpoint's own added tokens (those not already sentencepiece pieces), in id order
    extra_specials = [c for c, i in sorted(added.items(), key=lambda kv: kv[1]) if i >= len(proto.pieces)]
    for content in extra_specials:
        idx = added[content]
        tok.add_special_tokens([AddedToken(content, special=True, normalized=False)])
        got = tok.token_to_id(content)
        if got != idx:
            raise CheckpointError(
                f"{src}: added token {content!r} should have id {idx}, got {got} (ids must be contiguous)"
            )
    tok.add_tokens([t for t in to_add if not t.special])
    tok.add_special_tokens([t for t in to_add if t.special])
    if tok_cfg.get("add_bos_token", True):
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, vocab[bos])]
        )
    return tok, dict(bos_token=bos, eos_token=eos, unk_token=unk, pad_token=pad, extra=extra_specials)


def _content(tok) -> str:
    return tok["content"] if isinstance(tok, dict) else str(tok)


def _added_tokens(src: Path, tok_cfg: dict) -> dict[str, int]:
    added: dict[str, int] = {}
    f = src / "added_tokens.json"
    if f.is_file():
        added.update(json.loads(f.read_text()))
    for idx, spec in tok_cfg.get("added_tokens_decoder", {}).items():
        added.setdefault(spec["content"], int(idx))
    return added


def save_native_tokenizer(src: str | Path, dst: str | Path, system_message: str) -> dict:
    """Write tokenizer.json + tokenizer_config.json + special_tokens_map.json of `src` into `dst`."""
    tok, special = build_fast_tokenizer(src)
    dst = Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    tok.save(str(dst / "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        **{k: special[k] for k in ("bos_token", "eos_token", "unk_token", "pad_token")},
        "additional_special_tokens": special["extra"],
        "extra_special_tokens": special["extra"],
        "add_bos_token": True,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": 32768,
        "padding_side": "right",
        "chat_template": CHAT_TEMPLATE.replace(
            "default_system_message", json.dumps(system_message, ensure_ascii=False)
        ),
    }
    (dst / "tokenizer_config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False))
    # the sentencepiece model travels along: `decode_like_original` and the original code both read it.
    (dst / "tokenizer.model").write_bytes((Path(src) / "tokenizer.model").read_bytes())
    return special


def load_tokenizer(path: str | Path):
    """AutoTokenizer on a converted folder, local files only; a damaged tokenizer file is a CheckpointError that
    names it."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except Exception as e:  # noqa: BLE001 - json, sentencepiece and tokenizers each raise their own type
        names = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json")
        first = next((f for f in names if (Path(path) / f).exists()), "")
        raise CheckpointError(
            f"{Path(path) / first}: cannot load the tokenizer ({type(e).__name__}: {e}); "
            "the model folder's tokenizer files are damaged: download or convert the model again"
        ) from None


def decode_like_original(tokenizer, ids, skip_special_tokens: bool = False) -> str:
    """Decode exactly as the original InternLM2Tokenizer (transformers 4.37 slow path) did.

    Added tokens beyond the sentencepiece vocabulary are joined to their neighbours with spaces; inside a
    sentencepiece run, a space is inserted before each special token not preceded by another one.
    """
    ids = [int(i) for i in ids]
    specials = set(tokenizer.all_special_ids)
    sp_size = _sp_vocab_size(tokenizer)
    sub_texts: list[str] = []
    run: list[tuple[int, str]] = []
    for i, piece in [*zip(ids, tokenizer.convert_ids_to_tokens(ids)), (None, None)]:  # None: the end
        if skip_special_tokens and i in specials:
            continue
        if i is not None and i < sp_size:
            run.append((i, piece))
            continue
        if run and (text := _tokens_to_string(tokenizer, run, specials)):
            sub_texts.append(text)
        run = []
        if piece is not None:
            sub_texts.append(piece)
    return " ".join(sub_texts)


def _tokens_to_string(tokenizer, run: list[tuple[int, str]], specials: set[int]) -> str:
    out, current, prev_special = "", [], False
    for i, piece in run:
        if i in specials:
            if not prev_special:
                out += " "
            out += tokenizer.decode(current, skip_special_tokens=False) + piece
            current, prev_special = [], True
        else:
            current.append(i)
            prev_special = False
    return out + tokenizer.decode(current, skip_special_tokens=False)


def _sp_vocab_size(tokenizer) -> int:
    """Ids below this come from sentencepiece; the checkpoint's added tokens (`<img>`, ...) sit above it."""
    base = {tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id, tokenizer.pad_token_id}
    extra = [i for i in tokenizer.all_special_ids if i not in base]
    return min(extra) if extra else len(tokenizer)
