"""Who asked for a deploy-time exception (a hotfix): the AWS caller identity, and the log line that names it.

Pure Python: boto3 is imported only when asked, at synth, so constructs and the rehearsal never need it.
"""

from __future__ import annotations

import getpass
from typing import Any

from spec.rollout import Hotfix


def caller_identity(sts: Any | None = None, *, deploying_account: str | None = None) -> str:
    """The ARN STS names for the credentials this synth runs with, or why it cannot be known.

    The app sees the shell's credentials (AWS_PROFILE, AWS_ACCESS_KEY_ID, ...). The CDK CLI does not hand its
    ``--profile`` to the app, only the account it resolved (CDK_DEFAULT_ACCOUNT, ``deploying_account``): when the
    two accounts differ the answer says so rather than name someone else. An offline ``cdk synth`` has no
    credentials: the answer then says so and names the local user, so the template still records who ran it.
    """
    try:
        if sts is None:
            import boto3

            sts = boto3.client("sts")
        identity = sts.get_caller_identity()
    except Exception as exc:  # no credentials, no network, no region: all mean "unverified"
        return f"unverified local user {_local_user()} (no AWS caller identity: {type(exc).__name__})"
    arn, account = str(identity["Arn"]), str(identity.get("Account", ""))
    if deploying_account and account and account != deploying_account:
        return (
            f"{arn} (not the deploying account {deploying_account}: set AWS_PROFILE for the app rather than "
            "cdk --profile)"
        )
    return arn


def _local_user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


def hotfix_log_line(hotfix: Hotfix, stacks: list[str]) -> str:
    return (
        f"modelrail: HOTFIX requested by {hotfix.requested_by}: {', '.join(stacks)} shift traffic all at once "
        f"(the acceptance gate still runs; alarms still roll back). Reason: {hotfix.reason}"
    )
