"""The spec change report as text or Markdown: one line per group of changes, breaking first.

Changes of one kind at one subject reaching the same operations share a line ("EffectiveApiRateLimits:
new required fields `anonymous`, `global` — in the 200 answer of GET /rate-limits"); new schemas,
new answers and rate-limit changes share one line each; text-only changes close the report in a
few lines. Under each line, the hand-written files it affects.
"""

from __future__ import annotations

import re
import textwrap
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from generator.schema_diff import (
    CONSTRAINT,
    DESCRIPTION,
    ENUM_ADDED,
    ENUM_REMOVED,
    FIELD_ADDED,
    FIELD_REMOVED,
    NO_LONGER_REQUIRED,
    NOW_REQUIRED,
    REPLACED,
)

if TYPE_CHECKING:
    from generator.spec_diff import Change, Location, Report

ADDITIONS = {
    "operation added",
    "schema added",
    FIELD_ADDED,
    ENUM_ADDED,
    "parameter added",
    "response added",
    "request body added",
}
# Kinds merged into one line whatever their subject; the others group by subject and reach.
ACROSS = ("schema added", "schema removed", "response added", "response removed", "rate limits changed")
KIND_ORDER = (
    "operation removed",
    "operation added",
    "parameter removed",
    "parameter now required",
    "parameter added",
    "request body added",
    "request body removed",
    FIELD_REMOVED,
    NO_LONGER_REQUIRED,
    NOW_REQUIRED,
    FIELD_ADDED,
    ENUM_REMOVED,
    ENUM_ADDED,
    REPLACED,
    CONSTRAINT,
    *ACROSS,
    "permissions changed",
    "security changed",
)
HTTP_METHODS = {"GET", "PUT", "POST", "DELETE", "PATCH"}
MAX_FILES = 8
NBSP = "\u00a0"  # holds a code span together while wrapping
MAX_LISTED = 6
ENUM_NOTE = "harmless in answers (the SDK keeps unknown enum values)"
# Kinds whose identical changes in several components share one line.
MERGED = {FIELD_ADDED, FIELD_REMOVED, NOW_REQUIRED, NO_LONGER_REQUIRED, ENUM_ADDED, ENUM_REMOVED, CONSTRAINT, REPLACED}

Quote = Callable[[str], str]


@dataclass(frozen=True)
class Entry:
    """One line of the report and the files it affects."""

    section: str
    text: str
    affects: tuple[str, ...]
    order: tuple[int, str]


def is_operation(subject: str) -> bool:
    """Whether a subject is an operation (``"GET /x"``, ``"GET /x 200"``) rather than a component."""
    return subject.split(" ", 1)[0] in HTTP_METHODS


def _plain(text: str) -> str:
    return text


def _code(text: str) -> str:
    return f"`{text}`"


def _label_order(label: str) -> tuple[int, str]:
    return ({"request": 0, "parameters": 1}.get(label, 2), label)


def describe_reach(reaches: Sequence[Location], quote: Quote = _plain) -> str:
    """Where a component change lands: "the 403 answer of 62 operations; the request of POST /x"."""
    if not reaches:
        return "no operation"
    by_label: dict[str, set[str]] = defaultdict(set)
    for operation, label in reaches:
        by_label[label].add(operation)
    if len(by_label) > 3:
        return f"{len({operation for operation, _ in reaches})} operations"
    parts = []
    for label in sorted(by_label, key=_label_order):
        operations = sorted(by_label[label])
        place = {"request": "the request of", "parameters": "the parameters of"}.get(label, f"the {label} answer of")
        listed = ", ".join(map(quote, operations)) if len(operations) <= 2 else f"{len(operations)} operations"
        parts.append(f"{place} {listed}")
    return "; ".join(parts)


def _items(changes: Sequence[Change]) -> str:
    return ", ".join(f"`{change.item}`" for change in changes)


def _phrase(changes: Sequence[Change]) -> str:
    """What a group of same-kind changes of one subject did."""
    kind, first, s = changes[0].kind, changes[0], "s" if len(changes) > 1 else ""
    phrases = {
        FIELD_ADDED: f"new {first.detail} field{s} {_items(changes)}",
        FIELD_REMOVED: f"field{s} {_items(changes)} removed",
        NOW_REQUIRED: f"{_items(changes)} now required",
        NO_LONGER_REQUIRED: f"{_items(changes)} no longer required",
        ENUM_ADDED: f"new value{s} {_items(changes)}",
        ENUM_REMOVED: f"value{s} {_items(changes)} removed",
        CONSTRAINT: ", ".join(change.detail for change in changes),
        REPLACED: f"schema {first.detail}",
        "parameter added": f"new {first.detail} parameter{s} {_items(changes)}",
        "parameter removed": f"parameter{s} {_items(changes)} removed",
        "parameter now required": f"parameter{s} {_items(changes)} now required",
        "request body added": f"new {first.detail} request body",
    }
    return phrases.get(kind) or (f"{kind} ({first.detail})" if first.detail else kind)


