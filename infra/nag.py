"""cdk-nag acknowledgments: each AwsSolutions finding this design accepts, with its reason, on the construct
that causes it (acknowledgments cover a construct's children, never the whole stack)."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Acknowledgment, CfnElement, Stack, Validations
from constructs import IConstruct

_CDK_SINGLETON_PREFIX = "Custom::CDKBucketDeployment"


def acknowledge(construct: IConstruct, rule: str, reason: str, findings: Sequence[str] = ()) -> None:
    """Acknowledge ``rule`` on ``construct``; a granular rule (IAM4, IAM5) is acknowledged finding by finding."""
    for id_ in [f"{rule}[{finding}]" for finding in findings] or [rule]:
        Validations.of(construct).acknowledge(Acknowledgment(id=id_, reason=reason))


def logical_id(construct: IConstruct) -> str:
    """The logical id cdk-nag shows in a finding such as ``Resource::<Id.Arn>/*``."""
    stack = Stack.of(construct)
    resource = construct.node.default_child if isinstance(construct.node.default_child, CfnElement) else construct
    assert isinstance(resource, CfnElement)
    return str(stack.resolve(stack.get_logical_id(resource)))


def managed_policy(name: str) -> str:
    return f"Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/{name}"


def acknowledge_python_runtime(construct: IConstruct) -> None:
    acknowledge(
        construct,
        "AwsSolutions-L1",
        "Python 3.12 on purpose: the runtime layer's wheels (onnxruntime, numpy) are built for cp312; moving to a "
        "newer Python is a deliberate change of layer and runtime together.",
    )


def suppress_reviewed_findings(stack: Stack, *, artifacts_bucket: IConstruct) -> None:
    """Findings on constructs CDK itself adds to the stack (the BucketDeployment's singleton handler)."""
    for child in stack.node.children:
        if child.node.id.startswith(_CDK_SINGLETON_PREFIX):
            acknowledge(
                child,
                "AwsSolutions-IAM4",
                "CDK's BucketDeployment handler uses AWSLambdaBasicExecutionRole for its own logs only.",
                [managed_policy("AWSLambdaBasicExecutionRole")],
            )
            acknowledge(
                child,
                "AwsSolutions-IAM5",
                "CDK's BucketDeployment grants: read the CDK asset bucket's staged zip, write under the artifacts "
                "bucket's models/ prefix; object keys are content hashes, unknown until deploy time.",
                [
                    *(f"Action::s3:{a}" for a in ("GetBucket*", "GetObject*", "List*", "Abort*", "DeleteObject*")),
                    "Resource::arn:<AWS::Partition>:s3:::cdk-hnb659fds-assets-<AWS::AccountId>-<AWS::Region>/*",
                    f"Resource::<{logical_id(artifacts_bucket)}.Arn>/*",
                ],
            )
            acknowledge(
                child,
                "AwsSolutions-L1",
                "The BucketDeployment handler's runtime is chosen and upgraded by aws-cdk-lib, not by this app.",
            )
