"""Sentences about attacks, built from their declarations (traits), never from their names.

A new attack declared in :mod:`attacks.factory` appears in every sentence that concerns it: the
summary, the report's notes, the console's stage titles.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

from attacks import ATTACKS

MEMBERS = "Members"


def display_names(names: Iterable[str] | None = None, **traits: bool) -> list[str]:
    """Display names of the declared attacks (of ``names``, default all) whose traits match
    ``traits`` (e.g. ``needs_reference_models=True``), in declaration order."""
    chosen = set(names) if names is not None else None
    return [spec.display for name, spec in ATTACKS.items()
            if (chosen is None or name in chosen or spec.display in chosen)
            and all(getattr(spec, trait) == value for trait, value in traits.items())]


def name_list(names: Sequence[str], joiner: str = " / ") -> str:
    """``"LiRA / RMIA"``; ``""`` for none."""
    return joiner.join(names)


@dataclass
class ReportContext:
    """What a route adds to the engine's report: its title and opening sentence, its own figures and
    notes. Everything about the attacks comes from the result and the declarations.

    ``route_figures(folder, files)`` draws the route's own figures into ``folder`` once the tables
    (``files``) are written, and returns name -> path.
    """

    title: str
    opening: str | None = None
    closing: list[str] = field(default_factory=list)
    config: Mapping = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    what_happened: list[tuple[str, str]] = field(default_factory=list)
    comparison: object = None
    skipped_sets: Mapping[str, str] = field(default_factory=dict)
    population_note: str | None = None
    route_figures: Callable[[Path, dict], dict] | None = None


def finding_sentences(result) -> list[str]:
    """The headline finding, the strongest attack at 1% FPR and the chance-level attacks (attacks whose
    null test failed are in no headline)."""
    from engine.reference_checks import flagged_attacks
    from reporting.summary import chance_sentence, headline_finding, strongest_at_low_fpr

    attacks, intervals = result.attack_table, result.intervals
    noun = result.notes.get("noun", result.bundle.data_kind)
    flagged = flagged_attacks(result.reference)
    found = (headline_finding(attacks, intervals, noun=noun, decided=_decided(result)),
             strongest_at_low_fpr(attacks, intervals, flagged=flagged), chance_sentence(attacks, intervals))
    return [text for text in found if text]


def _decided(result) -> str:
    """Where the headline attack's threshold came from, in words."""
    from reporting.summary import HEADLINE_ATTACK

    table = result.thresholds
    rows = table[table["attack"] == HEADLINE_ATTACK] if table is not None else table
    if rows is None or not len(rows) or rows.iloc[0]["threshold source"] == "shadow model":
        return "fitted on the shadow model"
    return "threshold " + rows.iloc[0]["note"]


def summary_sentences(result, opening: str | None = None) -> list[str]:
    """The report's opening sentences: what was audited, :func:`finding_sentences`, the OOD/fake
    verdict, a failed null test, the empirical epsilon."""
    from engine.reference_checks import flagged_attacks, null_test_sentence
    from reporting.held_out_fpr import fooled_summary

    sentences = [opening or audited_sentence(result), *finding_sentences(result)]
    if result.held_out is not None:
        sentences.append(fooled_summary(result.held_out.table, flagged_attacks(result.reference)))
    if (null_failed := null_test_sentence(result.reference)) is not None:
        sentences.append(null_failed)
    from reporting.epsilon import epsilon_sentence

    if (privacy := epsilon_sentence(result.epsilon_bounds, result.bundle.dp_epsilon, result.dp_violations)):
        sentences.append(privacy)
    return sentences


def audited_sentence(result) -> str:
    """``Audited: M members against S non-member set(s) (...); A attack(s) ran, k skipped.``"""
    sets = list(result.attack_table.index)
    skipped = result.skipped_attacks
    return (f"Audited: {len(result.bundle.members)} members against {len(sets)} non-member set(s) "
            f"({', '.join(sets)}); {len(result.outputs)} attack(s) ran"
            + (f", {len(skipped)} skipped." if skipped else "."))


def attack_notes(result) -> dict[str, str]:
    """Sentences for numbers that need one: a score attack trained per class whose AUROC on Original is
    below 0.5 but within two standard errors of it (chance level, not a reversed signal)."""
    from reporting.summary import cell

    bundle, notes = result.bundle, {}
    if not bundle.has_shadow:
        return notes
    for name in display_names(trained_per_class=True):
        found = cell(result.attack_table, result.intervals, "Original", name, "AUROC")
        if found is None or not (found.estimate < 0.5 and found.within_two_se_of(0.5)):
            continue
        shadow = len(bundle.shadow_members) + len(bundle.shadow_non_members)
        classes = bundle.num_classes
        notes[name] = (f"{name}'s AUROC {found.estimate:.3f} on Original is below 0.5 but within two standard "
                       f"errors of it (SE {found.se:.3f}): chance level, not a reversed signal. It trains one "
                       f"attack model per class on the shadow model's score vectors, here about "
                       f"{shadow // classes} per class (members and non-members together), and the shadow "
                       f"model's own member/non-member gap is small, so there is little to learn.")
    return notes


def label_source_note(result) -> str | None:
    """Which label the label-using attacks gave each set (its own, or the target's predicted class)."""
    users = display_names([a for a in result.outputs], uses_labels=True)
    if not users:
        return None
    sources = {name: result.bundle.label_source(name) for name in result.bundle.sets}
    return f"Label source per set of the attacks that use labels ({', '.join(users)}): {sources}"
