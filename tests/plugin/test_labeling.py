from xml.etree import ElementTree

import pytest

from relabeler.plugin.labeling import (
    DROP,
    NOT_SURE,
    SUPPORTS_GIVEN,
    SUPPORTS_SUGGESTION,
    LabelingConfigError,
    LabelingSpec,
    build_labeling_config,
)


def test_config_has_every_class_and_the_extra_answers():
    spec = LabelingSpec.for_classes(["ham", "spam"])
    answer = spec.interface().get_control(spec.answer_name)
    assert answer.labels == ["ham", "spam", NOT_SURE, DROP]
    assert spec.classes == ("ham", "spam")


def test_evidence_labels_come_in_two_colours():
    spec = LabelingSpec.for_classes(["a", "b", "c"])
    evidence = spec.interface().get_control(spec.evidence_name)
    assert evidence.labels == [SUPPORTS_SUGGESTION, SUPPORTS_GIVEN]
    xml = build_labeling_config(["a", "b", "c"])
    assert xml.count('background="#') == 2


def test_no_evidence_region_can_be_drawn_on_the_text():
    # selectionEnabled="false": selecting text with an evidence label active draws no region
    # (Label Studio 1.23.2's Text tag); the predicted highlights still show, in their colours
    root = ElementTree.fromstring(build_labeling_config(["a", "b"]))
    (text,) = root.iter("Text")
    assert (text.get("name"), text.get("selectionEnabled")) == ("text", "false")


def test_spec_reads_tag_names_from_the_config():
    spec = LabelingSpec.for_classes(["x", "y"])
    assert (spec.text_name, spec.text_field, spec.comment_name, spec.panel_field) == \
        ("text", "text", "comment", "panel")


def test_class_names_are_xml_escaped():
    spec = LabelingSpec.for_classes(['say "hi"', "a<b & c"])
    assert spec.classes == ('say "hi"', "a<b & c")


@pytest.mark.parametrize("classes", [[], ["a", "a"], ["a", " "], ["a", NOT_SURE], "ab"])
def test_bad_class_lists_are_refused(classes):
    with pytest.raises((ValueError, TypeError)):
        build_labeling_config(classes)


@pytest.mark.parametrize("name", ["not sure", " Not sure ", "NOT SURE", "\uff2eot sure",
                                  "drop: not a valid sample"])
def test_a_class_spelled_like_an_extra_answer_is_refused(name):
    # " Not sure " was written as a choice beside "Not sure": HTML drops the spaces
    with pytest.raises(LabelingConfigError) as exc:
        build_labeling_config(["0", "1", name])
    assert str(exc.value) == (
        f"a class may not be named like an extra answer (case, outer spaces and Unicode "
        f"form aside): {[name]!r}")


def test_a_foreign_config_is_not_a_relabeler_config():
    xml = ('<View><Text name="t" value="$t"/><Choices name="c" toName="t">'
           '<Choice value="a"/></Choices></View>')
    with pytest.raises(LabelingConfigError, match="Not sure"):
        LabelingSpec.from_config(xml)


def test_check_classes_names_both_lists():
    spec = LabelingSpec.for_classes(["a", "b"])
    with pytest.raises(LabelingConfigError, match=r"\['a', 'b'\].*\['a', 'c'\]"):
        spec.check_classes(["a", "c"])
