"""seqkern.text: tokenizer, vocabulary, labels, TSV reading, padding and bucketing."""

from __future__ import annotations

import numpy as np
import pytest

from seqkern.text import LabelEncoder, Vocab, bucket_batches, pad_sequences, read_tsv, tokenize


def test_tokenize():
    assert tokenize("  The cat\tsat\n on  it 's ") == ["the", "cat", "sat", "on", "it", "'s"]
    assert tokenize("A B", lower=False) == ["A", "B"]
    assert tokenize("") == []


def test_vocab_min_count_max_size_unknown():
    texts = [["a", "b", "a"], ["c", "a", "b"], ["d"]]
    v = Vocab.build(texts)
    assert v.itos == ["<pad>", "<unk>", "a", "b", "c", "d"]
    assert v.encode(["a", "zzz", "d"]) == [2, 1, 5]
    assert v.decode([2, 0, 1]) == ["a", "<unk>"]
    assert Vocab.build(texts, min_count=2).itos == ["<pad>", "<unk>", "a", "b"]
    small = Vocab.build(texts, max_size=3)
    assert len(small) == 3 and small.encode(["b"]) == [Vocab.unk_id]
    again = Vocab.from_json(v.to_json())
    assert again.itos == v.itos and "c" in again


def test_label_encoder():
    enc = LabelEncoder.fit(["10", "2", "2", "1"])
    assert enc.classes == ["1", "2", "10"]
    np.testing.assert_array_equal(enc.transform([2, "10", " 1"]), [1, 2, 0])
    s = LabelEncoder.fit(["pos", "neg", "pos"])
    assert s.classes == ["neg", "pos"] and s.inverse([1, 0]) == ["pos", "neg"]
    with pytest.raises(ValueError, match="unknown label"):
        s.transform(["neutral"])


@pytest.mark.parametrize(
    "content,texts,labels",
    [
        ("text\tlabel\nhello world\t1\nbye\t0\n", ["hello world", "bye"], ["1", "0"]),
        ("sentence    label\nhello\t1\n", ["hello"], ["1"]),  # header without a tab
        ("review\tsentiment\ngreat\tpos\n\nawful\tneg\n", ["great", "awful"], ["pos", "neg"]),
        ("hello world\tpos\nbye\tneg\n", ["hello world", "bye"], ["pos", "neg"]),  # no header
        ("sentence\tpolarity\na\t1\nb\t0\n", ["a", "b"], ["1", "0"]),  # header: labels are ints
        ("a\tb\tc\t1\n", ["a\tb\tc"], ["1"]),  # the label is after the last tab
    ],
)
def test_read_tsv(tmp_path, content, texts, labels):
    p = tmp_path / "d.tsv"
    p.write_text(content)
    assert read_tsv(str(p)) == (texts, labels)


def test_read_tsv_bad_line(tmp_path):
    p = tmp_path / "d.tsv"
    p.write_text("a\t1\nno tab here\n")
    with pytest.raises(ValueError, match="line 2 has no tab"):
        read_tsv(str(p))


def test_pad_sequences():
    ids, lengths = pad_sequences([[3, 4, 5], [], [7]])
    np.testing.assert_array_equal(ids, [[3, 4, 5], [0, 0, 0], [7, 0, 0]])
    np.testing.assert_array_equal(lengths, [3, 0, 1])
    ids, lengths = pad_sequences([[3, 4, 5], [6]], maxlen=2, pad_value=9)
    np.testing.assert_array_equal(ids, [[3, 4], [6, 9]])
    np.testing.assert_array_equal(lengths, [2, 1])


def test_bucket_batches_cover_rows_and_group_lengths():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 60, size=1000)
    batches = bucket_batches(lengths, 32, rng=np.random.default_rng(1))
    allidx = np.concatenate(batches)
    assert sorted(allidx.tolist()) == list(range(1000))
    assert all(len(b) <= 32 for b in batches)
    padded = sum(len(b) * lengths[b].max() for b in batches)
    random_batches = np.array_split(rng.permutation(1000), len(batches))
    padded_random = sum(len(b) * lengths[b].max() for b in random_batches)
    assert padded < 0.75 * padded_random, "bucketing must cut the padding"
    other = bucket_batches(lengths, 32, rng=np.random.default_rng(2))
    assert any(not np.array_equal(a, b) for a, b in zip(batches, other)), "shuffled epochs differ"
    fixed = bucket_batches(lengths, 32, shuffle=False)
    assert np.all(np.diff(lengths[np.concatenate(fixed)]) >= 0)


def test_negative_or_non_integer_ids_are_refused_not_wrapped():
    v = Vocab.build([["a", "b"]])
    enc = LabelEncoder.fit(["neg", "pos"])
    for call, n in ((v.decode, len(v)), (enc.inverse, 2)):
        for bad in (-1, -len(v), n):
            with pytest.raises(ValueError, match=rf"id {bad} is out of range \[0, {n}\)"):
                call([1, bad])
        for bad in (1.0, 0.5, True, "1"):
            with pytest.raises(TypeError, match="ids must be integers"):
                call([bad])
    assert v.decode(np.array([2, 0, 3])) == ["a", "b"] and enc.inverse(np.array([1, 0])) == ["pos", "neg"]


def test_read_tsv_splits_lines_only_at_newlines(tmp_path):
    p = tmp_path / "d.tsv"
    p.write_bytes(b"a lone\rreturn\t1\r\nnext line\t0\nlast\t1")
    assert read_tsv(str(p)) == (["a lone\rreturn", "next line", "last"], ["1", "0", "1"])


def test_read_tsv_invalid_utf8_names_file_and_line(tmp_path):
    p = tmp_path / "d.tsv"
    p.write_bytes("caf\u00e9\t1\n".encode() + b"ok\t0\nbad \xe9t\xe9\t1\n")
    with pytest.raises(ValueError, match=rf"read_tsv: {p} line 3 is not valid UTF-8 \(byte 5 of the line"):
        read_tsv(str(p))
