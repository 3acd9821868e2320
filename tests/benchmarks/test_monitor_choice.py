"""benchmarks.monitor_choice scores each monitor's kept model on a test split neither saw."""

from benchmarks import monitor_choice
from keras_attn.config import TrainSettings

TINY = TrainSettings(max_len=24, d_model=16, num_heads=2, ff_dim=32, num_layers=1,
                     vocab_size=300, epochs=3, batch_size=32, patience=3, jit_compile=False)


def test_the_monitor_benchmark_reports_both_monitors_on_test():
    rows = monitor_choice.measure([monitor_choice.CORPORA[1]], seeds=[0], base=TINY)
    assert [(row["corpus"], row["monitor"]) for row in rows] == [
        ("fortune_topics", "val_loss"), ("fortune_topics", "val_accuracy")]
    for row in rows:
        assert 0 <= row["test_accuracy"] <= 1 and row["epochs"] <= 3
        assert row["kept"].startswith("kept epoch ")
