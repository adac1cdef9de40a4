"""Sequential.summary: layers, output shapes and parameter counts, printed and returned."""

from __future__ import annotations

from seqkern import nn


def test_summary_table(capsys):
    model = nn.Sequential([nn.Embedding(1000, 64), nn.Dropout(0.5),
                           nn.LSTM(64, 32, bidirectional=True, return_sequences=True),
                           nn.AttentionPool(64, 32), nn.Dense(64, 2, activation="softmax")])
    text = model.summary()
    assert capsys.readouterr().out == text
    lines = text.splitlines()
    assert lines[0].split() == ["Layer", "(type)", "Output", "Shape", "Param", "#"]
    rows = [line.split(None, 2) for line in lines[2:7]]
    assert [r[1] for r in rows] == ["Embedding", "Dropout", "LSTM", "AttentionPool", "Dense"]
    lstm = 2 * (4 * 32 * (64 + 32) + 4 * 32)
    expected = [("(None, None, 64)", 64_000), ("(None, None, 64)", 0), ("(None, None, 64)", lstm),
                ("(None, 64)", 32 * 64 + 32 + 32), ("(None, 2)", 130)]
    for r, (shape, n) in zip(rows, expected):
        assert r[2].startswith(shape) and r[2].endswith(f"{n:,d}"), r
    total = 64_000 + lstm + 2112 + 130
    assert f"Total params: {total:,d} (" in text and f"Trainable params: {total:,d}" in text
    assert "Non-trainable params: 0" in text


def test_summary_per_token_and_features():
    tagger = nn.Sequential([nn.Embedding(100, 8), nn.GRU(8, 16, return_sequences=True),
                            nn.TimeDistributed(nn.Dense(16, 5, activation="softmax"))])
    text = tagger.summary(print_fn=None)
    assert "2 TimeDistributed(Dense)" in text and "(None, None, 5)" in text
    reg = nn.Sequential([nn.LSTM(3, 4, num_layers=2), nn.Dense(4, 1)]).summary(print_fn=None)
    assert "(None, 4)" in reg and "(None, 1)" in reg
    # A first layer that does not say what it takes: shapes unknown, counts still there.
    odd = nn.Sequential([nn.Dropout(0.1), nn.Dense(4, 1)]).summary(print_fn=None)
    assert "?" in odd and "Total params: 5 (20 B)" in odd
