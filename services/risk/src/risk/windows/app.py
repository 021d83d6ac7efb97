"""The faust app of the velocity worker, built from settings (nothing at import time)."""

from __future__ import annotations

import faust
from faust.types.tables import WindowWrapperT

from risk.windows.agents import Velocity, register_agents
from risk.windows.rules_file import RulesFile
from risk.windows.settings import WindowsSettings
from risk.windows.tables import Buckets, VelocityTable
from risk.windows.topics import Topics, declare_topics

TABLE = "velocity-buckets"


def create_app(settings: WindowsSettings) -> faust.App:
    app = faust.App(
        settings.app_id,
        broker=[f"kafka://{s.strip()}" for s in settings.broker.bootstrap_servers.split(",")],
        store=settings.store,
        datadir=str(settings.datadir),
        topic_partitions=1,  # every topic here names its own
        topic_replication_factor=settings.replication,
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=settings.heartbeat_interval_s,
        broker_commit_interval=settings.commit_interval_s,
        consumer_auto_offset_reset="earliest",
        # exactly_once needs Kafka transactions: the embedded broker has none
        processing_guarantee="at_least_once",
        producer_acks=-1,
        # no standby copies: with the memory store a standby is read again from the start
        # when it becomes active, so it would only double the changelog reads
        table_standby_replicas=0,
        Table=VelocityTable,
        web_enabled=False,  # and never on 0.0.0.0 should anything enable it
        web_bind="127.0.0.1",
        web_host="127.0.0.1",
    )
    topics = declare_topics(app, settings)
    buckets = Buckets(velocity_table(app, topics, settings), settings.bucket_s)
    rules = RulesFile(settings.rules_file, settings.rules_check_s)
    register_agents(app, topics, Velocity(topics, buckets, rules, settings.tell == "all"))
    return app


def velocity_table(app: faust.App, topics: Topics, settings: WindowsSettings) -> WindowWrapperT:
    """Tumbling buckets by placement time. faust drops a bucket from memory once its end
    is `retain_s` older than the wall clock (not the newest event), writes no tombstone
    for it, and does not expire what recovery brings back."""
    table = app.Table(
        TABLE,
        default=dict,
        partitions=topics.keyed.partitions,
        seal=settings.seal_changelog,
    )
    return table.tumbling(settings.bucket_s, expires=settings.retain_s)
