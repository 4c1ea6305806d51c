from hypothesis import given, settings
from hypothesis import strategies as st

from edlm.tokenizer import decode, encode


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_round_trip_any_unicode(tokenizer, text):
    assert decode(tokenizer, encode(tokenizer, text)) == text


def test_mask_token_is_real_and_read_from_the_tokenizer(tokenizer):
    assert tokenizer.mask_token == "[MASK]"
    assert tokenizer.convert_tokens_to_ids("[MASK]") == tokenizer.mask_token_id
    assert len({tokenizer.mask_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id,
                tokenizer.pad_token_id}) == 4


def test_literal_special_strings_are_plain_text(tokenizer):
    for text in ("[MASK]", "<s>", "</s>", "<0x41>", "<pad>"):
        ids = encode(tokenizer, text)
        assert tokenizer.mask_token_id not in ids
        assert tokenizer.bos_token_id not in ids and tokenizer.eos_token_id not in ids
        assert decode(tokenizer, ids) == text


def test_saved_tokenizer_reloads_without_sentencepiece(tokenizer, tokenizer_dir, tmp_path):
    from edlm.tokenizer import load_tokenizer

    tokenizer.save_pretrained(tmp_path)
    again = load_tokenizer(tmp_path)
    text = "Fellow citizens of the Senate ü 🎉"
    assert encode(again, text) == encode(tokenizer, text)
