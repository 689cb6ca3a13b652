"""The Label Studio labeling config: what an annotator sees for one suspect sample.

:func:`build_labeling_config` writes the XML from the class names; :class:`LabelingSpec` reads
the tag names and values back from any config (ours, or one a project already has), so task
building, validation and pull never repeat tag names as literals.

The view, top to bottom: for a text longer than the model's window, the window the evidence was
read from with its highlights (empty otherwise); the whole text with evidence regions in two
colours (at offsets of the original text); the answer (every class, "Not sure", "Drop: not a
valid sample"), a read-only panel (given and suggested labels, the nearest training examples
with their labels) and a free-text comment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import quoteattr

from label_studio_sdk.label_interface import LabelInterface

from relabeler.corrections import ANSWER_DROP as DROP
from relabeler.corrections import ANSWER_NOT_SURE as NOT_SURE
from relabeler.corrections import reserved_answer
from relabeler.errors import PluginError

SUPPORTS_SUGGESTION = "Supports suggestion"
SUPPORTS_GIVEN = "Supports given label"
# colour-blind-safe pair (blue / orange), readable behind black text
SUGGESTION_COLOUR = "#56B4E9"
GIVEN_COLOUR = "#E69F00"

# task data fields the config refers to ($name); tasks.py fills them
TEXT_FIELD = "text"
PANEL_FIELD = "panel"
WINDOW_FIELD = "window"

_EXTRA_CHOICES = (NOT_SURE, DROP)
_EVIDENCE_LABELS = (SUPPORTS_SUGGESTION, SUPPORTS_GIVEN)


class LabelingConfigError(PluginError, ValueError):
    """A labeling config lacks a tag relabeler needs, or its classes do not match the run."""


def build_labeling_config(classes: Sequence[str]) -> str:
    """The labeling config XML for ``classes`` (the model's class names, in order).

    Raises
    ------
    LabelingConfigError
        ``classes`` is empty, has duplicates or blanks, or a class is named like one of the
        extra answers ("Not sure", "Drop: not a valid sample").
    """
    classes = _check_classes(classes)
    choices = "\n".join(f"      <Choice value={quoteattr(c)}/>" for c in classes)
    extra = "\n".join(f"      <Choice value={quoteattr(c)}/>" for c in _EXTRA_CHOICES)
    return f"""<View>
  <Header value="Is the given label right? Pick the correct one." size="4"/>
  <HyperText name="{WINDOW_FIELD}" value="${WINDOW_FIELD}" inline="true"/>
  <Labels name="evidence" toName="text" showInline="true">
    <Label value={quoteattr(SUPPORTS_SUGGESTION)} background="{SUGGESTION_COLOUR}"/>
    <Label value={quoteattr(SUPPORTS_GIVEN)} background="{GIVEN_COLOUR}"/>
  </Labels>
  <Text name="text" value="${TEXT_FIELD}" selectionEnabled="false"/>
  <View style="margin-top: 0.75em">
    <Header value="Your answer" size="5"/>
    <Choices name="answer" toName="text" choice="single-radio" showInline="true"
             required="true" requiredMessage="Pick a label, Not sure, or Drop">
{choices}
{extra}
    </Choices>
  </View>
  <View style="margin-top: 0.75em; padding: 0.5em 1em; background: #f5f5f5; border-radius: 4px">
    <HyperText name="{PANEL_FIELD}" value="${PANEL_FIELD}" inline="true"/>
  </View>
  <TextArea name="comment" toName="text" editable="true" maxSubmissions="1" rows="2"
            placeholder="Comment (optional): why, or what is wrong with the sample"/>
</View>
"""


def _check_classes(classes: Sequence[str]) -> list[str]:
    if isinstance(classes, str):
        raise TypeError("classes must be a sequence of class names, not one str")
    out = [str(c) for c in classes]
    if not out:
        raise LabelingConfigError("classes must name at least one class, got []")
    if any(not c.strip() for c in out):
        raise LabelingConfigError(f"classes must be non-blank names, got {out!r}")
    if len(set(out)) != len(out):
        raise LabelingConfigError(f"classes must be unique, got {out!r}")
    # HTML drops outer spaces: " Not sure " would show as a second "Not sure"
    clash = sorted(c for c in out if reserved_answer(c))
    if clash:
        raise LabelingConfigError(
            "a class may not be named like an extra answer (case, outer spaces and Unicode form "
            f"aside): {clash!r}")
    return out


@dataclass(frozen=True)
class LabelingSpec:
    """Tag names and values of a relabeler labeling config, read from its XML.

    The answer control is the Choices tag holding "Not sure" and "Drop"; its other choices are the
    classes. The evidence control is the Labels tag holding the two evidence labels.
    """

    xml: str
    classes: tuple[str, ...]
    text_name: str       # the Text object the controls point at
    text_field: str      # the task data field it shows
    answer_name: str
    evidence_name: str
    comment_name: str | None
    panel_field: str | None
    window_field: str | None = None  # absent from configs made before it existed

    @classmethod
    def from_config(cls, xml: str) -> LabelingSpec:
        """Parse ``xml``; raise LabelingConfigError naming what is missing."""
        try:
            interface = LabelInterface(xml)
        except Exception as exc:  # the SDK raises several parser errors; all mean "bad XML"
            raise LabelingConfigError(f"cannot parse the labeling config: {exc}") from exc
        answer = evidence = comment = None
        for control in interface.controls:
            values = list(getattr(control, "labels", None) or [])
            if control.tag == "Choices" and set(_EXTRA_CHOICES) <= set(values):
                answer = control
            elif control.tag == "Labels" and set(_EVIDENCE_LABELS) <= set(values):
                evidence = control
            elif control.tag == "TextArea":
                comment = control
        if answer is None:
            raise LabelingConfigError(f"the labeling config has no Choices tag with "
                                      f"{NOT_SURE!r} and {DROP!r}: not a relabeler config")
        if evidence is None:
            raise LabelingConfigError(f"the labeling config has no Labels tag with "
                                      f"{SUPPORTS_SUGGESTION!r} and {SUPPORTS_GIVEN!r}")
        text_name = answer.to_name[0]
        text_obj = interface.get_object(text_name)
        pages = [o for o in interface.objects if o.tag == "HyperText"]
        window = next((o for o in pages if o.value == f"${WINDOW_FIELD}"), None)
        panel = next((o for o in pages if o is not window), None)
        classes = tuple(v for v in answer.labels if v not in _EXTRA_CHOICES)
        return cls(xml=xml, classes=classes, text_name=text_name,
                   text_field=text_obj.value.lstrip("$"), answer_name=answer.name,
                   evidence_name=evidence.name,
                   comment_name=comment.name if comment is not None else None,
                   panel_field=panel.value.lstrip("$") if panel is not None else None,
                   window_field=WINDOW_FIELD if window is not None else None)

    @classmethod
    def for_classes(cls, classes: Sequence[str]) -> LabelingSpec:
        return cls.from_config(build_labeling_config(classes))

    def interface(self) -> LabelInterface:
        return LabelInterface(self.xml)

    def check_classes(self, classes: Sequence[str]) -> None:
        """Raise LabelingConfigError when the project's classes differ from the run's."""
        if tuple(classes) != self.classes:
            raise LabelingConfigError(
                f"the project's labeling config has classes {list(self.classes)}, the run has "
                f"{list(classes)}; use another project title or update the project's config")
