"""Data-driven scenario files, in the style of etcd-io/raft's ``datadriven`` testdata.

A scenario file is a list of blocks. Each block is a command line, optional
input lines, a ``----`` line, the expected output, and a blank line::

    # Lines starting with '#' between blocks are comments.
    create raft seed=3 nodes=5 leader_noop=false
    ----
    ok

    apply
    {"op": "crash", "node": "n2"}
    {"op": "timeout", "node": "n1"}
    ----
    ok
    ok

    until leader n1
    ----
    now=172.500 n1 is leader of term 1

An expected output that itself holds blank lines is written between two
``----`` lines and ends with two ``----`` lines (as in datadriven).

Commands (any engine): ``create KIND key=value ...``, ``apply JSON`` (or one
JSON command per input line), ``advance MS``, ``step [N]``, ``until COND
[within=MS]``, ``events`` (narration since the last ``events``),
``violations``, ``history``, ``linearizable``, ``network``. Per kind (Raft):
``status``, ``logs``, ``kv`` and the ``until`` conditions ``leader [NODE]
[term>=N]``, ``commit N [NODE]``, ``role NODE ROLE``, ``settled``.

``run_file(path)`` runs a file and compares; ``run_file(path, rewrite=True)``
writes the actual output back into the file (the caller decides when, e.g.
from an environment variable in the test suite). This module reads no clock and
no environment.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import create
from .checkers.linearizability import check_history
from .engine import Engine
from .errors import PatternsError

SEPARATOR = "----"
DEFAULT_WITHIN_MS = 10_000.0
MAX_UNTIL_STEPS = 200_000


class ScenarioError(Exception):
    """The scenario file itself is wrong (syntax, unknown command): a test failure, not output."""


@dataclass
class Block:
    line: int  # 1-based line of the command
    command: str
    input: list[str]
    expected: str
    preamble: list[str] = field(default_factory=list)  # comment and blank lines before the block

    @property
    def name(self) -> str:
        return self.command.split()[0] if self.command.split() else ""


@dataclass
class Step:
    block: Block
    output: str
    view: dict[str, Any] | None = field(repr=False)  # the engine's view right after the block ran
    now: float | None = None

    @property
    def ok(self) -> bool:
        return self.output == self.block.expected


@dataclass
class ScenarioRun:
    path: str
    steps: list[Step] = field(repr=False)
    engine: Engine | None = field(repr=False)
    trailer: list[str] = field(repr=False)

    @property
    def mismatches(self) -> list[Step]:
        return [step for step in self.steps if not step.ok]

    def report(self) -> str:
        parts = []
        for step in self.mismatches:
            parts.append(
                f"{self.path}:{step.block.line}: {step.block.command}\n"
                f"--- expected\n{step.block.expected}\n+++ actual\n{step.output}\n"
            )
        return "\n".join(parts)

    def find(self, command: str, nth: int = 0) -> Step:
        """The ``nth`` step whose command line starts with ``command``."""
        matches = [step for step in self.steps if step.block.command.startswith(command)]
        if len(matches) <= nth:
            raise KeyError(f"no {nth}th step starting with {command!r} in {self.path}")
        return matches[nth]


# -- parsing and writing ------------------------------------------------------------------


def parse(text: str, path: str = "<scenario>") -> tuple[list[Block], list[str]]:
    """Split a scenario into blocks. Returns (blocks, trailing comment lines)."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    blocks: list[Block] = []
    preamble: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip() or line.lstrip().startswith("#"):
            preamble.append(line)
            i += 1
            continue
        start = i
        command = line.strip()
        i += 1
        inputs: list[str] = []
        while i < len(lines) and lines[i] != SEPARATOR:
            if not lines[i].strip():
                raise ScenarioError(f"{path}:{start + 1}: '{command}' has no '{SEPARATOR}' line before a blank line")
            inputs.append(lines[i])
            i += 1
        if i >= len(lines):
            raise ScenarioError(f"{path}:{start + 1}: '{command}' has no '{SEPARATOR}' line")
        i += 1  # the separator
        expected: list[str] = []
        if i < len(lines) and lines[i] == SEPARATOR:
            # Double-separator form: the output may hold blank lines.
            i += 1
            while i < len(lines) and not (lines[i] == SEPARATOR and i + 1 < len(lines) and lines[i + 1] == SEPARATOR):
                expected.append(lines[i])
                i += 1
            if i >= len(lines):
                raise ScenarioError(f"{path}:{start + 1}: output opened with two '{SEPARATOR}' lines is not closed")
            i += 2
        else:
            while i < len(lines) and lines[i].strip():
                expected.append(lines[i])
                i += 1
        if i < len(lines) and not lines[i].strip():
            i += 1  # the blank line that ends the block
        blocks.append(Block(start + 1, command, inputs, "\n".join(expected), preamble))
        preamble = []
    return blocks, preamble


