"""The rollout rehearsal: CodeDeploy's traffic shifting and CloudWatch's alarms, played locally with time
compressed, on real Lambda workers under concurrent traffic, from the spec that ``cdk synth`` deploys."""
