#!/usr/bin/env python3
"""Write the weights of a tiny Llama as one GGUF file, the same bytes on every run.

Real model servers need real weights; these are made here, not downloaded: 2 layers, 64
hidden, the real 32000-token Llama SentencePiece vocab (copied from llama.cpp's
models/ggml-vocab-llama-spm.gguf, read out of the llama-cpp-python sdist that
scripts/realserver.sh caches), random F16 weights from a fixed seed. About 9 MB and 4 M
parameters; llama-server loads it in well under a second and answers chat completions with
deterministic nonsense at temperature 0.

    python3 scripts/tiny_weights.py OUT_DIR [--sdist PATH | --vocab PATH] [--seed N]
                                    [--name FILE] [--layers N --hidden N --ff N]

Writes OUT_DIR/tiny-llama.gguf (atomically: a temp file renamed into place) and leaves an
existing file untouched when its bytes are already the ones wanted, so its mtime stays and a
directory sync sends nothing. Needs numpy and the `gguf` package (PyPI gguf==0.19.0, the
version the sdist vendors); without `gguf` installed, the sdist's own gguf-py is used.
Prints one line, "tiny_weights: PATH SIZE sha256=HEX (written|unchanged)".
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

SDIST_NAME = "llama_cpp_python-0.3.36.tar.gz"
VOCAB_MEMBER = "vendor/llama.cpp/models/ggml-vocab-llama-spm.gguf"
GGUF_PY_MEMBER = "vendor/llama.cpp/gguf-py/"
FILE_NAME = "tiny-llama.gguf"

# The model's shape. head_dim = 64 / 4 = 16; the rope covers the whole head.
N_LAYER = 2
N_EMBD = 64
N_HEAD = 4
N_FF = 128
N_CTX = 2048
SEED = 20261201


@dataclass(frozen=True)
class Shape:
    n_layer: int = N_LAYER
    n_embd: int = N_EMBD
    n_head: int = N_HEAD
    n_ff: int = N_FF

# A minimal ChatML template, so /v1/chat/completions renders messages the same way whatever
# default the server version falls back on.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def default_sdist() -> Path:
    cache = os.environ.get("BERTH_TEST_CACHE") or os.path.expanduser("~/.cache/berth-test")
    return Path(cache) / SDIST_NAME


def _extract(sdist: Path, member_suffix: str, dest: Path) -> Path:
    """Extract the sdist members under `member_suffix` (a file or a folder/) into dest."""
    with tarfile.open(sdist) as tar:
        found = None
        for m in tar.getmembers():
            rel = m.name.split("/", 1)[1] if "/" in m.name else m.name
            if rel == member_suffix or (member_suffix.endswith("/") and rel.startswith(member_suffix)):
                if not (m.isfile() or m.isdir()):
                    continue
                tar.extract(m, dest, filter="data")
                found = dest / m.name.split("/", 1)[0] / member_suffix
        if found is None:
            raise SystemExit(f"tiny_weights: error: {sdist} has no {member_suffix}")
        return found


def _cached_vocab(sdist: Path, scratch: Path) -> Path:
    """The vocab file, extracted once beside the sdist (reading the 76 MB archive takes ~5 s)."""
    kept = sdist.with_name(sdist.name.removesuffix(".tar.gz") + "." + Path(VOCAB_MEMBER).name)
    if kept.is_file():
        return kept
    extracted = _extract(sdist, VOCAB_MEMBER, scratch)
    try:
        tmp = kept.with_name(kept.name + f".{os.getpid()}.tmp")
        tmp.write_bytes(extracted.read_bytes())
        os.replace(tmp, kept)
        return kept
    except OSError:  # a read-only cache: use the extracted copy this once
        return extracted


def _import_gguf(sdist: Path | None, scratch: Path):
    try:
        import gguf  # noqa: F401
        return gguf
    except ImportError:
        pass
    if sdist is None or not sdist.is_file():
        raise SystemExit("tiny_weights: error: no `gguf` package and no sdist to take gguf-py from")
    gguf_py = _extract(sdist, GGUF_PY_MEMBER, scratch)
    sys.path.insert(0, str(gguf_py))
    import gguf
    return gguf


def _read_vocab(gguf, vocab_path: Path):
    r = gguf.GGUFReader(vocab_path)

    def scalar(key):
        f = r.fields[key]
        return f.parts[f.data[0]][0].item()

    def array(key):
        f = r.fields[key]
        return [f.parts[i] for i in f.data]

    tokens = [bytes(p).decode("utf-8") for p in array("tokenizer.ggml.tokens")]
    scores = [float(p[0]) for p in array("tokenizer.ggml.scores")]
    types = [int(p[0]) for p in array("tokenizer.ggml.token_type")]
    ids = {k: int(scalar(f"tokenizer.ggml.{k}_token_id")) for k in ("bos", "eos", "unknown")}
    return tokens, scores, types, ids


def build(out_file: Path, vocab_path: Path, gguf, seed: int, shape: Shape = Shape()) -> None:
    import numpy as np

    tokens, scores, types, ids = _read_vocab(gguf, vocab_path)
    n_vocab = len(tokens)
    rng = np.random.Generator(np.random.PCG64(seed))

    def w(*shape):  # numpy shape is (rows, cols) = (out, in); small values keep logits sane
        return (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(np.float16)

    def ones(n):
        return np.ones((n,), dtype=np.float32)

    wr = gguf.GGUFWriter(out_file, "llama")
    wr.add_name("berth tiny llama (random weights)")
    n_embd, n_ff = shape.n_embd, shape.n_ff
    wr.add_context_length(N_CTX)
    wr.add_embedding_length(n_embd)
    wr.add_block_count(shape.n_layer)
    wr.add_feed_forward_length(n_ff)
    wr.add_head_count(shape.n_head)
    wr.add_head_count_kv(shape.n_head)
    wr.add_rope_dimension_count(n_embd // shape.n_head)
    wr.add_layer_norm_rms_eps(1e-5)
    wr.add_vocab_size(n_vocab)
    wr.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    wr.add_tokenizer_model("llama")
    wr.add_tokenizer_pre("default")
    wr.add_token_list(tokens)
    wr.add_token_scores(scores)
    wr.add_token_types(types)
    wr.add_bos_token_id(ids["bos"])
    wr.add_eos_token_id(ids["eos"])
    wr.add_unk_token_id(ids["unknown"])
    wr.add_add_bos_token(True)
    wr.add_add_eos_token(False)
    wr.add_chat_template(CHAT_TEMPLATE)

    wr.add_tensor("token_embd.weight", w(n_vocab, n_embd))
    for i in range(shape.n_layer):
        p = f"blk.{i}."
        wr.add_tensor(p + "attn_norm.weight", ones(n_embd))
        wr.add_tensor(p + "attn_q.weight", w(n_embd, n_embd))
        wr.add_tensor(p + "attn_k.weight", w(n_embd, n_embd))
        wr.add_tensor(p + "attn_v.weight", w(n_embd, n_embd))
        wr.add_tensor(p + "attn_output.weight", w(n_embd, n_embd))
        wr.add_tensor(p + "ffn_norm.weight", ones(n_embd))
        wr.add_tensor(p + "ffn_gate.weight", w(n_ff, n_embd))
        wr.add_tensor(p + "ffn_up.weight", w(n_ff, n_embd))
        wr.add_tensor(p + "ffn_down.weight", w(n_embd, n_ff))
    wr.add_tensor("output_norm.weight", ones(n_embd))
    wr.add_tensor("output.weight", w(n_vocab, n_embd))

    wr.write_header_to_file()
    wr.write_kv_data_to_file()
    wr.write_tensors_to_file()
    wr.close()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def make(out_dir: Path, *, sdist: Path | None = None, vocab: Path | None = None,
         seed: int = SEED, shape: Shape = Shape(), name: str = FILE_NAME) -> tuple[Path, bool]:
    """Write out_dir/NAME; return (path, whether it was (re)written)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / name
    with tempfile.TemporaryDirectory(prefix="tiny-weights-") as scratch_s:
        scratch = Path(scratch_s)
        sdist = sdist or (None if vocab else default_sdist())
        gguf = _import_gguf(sdist, scratch)
        if vocab is None:
            if sdist is None or not sdist.is_file():
                raise SystemExit(f"tiny_weights: error: no sdist at {sdist} "
                                 "(run scripts/realserver.sh once, or pass --sdist/--vocab)")
            vocab = _cached_vocab(sdist, scratch)
        fd, tmp_s = tempfile.mkstemp(prefix=".tiny-llama.", suffix=".tmp", dir=out_dir)
        os.close(fd)
        tmp = Path(tmp_s)
        try:
            build(tmp, vocab, gguf, seed, shape)
            os.chmod(tmp, 0o644)
            if target.is_file() and _sha256(target) == _sha256(tmp):
                return target, False
            os.replace(tmp, target)
            return target, True
        finally:
            tmp.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir", type=Path)
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--sdist", type=Path, help=f"the {SDIST_NAME} to read the vocab from")
    src.add_argument("--vocab", type=Path, help="a ggml-vocab-llama-spm.gguf file")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--name", default=FILE_NAME, help="the file's name in OUT_DIR")
    # A bigger shape makes a model that loads for long enough to watch /health answer 503.
    ap.add_argument("--layers", type=int, default=N_LAYER)
    ap.add_argument("--hidden", type=int, default=N_EMBD, help="a multiple of 4 heads")
    ap.add_argument("--ff", type=int, default=N_FF)
    a = ap.parse_args(argv)
    shape = Shape(n_layer=a.layers, n_embd=a.hidden, n_ff=a.ff)
    path, written = make(a.out_dir, sdist=a.sdist, vocab=a.vocab, seed=a.seed, shape=shape,
                         name=a.name)
    print(f"tiny_weights: {path} {path.stat().st_size} sha256={_sha256(path)} "
          f"{'written' if written else 'unchanged'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