def render(blocks: list[Block], outputs: list[str], trailer: list[str]) -> str:
    out: list[str] = []
    for block, output in zip(blocks, outputs):
        out.extend(block.preamble)
        out.append(block.command)
        out.extend(block.input)
        out.append(SEPARATOR)
        if any(not line.strip() for line in output.split("\n")) and output:
            out.extend([SEPARATOR, output, SEPARATOR, SEPARATOR])
        elif output:
            out.append(output)
        out.append("")
    out.extend(trailer)
    while out and out[-1] == "":
        out.pop()
    return "\n".join(out) + "\n"


def run_file(path: str | Path, *, rewrite: bool = False) -> ScenarioRun:
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    blocks, trailer = parse(text, str(path))
    runner = ScenarioRunner(str(path))
    steps = [runner.run_block(block) for block in blocks]
    if rewrite:
        new_text = render(blocks, [step.output for step in steps], trailer)
        if new_text != text:
            path.write_text(new_text, encoding="utf-8")
        for step in steps:
            step.block.expected = step.output
    return ScenarioRun(str(path), steps, runner.engine, trailer)


# -- running ---------------------------------------------------------------------------


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        pass
    if "," in text:
        return [_parse_value(part) for part in text.split(",")]
    return text


def _fmt_time(ms: float) -> str:
    return f"{ms:.3f}"


def _fmt_value(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, str) else value


