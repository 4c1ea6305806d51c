"""Tokenizer: a sentencepiece unigram model with byte fallback, wrapped as a transformers tokenizer with a real
[MASK] token.

Normalisation is the identity and no dummy prefix is added, so any Unicode text encodes and decodes back
exactly; bytes outside the vocabulary fall back to <0x..> pieces.
"""
from __future__ import annotations

import io
import os
import re
from collections.abc import Iterable
from pathlib import Path

MASK_TOKEN = "[MASK]"
SPACE_MARK = "\u2581"  # sentencepiece's visible space
SPECIALS = dict(pad_token="<pad>", unk_token="<unk>", bos_token="<s>", eos_token="</s>", mask_token=MASK_TOKEN)


def _training_sentences(texts: Iterable[str], max_chars: int = 2000) -> Iterable[str]:
    """Sentencepiece reads lines of bounded length: cut long texts at sentence ends."""
    for text in texts:
        for para in text.split("\n"):
            buf = ""
            for sent in re.split(r"(?<=[.!?]) ", para):
                if buf and len(buf) + len(sent) + 1 > max_chars:
                    yield buf
                    buf = ""
                buf = f"{buf} {sent}" if buf else sent
                while len(buf) > max_chars:
                    yield buf[:max_chars]
                    buf = buf[max_chars:]
            if buf:
                yield buf


def train_tokenizer(texts: Iterable[str], out_dir: str | os.PathLike, vocab_size: int = 4096, seed: int = 0):
    """Train the sentencepiece model on `texts` and save a transformers tokenizer in `out_dir`."""
    import sentencepiece as spm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(list(_training_sentences(texts))), model_writer=model, model_type="unigram",
        vocab_size=vocab_size, byte_fallback=True, character_coverage=0.9995, normalization_rule_name="identity",
        add_dummy_prefix=False, remove_extra_whitespaces=False, split_digits=True, pad_id=0, unk_id=1, bos_id=2,
        eos_id=3, user_defined_symbols=[MASK_TOKEN], num_threads=2, minloglevel=2,
        input_sentence_size=2_000_000, shuffle_input_sentence=True,
        required_chars="".join(map(chr, range(0x21, 0x7F))))
    (out_dir / "spiece.model").write_bytes(model.getvalue())
    _wrap(model.getvalue()).save_pretrained(out_dir)
    return load_tokenizer(out_dir)


# Score of pieces that text must never produce (specials, raw byte pieces). Every printable ASCII character is a
# piece of its own (required_chars), so a literal "<s>", "[MASK]" or "<0x41>" in text always has a cheaper path.
NEVER = -1e6


def _wrap(model_proto: bytes):
    """Build a transformers fast tokenizer from the sentencepiece model, keeping its exact pieces and scores.

    The converter shipped with transformers re-adds a dummy prefix and drops byte fallback, which breaks
    round trips, so the `tokenizers` pipeline is assembled here: spaces become U+2581, unigram Viterbi with
    byte fallback, and the reverse on decode.
    """
    import sentencepiece as spm
    from tokenizers import Tokenizer, decoders, models, normalizers
    from transformers import PreTrainedTokenizerFast

    sp = spm.SentencePieceProcessor(model_proto=model_proto)
    vocab = []
    for i in range(sp.get_piece_size()):
        never = sp.is_control(i) or sp.is_unknown(i) or sp.is_byte(i) or sp.id_to_piece(i) == MASK_TOKEN
        vocab.append((sp.id_to_piece(i), NEVER if never else sp.get_score(i)))
    backend = Tokenizer(models.Unigram(vocab, unk_id=sp.unk_id(), byte_fallback=True))
    backend.normalizer = normalizers.Replace(" ", "\u2581")
    backend.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse()])
    return PreTrainedTokenizerFast(tokenizer_object=backend, **SPECIALS)


def load_tokenizer(folder: str | os.PathLike):
    """Load a saved tokenizer (tokenizer.json; sentencepiece is not needed at load time)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(folder), trust_remote_code=False)  # never a folder's own code
    tok.backend_tokenizer.encode_special_tokens = True  # "[MASK]" typed in text is text, not the mask token
    if tok.mask_token_id is None:
        raise ValueError(f"tokenizer in {folder} has no mask token")
    return tok


def encode(tokenizer, text: str) -> list[int]:
    """Token ids of `text` as plain text: no special tokens added, and a literal "[MASK]" or "<s>" in the text
    is spelled out as ordinary pieces rather than read as a special token."""
    backend = tokenizer.backend_tokenizer
    backend.encode_special_tokens = True
    # A literal U+2581 would read as a space after normalisation: spell it with its UTF-8 byte pieces.
    ids: list[int] = []
    byte_pieces = backend.token_to_id("<0xE2>") is not None  # sentencepiece byte fallback
    parts = text.split(SPACE_MARK) if byte_pieces else [text]
    for i, part in enumerate(parts):
        if i:
            ids.extend(tokenizer.convert_tokens_to_ids([f"<0x{b:02X}>" for b in SPACE_MARK.encode()]))
        if part:
            ids.extend(backend.encode(part, add_special_tokens=False).ids)
    return ids


def decode(tokenizer, ids: Iterable[int]) -> str:
    """Exact inverse of `encode` for ordinary tokens (no whitespace clean-up)."""
    return tokenizer.decode(list(ids), skip_special_tokens=False, clean_up_tokenization_spaces=False)


_LINE_BREAKS: dict[tuple[int, int], tuple[int, ...]] = {}


def line_break_ids(tokenizer, vocab: int | None = None) -> tuple[int, ...]:
    """Ids (below `vocab`, default the whole tokenizer) of tokens that write a line break, decoded once per
    tokenizer: kept out of fills that must stay on one line (augmented records, spans inside a paragraph)."""
    n = len(tokenizer) if vocab is None else vocab
    key = (id(tokenizer), n)
    if key not in _LINE_BREAKS:
        texts = tokenizer.batch_decode([[i] for i in range(n)], skip_special_tokens=False,
                                       clean_up_tokenization_spaces=False)
        _LINE_BREAKS[key] = tuple(i for i, t in enumerate(texts) if any(c in t for c in "\n\r\u2028\u2029"))
    return _LINE_BREAKS[key]
