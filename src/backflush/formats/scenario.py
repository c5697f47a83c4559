"""Scenario files (DESIGN §4.1): one YAML file holds a whole small book."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from backflush.domain import model as m
from backflush.engine.flush import PostingError
from backflush.formats.inputs import (
    WHERE,
    BookModel,
    InputError,
    build_event,
    build_master,
    describe,
    fields_of,
)

LINE = "__line__"


class _Loader(yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader):  # type: ignore[misc]
    """Safe YAML with exact decimals and the line number of every mapping (parsed by libyaml
    where PyYAML has it: a large plant's master data reads several times faster)."""


def _decimal(loader: _Loader, node: yaml.ScalarNode) -> Decimal:
    text = str(loader.construct_scalar(node)).replace("_", "")
    try:
        value = Decimal(text)
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite():
        raise yaml.constructor.ConstructorError(
            None, None, f"expected a finite decimal number, got {text!r}", node.start_mark
        )
    return value


_PLAIN_INTEGER = re.compile(r"^[-+]?(0|[1-9][0-9_]*)$")


def _integer(loader: _Loader, node: yaml.ScalarNode) -> int:
    """A plain decimal integer (optional sign, underscores allowed). YAML 1.1 also reads 010 as
    octal 8, 0x10 as 16, 0b10 as 2 and 1:30 as 90; those are refused, not misread."""
    text = str(loader.construct_scalar(node))
    if not _PLAIN_INTEGER.match(text):
        raise yaml.constructor.ConstructorError(
            None,
            None,
            f"ambiguous number {text!r} (YAML 1.1 reads it as octal, hexadecimal, binary "
            "or base 60); write a plain decimal number without leading zeros",
            node.start_mark,
        )
    return int(text.replace("_", ""))


def _mapping(loader: _Loader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    mapping: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in mapping:
            raise yaml.constructor.ConstructorError(
                "while reading a mapping",
                node.start_mark,
                f"duplicate key {key!r}",
                key_node.start_mark,
            )
        mapping[key] = loader.construct_object(value_node, deep=True)
    mapping[LINE] = node.start_mark.line + 1
    return mapping


def _timestamp(loader: _Loader, node: yaml.ScalarNode) -> Any:
    """A YAML date; one that looks like a date but is not (2026-13-05) is a YAML error with
    its position, not a crash."""
    try:
        return yaml.constructor.SafeConstructor.construct_yaml_timestamp(loader, node)
    except ValueError as error:
        raise yaml.constructor.ConstructorError(
            None, None, f"invalid date {node.value!r}: {error}", node.start_mark
        ) from None


_Loader.add_constructor("tag:yaml.org,2002:float", _decimal)
_Loader.add_constructor("tag:yaml.org,2002:int", _integer)
_Loader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def load_yaml(text: str, source: str) -> Any:
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = getattr(error, "problem", None) or str(error)
        raise InputError([f"{where}: malformed YAML: {problem}"]) from None


def strip_lines(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: strip_lines(v) for k, v in value.items() if k != LINE}
    if isinstance(value, list):
        return [strip_lines(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class Scenario:
    settings: m.Settings
    master: m.MasterData
    events: tuple[m.Event, ...]
    #: Where each event was read ("file:line"), by event id.
    sources: Mapping[str, str] = field(default_factory=dict)

    def where(self, error: PostingError) -> PostingError:
        """``error`` with the file and line of the event it refused, where known."""
        place = self.sources.get(error.event_id)
        if place is None:
            return error
        located = type(error)(f"{place}: {error}")
        located.event_id = error.event_id
        return located


def default_id(source: str, position: int) -> str:
    """Id of the ``position``-th event (1-based) of a file that gives none: the file's stem
    and the position (``northshore:3``), so two files' unnamed events never share an id."""
    return f"{Path(source).stem}:{position}"


#: The sections of a scenario file, in the order they are written.
SECTIONS = ("book", "items", "work_centers", "routings", "boms", "cost_sets", "events")


def parse_scenario(text: str, source: str = "<scenario>") -> Scenario:
    data = load_yaml(text, source)
    if isinstance(data, list):  # (a JSON array of events reads as YAML)
        raise InputError(
            [
                f"{source}: a list, not a scenario (a mapping with book, items, boms and "
                "events); a stream of events is imported from JSON lines (.jsonl: one event "
                "object per line), CSV (.csv) or Parquet (.parquet)"
            ]
        )
    if not isinstance(data, dict):
        raise InputError([f"{source}: expected a mapping with book, items, boms and events"])
    unknown = sorted(set(data) - {*SECTIONS, LINE})
    if unknown:
        raise InputError([f"{source}: unknown section(s) {', '.join(map(str, unknown))}; "
                          f"expected {', '.join(SECTIONS)}"])  # fmt: skip

    def at(raw: Any) -> str:
        return f"{source}:{raw[LINE]}" if isinstance(raw, dict) and LINE in raw else source

    book_raw = data.get("book")
    if not isinstance(book_raw, dict):
        raise InputError([f"{source}: book: expected a mapping with name, currency, triggers, ..."])
    try:
        settings = BookModel.model_validate(strip_lines(book_raw)).to_domain()
    except ValidationError as error:
        found = describe(error, allowed=fields_of(BookModel))
        raise InputError([f"{at(book_raw)}: book.{p}" for p in found]) from None

    def records(name: str, lines: str = "") -> list[tuple[str, Any]]:
        found = []
        for raw in _section(data, name, source, required=name == "items"):
            if lines and isinstance(raw.get(lines), list):  # each line told at its own line
                raw = {**raw, lines: [
                    {**line, WHERE: at(line)} if isinstance(line, dict) and LINE in line else line
                    for line in raw[lines]
                ]}  # fmt: skip
            found.append((at(raw), strip_lines(raw)))
        return found

    master = build_master(
        records("items"),
        records("boms", "lines"),
        settings,
        work_centers=records("work_centers"),
        routings=records("routings", "operations"),
        cost_sets=records("cost_sets"),
    )
    events: list[m.Event] = []
    sources: dict[str, str] = {}
    first: dict[str, m.Event] = {}
    problems: list[str] = []
    for position, raw in enumerate(_section(data, "events", source, required=False), 1):
        try:
            event = build_event(
                strip_lines(raw),
                master,
                settings,
                where=at(raw),
                default_id=default_id(source, position),
            )
        except InputError as error:
            problems += error.problems
            continue
        earlier = first.setdefault(event.id, event)
        if earlier != event:  # the same event twice is harmless: the book applies it once
            problems.append(
                f"{at(raw)}: event {event.id}: id already used at {sources[event.id]} "
                "by an event with different content"
            )
            continue
        events.append(event)
        sources.setdefault(event.id, at(raw))
    if problems:
        raise InputError(problems)
    return Scenario(settings, master, tuple(events), sources)


def _section(data: Mapping[str, Any], name: str, source: str, required: bool = True) -> list[Any]:
    value = data.get(name)
    if value is None and not required:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise InputError([f"{source}: {name}: expected a list of mappings"])
    return value


#: What a scenario file is named (JSON is YAML too).
SCENARIO_SUFFIXES = frozenset({".yaml", ".yml", ".json"})


def read_scenario(path: Path) -> Scenario:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise InputError([f"{path}: cannot read: {error.strerror}"]) from None
    except UnicodeDecodeError:
        raise InputError([f"{path}: not UTF-8 text"]) from None
    try:
        return parse_scenario(text, str(path))
    except InputError as error:
        if path.suffix.lower() in SCENARIO_SUFFIXES:
            raise
        # (a stream of events named otherwise is read as a scenario: say so)
        suffix = f"suffix {path.suffix}" if path.suffix else "no suffix"
        hint = (
            f"{path}: read as a scenario file (YAML), as its {suffix} is no stream's; "
            "a stream of events is named .jsonl, .ndjson, .csv or .parquet"
        )
        raise InputError([*error.problems, hint]) from None
