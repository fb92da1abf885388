"""AWS's documented semantics, encoded where AWS cannot run here, so tests judge the synthesized templates the way
AWS will: IAM policy evaluation, and CloudWatch metric math as an alarm evaluates it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from fnmatch import fnmatchcase
from typing import Any

# What CloudFormation's pseudo parameters resolve to in these tests.
PSEUDO = {"AWS::Partition": "aws", "AWS::Region": "eu-west-1", "AWS::AccountId": "111122223333"}


def resolve(value: Any) -> Any:
    """Intrinsic functions to strings: pseudo parameters by PSEUDO, a Ref to a resource as ``<LogicalId>``,
    a GetAtt as ``<LogicalId.Attribute>``; Fn::Join joined."""
    if isinstance(value, list):
        return [resolve(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "Ref" in value:
        return PSEUDO.get(value["Ref"], f"<{value['Ref']}>")
    if "Fn::GetAtt" in value:
        logical_id, attribute = value["Fn::GetAtt"]
        return f"<{logical_id}.{attribute}>"
    if "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(str(resolve(p)) for p in parts)
    return {k: resolve(v) for k, v in value.items()}


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _matches(pattern: str, value: str, *, case_sensitive: bool) -> bool:
    # IAM JSON policy elements (Action, Resource): '*' matches any run of characters ('/' included), '?' any one.
    # Actions compare case-insensitively, resource ARNs case-sensitively.
    if not case_sensitive:
        pattern, value = pattern.lower(), value.lower()
    return fnmatchcase(value, pattern.replace("[", "[[]"))


# IAM JSON policy elements: Condition operators. A key absent from the request makes the condition false.
_OPERATORS = {
    "StringEquals": lambda pattern, value: value == pattern,
    "Bool": lambda pattern, value: value.lower() == str(pattern).lower(),
    "ArnLike": lambda pattern, value: _matches(pattern, value, case_sensitive=True),
    "StringLike": lambda pattern, value: _matches(pattern, value, case_sensitive=True),
}


def _conditions_hold(conditions: dict[str, dict[str, Any]], context: Mapping[str, str]) -> bool:
    for operator, tests in conditions.items():
        compare = _OPERATORS[operator]  # an operator these tests do not know fails loudly
        for key, patterns in tests.items():
            if key not in context or not any(compare(p, context[key]) for p in _listed(patterns)):
                return False
    return True


def allows(
    statements: list[dict[str, Any]],
    action: str,
    resource: str,
    principal: str | None = None,
    context: Mapping[str, str] | None = None,
) -> bool:
    """IAM's policy evaluation logic for one request: an explicit Deny wins, otherwise an Allow is needed (the
    default is deny). ``principal``: the service principal, for resource policies (statements with a Principal);
    ``context``: the request's condition keys (aws:SecureTransport, aws:SourceArn, ...)."""
    context = {"aws:SecureTransport": "true", **(context or {})}
    decision = False
    for statement in statements:
        statement = resolve(statement)
        if not _conditions_hold(statement.get("Condition", {}), context):
            continue
        if "Principal" in statement and principal is not None:
            declared = statement["Principal"]
            services = _listed(declared.get("Service", [])) if isinstance(declared, dict) else []
            if declared != "*" and declared != {"AWS": "*"} and principal not in services:
                continue
        if not any(_matches(a, action, case_sensitive=False) for a in _listed(statement.get("Action", []))):
            continue
        if not any(_matches(r, resource, case_sensitive=True) for r in _listed(statement.get("Resource", []))):
            continue
        if statement["Effect"] == "Deny":
            return False
        decision = True
    return decision


# --- CloudWatch metric math ----------------------------------------------------------------------------------
# "Using math expressions with CloudWatch metrics" (Metric math syntax and functions): arithmetic between time
# series is done timestamp by timestamp, and a timestamp where an operand has no value has none in the result;
# FILL(m, value) gives ``value`` where m has no datapoint at a timestamp that the expression's other series have;
# a division by zero yields no datapoint. For an alarm, each period with no resulting datapoint is missing data.
_TOKEN = re.compile(r"\s*(?:(?P<number>\d+(?:\.\d+)?)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<op>[-+*/(),]))")


def evaluate_expression(expression: str, datapoints: Mapping[str, float | None]) -> float | None:
    """The value of a metric math ``expression`` for one period, given each metric id's statistic in that period
    (None: the metric has no datapoint then). None when the period has no datapoint."""
    if all(v is None for v in datapoints.values()):
        return None  # no series has this timestamp: there is nothing for FILL to fill
    tokens = [m for m in _TOKEN.finditer(expression)]
    assert "".join(m.group(0) for m in tokens).strip() == expression.strip(), f"unparsed: {expression}"
    position = 0

    def peek() -> str | None:
        return tokens[position].group(0).strip() if position < len(tokens) else None

    def take() -> str:
        nonlocal position
        position += 1
        return tokens[position - 1].group(0).strip()

    def term() -> float | None:
        token = take()
        if token == "(":
            value = sum_()
            assert take() == ")"
            return value
        if token == "FILL":
            assert take() == "("
            metric = take()
            assert take() == ","
            fill = float(take())
            assert take() == ")"
            value = datapoints[metric]
            return fill if value is None else value
        if token[0].isdigit():
            return float(token)
        return datapoints[token]

    def product() -> float | None:
        value = term()
        while peek() in ("*", "/"):
            operator, right = take(), term()
            if value is None or right is None:
                value = None
            elif operator == "*":
                value = value * right
            else:
                value = None if right == 0 else value / right
        return value

    def sum_() -> float | None:
        value = product()
        while peek() in ("+", "-"):
            operator, right = take(), product()
            value = None if value is None or right is None else value + right if operator == "+" else value - right
        return value

    result = sum_()
    assert position == len(tokens), f"trailing tokens in {expression}"
    return result
