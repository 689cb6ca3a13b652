"""corrections_fingerprint: the answers' content, not how pyarrow wrote them."""

import datetime as dt

import pyarrow as pa

from relabeler.corrections import corrections_fingerprint


def _table(metadata=None):
    return pa.table({"id": ["a", "b"], "old_label": ["pos", "neg"], "new_label": ["neg", None],
                     "action": ["relabel", "drop"], "n_annotations": [2, 1],
                     "updated_at": pa.array([dt.datetime(2024, 1, 2, tzinfo=dt.UTC)] * 2,
                                            pa.timestamp("us", tz="UTC"))},
                    metadata=metadata)


def test_the_fingerprint_ignores_writer_metadata_and_column_order_and_sees_a_new_answer():
    plain = corrections_fingerprint(_table())
    # what another pyarrow (or pandas) version writes beside the same rows
    assert corrections_fingerprint(_table({b"pandas": b'{"pandas_version": "9.9"}',
                                           b"ARROW:schema": b"x"})) == plain
    table = _table()
    assert corrections_fingerprint(table.select(list(reversed(table.column_names)))) == plain
    changed = table.set_column(2, "new_label", pa.array(["neg", "pos"]))
    assert corrections_fingerprint(changed) != plain
    assert len(plain) == 16 and int(plain, 16) >= 0