def _across(changes: Sequence[Change], quote: Quote) -> str:
    """One line for kinds merged over all subjects (new schemas, new answers, rate limits)."""
    kind = changes[0].kind
    if kind in ("schema added", "schema removed"):
        title = "new schemas" if kind == "schema added" else "schemas removed"
        return f"{title}: " + ", ".join(quote(change.subject) for change in changes)
    if kind == "rate limits changed":
        listed = [f"{quote(change.subject)} {change.detail}" for change in changes]
        return f"rate limits (per second/minute/hour): {_capped(listed)}"
    by_status: dict[str, list[str]] = defaultdict(list)
    for change in changes:
        by_status[change.item].append(change.subject)
    title = "new answers" if kind == "response added" else "answers removed"
    return f"{title}: " + "; ".join(f"{status} from {_some(ops, quote)}" for status, ops in sorted(by_status.items()))


def _capped(listed: Sequence[str]) -> str:
    shown = ", ".join(listed[:MAX_LISTED])
    return shown + (f" and {len(listed) - MAX_LISTED} more" if len(listed) > MAX_LISTED else "")


def _line(groups: Sequence[Sequence[Change]], quote: Quote) -> str:
    """One line for groups sharing kind and items (one group per subject)."""
    first = groups[0][0]
    if first.kind in ACROSS:
        return _across(groups[0], quote)
    if first.kind in ("operation added", "operation removed"):
        return f"{first.kind}: {quote(first.subject)}"
    line = f"{_subjects([group[0].subject for group in groups], quote)}: {_phrase(groups[0])}"
    components = [group for group in groups if not is_operation(group[0].subject)]
    if components:
        reaches = sorted({location for group in components for location in group[0].reaches})
        line += f" — in {describe_reach(reaches, quote)}"
        if first.kind == ENUM_ADDED and any(label not in ("request", "parameters") for _, label in reaches):
            line += f"; {ENUM_NOTE}"
    return line


def _subjects(subjects: Sequence[str], quote: Quote) -> str:
    """Components by name; places in many operations by what they share ("path:referenceNumber of 20 operations")."""
    named = [quote(subject) for subject in subjects if not is_operation(subject)]
    in_operations = [subject for subject in subjects if is_operation(subject)]
    if len(in_operations) <= 2:
        return ", ".join(named + [quote(subject) for subject in in_operations])
    places = {subject.split(" ", 2)[2] if subject.count(" ") > 1 else "" for subject in in_operations}
    operations = len({" ".join(subject.split(" ", 2)[:2]) for subject in in_operations})
    if len(places) <= 4 and "" not in places:
        summary = f"{', '.join(map(quote, sorted(places)))} of {operations} operations"
    else:
        summary = f"{len(in_operations)} places in {operations} operations"
    return ", ".join([*named, summary])


def _group_key(change: Change) -> tuple[object, ...]:
    if change.kind in ACROSS:
        return (change.breaking, change.kind)
    detail = change.detail if change.kind in (FIELD_ADDED, "parameter added") else ""
    return (change.breaking, change.kind, change.subject, detail, change.reaches)


def _merged(groups: Iterable[list[Change]]) -> list[list[list[Change]]]:
    """Groups of different components with the same change (same kind, items, detail) share a line."""
    lines: dict[tuple[object, ...], list[list[Change]]] = defaultdict(list)
    for group in groups:
        first = group[0]
        items = tuple((change.item, change.detail) for change in group)
        key = (first.breaking, first.kind, items) if first.kind in MERGED else (id(group),)
        lines[key].append(group)
    return list(lines.values())


