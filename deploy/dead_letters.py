"""The guardian's dead-letter queues, and the S3 handler's failed asynchronous invocations sent to its own."""

from __future__ import annotations

from typing import Any

from deploy.changes import Plan
from deploy.errors import aws_call
from deploy.sources import Where, queue_attributes, s3_handler_invoke_config


def plan_queue(plan: Plan, sqs: Any, name: str, home: Where) -> str:
    """Plan a dead-letter queue or its settings; the queue's ARN, known before it exists."""
    wanted = queue_attributes()
    with aws_call(f"read the queue {name}"):
        try:
            url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        except sqs.exceptions.QueueDoesNotExist:
            url = None
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"] if url else None
    if attributes is None:

        def create() -> None:
            with aws_call(f"create the queue {name}"):
                sqs.create_queue(QueueName=name, Attributes=wanted)

        plan.add(f"sqs: create the queue {name} (encrypted with SSE-SQS, messages kept 14 days)", create)
        return f"arn:aws:sqs:{home.region}:{home.account}:{name}"
    if attributes.get("KmsMasterKeyId"):
        wanted.pop("SqsManagedSseEnabled")  # already encrypted with a KMS key of the team's choice: keep it
    different = {key: value for key, value in wanted.items() if attributes.get(key) != value}
    if different:
        shown = ", ".join(f"{key} {attributes.get(key)} → {value}" for key, value in different.items())

        def update() -> None:
            with aws_call(f"update the queue {name}"):
                sqs.set_queue_attributes(QueueUrl=url, Attributes=different)

        plan.add(f"sqs: queue {name}: {shown}", update)
    return str(attributes["QueueArn"])


def plan_invoke_config(plan: Plan, lambda_client: Any, function_name: str, queue_arn: str) -> None:
    wanted = s3_handler_invoke_config(queue_arn)
    with aws_call(f"read the asynchronous invocation settings of {function_name}"):
        try:
            found = lambda_client.get_function_event_invoke_config(FunctionName=function_name)
        except lambda_client.exceptions.ResourceNotFoundException:
            found = {}
    destination = found.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
    if destination == queue_arn:
        return

    def put() -> None:
        with aws_call(f"set the on-failure destination of {function_name}"):
            lambda_client.put_function_event_invoke_config(FunctionName=function_name, **wanted)

    plan.add(f"lambda: {function_name}: failed asynchronous invocations to {queue_arn} (it is {destination})", put)
