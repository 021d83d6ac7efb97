"""The faust app of the velocity worker, built from settings (nothing at import time)."""

from __future__ import annotations

import faust
from faust.types.tables import WindowWrapperT
from shopfloor_runtime.fausttables import worker_options

from risk.windows.agents import Velocity, register_agents
from risk.windows.rules_file import RulesFile
from risk.windows.settings import WindowsSettings
from risk.windows.tables import Buckets, VelocityTable
from risk.windows.topics import Topics, declare_topics

TABLE = "velocity-buckets"


def create_app(settings: WindowsSettings) -> faust.App:
    app = faust.App(
        settings.app_id,
        **worker_options(settings.broker, settings.replication, settings.commit_interval_s),
        store=settings.store,
        datadir=str(settings.datadir),
        topic_partitions=1,  # every topic here names its own
        Table=VelocityTable,
        web_enabled=False,
    )
    topics = declare_topics(app, settings)
    buckets = Buckets(velocity_table(app, topics, settings), settings.bucket_s)
    rules = RulesFile(settings.rules_file, settings.rules_check_s)
    velocity = Velocity(topics, buckets, rules, settings.tell == "all")
    register_agents(app, topics, velocity, settings.batch_size, settings.batch_within_s)
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
