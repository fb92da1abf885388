"""Before a load run: can the environment's capacity settings hold the peak at all? Little's law.

Concurrent executions needed = arrival rate x time each request holds an execution environment
("Concurrency = (average requests per second) * (average request duration in seconds)", AWS Lambda Developer Guide,
"Understanding Lambda function scaling", lambda-concurrency.html). Each cap the spec sets (reserved concurrency,
the API stage's throttle) or the account imposes (1,000 concurrent executions per Region by default, shared by all
functions; and a request rate of 10 x a function's concurrency, same page) is compared with the peak; a cap below
it means errors, not latency, and the run would measure the cap rather than the model. Lambda's throttles reach the
API's clients as 500s: the Lambda proxy integration has no function answer to pass on, and API Gateway answers its
own 500 "Internal server error" (AWS Knowledge Center, api-gateway-internal-server-error); only the stage's own
throttling answers 429.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from spec.environment import EnvironmentSpec

ACCOUNT_DEFAULT_CONCURRENCY = 1000  # per Region, all functions together, until a quota increase
REQUESTS_PER_CONCURRENCY = 10  # Lambda allows 10 x concurrency invocations per second
LAMBDA_THROTTLES = "expect Lambda throttles, answered 500 by API Gateway (server_5xx in the report)"


@dataclass(frozen=True)
class CapacityCheck:
    peak_rps: float
    function_ms: float
    environments_needed: int
    warnings: tuple[str, ...]


def check_capacity(environment: EnvironmentSpec, peak_rps: float, function_ms: float) -> CapacityCheck:
    """Warnings naming each spec setting (or account limit) that would cap ``peak_rps`` at ``function_ms`` per
    request; ``function_ms`` is the time a request holds its environment (Server-Timing total, or more)."""
    needed = math.ceil(round(peak_rps * function_ms / 1000, 9))
    name = environment.name
    warnings: list[str] = []
    reserved = environment.function.reserved_concurrency
    if reserved is not None:
        if reserved < needed:
            warnings.append(
                f"environments.{name}.function.reserved_concurrency {reserved} holds at most "
                f"{reserved * 1000 / function_ms:.0f} requests/s at {function_ms:g} ms each; the peak {peak_rps:g}/s "
                f"needs {needed} concurrent executions (Little's law): {LAMBDA_THROTTLES}"
            )
        if peak_rps > REQUESTS_PER_CONCURRENCY * reserved:
            warnings.append(
                f"environments.{name}.function.reserved_concurrency {reserved} allows at most "
                f"{REQUESTS_PER_CONCURRENCY * reserved} invocations/s (Lambda's limit: 10 x concurrency); peak "
                f"{peak_rps:g}/s: {LAMBDA_THROTTLES}"
            )
    elif needed > ACCOUNT_DEFAULT_CONCURRENCY:
        warnings.append(
            f"the peak {peak_rps:g}/s needs {needed} concurrent executions (Little's law at {function_ms:g} ms), more "
            f"than the account's default {ACCOUNT_DEFAULT_CONCURRENCY} per Region shared by all its functions: "
            f"request a quota increase, or {LAMBDA_THROTTLES}"
        )
    api = environment.api
    if api.throttle_rate_limit < peak_rps:
        warnings.append(
            f"environments.{name}.api.throttle_rate_limit {api.throttle_rate_limit:g} requests/s is below the peak "
            f"{peak_rps:g}/s: API Gateway answers the excess 429 once the burst of "
            f"{api.throttle_burst_limit} (api.throttle_burst_limit) is spent"
        )
    provisioned = environment.function.provisioned_concurrency
    if 0 < provisioned < needed:
        warnings.append(
            f"environments.{name}.function.provisioned_concurrency {provisioned} is below the {needed} environments "
            f"the peak needs: the other {needed - provisioned} start cold"
        )
    return CapacityCheck(peak_rps, function_ms, needed, tuple(warnings))