class ScenarioRunner:
    def __init__(self, path: str = "<scenario>") -> None:
        self.path = path
        self.engine: Engine | None = None
        self.adapter: KindAdapter | None = None
        self.events_seen = 0

    def run_block(self, block: Block) -> Step:
        words = block.command.split()
        handler = getattr(self, "do_" + words[0].replace("-", "_"), None) if words else None
        if handler is None and self.adapter is not None:
            handler = self.adapter.commands(self).get(words[0])
        if handler is None:
            raise ScenarioError(f"{self.path}:{block.line}: unknown command {block.command!r}")
        if words[0] != "create" and self.engine is None:
            raise ScenarioError(f"{self.path}:{block.line}: the first command must be 'create'")
        try:
            output = handler(block.command[len(words[0]) :].strip(), block.input)
        except ScenarioError as exc:
            raise ScenarioError(f"{self.path}:{block.line}: {exc}") from None
        eng = self.engine
        return Step(block, output, eng.view() if eng is not None else None, eng.now if eng is not None else None)

    @property
    def eng(self) -> Any:
        assert self.engine is not None
        return self.engine

    # -- generic commands ---------------------------------------------------------------
    def do_create(self, args: str, _input: list[str]) -> str:
        words = args.split()
        if not words:
            raise ScenarioError("'create' needs a kind, e.g. 'create raft seed=1'")
        kind, params = words[0], {}
        for word in words[1:]:
            if "=" not in word:
                raise ScenarioError(f"'create' arguments are key=value, not {word!r}")
            key, value = word.split("=", 1)
            params[key] = _parse_value(value)
        seed = params.pop("seed", 1)
        try:
            self.engine = create(kind, seed=seed, **params)
        except PatternsError as exc:
            return f"error: {type(exc).__name__}: {exc}"
        self.adapter = ADAPTERS.get(kind, KindAdapter)()
        self.events_seen = 0
        return "ok"

    def do_apply(self, args: str, inputs: list[str]) -> str:
        texts = ([args] if args else []) + inputs
        if not texts:
            raise ScenarioError("'apply' needs a JSON command on its line or on the lines below")
        out = []
        for text in texts:
            try:
                cmd = json.loads(text)
            except ValueError as exc:
                raise ScenarioError(f"'apply' input is not JSON: {text!r} ({exc})") from None
            try:
                result = self.eng.apply(cmd)
            except PatternsError as exc:
                out.append(f"error: {type(exc).__name__}: {exc}")
                continue
            out.append("ok" if result is None else json.dumps(result, sort_keys=True))
        return "\n".join(out)

    def do_advance(self, args: str, _input: list[str]) -> str:
        try:
            ms = float(args)
        except ValueError:
            raise ScenarioError(f"'advance' needs milliseconds, not {args!r}") from None
        self.eng.advance(ms)
        return f"now={_fmt_time(self.eng.now)}"

    def do_step(self, args: str, _input: list[str]) -> str:
        count = int(args) if args else 1
        for _ in range(count):
            if not self.eng.step():
                return f"now={_fmt_time(self.eng.now)} (nothing scheduled)"
        return f"now={_fmt_time(self.eng.now)}"

    def do_until(self, args: str, _input: list[str]) -> str:
        words = args.split()
        within = DEFAULT_WITHIN_MS
        rest = []
        for word in words:
            if word.startswith("within="):
                within = float(word.split("=", 1)[1])
            else:
                rest.append(word)
        if not rest:
            raise ScenarioError("'until' needs a condition")
        conditions = self.adapter.conditions() if self.adapter else {}
        condition = conditions.get(rest[0])
        if condition is None:
            raise ScenarioError(f"unknown 'until' condition {rest[0]!r}; known: {', '.join(sorted(conditions))}")
        eng = self.eng
        deadline = eng.now + within
        steps = 0
        while True:
            met, what = condition(eng, rest[1:])
            if met:
                return f"now={_fmt_time(eng.now)} {what}"
            next_at = eng.next_event_ms()
            if next_at is None or next_at > deadline or steps >= MAX_UNTIL_STEPS:
                if next_at is not None and next_at > deadline:
                    eng.advance_to(deadline)
                return f"now={_fmt_time(eng.now)} not reached within {within:g} ms: {what}"
            eng.step()
            steps += 1

    def do_events(self, _args: str, _input: list[str]) -> str:
        events = self.eng.events(self.events_seen)
        if events:
            self.events_seen = events[-1]["seq"]
        if not events:
            return "(no events)"
        return "\n".join(f"{_fmt_time(e['at_ms'])} {e['text']}" for e in events)

    def do_violations(self, _args: str, _input: list[str]) -> str:
        found = self.eng.violations()
        if not found:
            return "none"
        return "\n".join(f"{v['at_ms']:.3f} {v['invariant']}: {v['message']}" for v in found)

    def do_history(self, _args: str, _input: list[str]) -> str:
        history = getattr(self.eng, "history", None)
        if history is None:
            raise ScenarioError(f"a {self.eng.kind} engine keeps no client history")
        if not history:
            return "(no operations)"
        return "\n".join(_fmt_record(record) for record in history)

    def do_linearizable(self, _args: str, _input: list[str]) -> str:
        history = getattr(self.eng, "history", None)
        if history is None:
            raise ScenarioError(f"a {self.eng.kind} engine keeps no client history")
        result = check_history(history)
        if result.ok:
            count = sum(key.operations for key in result.keys)
            pending = sum(1 for record in history if record["status"] == "pending")
            return (
                f"yes: {count} operation{'s' if count != 1 else ''} on {len(result.keys)} "
                f"key{'s' if len(result.keys) != 1 else ''}" + (f", {pending} still pending" if pending else "")
            )
        return "no: " + result.explanation

    def do_network(self, _args: str, _input: list[str]) -> str:
        net = self.eng.view().get("network")
        if net is None:
            raise ScenarioError(f"a {self.eng.kind} engine has no network")
        parts = [
            f"latency={net['latency_ms'][0]:g}-{net['latency_ms'][1]:g}ms",
            f"drop={net['drop_rate']:g}",
            f"dup={net['duplicate_rate']:g}",
            f"reorder={net['reorder_rate']:g}",
        ]
        if net["partition"]:
            parts.append("partition=" + "|".join(",".join(group) for group in net["partition"]))
        if net["cuts"]:
            parts.append("cuts=" + ",".join(f"{a}->{b}" for a, b in net["cuts"]))
        return " ".join(parts)


