"""Bad input, one case per kind: every failure a user can cause is one line on stderr naming
the place (file and line or row, key, path), exit code 2, and nothing partial left behind (no
temporary files; an old dataset and its marker intact when there was one).

Each case runs the CLI in-process (``relabeler.cli.main``) and stops at ``data``, ``init``,
configuration loading or the check before training, so the table stays fast.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest

from relabeler.cli import main
from tests.conftest import synthetic_frame

GOOD_CSV = "id,text,label\n" + "".join(
    f"r{i},text number {i} about {'cats' if i % 2 else 'dogs'},{'b' if i % 2 else 'a'}\n"
    for i in range(20))


def _jsonl(*records: dict) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def _rows(labels: list) -> list[dict]:
    return [{"id": f"r{i}", "text": f"text {i}", "label": label} for i, label in enumerate(labels)]


@dataclass
class Case:
    """``files``: name -> content under the case's folder (str, bytes, or None for a folder).
    ``argv``: the command, ``{d}`` standing for the folder. ``expect``: fragments the one-line
    message must hold (``{d}`` again). ``finished``: a good dataset is prepared first, and
    must survive the failing command byte for byte. ``absent``: what must not exist after
    the failure."""

    argv: list[str]
    expect: list[str]
    files: dict[str, str | bytes | None] = field(default_factory=dict)
    finished: bool = False
    absent: tuple[str, ...] = ("run/dataset",)


def _data(source: str, *more: str) -> list[str]:
    return ["data", "--run", "{d}/run", "--data", source, "-q", *more]


CASES: dict[str, Case] = {
    # sources that are not there, or not files
    "missing file": Case(_data("{d}/nope.csv"), ["{d}/nope.csv", "no such file"]),
    "unknown demo dataset": Case(_data("sms-spamm"), ["'sms-spamm'", "not a demo dataset"]),
    "folder instead of file": Case(_data("{d}/folder.csv"), ["{d}/folder.csv", "is a folder"],
                                   {"folder.csv": None}),
    "file under a file": Case(_data("{d}/good.csv/x.csv"), ["{d}/good.csv/x.csv"],
                              {"good.csv": GOOD_CSV}),
    "unknown suffix": Case(_data("{d}/data.txt"), ["data.txt", "unknown suffix '.txt'"],
                           {"data.txt": GOOD_CSV}),
    "unknown protocol": Case(_data("nosuch://bucket/x.csv"), ["nosuch://bucket/x.csv"]),
    "missing memory:// file": Case(_data("memory:///relabeler-bad-input/none.csv"),
                                   ["memory:///relabeler-bad-input/none.csv", "no such file"]),
    "missing eval_source": Case(_data("{d}/good.csv", "--eval-data", "{d}/eval.csv"),
                                ["eval_source", "{d}/eval.csv"], {"good.csv": GOOD_CSV}),
    "pool_source is a folder": Case(_data("{d}/good.csv", "--pool-data", "{d}/pool"),
                                    ["{d}/pool", "is a folder"],
                                    {"good.csv": GOOD_CSV, "pool": None}),
    # file contents
    "empty file": Case(_data("{d}/empty.csv"), ["empty.csv", "empty"], {"empty.csv": ""}),
    "header only": Case(_data("{d}/h.csv"), ["h.csv", "train set is empty"],
                        {"h.csv": "id,text,label\n"}),
    "no label column": Case(_data("{d}/nl.csv"), ["nl.csv", "no column 'label'"],
                            {"nl.csv": "id,text\n1,a\n2,b\n"}),
    "no text column": Case(_data("{d}/nt.csv", "--text-col", "body"), ["nt.csv",
                           "no column 'body'"], {"nt.csv": GOOD_CSV}),
    "duplicate header": Case(_data("{d}/dh.csv"), ["dh.csv", "line 1", "'text' appears twice"],
                             {"dh.csv": "id,text,text,label\n1,a,b,x\n"}),
    "duplicate ids": Case(_data("{d}/dup.csv"), ["dup.csv", "row 2", "duplicate id 'r0'"],
                          {"dup.csv": "id,text,label\nr0,a,x\nr1,b,y\nr0,c,x\n"}),
    "empty text": Case(_data("{d}/et.csv"), ["et.csv", "row 1", "column 'text'"],
                       {"et.csv": "id,text,label\n1,a,x\n2,,y\n3,c,x\n"}),
    "blank text": Case(_data("{d}/bt.csv"), ["bt.csv", "row 1", "empty text"],
                       {"bt.csv": "id,text,label\n1,a,x\n2,   ,y\n3,c,x\n"}),
    "null label": Case(_data("{d}/nul.csv"), ["nul.csv", "row 2", "null label"],
                       {"nul.csv": "id,text,label\n1,a,x\n2,b,y\n3,c,\n"}),
    "empty id": Case(_data("{d}/nid.csv", "--id-col", "id", "--eval-fraction", "0.25",
                           "--pool-fraction", "0"),
                     ["nid.csv", "line 3", "row 1", "column 'id'", "null id"],
                     {"nid.csv": "id,text,label\na,good,pos\n,bad,neg\nc,great,pos\nd,awful,neg\n"
                                 "e,fine,pos\nf,poor,neg\ng,nice,pos\nh,dull,neg\n"}),
    "blank id": Case(_data("{d}/bid.csv", "--id-col", "id", "--eval-fraction", "0.25",
                           "--pool-fraction", "0"),
                     ["bid.csv", "line 4", "row 2", "column 'id'", "null id", "(value '  ')"],
                     {"bid.csv": "id,text,label\na,good,pos\nb,bad,neg\n  ,great,pos\n"
                                 "d,awful,neg\ne,fine,pos\nf,poor,neg\ng,nice,pos\nh,dull,neg\n"}),
    "blank label": Case(_data("{d}/bl.csv", "--eval-fraction", "0.25", "--pool-fraction", "0"),
                        ["bl.csv", "line 4", "row 2", "column 'label'", "empty label",
                         "(value ' ')"],
                        {"bl.csv": "id,text,label\na,good,pos\nb,bad,neg\nc,great, \n"
                                   "d,awful,neg\ne,fine,pos\nf,poor,neg\ng,nice,pos\n"
                                   "h,dull,neg\n"}),
    "list label": Case(_data("{d}/ll.jsonl", "--eval-fraction", "0.25", "--pool-fraction", "0"),
                       ["ll.jsonl", "line 3", "row 2", "column 'label'", "bad label",
                        "(list ['a'])"],
                       {"ll.jsonl": _jsonl(*_rows(["a", "b", ["a"], "b", "a", "b", "a", "b"]))}),
    "object label": Case(_data("{d}/ol.jsonl", "--eval-fraction", "0.25", "--pool-fraction", "0"),
                         ["ol.jsonl", "line 2", "row 1", "column 'label'", "bad label", "(dict"],
                         {"ol.jsonl": _jsonl(*_rows(["a", {"name": "b"}, "b", "a", "b", "a",
                                                     "b", "a"]))}),
    "single class": Case(_data("{d}/one.csv"), ["one.csv", "single class 'x'"],
                         {"one.csv": "id,text,label\n1,a,x\n2,b,x\n3,c,x\n"}),
    "latin-1 file": Case(_data("{d}/latin.csv"), ["latin.csv", "line 3", "not UTF-8",
                                                  "iconv -f cp1252 -t utf-8"],
                         {"latin.csv": "id,text,label\n1,cafe,x\n2,caf\xe9,y\n"
                          .encode("latin-1")}),
    # Chinese, Japanese or Korean in a legacy encoding: named, with the line as it reads
    "gbk file": Case(_data("{d}/gbk.csv"),
                     ["gbk.csv", "line 2", "not UTF-8", "it reads as gb18030, Chinese",
                      "line 2 then reads '1,这本书很好看，推荐给大家,pos'",
                      "iconv -f GB18030 -t utf-8"],
                     {"gbk.csv": "id,text,label\n1,这本书很好看，推荐给大家,pos\n"
                                 "2,太失望了，质量很差,neg\n".encode("gbk")}),
    "shift-jis file": Case(_data("{d}/sjis.csv"),
                           ["sjis.csv", "line 2", "it reads as cp932, Japanese",
                            "'1,この本はとても面白いです,pos'", "iconv -f CP932 -t utf-8"],
                           {"sjis.csv": "id,text,label\n1,この本はとても面白いです,pos\n"
                                        "2,がっかりしました,neg\n".encode("shift_jis")}),
    "utf-16 file": Case(_data("{d}/u16.csv"), ["u16.csv", "it is UTF-16", "iconv -f utf-16"],
                        {"u16.csv": "id,text,label\n1,a,x\n2,b,y\n".encode("utf-16")}),
    "compressed file": Case(_data("{d}/t.csv.gz"), ["t.csv.gz", "unknown suffix '.gz'",
                                                    "read once unpacked"],
                            {"t.csv.gz": b"\x1f\x8b"}),
    "missing-value label": Case(
        _data("{d}/na.csv", "--eval-fraction", "0.25", "--pool-fraction", "0"),
        ["na.csv", "line 4", "column 'label'", "missing-value label", "(value 'NA'",
         "rename the class"],
        {"na.csv": "id,text,label\na,good,pos\nb,bad,neg\nc,great,NA\nd,awful,neg\n"
                   "e,fine,pos\nf,poor,neg\ng,nice,pos\nh,dull,neg\n"}),
    "jsonl key twice": Case(_data("{d}/k2.jsonl"), ["k2.jsonl", "line 2", "the key 'label' "
                                                    "appears twice"],
                            {"k2.jsonl": '{"text": "a", "label": "x"}\n'
                                         '{"text": "b", "label": "x", "label": "y"}\n'}),
    "header repeated": Case(_data("{d}/cat.csv"), ["cat.csv", "line 4", "a copy of the header "
                                                   "line (files joined with their headers?)"],
                            {"cat.csv": "id,text,label\n1,a,x\n2,b,y\nid,text,label\n3,c,x\n"}),
    "label column with a space": Case(
        _data("{d}/sp.csv"), ["sp.csv", "no column 'label'", "'label '", "differs only by "
                              "spaces or a byte-order mark"],
        {"sp.csv": "id,text,label \n1,a,x\n2,b,y\n"}),
    "semicolons in a csv": Case(
        _data("{d}/semi.csv"), ["semi.csv", "line 2", "one column holding semicolons",
                                "save it with commas"],
        {"semi.csv": "id;text;label\n1;a, b;x\n2;c;y\n"}),
    "semicolons, one field a line": Case(
        _data("{d}/semi1.csv"), ["semi1.csv", "no column 'text'", "(columns: 'id;text;label')",
                                 "one column holding semicolons"],
        {"semi1.csv": "id;text;label\n1;a;x\n2;c;y\n"}),
    "not parquet": Case(_data("{d}/x.parquet"), ["x.parquet", "as parquet"],
                        {"x.parquet": b"PAR1 this is not parquet"}),
    # CSV records that do not parse as rows
    "csv extra field": Case(_data("{d}/extra.csv"), ["extra.csv", "line 3", "4 fields"],
                            {"extra.csv": "id,text,label\n1,a,x\n2,b,c,y\n3,c,x\n"}),
    "csv missing field": Case(_data("{d}/short.csv"), ["short.csv", "line 3", "2 fields"],
                              {"short.csv": "id,text,label\n1,a,x\n2,b\n3,c,y\n"}),
    "csv quote swallows rows": Case(
        _data("{d}/quote.csv"), ["quote.csv", "line 3", "swallows line 4", "quote"],
        {"quote.csv": 'id,text,label\n1,fine,ham\n2,"broken,ham\n3,merged,spam\n'
                      '4,closed",spam\n5,after,ham\n'}),
    "tsv extra field": Case(_data("{d}/t.tsv"), ["t.tsv", "line 2", "4 fields"],
                            {"t.tsv": "id\ttext\tlabel\n1\ta\tb\tx\n"}),
    # JSONL
    "bad jsonl line": Case(_data("{d}/bad.jsonl"), ["bad.jsonl", "line 2", "not valid JSON"],
                           {"bad.jsonl": '{"id": 1, "text": "a", "label": "x"}\n{"id": 2,\n'}),
    "jsonl line not an object": Case(_data("{d}/list.jsonl"), ["list.jsonl", "line 1",
                                     "JSON list"], {"list.jsonl": "[1, 2]\n"}),
    # labels that differ only in type or spelling
    "labels 1 and '1'": Case(_data("{d}/l.jsonl"), ["l.jsonl", "column 'label'",
                             "1 (int, first at line 1 (data row 0)",
                             "'1' (str, first at line 2 (data row 1)"],
                             {"l.jsonl": _jsonl(*_rows([1, "1", 0, 1, 0]))}),
    "labels 1 and 1.0": Case(_data("{d}/f.jsonl"), ["f.jsonl", "1 (int", "1.0 (float, first "
                             "at line 3 (data row 2)"],
                             {"f.jsonl": _jsonl(*_rows([1, 0, 1.0, 0]))}),
    "csv labels 1 and 1.0": Case(_data("{d}/n.csv"), ["n.csv", "'1' (str, first at line 2",
                                 "'1.0' (str, first at line 4 (data row 2), 1 row)"],
                                 {"n.csv": "id,text,label\n1,a,1\n2,b,0\n3,c,1.0\n4,d,0\n"}),
    "tsv labels 0 and 0e0": Case(_data("{d}/n.tsv"), ["n.tsv", "'0' (str", "'0e0' (str"],
                                 {"n.tsv": "id\ttext\tlabel\n1\ta\t1\n2\tb\t0\n"
                                           "3\tc\t0e0\n"}),
    "labels True and 'true'": Case(_data("{d}/b.jsonl"), ["b.jsonl", "True (bool",
                                   "'true' (str, first at line 2 (data row 1)"],
                                   {"b.jsonl": _jsonl(*_rows([True, "true", False, True]))}),
    "labels True and 'True'": Case(_data("{d}/bb.jsonl"), ["bb.jsonl", "True (bool",
                                   "'True' (str"],
                                   {"bb.jsonl": _jsonl(*_rows([True, "True", False]))}),
    "labels spam and Spam": Case(_data("{d}/case.csv"), ["case.csv", "'spam' (str",
                                 "'Spam' (str, first at line 4 (data row 2)"],
                                 {"case.csv": "id,text,label\n1,a,spam\n2,b,ham\n3,c,Spam\n"}),
    "labels with a trailing space": Case(_data("{d}/sp.csv"), ["sp.csv", "'ham '"],
                                         {"sp.csv": "id,text,label\n1,a,spam\n2,b,ham\n"
                                                    "3,c,ham \n"}),
    "eval file spells a class otherwise": Case(
        _data("{d}/good.csv", "--eval-data", "{d}/ev.csv"), ["'A' (str", "{d}/ev.csv"],
        {"good.csv": GOOD_CSV, "ev.csv": "id,text,label\ne1,x,A\ne2,y,b\n"}),
    "eval file repeats train ids": Case(_data("{d}/good.csv", "--eval-data", "{d}/same.csv"),
                                        ["{d}/same.csv", "row 0", "duplicate id 'r0'"],
                                        {"good.csv": GOOD_CSV, "same.csv": GOOD_CSV}),
    "bad split value": Case(_data("{d}/s.csv", "--split-col", "split"),
                            ["s.csv", "row 1", "column 'split'", "'test'"],
                            {"s.csv": "id,text,label,split\n1,a,x,train\n2,b,y,test\n"}),
    "hf: without a name": Case(_data("hf:"), ["'hf:'", "hf:NAME[:SPLIT]"]),
    # configuration
    "bad --set key": Case(["data", "--run", "{d}/run", "--set", "data.sorce=x.csv"],
                          ["--set", "'data.sorce'", "did you mean 'data.source'"]),
    "--set without =": Case(["data", "--run", "{d}/run", "--set", "data.source"],
                            ["--set 'data.source'", "section.key=value"]),
    "NaN noise rate": Case(["data", "--run", "{d}/run", "--set", "data.noise_rate=nan"],
                           ["data.noise_rate", "nan"]),
    "negative noise rate": Case(["data", "--run", "{d}/run", "--noise", "-0.1"],
                                ["data.noise_rate", "-0.1"]),
    "fractions that add to 1": Case(["data", "--run", "{d}/run", "--eval-fraction", "0.6",
                                     "--pool-fraction", "0.5"], ["eval_fraction + pool_fraction"]),
    "negative sample": Case(["data", "--run", "{d}/run", "--sample", "-5"], ["data.sample"]),
    "split column with eval file": Case(["data", "--run", "{d}/run", "--split-col", "s",
                                         "--eval-data", "e.csv"], ["split_col", "eval_source"]),
    "missing config file": Case(["data", "--config", "{d}/none.toml"],
                                ["{d}/none.toml", "not found"]),
    "config is a folder": Case(["data", "--config", "{d}/conf"], ["{d}/conf", "is a folder"],
                               {"conf": None}),
    "config not TOML": Case(["data", "--config", "{d}/c.toml"], ["{d}/c.toml", "not valid TOML"],
                            {"c.toml": "[data\nsource = 1\n"}),
    "config in Latin-1": Case(["data", "--config", "{d}/l.toml"], ["{d}/l.toml"],
                              {"l.toml": '[data]\nsource = "caf\xe9.csv"\n'.encode("latin-1")}),
    "config key of the wrong type": Case(["data", "--config", "{d}/t.toml"],
                                         ["{d}/t.toml", "data.sample", "str"],
                                         {"t.toml": '[data]\nsample = "ten"\n'}),
    # the run directory
    "run directory is a file": Case(["data", "--run", "{d}/good.csv", "--data", "{d}/good.csv"],
                                    ["{d}/good.csv", "is a file"], {"good.csv": GOOD_CSV}),
    "run directory under a file": Case(["data", "--run", "{d}/good.csv/run", "--data",
                                        "{d}/good.csv"], ["{d}/good.csv/run"],
                                       {"good.csv": GOOD_CSV}),
    "run directory of an unknown protocol": Case(["data", "--run", "nosuch://b/run"],
                                                 ["nosuch://b/run"]),
    # init
    "init into a missing folder": Case(["init", "{d}/no/such/relabeler.toml"],
                                       ["{d}/no/such", "does not exist"]),
    "init onto a folder": Case(["init", "{d}/conf"], ["{d}/conf", "is a folder"],
                               {"conf": None}),
    "init over a file": Case(["init", "{d}/c.toml"], ["{d}/c.toml", "--force"],
                             {"c.toml": "run_dir = 'x'\n"}),
    # reruns of a finished stage: the old dataset and marker must survive
    "--force with a bad source": Case(_data("{d}/bad.csv", "--force"), ["bad.csv", "row 1"],
                                      {"bad.csv": "id,text,label\n1,a,x\n2,,y\n"},
                                      finished=True),
    "--force with a missing source": Case(_data("{d}/gone.csv", "--force"), ["gone.csv"],
                                          finished=True),
    "new source on a finished run": Case(_data("{d}/other.csv"), [
        "data.source was '{d}/good.csv', now '{d}/other.csv'", "--force"],
        {"other.csv": GOOD_CSV.replace("cats", "mice")}, finished=True),
    "changed seed on a finished run": Case(_data("{d}/good.csv", "--data-seed", "3"),
                                           ["data.seed was 0, now 3", "--force"],
                                           finished=True),
    "changed noise on a finished run": Case(_data("{d}/good.csv", "--noise", "0.1"),
                                            ["data.noise_rate was 0.0, now 0.1"],
                                            finished=True),
    "changed eval noise on a finished run": Case(
        _data("{d}/good.csv", "--set", "data.eval_noise_rate=0.2"),
        ["data.eval_noise_rate was 0.0, now 0.2", "--force"], finished=True),
    "asymmetric noise beyond what a class holds": Case(
        _data("{d}/good.csv", "--noise", "0.6", "--noise-kind", "asymmetric"),
        ["data.noise_rate (--noise) = 0.6 with asymmetric noise", "asks for 10 flips",
         "lower it"], {"good.csv": GOOD_CSV}),
    "noise that flips nothing": Case(
        _data("{d}/good.csv", "--noise", "0.01"),
        ["data.noise_rate (--noise) = 0.01 flips no label of the 16 training rows"],
        {"good.csv": GOOD_CSV}),
    "eval noise on no eval rows": Case(
        _data("{d}/good.csv", "--eval-fraction", "0", "--set", "data.eval_noise_rate=0.1"),
        ["data.eval_noise_rate (--eval-noise) = 0.1: the eval split is empty",
         "no label to flip", "give it rows"], {"good.csv": GOOD_CSV}),
    "train --folds with a small class": Case(
        ["train", "--run", "{d}/run", "--data", "{d}/small.csv", "--folds", "5", "-q"],
        ["train.folds = 5", "'b' has 2"],
        {"small.csv": "id,text,label\n" + "".join(
            f"r{i},text {i},{'b' if i < 3 else 'a'}\n" for i in range(20))},
        absent=("run/model", "run/train")),
}


def _fill(text: str, folder: Path) -> str:
    return text.replace("{d}", str(folder))


def _snapshot(run: Path) -> dict[str, bytes]:
    return {p.relative_to(run).as_posix(): p.read_bytes()
            for p in sorted(run.rglob("*")) if p.is_file()}


def _run_cli(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # init exits through argparse
        return exc.code


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_line_naming_the_place(name, tmp_path, capsys, monkeypatch):
    case = CASES[name]
    monkeypatch.chdir(tmp_path)  # no ./relabeler.toml of the caller's is read
    for file, content in {**({"good.csv": GOOD_CSV} if case.finished else {}),
                          **case.files}.items():
        path = tmp_path / file
        if content is None:
            path.mkdir()
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    before = None
    if case.finished:
        assert main([_fill(a, tmp_path) for a in _data("{d}/good.csv")]) == 0
        before = _snapshot(tmp_path / "run")
        assert "_stages/data.json" in before and "dataset/train.parquet" in before
        capsys.readouterr()

    code = _run_cli([_fill(a, tmp_path) for a in case.argv])

    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("relabeler: error: ") and err.count("\n") == 1, err
    for fragment in case.expect:
        assert _fill(fragment, tmp_path) in err, err
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".tmp-")]
    if before is not None:
        assert _snapshot(tmp_path / "run") == before
    else:
        assert not [p for p in case.absent if (tmp_path / p).exists()]


# ---------------------------------------------------------------------------------------------
# cases that need more than a file: a read-only run directory, a quarantine, a BOM


def _immutable(paths: list[Path]) -> Callable[[], None]:
    """Make folders unwritable, for root too (chattr +i); returns the undo. Skips the test
    where neither works."""
    for path in paths:
        path.chmod(0o555)
    if os.geteuid() != 0:
        return lambda: [p.chmod(0o755) for p in paths]
    chattr = shutil.which("chattr")
    done = []
    for path in paths:
        if chattr is None or subprocess.run([chattr, "+i", str(path)],
                                            capture_output=True).returncode:
            for p in done:
                subprocess.run([chattr, "-i", str(p)], check=True)
            pytest.skip("root here and cannot make a folder immutable (chattr +i)")
        done.append(path)
    return lambda: [subprocess.run([chattr, "-i", str(p)], check=True) for p in paths]


def test_force_into_a_read_only_run_keeps_the_old_dataset_and_marker(tmp_path, capsys):
    good = tmp_path / "good.csv"
    good.write_text(GOOD_CSV)
    other = tmp_path / "other.csv"
    synthetic_frame(40).to_csv(other, index=False)
    run = tmp_path / "run"
    assert main(["data", "--run", str(run), "--data", str(good), "-q"]) == 0
    before = _snapshot(run)
    capsys.readouterr()
    undo = _immutable([run, run / "dataset", run / "_stages"])
    try:
        code = main(["data", "--run", str(run), "--data", str(other), "--force", "-q"])
    finally:
        undo()
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"relabeler: error: run directory {run}: cannot replace 'dataset'")
    assert "permission denied" in err or "not permitted" in err
    assert err.count("\n") == 1
    assert _snapshot(run) == before


def test_a_read_only_parent_is_an_error_naming_the_run_directory(tmp_path, capsys):
    parent = tmp_path / "locked"
    parent.mkdir()
    undo = _immutable([parent])
    try:
        code = main(["data", "--run", str(parent / "run"), "--data", "sms-spam", "-q"])
    finally:
        undo()
    err = capsys.readouterr().err
    assert code == 2
    assert f"run directory {parent / 'run'}: cannot create it" in err


def test_broken_rows_are_quarantined_with_on_bad_rows_skip(tmp_path, capsys):
    source = tmp_path / "quote.csv"
    source.write_text(GOOD_CSV + '90,"broken,a\n91,merged,b\n92,closed",b\n93,short\n')
    run = tmp_path / "run"
    assert main(["data", "--run", str(run), "--data", str(source), "--on-bad-rows", "skip",
                 "-q"]) == 0
    assert "20 train" not in capsys.readouterr().out
    import pandas as pd

    rejected = pd.read_parquet(run / "dataset" / "rejected.parquet")
    # the quoted record is left out whole, and every line of it is named: none is lost
    # unnamed, and none is made a row (a text over lines may hold a line that reads as one)
    assert rejected["row"].tolist() == [20, 20, 20, 21]
    assert rejected["line"].tolist() == [22, 23, 24, 25]
    assert rejected["reason"][0].startswith("line 22: a quoted field runs from line 22 to "
                                            "line 24 and swallows line 23")
    assert rejected["reason"][1].endswith("inside the quoted field of line 22; left out with it")
    assert rejected["reason"][3] == "line 25: 2 fields, the header has 3 (id, text, label)"
    texts = pd.concat([pd.read_parquet(run / "dataset" / f"{s}.parquet") for s in
                       ("train", "eval")])["text"]
    assert not texts.str.contains("merged|closed").any()
    assert len(texts) == 20


def test_a_quote_that_breaks_lines_later_names_every_line_it_took(tmp_path):
    # the quote of b1 runs over k1 and k2 and breaks at b2's quote: only line 12 was named,
    # and k1, k2 and b2 were gone without a trace
    from relabeler.data import load_dataset

    source = tmp_path / "q.csv"
    source.write_text("id,text,label\n" + "".join(f"r{i},text {i},{'pn'[i % 2]}\n"
                                                   for i in range(10))
                      + 'b1,"never closed,p\nk1,kept one,n\nk2,kept two,p\nb2,"again,n\n'
                        'k3,kept three,n\n')
    ds = load_dataset(str(source), on_bad_rows="skip", eval_fraction=0)
    assert ds.rejected["line"].tolist() == [12, 13, 14, 15]
    assert ds.rejected["reason"][1].endswith("inside the quoted field of line 12; left out "
                                             "with it")
    assert len(ds.train) + len(ds.rejected) == 15 and "k3" in set(ds.train["id"])


def test_a_text_over_lines_with_a_line_that_reads_as_a_row_makes_no_rows_up(tmp_path):
    # re-reading the inner lines of a quoted text as rows made a row "I bought it" and a class
    # " loved it" out of one review
    from relabeler.data import load_dataset

    source = tmp_path / "m.csv"
    source.write_text('id,text,label\n' + "".join(f"r{i},text {i},{'pn'[i % 2]}\n"
                                                   for i in range(10))
                      + 'm1,"Dear team,\nI bought it, used it, loved it\nThanks",p\n')
    ds = load_dataset(str(source), on_bad_rows="skip", eval_fraction=0)
    assert sorted(set(ds.train["label"])) == ["n", "p"] and len(ds.train) == 11
    # and the review is one row, whole: " loved it" is no label of the file, so the line that
    # holds it is no row swallowed by an open quote (it was left out, with its record)
    assert ds.train.set_index("id").loc["m1", "text"] == (
        "Dear team,\nI bought it, used it, loved it\nThanks")
    assert ds.rejected is None or ds.rejected.empty


def test_a_valid_multi_line_csv_as_pandas_writes_it_is_read_as_written(tmp_path):
    # "Pros: cheap, light, fast" has the header's three fields: the review was refused as an
    # unclosed quote, and under skip quarantined as three bad rows
    from relabeler.data import read_table

    frame = pd.DataFrame({"id": range(1, 9), "text": [
        "Great laptop.\nPros: cheap, light, fast\nWould buy again", *[f"text {i}" for i in
                                                                   range(7)]],
        "label": ["pos", "neg"] * 4})
    frame.to_csv(tmp_path / "m.csv", index=False)
    read = read_table(tmp_path / "m.csv")
    assert read["text"].tolist() == frame["text"].tolist()
    assert read["label"].tolist() == frame["label"].tolist()


def test_a_text_over_several_lines_that_reads_as_no_row_is_kept(tmp_path):
    from relabeler.data import read_table

    source = tmp_path / "multi.csv"
    source.write_text('id,text,label\n1,"first line\nsecond line, with a comma",a\n2,b,c\n')
    frame = read_table(source)
    assert frame["text"].tolist() == ["first line\nsecond line, with a comma", "b"]


@pytest.mark.parametrize("suffix", ["csv", "jsonl"])
def test_a_byte_order_mark_is_dropped(tmp_path, suffix):
    from relabeler.data import read_table

    source = tmp_path / f"bom.{suffix}"
    body = (GOOD_CSV if suffix == "csv" else _jsonl(*_rows(["a", "b"])))
    source.write_bytes(b"\xef\xbb\xbf" + body.encode())
    frame = read_table(source)
    assert list(frame.columns) == ["id", "text", "label"]
    assert frame["id"].iloc[0] == "r0"


def test_same_inputs_rerun_reports_the_finished_dataset(tmp_path, capsys):
    good = tmp_path / "good.csv"
    good.write_text(GOOD_CSV)
    argv = ["data", "--run", str(tmp_path / "run"), "--data", str(good), "-q"]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert main(argv) == 0
    assert capsys.readouterr().out == first


def test_changed_content_at_the_same_path_asks_for_force(tmp_path, capsys):
    good = tmp_path / "good.csv"
    good.write_text(GOOD_CSV)
    run = tmp_path / "run"
    argv = ["data", "--run", str(run), "--data", str(good), "-q"]
    assert main(argv) == 0
    before = _snapshot(run)
    good.write_text(GOOD_CSV + "r99,one more row,a\n")
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"the content of data.source {good} changed" in err and "--force" in err
    assert _snapshot(run) == before
    assert main([*argv, "--force"]) == 0
    info = json.loads((run / "_stages" / "data.json").read_text())["info"]
    assert info["n_train"] + info["n_eval"] == 21


def test_a_lone_surrogate_in_jsonl_is_a_bad_row_naming_line_and_column(tmp_path, capsys):
    import pandas as pd

    source = tmp_path / "surr.jsonl"
    # json.loads turns the escape into a lone surrogate, which no UTF-8 or Arrow string holds
    source.write_text('{"text": "broken \\ud83d here", "label": "x"}\n'
                      + _jsonl(*_rows(["y", "x", "y", "x", "y"])))
    assert main(["data", "--run", str(tmp_path / "fail"), "--data", str(source)]) == 2
    err = capsys.readouterr().err
    assert "surr.jsonl, line 1 (data row 0): column 'text': invalid Unicode: lone surrogate " \
           "U+D83D" in err
    assert "Traceback" not in err
    run = tmp_path / "run"
    assert main(["data", "--run", str(run), "--data", str(source), "--on-bad-rows", "skip",
                 "-q"]) == 0
    rejected = pd.read_parquet(run / "dataset" / "rejected.parquet")
    assert rejected.to_dict("records") == [{
        "row": 0, "line": 1, "source": str(source),
        "reason": "line 1: column 'text': invalid Unicode: lone surrogate U+D83D"}]
    kept = pd.concat([pd.read_parquet(run / "dataset" / f"{s}.parquet") for s in
                      ("train", "eval")])
    assert sorted(kept["id"]) == ["r0", "r1", "r2", "r3", "r4"]


def test_an_unclosed_quote_in_skip_mode_loses_no_later_row(tmp_path):
    from relabeler.data import load_dataset

    source = tmp_path / "q.csv"
    source.write_text('text,label\nfoo,neg\nbar,pos\n"hello,pos\nbad film,neg\nok,pos\n')
    ds = load_dataset(str(source), on_bad_rows="skip", eval_fraction=0)
    assert ds.train[["text", "label"]].values.tolist() == [
        ["foo", "neg"], ["bar", "pos"], ["bad film", "neg"], ["ok", "pos"]]
    assert ds.rejected[["row", "line"]].values.tolist() == [[2, 4]]
    assert ds.rejected["reason"][0].startswith("line 4: unexpected end of data")


def test_an_id_column_given_but_missing_is_an_error_and_a_default_one_a_warning(
        tmp_path, capsys, caplog):
    source = tmp_path / "noid.csv"
    source.write_text("text,label\n" + "".join(f"t{i},{'ab'[i % 2]}\n" for i in range(10)))
    for flags in (["--id-col", "id"], ["--set", "data.id_col=id"]):
        assert main(["data", "--run", str(tmp_path / "given"), "--data", str(source),
                     *flags]) == 2
        assert "noid.csv has no column 'id' (columns: 'text', 'label')" in capsys.readouterr().err
    config = tmp_path / "c.toml"
    config.write_text('[data]\nid_col = "id"\n')
    assert main(["data", "--run", str(tmp_path / "file"), "--data", str(source), "--config",
                 str(config)]) == 2
    assert "noid.csv has no column 'id' (columns: 'text', 'label')" in capsys.readouterr().err
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert main(["data", "--run", str(tmp_path / "run"), "--data", str(source)]) == 0
    warned = [r.getMessage() for r in caplog.records if "ids are generated" in r.getMessage()]
    assert warned == [f"file {source}: no 'id' column and no id column chosen: ids are "
                      "generated from each row's position and text, so they change when rows "
                      "move (set data.id_col or --id-col to a column of stable ids)"]


def test_null_ids_and_bad_or_empty_labels_are_quarantined_with_skip(tmp_path):
    from relabeler.data import load_dataset

    records = _rows(["a", "b", ["a"], " ", {"x": 1}, "b", "b", "a"])
    records[1]["id"] = None
    records[6]["id"] = "  "
    source = tmp_path / "bad.jsonl"
    source.write_text(_jsonl(*records))
    ds = load_dataset(str(source), on_bad_rows="skip", eval_fraction=0)
    assert ds.rejected.to_dict("records") == [
        {"row": 1, "line": 2, "source": str(source), "reason": "null id"},
        {"row": 2, "line": 3, "source": str(source), "reason": "bad label (list ['a'])"},
        {"row": 3, "line": 4, "source": str(source), "reason": "empty label (value ' ')"},
        {"row": 4, "line": 5, "source": str(source), "reason": "bad label (dict {'x': 1})"},
        {"row": 6, "line": 7, "source": str(source), "reason": "null id (value '  ')"}]
    assert sorted(ds.train["id"]) == ["r0", "r5", "r7"] and len(ds.train) == 3
