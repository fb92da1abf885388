"""DataCaptureStream: where the inference functions' sampled requests go.

An Amazon Data Firehose stream (direct put, encrypted) delivers them to a private capture bucket as gzip JSON
lines, partitioned by what each record says: ``capture/model=<name>/version=<version>/hour=<yyyy-MM-dd-HH>/``
(dynamic partitioning with a JQ query on the record's ``model`` and ``version``), the layout the drift monitor
reads. Captured data expires after the spec's retention.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesisfirehose as firehose
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

# The delivery as data, shared with the local environment's stand-in for this stream (one definition).
from spec.capture import (
    BUFFER_INTERVAL_S,
    BUFFER_SIZE_MB,
    CAPTURE_PREFIX,
    COMPRESSION,
    ERROR_OUTPUT_PREFIX,
    PARTITION_KEYS_QUERY,
    PARTITIONED_PREFIX,
)
from spec.permissions import model_capture_prefix, read_model_capture

from .artifacts import private_bucket
from .nag import acknowledge, logical_id


class DataCaptureStream(Construct):
    def __init__(self, scope: Construct, id_: str, *, retention_days: int, access_logs: s3.IBucket) -> None:
        super().__init__(scope, id_)
        self.bucket = private_bucket(
            self,
            "Bucket",
            access_logs=access_logs,
            logs_prefix="capture/",
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(retention_days))],
        )
        log_group = logs.LogGroup(
            self, "DeliveryErrors", retention=logs.RetentionDays.ONE_MONTH, removal_policy=RemovalPolicy.DESTROY
        )
        log_stream = logs.LogStream(self, "S3Delivery", log_group=log_group, removal_policy=RemovalPolicy.DESTROY)
        role = iam.Role(
            self,
            "DeliveryRole",
            assumed_by=iam.ServicePrincipal("firehose.amazonaws.com"),
            description="Firehose delivery of captured inference data into the capture bucket",
        )
        self.bucket.grant_put(role, f"{CAPTURE_PREFIX}*")
        self.bucket.grant_put(role, "capture-errors/*")
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"],
                resources=[self.bucket.bucket_arn],
            )
        )
        log_group.grant_write(role)
        self.stream = firehose.CfnDeliveryStream(
            self,
            "Stream",
            delivery_stream_type="DirectPut",
            delivery_stream_encryption_configuration_input=firehose.CfnDeliveryStream.DeliveryStreamEncryptionConfigurationInputProperty(
                key_type="AWS_OWNED_CMK"
            ),
            extended_s3_destination_configuration=firehose.CfnDeliveryStream.ExtendedS3DestinationConfigurationProperty(
                bucket_arn=self.bucket.bucket_arn,
                role_arn=role.role_arn,
                prefix=PARTITIONED_PREFIX,
                error_output_prefix=ERROR_OUTPUT_PREFIX,
                compression_format=COMPRESSION,
                # Dynamic partitioning needs buffers of at least 64 MB; the interval bounds the delay instead (the
                # spec's alarm check counts on it: spec.alarms.CAPTURE_BUFFER_INTERVAL_S).
                buffering_hints=firehose.CfnDeliveryStream.BufferingHintsProperty(
                    interval_in_seconds=BUFFER_INTERVAL_S, size_in_m_bs=BUFFER_SIZE_MB
                ),
                dynamic_partitioning_configuration=firehose.CfnDeliveryStream.DynamicPartitioningConfigurationProperty(
                    enabled=True,
                    retry_options=firehose.CfnDeliveryStream.RetryOptionsProperty(duration_in_seconds=300),
                ),
                processing_configuration=firehose.CfnDeliveryStream.ProcessingConfigurationProperty(
                    enabled=True,
                    processors=[
                        firehose.CfnDeliveryStream.ProcessorProperty(
                            type="MetadataExtraction",
                            parameters=[
                                firehose.CfnDeliveryStream.ProcessorParameterProperty(
                                    parameter_name="MetadataExtractionQuery",
                                    parameter_value=PARTITION_KEYS_QUERY,
                                ),
                                firehose.CfnDeliveryStream.ProcessorParameterProperty(
                                    parameter_name="JsonParsingEngine", parameter_value="JQ-1.6"
                                ),
                            ],
                        )
                    ],
                ),
                cloud_watch_logging_options=firehose.CfnDeliveryStream.CloudWatchLoggingOptionsProperty(
                    enabled=True, log_group_name=log_group.log_group_name, log_stream_name=log_stream.log_stream_name
                ),
            ),
        )
        # Firehose checks its role's permissions on creation: the policy must exist first.
        policy = role.node.try_find_child("DefaultPolicy")
        if policy is not None:
            self.stream.node.add_dependency(policy)
        self.stream_arn = self.stream.attr_arn
        self.stream_name = self.stream.ref
        acknowledge(
            role,
            "AwsSolutions-IAM5",
            "Firehose writes objects whose keys it derives from each record (model, version, hour): write access "
            "is to the capture/ and capture-errors/ prefixes of this bucket only.",
            [
                f"Resource::<{logical_id(self.bucket)}.Arn>/capture/*",
                f"Resource::<{logical_id(self.bucket)}.Arn>/capture-errors/*",
                *(f"Action::s3:{a}" for a in ("Abort*", "DeleteObject*")),
            ],
        )

    def grant_put(self, grantee: iam.IGrantable) -> None:
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(actions=["firehose:PutRecordBatch"], resources=[self.stream_arn])
        )

    def grant_read(self, grantee: iam.IGrantable) -> None:
        """List and read captured data (the drift monitor)."""
        self.bucket.grant_read(grantee, f"{CAPTURE_PREFIX}*")

    def grant_read_model(self, grantee: iam.IGrantable, model_name: str) -> None:
        """List and read one model's captured requests, nothing else of the bucket (the pre-traffic hook's replay);
        the statements are spec.permissions' (one definition with the tests that evaluate them)."""
        statements = read_model_capture(self.bucket.bucket_name, model_name, partition=Stack.of(self).partition)
        for statement in statements:
            conditions = {"StringLike": {"s3:prefix": list(statement.prefixes)}} if statement.prefixes else None
            grantee.grant_principal.add_to_principal_policy(
                iam.PolicyStatement(
                    actions=list(statement.actions), resources=list(statement.resources), conditions=conditions
                )
            )
        # The finding is on the role the statement lands in (a function's own role).
        role = getattr(grantee, "role", None) or grantee
        if isinstance(role, Construct):
            acknowledge(
                role,
                "AwsSolutions-IAM5",
                "The gate replays the captured requests of its own model: Firehose derives their keys from each "
                "record (version, hour), so they are read under that model's capture prefix only.",
                [
                    f"Resource::arn:<AWS::Partition>:s3:::<{logical_id(self.bucket)}>/"
                    f"{model_capture_prefix(model_name)}*"
                ],
            )