def _fmt_record(record: dict[str, Any]) -> str:
    if record["op"] == "put":
        what = f"put {record['key']}={_fmt_value(record['value'])}"
    else:
        what = f"get {record['key']}"
        if record["status"] == "ok":
            what += f" -> {_fmt_value(record['result'])}"
    attempts = record.get("attempts", 0)
    tries = f"{attempts} attempt{'s' if attempts != 1 else ''}"
    if record["status"] == "ok":
        when = f"[{_fmt_time(record['invoke'])}, {_fmt_time(record['complete'])}]"
        return f"#{record['id']} {record['client']} {what} ok {when} entry {record.get('index')} ({tries})"
    return f"#{record['id']} {record['client']} {what} {record['status']} since {_fmt_time(record['invoke'])} ({tries}, last sent to {record.get('node')})"


# -- per-kind parts -----------------------------------------------------------------------


Condition = Callable[[Any, list[str]], tuple[bool, str]]


class KindAdapter:
    """What the runner knows about one kind of engine. Later lessons add their own."""

    def commands(self, runner: ScenarioRunner) -> dict[str, Callable[[str, list[str]], str]]:
        return {}

    def conditions(self) -> dict[str, Condition]:
        return {"settled": _until_settled}


def _until_settled(eng: Any, args: list[str]) -> tuple[bool, str]:
    history = getattr(eng, "history", [])
    pending = [record for record in history if record["status"] == "pending"]
    if not pending:
        return True, f"all {len(history)} operations settled"
    return False, f"{len(pending)} operations still pending"


def _int_arg(word: str, what: str) -> int:
    try:
        return int(word)
    except ValueError:
        raise ScenarioError(f"{what} must be a whole number, not {word!r}") from None


