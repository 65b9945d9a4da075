#!/usr/bin/env bash
# The oldest transformers that pyproject.toml allows ("transformers>=X"), on the tests that lean on its internals
# (native InternVL loading and parity, the batch KV cache and shared prefill, LoRA training and merging, the CLI's
# error lines). It is installed beside the project's environment, not into it: a --target folder put first on
# PYTHONPATH, with the huggingface-hub and tokenizers versions that release asks for.
#
#   bash shell/test_oldest_transformers.sh [FOLDER]     # default .cache/oldest-transformers (reused when there)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
floor=$(sed -n 's/^ *"transformers>=\([0-9.]*\).*/\1/p' pyproject.toml)
[ -n "$floor" ] || { echo "no transformers>=X in pyproject.toml" >&2; exit 2; }
dir=${1:-.cache/oldest-transformers}/$floor
if [ ! -f "$dir/site/transformers-$floor.installed" ]; then
    if [ -e "$dir/site" ]; then  # not an install of this script: never replaced
        echo "$dir/site exists but was not made by this script: move it away or pass another FOLDER" >&2
        exit 2
    fi
    mkdir -p "$dir"
    work=$(mktemp -d "$dir/.partial-XXXXXX")  # download and install here, then one rename
    "$PY" -m pip download -q --no-deps "transformers==$floor" -d "$work/wheel"
    wheel=$(ls "$work"/wheel/transformers-*.whl | head -n 1)
    # the release's own pins of the libraries it imports at load time (a newer one refuses to import it)
    mapfile -t deps < <("$PY" - "$wheel" <<'PYEOF'
import sys, zipfile
wheel = zipfile.ZipFile(sys.argv[1])
meta = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
for line in wheel.read(meta).decode().splitlines():
    req = line.partition("Requires-Dist:")[2].strip()
    if req.split("<")[0].split(">")[0].split("=")[0].strip() in {"huggingface-hub", "tokenizers", "typer-slim"} and ";" not in req:
        print(req)
PYEOF
    )
    "$PY" -m pip install -q --no-deps --no-compile --target "$work/site" "$wheel" "${deps[@]}"
    touch "$work/site/transformers-$floor.installed"
    mv -T "$work/site" "$dir/site"
    rm -rf "$work"  # the mktemp folder made above, nothing else
fi
export PYTHONPATH="$(realpath "$dir/site"):$PWD:$PWD/tests${PYTHONPATH:+:$PYTHONPATH}"
"$PY" -c "import transformers as t, sys; print('transformers', t.__version__, 'from', t.__file__); sys.exit(not t.__version__.startswith('$floor'))"
exec "$PY" -m pytest -q -p no:cacheprovider \
    tests/test_model_parity.py tests/test_model_convert.py tests/test_tokenizer_parity.py tests/test_batch_answer.py \
    tests/test_kv_cache.py tests/test_prefill.py tests/test_train_checkpointing.py tests/test_train_model.py \
    tests/test_train_resume_merge.py tests/test_merge_lora.py tests/test_inference_cli.py
