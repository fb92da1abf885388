"""Rollouts rehearsed in one process never read each other's metrics or captured records.

moto keeps one set of backends per process, whatever server serves it: two local clouds in one process (two test
modules, two rehearsals run by one program) share S3 and CloudWatch. A rollout's windows (the drift monitor's, the
canary analysis's read-back of what the monitor published) are dates on its own timeline, so timelines must not
overlap across clouds either.
"""

from __future__ import annotations

from datetime import timedelta

from modelrail.local.environment import LocalCloud


def test_two_clouds_of_one_process_share_moto_but_not_a_timeline() -> None:
    with LocalCloud() as first, LocalCloud() as second:
        earlier = first.new_timeline()
        first.aws.client("s3").create_bucket(Bucket="modelrail-timeline-probe")
        published = {
            "Namespace": "modelrail",
            "MetricData": [
                {
                    "MetricName": "PredictionDivergence",
                    "Dimensions": [{"Name": "ModelName", "Value": "iris"}, {"Name": "ModelVersion", "Value": "2"}],
                    "Timestamp": earlier + timedelta(minutes=1),
                    "Value": 3.0,
                }
            ],
        }
        first.aws.client("cloudwatch").put_metric_data(**published)
        later = second.new_timeline()

        # The premise: what one cloud writes, the other reads.
        buckets = second.aws.client("s3").list_buckets()["Buckets"]
        assert "modelrail-timeline-probe" in {b["Name"] for b in buckets}
        # So the second cloud's rollout starts where the first one's data cannot be: its first minute holds nothing.
        assert later - earlier >= timedelta(days=7)
        answer = second.aws.client("cloudwatch").get_metric_data(
            MetricDataQueries=[
                {
                    "Id": "m",
                    "MetricStat": {
                        "Metric": {
                            "Namespace": "modelrail",
                            "MetricName": "PredictionDivergence",
                            "Dimensions": published["MetricData"][0]["Dimensions"],
                        },
                        "Period": 60,
                        "Stat": "Maximum",
                    },
                }
            ],
            StartTime=later,
            EndTime=later + timedelta(minutes=60),
        )
        assert answer["MetricDataResults"][0]["Values"] == []