class RaftAdapter(KindAdapter):
    def commands(self, runner: ScenarioRunner) -> dict[str, Callable[[str, list[str]], str]]:
        return {
            "status": lambda args, _input: self.status(runner.eng),
            "logs": lambda args, _input: self.logs(runner.eng),
            "kv": lambda args, _input: self.kv(runner.eng),
        }

    def conditions(self) -> dict[str, Condition]:
        return {
            **super().conditions(),
            "leader": self.until_leader,
            "commit": self.until_commit,
            "role": self.until_role,
        }

    @staticmethod
    def status(eng: Any) -> str:
        lines = []
        for node in eng.raft_nodes.values():
            alive = eng.hosts[node.id].alive
            vote = node.disk.voted_for or "-"
            terms = " ".join(str(entry.term) for entry in node.log)
            if alive:
                lines.append(
                    f"{node.id} up   {node.role:<9} term={node.term} vote={vote} commit={node.commit_index} log=[{terms}]"
                )
            else:
                lines.append(f"{node.id} down {'-':<9} term={node.term} vote={vote} commit=- log=[{terms}]")
        return "\n".join(lines)

    @staticmethod
    def logs(eng: Any) -> str:
        lines = []
        for node in eng.raft_nodes.values():
            entries = []
            for entry in node.log:
                command = entry.command
                if command["op"] == "noop":
                    entries.append(f"{entry.term}:noop")
                elif command["op"] == "put":
                    entries.append(f"{entry.term}:put {command['key']}={_fmt_value(command['value'])}")
                else:
                    entries.append(f"{entry.term}:get {command['key']}")
            lines.append(f"{node.id}: " + (" | ".join(entries) if entries else "(empty)"))
        return "\n".join(lines)

    @staticmethod
    def kv(eng: Any) -> str:
        lines = []
        for node in eng.raft_nodes.values():
            if not eng.hosts[node.id].alive:
                lines.append(f"{node.id}: (down)")
                continue
            items = " ".join(f"{key}={_fmt_value(value)}" for key, value in sorted(node.kv.items()))
            lines.append(f"{node.id}: applied={node.last_applied} {items}".rstrip())
        return "\n".join(lines)

    @staticmethod
    def until_leader(eng: Any, args: list[str]) -> tuple[bool, str]:
        node_id, min_term = None, 0
        for word in args:
            if word.startswith("term>="):
                min_term = _int_arg(word[len("term>=") :], "term>=")
            elif word in eng.raft_nodes:
                node_id = word
            else:
                raise ScenarioError(f"'until leader' takes a node id and term>=N, not {word!r}")
        leaders = [
            node
            for node in eng.raft_nodes.values()
            if eng.hosts[node.id].alive and node.role == "leader" and node.term >= min_term
            and (node_id is None or node.id == node_id)
        ]
        want = (node_id or "a node") + " is leader" + (f" of a term >= {min_term}" if min_term else "")
        if not leaders:
            return False, want
        best = max(leaders, key=lambda node: node.term)
        return True, f"{best.id} is leader of term {best.term}"

    @staticmethod
    def until_commit(eng: Any, args: list[str]) -> tuple[bool, str]:
        if not args or len(args) > 2:
            raise ScenarioError("'until commit' takes an index and optionally a node: 'until commit 3 n1'")
        index = _int_arg(args[0], "the commit index")
        if len(args) == 2:
            node = eng.raft_nodes.get(args[1])
            if node is None:
                raise ScenarioError(f"unknown node {args[1]!r}")
            if node.commit_index >= index:
                return True, f"{node.id} commit index is {node.commit_index}"
            return False, f"{node.id} commit index >= {index}"
        committed = len(eng.checker.committed)
        if committed >= index:
            return True, f"{committed} entries committed"
        return False, f"{index} entries committed"

    @staticmethod
    def until_role(eng: Any, args: list[str]) -> tuple[bool, str]:
        if len(args) != 2 or args[0] not in eng.raft_nodes:
            raise ScenarioError("'until role' takes a node and a role: 'until role n2 candidate'")
        node = eng.raft_nodes[args[0]]
        if eng.hosts[node.id].alive and node.role == args[1]:
            return True, f"{node.id} is {node.role} in term {node.term}"
        return False, f"{node.id} is {args[1]}"


def _load_balancer_adapter() -> KindAdapter:
    # Imported on first use: the adapter module imports this one.
    from .load_balancer.scenario_adapter import LoadBalancerAdapter

    return LoadBalancerAdapter()


def _sharding_adapter() -> KindAdapter:
    # Imported on first use: the adapter module imports this one.
    from .sharding.scenario_adapter import ShardingAdapter

    return ShardingAdapter()


def _saga_adapter() -> KindAdapter:
    # Imported on first use: the adapter module imports this one.
    from .saga.scenario_adapter import SagaAdapter

    return SagaAdapter()


def _circuit_breaker_adapter() -> KindAdapter:
    # Imported on first use: the adapter module imports this one.
    from .circuit_breaker.scenario_adapter import CircuitBreakerAdapter

    return CircuitBreakerAdapter()


ADAPTERS: dict[str, Callable[[], KindAdapter]] = {
    "raft": RaftAdapter,
    "load_balancer": _load_balancer_adapter,
    "sharding": _sharding_adapter,
    "circuit_breaker": _circuit_breaker_adapter,
    "saga": _saga_adapter,
}
