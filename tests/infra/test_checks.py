"""cdk-nag's AwsSolutions pack and cfn-lint pass on every synthesized stack; both can fail."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_s3 as s3
from cdk_nag import AwsSolutionsChecks

from tests.infra.conftest import Synthesized

# Reviewed and acknowledged, each on the construct that causes it (infra/nag.py and the constructs say why).
ACKNOWLEDGED_RULES = {"APIG2", "APIG3", "APIG4", "COG4", "IAM4", "IAM5", "L1", "SNS2"}


def cfn_lint(*templates: Path) -> list[dict[str, Any]]:
    executable = Path(sys.executable).parent / "cfn-lint"
    command = [str(executable), "--format", "json", "--", *map(str, templates)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.stdout.strip(), result.stderr
    return json.loads(result.stdout)


def is_cdk_function_role_depends_on(finding: dict[str, Any], templates: dict[str, dict[str, Any]]) -> bool:
    """W3005 on the DependsOn CDK always adds from a Lambda function to its role, which the function's
    ``Role: GetAtt`` already implies: redundant, harmless, and not ours to remove."""
    path = finding["Location"]["Path"]
    if finding["Rule"]["Id"] != "W3005" or path[0] != "Resources" or path[2] != "DependsOn":
        return False
    resource = templates[Path(finding["Filename"]).name]["Resources"][path[1]]
    depends_on = resource["DependsOn"][path[3]]
    return resource["Type"] == "AWS::Lambda::Function" and resource["Properties"]["Role"] == {
        "Fn::GetAtt": [depends_on, "Arn"]
    }


def test_cdk_nag_has_no_unacknowledged_findings(main: Synthesized) -> None:
    # Synthesis itself fails on a finding (see the next test), so reaching here means zero; the report agrees.
    report = json.loads((main.outdir / "validation-report.json").read_text())
    assert report["pluginReports"] == []


def test_every_acknowledged_finding_carries_its_reason(main: Synthesized) -> None:
    acknowledged: dict[str, str] = {}
    for metadata in main.outdir.glob("*.metadata.json"):
        for entries in json.loads(metadata.read_text()).values():
            for entry in entries:
                if entry["type"] == "aws:cdk:acknowledged-rules":
                    acknowledged.update(entry["data"])
    rules = {re.match(r"Annotation::AwsSolutions-([A-Z]+\d+)", rule).group(1) for rule in acknowledged}  # type: ignore[union-attr]
    assert rules == ACKNOWLEDGED_RULES
    short = {rule: reason for rule, reason in acknowledged.items() if len(reason) < 40}
    assert not short, f"acknowledgments need a real reason: {short}"


def test_cdk_nag_fails_synthesis_on_a_finding(tmp_path: Path) -> None:
    app = cdk.App(outdir=str(tmp_path))
    stack = cdk.Stack(app, "Careless")
    s3.Bucket(stack, "Bucket")  # no TLS enforcement, no access logs
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    with pytest.raises(RuntimeError, match="ValidationFailed(.|\n)*AwsSolutions-S10"):
        app.synth()


def test_cfn_lint_passes_on_every_template(main: Synthesized) -> None:
    templates = sorted(main.outdir.glob("*.template.json"))
    assert [t.name for t in templates] == [
        "modelrail-api-account.template.json",
        "modelrail-production.template.json",
        "modelrail-staging.template.json",
    ]
    parsed = {t.name: json.loads(t.read_text()) for t in templates}
    findings = [f for f in cfn_lint(*templates) if not is_cdk_function_role_depends_on(f, parsed)]
    assert findings == [], json.dumps(findings, indent=1)


def test_cfn_lint_catches_a_broken_template(tmp_path: Path) -> None:
    broken = tmp_path / "broken.template.json"
    broken.write_text(
        json.dumps({"Resources": {"Fn": {"Type": "AWS::Lambda::Function", "Properties": {"Runtime": "python2.7"}}}})
    )
    findings = cfn_lint(broken)
    assert {f["Rule"]["Id"] for f in findings} >= {"E3003"}  # Handler, Role, Code missing
