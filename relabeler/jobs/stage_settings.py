"""What a finished stage was made with against what is asked now: the changes named
(:func:`setting_changes`) and the line that says the stage is kept (:func:`note_done`); train,
score, attribute and retrain share them."""

from __future__ import annotations

import logging

from relabeler.redact import mask_url

#: the values of a key that mean "what the model or the mode decides" (compared as what they
#: came to, where that is known)
_AUTO = (0, "auto")


def setting_changes(recorded: dict | None, current: dict, *,
                    resolved_mode: str | None = None,
                    resolved: dict[str, object] | None = None) -> list[str]:
    """``section.key was X, now Y`` for each key that differs; none against a marker made
    before settings were recorded. ``resolved_mode``: what the recorded ``train.mode`` came to
    (the marker's ``mode``): ``auto`` now accepts it, and a mode named now is compared with it,
    so ``auto`` that became head is no change from ``head``. ``resolved``: ``section.key`` ->
    what its ``auto`` (or 0) came to (the trained model's pooling), so on either side an auto
    value and the value it came to are no change. A URL is named, and compared, without its
    password (markers record it so; one made before that still matches)."""
    if not recorded:
        return []
    if resolved_mode and "mode" in recorded.get("train", {}) and "mode" in current.get("train",
                                                                                         {}):
        now = current["train"]["mode"]
        recorded = {**recorded, "train": {**_resolved(recorded["train"], resolved_mode),
                                          "mode": now if now == "auto" else resolved_mode}}
        current = {**current, "train": _resolved(
            current["train"], resolved_mode if now == "auto" else now)}
    recorded, current = dict(recorded), dict(current)
    for dotted, value in (resolved or {}).items():  # what an auto value came to
        section, key = dotted.split(".")
        for side in (recorded, current):
            given = side.get(section, {}).get(key)
            if given in _AUTO and not isinstance(given, bool):
                side[section] = {**side[section], key: value}
    return [f"{section}.{key} was {_shown(recorded[section][key])!r}, now {_shown(value)!r}"
            for section, keys in current.items() for key, value in keys.items()
            if key in recorded.get(section, {})
            and _shown(recorded[section][key]) != _shown(value)]


def _shown(value: object) -> object:
    """A setting as a message shows it: a text that is a URL with a password (a model folder
    given as one) without the password."""
    return mask_url(value) if isinstance(value, str) else value


def _resolved(train: dict, mode: str) -> dict:
    """``[train]`` settings with the zeros that mean "the mode's default" (epochs, learning
    rates) replaced by what they came to in ``mode``: 0 epochs in head mode is 40."""
    from relabeler.training import DEFAULT_EPOCHS, DEFAULT_LR

    if mode not in DEFAULT_EPOCHS:
        return train
    defaults = {"epochs": DEFAULT_EPOCHS[mode], "learning_rate": DEFAULT_LR[mode],
                "head_learning_rate": DEFAULT_LR["head"]}
    return {key: (defaults[key] if key in defaults and value == 0 else value)
            for key, value in train.items()}


def note_done(logger: logging.Logger, stage: str, uri: str, changes: list[str]) -> None:
    """Say that the finished ``stage`` is kept as it is: a warning naming the ``changes``
    (:func:`setting_changes`) asked for now that it was not made with, else a line of info."""
    if changes:
        logger.warning("%s: already done in %s with other settings, kept as it is: %s (use "
                       "--force to redo it with them)", stage, uri, "; ".join(changes))
    else:
        logger.info("%s: already done in %s (use --force to redo)", stage, uri)