def entries(changes: Sequence[Change], quote: Quote = _plain) -> list[Entry]:
    """The grouped lines of all changes but text-only ones, in report order."""
    groups: dict[tuple[object, ...], list[Change]] = defaultdict(list)
    for change in changes:
        if change.kind != DESCRIPTION:
            groups[_group_key(change)].append(change)
    found = []
    for line in _merged(groups.values()):
        first = line[0][0]
        section = "Breaking" if first.breaking else "Added" if first.kind in ADDITIONS else "Changed"
        affects = tuple(sorted({path for group in line for change in group for path in change.affects}))
        order = KIND_ORDER.index(first.kind) if first.kind in KIND_ORDER else len(KIND_ORDER)
        found.append(Entry(section, _line(line, quote), affects, (order, first.subject)))
    return sorted(found, key=lambda entry: (("Breaking", "Added", "Changed").index(entry.section), entry.order))


def description_lines(changes: Sequence[Change], quote: Quote = _plain) -> list[str]:
    """Text-only changes in at most four lines: schemas, operations, answers, parameters."""
    texts = [change for change in changes if change.kind == DESCRIPTION]
    schemas: dict[str, list[str]] = defaultdict(list)
    operations: list[str] = []
    parameters: list[str] = []
    answers: list[Location] = []
    for change in texts:
        if not is_operation(change.subject):
            name, _, inner = change.subject.partition(".")
            schemas[name].extend([inner] if inner else [])
        elif change.reaches[0][1] == "operation":
            operations.append(change.subject)
        elif change.reaches[0][1] == "parameters":
            parameters.append(change.subject)
        else:
            answers.extend(change.reaches)
    lines = []
    if schemas:
        listed = (f"{quote(name)} ({', '.join(inner)})" if inner else quote(name) for name, inner in schemas.items())
        lines.append("schemas: " + ", ".join(sorted(listed)))
    if operations:
        lines.append("operations: " + _some(operations, quote))
    if answers:
        lines.append("answers: " + describe_reach(answers, quote))
    if parameters:
        lines.append("parameters: " + _some(parameters, quote))
    return lines


def _some(subjects: Sequence[str], quote: Quote) -> str:
    if len(subjects) > MAX_LISTED:
        return f"{len(subjects)} operations"
    return ", ".join(map(quote, sorted(subjects)))


def _files(affects: Sequence[str], quote: Quote) -> str:
    shown = ", ".join(map(quote, affects[:MAX_FILES]))
    return shown + (f" and {len(affects) - MAX_FILES} more" if len(affects) > MAX_FILES else "")


def _header(report: Report, found: Sequence[Entry]) -> str:
    breaking = sum(entry.section == "Breaking" for entry in found)
    changes = f"{len(found)} change" + ("" if len(found) == 1 else "s")
    return f"KSeF spec {report.old_version} -> {report.new_version}: {changes}, {breaking} breaking"


def render(report: Report, markdown: bool = False) -> str:
    """The report; ``markdown`` for CHANGELOG.md (bullets under bold section names)."""
    quote = _code if markdown else _plain
    found = entries(report.changes, quote)
    sections: dict[str, list[Entry]] = defaultdict(list)
    for entry in found:
        sections[entry.section].append(entry)
    texts = description_lines(report.changes, quote)
    lines = [_header(report, found)]
    for section, listed in sections.items():
        lines += _section(section, [(entry.text, entry.affects) for entry in listed], markdown)
    if texts:
        lines += _section("Descriptions changed (text only)", [(text, ()) for text in texts], markdown)
    if report.overlay_gaps:
        gaps = [(quote(gap), ()) for gap in report.overlay_gaps]
        lines += _section("Operations without an English name in generator/overlay.yaml", gaps, markdown)
    return "\n".join(lines)


def _section(title: str, items: Sequence[tuple[str, Sequence[str]]], markdown: bool) -> list[str]:
    if not markdown:
        lines = [f"{title}:"]
        for text, affects in items:
            lines.append(f"  {text}")
            lines += [f"    affects: {_files(affects, _plain)}"] if affects else []
        return lines
    lines = ["", f"**{title}**", ""]
    for text, affects in items:
        lines += _wrap(text, "- ", "  ")
        lines += _wrap(f"affects: {_files(affects, _code)}", "  - ", "    ") if affects else []
    return lines


def _wrap(text: str, first: str, rest: str) -> list[str]:
    """Markdown wrapped at 100 columns, never inside a code span."""
    spans = re.split(r"(`[^`]*`)", text)
    joined = "".join(span.replace(" ", NBSP) if span.startswith("`") else span for span in spans)
    wrapped = textwrap.wrap(
        joined, 100, initial_indent=first, subsequent_indent=rest, break_long_words=False, break_on_hyphens=False
    )
    return [line.replace(NBSP, " ") for line in wrapped]
