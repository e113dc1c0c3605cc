"""The keys of a job: what it runs, where, as whom, and what its end means."""

from __future__ import annotations

from yaml.nodes import Node

from ajs3.definitions import schema
from ajs3.definitions.nodes import Ctx, Getter, suggest
from ajs3.definitions.units import Retry
from ajs3.errors import Code
from ajs3.model import RecoveryPolicy


def read_job(
    ctx: Ctx,
    fields: dict[str, tuple[Node, Node]],
    value: Getter,
    label: str,
    line: int,
    typos: set[str],
) -> dict[str, object]:
    """The values of a job's own keys (``value`` gives those allowed for a job)."""
    out: dict[str, object] = {}
    command, script = value("command"), value("script")
    if command is not None and script is not None:
        ctx.report(
            Code.BAD_VALUE,
            fields["script"][0],
            f"{label} has both 'command' and 'script'; keep one",
        )
    elif command is None and script is None and not typos & {"command", "script"}:
        ctx.report(
            Code.MISSING_KEY,
            line,
            f"{label} has neither 'command' nor 'script'; give one of them",
        )
    if command is not None:
        out["command"] = ctx.argv(command, f"'command' of {label}")
    if script is not None:
        out["script"] = ctx.text(script, f"'script' of {label}")
    shell = value("shell")
    if shell is not None:
        out["shell"] = ctx.text(shell, f"'shell' of {label}")
        if script is None:
            ctx.report(
                Code.BAD_VALUE,
                fields["shell"][0],
                f"'shell' of {label} is only used with 'script'; drop it or use 'script'",
            )
    cwd = value("cwd")
    if cwd is not None:
        text = ctx.text(cwd, f"'cwd' of {label}")
        if text is not None and not text.startswith("/"):
            ctx.report(
                Code.BAD_VALUE, cwd, f"'cwd' of {label} must be an absolute path, not {text!r}"
            )
            text = None
        out["cwd"] = text
    user = value("user")
    if user is not None:
        out["user"] = ctx.text(user, f"'user' of {label}")
    env = value("env")
    if env is not None:
        out["env"] = _env(ctx, env, label)

    warning_node, abnormal_node = value("warning_threshold"), value("abnormal_threshold")
    warning = abnormal = None
    if warning_node is not None:
        warning = ctx.integer(warning_node, f"'warning_threshold' of {label}", 0, 255)
        out["warning_threshold"] = warning
    if abnormal_node is not None:
        abnormal = ctx.integer(abnormal_node, f"'abnormal_threshold' of {label}", 0, 255)
        out["abnormal_threshold"] = abnormal
    # Compare only values that were read; a bad abnormal_threshold is reported already.
    effective = 0 if abnormal_node is None else abnormal
    if warning_node is not None and warning is not None and effective is not None:
        default = "" if abnormal_node is not None else " (the default)"
        if warning > effective:
            ctx.report(
                Code.BAD_VALUE,
                warning_node,
                f"'warning_threshold' {warning} of {label} is above 'abnormal_threshold' "
                f"{effective}{default}; the abnormal threshold must be at least the "
                "warning threshold",
            )

    timeout = value("timeout")
    if timeout is not None:
        out["timeout"] = ctx.number(
            timeout, f"'timeout' of {label}", 0, schema.SECONDS_MAX, low_open=True
        )
    grace = value("kill_grace")
    if grace is not None:
        out["kill_grace"] = ctx.number(grace, f"'kill_grace' of {label}", 0, schema.SECONDS_MAX)
    retry = value("retry")
    if retry is not None:
        out["retry"] = _retry(ctx, retry, label)

    policy_node, check_node = value("on_failover"), value("failover_check")
    policy = None
    if policy_node is not None:
        text = ctx.text(policy_node, f"'on_failover' of {label}")
        choices = [p.value for p in RecoveryPolicy]
        if text is not None and text not in choices:
            ctx.report(
                Code.BAD_VALUE,
                policy_node,
                f"unknown 'on_failover' {text!r} in {label}{suggest(text, choices)}",
            )
        elif text is not None:
            policy = RecoveryPolicy(text)
            out["on_failover"] = policy
    if check_node is not None:
        out["failover_check"] = ctx.argv(check_node, f"'failover_check' of {label}")
    if policy is RecoveryPolicy.JUDGE and check_node is None:
        ctx.report(
            Code.BAD_VALUE,
            policy_node if policy_node is not None else line,
            f"{label} has 'on_failover: judge' but no 'failover_check'; "
            "give the command that decides whether the job is done",
        )
    if (
        check_node is not None
        and policy_node is not None
        and policy
        not in (
            None,
            RecoveryPolicy.JUDGE,
        )
    ):
        ctx.report(
            Code.BAD_VALUE,
            fields["failover_check"][0],
            f"'failover_check' of {label} is only used with 'on_failover: judge'",
        )
    if check_node is not None and policy_node is None:
        ctx.report(
            Code.BAD_VALUE,
            fields["failover_check"][0],
            f"'failover_check' of {label} is only used with 'on_failover: judge'; add it",
        )
    return {k: v for k, v in out.items() if v is not None}


def _env(ctx: Ctx, node: Node, label: str) -> tuple[tuple[str, str], ...] | None:
    fields = ctx.mapping(node, f"'env' of {label}")
    if fields is None:
        return None
    pairs: list[tuple[str, str]] = []
    for key, (key_node, value_node) in fields.items():
        if not schema.ENV_NAME_RE.match(key):
            ctx.report(
                Code.BAD_VALUE,
                key_node,
                f"{key!r} in 'env' of {label} is not a valid variable name "
                "(letters, digits and '_', not starting with a digit)",
            )
            continue
        if key.startswith(schema.RESERVED_ENV_PREFIX):
            ctx.report(
                Code.BAD_VALUE,
                key_node,
                f"{key!r} in 'env' of {label} is reserved: ajs3 sets the "
                f"{schema.RESERVED_ENV_PREFIX}* variables of every run; rename it",
            )
            continue
        text = ctx.word(value_node, f"the value of {key!r} in 'env' of {label}")
        if text is not None:
            pairs.append((key, text))
    return tuple(sorted(pairs))


def _retry(ctx: Ctx, node: Node, label: str) -> Retry | None:
    fields = ctx.mapping(node, f"'retry' of {label}")
    if fields is None:
        return None
    for key, (key_node, _) in fields.items():
        if key not in schema.RETRY_KEYS:
            ctx.report(
                Code.UNKNOWN_KEY,
                key_node,
                f"unknown key {key!r} in 'retry' of {label}{suggest(key, schema.RETRY_KEYS)}",
            )
    count: int | None = 0
    interval: float | None = 0.0
    codes: list[int] = []
    ok = True
    if "count" in fields:
        count = ctx.integer(
            fields["count"][1], f"'retry.count' of {label}", 0, schema.RETRY_COUNT_MAX
        )
    if "interval" in fields:
        interval = ctx.number(
            fields["interval"][1], f"'retry.interval' of {label}", 0, schema.SECONDS_MAX
        )
    if "on_exit_codes" in fields:
        items = ctx.sequence(fields["on_exit_codes"][1], f"'retry.on_exit_codes' of {label}")
        ok = items is not None
        for item in items or []:
            code = ctx.integer(
                item, f"an exit code in 'retry.on_exit_codes' of {label}", 1, schema.EXIT_CODE_MAX
            )
            if code is None:
                ok = False
            elif code not in codes:
                codes.append(code)
    if count is None or interval is None or not ok:
        return None
    return Retry(count=count, interval=interval, on_exit_codes=tuple(codes))
