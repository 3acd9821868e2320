"""benchmarks.int8_weights runs on the committed 0.1 classifier fixture, and what it shows holds
on every CPU: uint8 weights agree with Keras in any session, int8 weights in an exact one."""

from benchmarks import int8_weights


def test_int8_weights_benchmark_reports_every_file_and_batch():
    rows = int8_weights.measure(int8_weights.FIXTURE, rounds=1, calls=1)
    assert {(row["file"], row["batch"]) for row in rows} == {
        (name, batch) for batch in (1, 32) for name in (
            "fp32 optimized", "int8 weights (U8S8), default session",
            "int8 weights (U8S8), exact session", "uint8 weights (U8U8), default session",
            "uint8 weights (U8U8), exact session")}
    for row in rows:
        assert row["time_vs_fp32"] > 0
        if "default" not in row["file"] or "U8U8" in row["file"]:
            assert row["agreement"] == 1.0, row
