"""A crew's flow as an indented outline, for ``podium validate``::

sequential
  researcher
  parallel (merge: editor)
    writer
    seo
"""

from __future__ import annotations

from typing import Any

from podium.crew import _format as fmt

__all__ = ["outline"]


def outline(flow: Any, indent: str = "") -> list[str]:
    """The lines of the outline of a validated flow (members indented under their pattern)."""
    pattern = str(fmt.pattern_of(flow))
    options = getattr(flow, pattern)
    title = f"{flow.name}: {pattern}" if flow.name else pattern
    details, members = _parts(pattern, options)
    head = f"{indent}{title}" + (f" ({', '.join(details)})" if details else "")
    lines = [head]
    for label, member in members:
        prefix = f"{indent}  {label}" if label else f"{indent}  "
        if isinstance(member, str):
            lines.append(prefix + member)
        elif isinstance(member, fmt.MemberSpec):
            lines.append(prefix + _handled(member))
        else:
            nested = outline(member, indent + "  ")
            lines.append(prefix + nested[0].lstrip())
            lines += nested[1:]
    return lines


def _name(member: Any) -> str:
    if isinstance(member, fmt.MemberSpec):
        return member.agent
    return member if isinstance(member, str) else (member.name or str(fmt.pattern_of(member)))


def _handled(member: fmt.MemberSpec) -> str:
    """``writer (fallbacks: backup; on error: escalate)``."""
    details = [f"fallbacks: {', '.join(member.fallbacks)}"] if member.fallbacks else []
    if member.on_error is not None:
        goto = member.on_error.goto
        details.append(f"on error: goto {goto}" if goto is not None else "on error: escalate")
    return f"{member.agent} ({'; '.join(details)})" if details else member.agent


def _parts(pattern: str, options: Any) -> tuple[list[str], list[tuple[str, Any]]]:
    """The pattern's settings worth showing on its line, and its members (with a label where useful)."""
    if pattern == "sequential":
        return [], [("", m) for m in options]
    if pattern == "parallel":
        merge = [("merge: ", options.merge)] if options.merge is not None else []
        return [], [*[("", m) for m in options.branches], *merge]
    if pattern == "supervisor":
        return [f"router: {options.router}", f"max_rounds: {options.max_rounds}"], [("", m) for m in options.workers]
    if pattern == "hierarchical":
        teams: list[tuple[str, Any]] = []
        for name, team in options.teams.items():
            if isinstance(team, fmt.TeamSpec):
                teams.append((f"{name}: ", f"router {team.router} over {', '.join(map(_name, team.workers))}"))
            else:
                teams.append((f"{name}: ", team))
        return [f"lead: {options.lead}"], teams
    if pattern == "handoff":
        return [f"start: {options.start}", f"max_handoffs: {options.max_handoffs}"], [("", a) for a in options.agents]
    if pattern == "debate":
        return [f"rounds: {options.rounds}"], [*[("", m) for m in options.debaters], ("judge: ", options.judge)]
    if pattern == "vote":
        details = [f"rule: {options.rule}"] + ([f"options: {options.options}"] if options.options else [])
        judge = [("judge: ", options.judge)] if options.judge else []
        return details, [*[("", m) for m in options.voters], *judge]
    if pattern == "loop":
        until = [f"until: {options.until.agent}.{options.until.field}"] if options.until else []
        return [f"max_iterations: {options.max_iterations}", *until], [("", m) for m in options.body]
    if pattern == "board":
        details = [f"opener: {options.opener}"] if options.opener else []
        details += [f"max_mentions: {options.max_mentions}", f"max_depth: {options.max_depth}"]
        return details, [("", m) for m in options.members]
    if pattern == "events":
        return [f"start: {options.start}"], [(f"on {event}: ", m) for event, ms in options.on.items() for m in ms]
    # planner
    return [f"max_subtasks: {options.max_subtasks}"], [
        ("plan: ", options.plan),
        ("worker: ", options.worker),
        ("synthesize: ", options.synthesize),
    ]
