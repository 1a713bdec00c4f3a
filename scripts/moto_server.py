"""moto_server with the ElastiCache replication-group lifecycle that moto 5.2.5 leaves out.

The AWS tests talk to the pinned moto over HTTP. For ElastiCache that moto answers creates and
reads, but a deleted replication group stays `deleting` forever, its member clusters are names
that DescribeCacheClusters does not know, ModifyReplicationGroup ignores the engine version,
security groups and auth token, and IncreaseReplicaCount, DecreaseReplicaCount,
ModifyCacheSubnetGroup and DeleteCacheSubnetGroup do not exist. This launcher adds exactly those
behaviours to moto's own ElastiCache backend (so every answer is still serialised by moto from
botocore's service model), following the ElastiCache API reference:

- a replication group's member clusters are real cache clusters (engine, version, node type,
  subnet group, security groups), created and removed with the group's nodes;
- CreateReplicationGroup needs an existing subnet group, and an auth token needs encryption in
  transit (`InvalidParameterCombination`);
- DeleteReplicationGroup answers `deleting`; the next request that reads groups (a describe, or
  DeleteCacheSubnetGroup) still sees it `deleting`, the one after
  does not find the group (ReplicationGroupNotFoundFault), and its clusters and tags are gone;
- ModifyReplicationGroup also changes the engine version and security groups of every member and
  sets or rotates the auth token (`SET` / `ROTATE`); automatic failover needs a replica;
- IncreaseReplicaCount / DecreaseReplicaCount add or remove replica nodes (at most 5; failover
  needs at least one);
- ModifyCacheSubnetGroup replaces the subnets; DeleteCacheSubnetGroup refuses a group a
  replication group still uses (`CacheSubnetGroupInUse`).

Usage: python scripts/moto_server.py -H 127.0.0.1 -p PORT   (the arguments of moto_server)
"""

import sys

from moto.core.responses import ActionResult, EmptyResult
from moto.elasticache import models, responses
from moto.elasticache.exceptions import (
    CacheSubnetGroupNotFound,
    ElastiCacheException,
    InvalidParameterCombinationException,
    InvalidParameterValueException,
    ReplicationGroupNotFound,
)
from moto.server import main

MAX_REPLICAS = 5


class CacheSubnetGroupInUse(ElastiCacheException):
    code = "CacheSubnetGroupInUse"

    def __init__(self, name: str):
        super().__init__(f"Cache subnet group {name} is currently in use by a replication group.")


class InvalidReplicationGroupState(ElastiCacheException):
    code = "InvalidReplicationGroupState"

    def __init__(self, rg_id: str, status: str):
        super().__init__(f"Replication group {rg_id} is not in available state ({status}).")


def _security_groups(cluster):
    return [{"security_group_id": g, "status": "active"} for g in cluster.security_group_ids]


# DescribeCacheClusters serialises `SecurityGroups`; moto keeps only the ids.
models.CacheCluster.security_groups = property(_security_groups)


def _member(backend, rg, cluster_id):
    cluster = models.CacheCluster(
        account_id=backend.account_id,
        region_name=backend.region_name,
        cache_cluster_id=cluster_id,
        cache_node_type=rg.cache_node_type,
        replication_group_id=rg.replication_group_id,
        az_mode=None,
        preferred_availability_zone=None,
        num_cache_nodes=1,
        engine=rg.engine,
        engine_version=rg.engine_version,
        cache_parameter_group_name=None,
        cache_subnet_group_name=rg.cache_subnet_group_name,
        transit_encryption_enabled=rg.transit_encryption_enabled,
        network_type=None,
        ip_discovery=None,
        snapshot_name=None,
        preferred_maintenance_window=None,
        port=rg.port,
        notification_topic_arn=None,
        auto_minor_version_upgrade=None,
        snapshot_retention_limit=None,
        snapshot_window=None,
        auth_token=None,
        outpost_mode=None,
        preferred_outpost_arn=None,
        preferred_availability_zones=None,
        cache_security_group_names=None,
        security_group_ids=list(rg.security_group_ids or []),
        tags=None,
        snapshot_arns=None,
        preferred_outpost_arns=None,
        log_delivery_configurations=[],
        cache_node_ids_to_remove=None,
        cache_node_ids_to_reboot=None,
    )
    # moto sets these for Redis only; Valkey clusters have them too.
    cluster.num_cache_nodes = 1
    cluster.replication_group_id = rg.replication_group_id
    backend.cache_clusters[cluster_id] = cluster


def _sync_members(backend, rg):
    """Member clusters for every node of the group, and none for nodes it no longer has."""
    wanted = set(rg.member_clusters)
    for cid in [c for c, cl in backend.cache_clusters.items() if getattr(cl, "replication_group_id", None) == rg.replication_group_id]:
        if cid not in wanted:
            del backend.cache_clusters[cid]
    for cid in rg.member_clusters:
        if cid not in backend.cache_clusters:
            _member(backend, rg, cid)


def _available(rg):
    if rg.status != "available":
        raise InvalidReplicationGroupState(rg.replication_group_id, rg.status)


original_create = models.ElastiCacheBackend.create_replication_group


def create_replication_group(self, **kwargs):
    name = kwargs.get("cache_subnet_group_name")
    if name and name not in self.cache_subnet_groups:
        raise CacheSubnetGroupNotFound(name)
    if kwargs.get("auth_token") and not kwargs.get("transit_encryption_enabled"):
        raise InvalidParameterCombinationException("AuthToken requires TransitEncryptionEnabled.")
    if kwargs.get("automatic_failover_enabled") and not kwargs.get("replicas_per_node_group"):
        raise InvalidParameterCombinationException("Automatic failover needs at least one replica.")
    rg = original_create(self, **kwargs)
    if rg.engine_version is None:
        rg.engine_version = "7.1"
    rg.deleting_reads = None
    _sync_members(self, rg)
    return rg


original_describe = models.ElastiCacheBackend.describe_replication_groups


def _finish_deletes(self):
    for rg_id, rg in list(self.replication_groups.items()):
        if rg.status != "deleting" or rg.deleting_reads is None:
            continue
        if rg.deleting_reads > 0:
            rg.deleting_reads -= 1
            continue
        del self.replication_groups[rg_id]
        rg.member_clusters = []
        _sync_members(self, rg)
        self.tagging_service.delete_all_tags_for_resource(rg.arn)


def describe_replication_groups(self, replication_group_id=None):
    _finish_deletes(self)
    return original_describe(self, replication_group_id)


def delete_replication_group(self, replication_group_id, retain_primary_cluster=None):
    rg = self.replication_groups.get(replication_group_id)
    if rg is None:
        raise ReplicationGroupNotFound(replication_group_id)
    if rg.status == "deleting":
        raise InvalidReplicationGroupState(replication_group_id, rg.status)
    rg.status = "deleting"
    # Seen once more as `deleting`, then gone.
    rg.deleting_reads = 1
    return rg


def _set_replicas(self, rg, count):
    group = rg.node_groups[0]
    primary = [m for m in group["node_group_members"] if m["current_role"] == "primary"]
    replicas = [m for m in group["node_group_members"] if m["current_role"] != "primary"]
    while len(replicas) > count:
        replicas.pop()
    used = {m["cache_cluster_id"] for m in primary + replicas}
    # Node endpoints are `<cluster id>.<the group's domain>`, as moto names the primary's.
    domain = primary[0]["read_endpoint"]["address"].split(".", 1)[1]
    n = 2
    while len(replicas) < count:
        cid = f"{rg.replication_group_id}-{n:0>3}"
        n += 1
        if cid in used:
            continue
        replicas.append(
            {
                "cache_cluster_id": cid,
                "cache_node_id": group["node_group_id"],
                "read_endpoint": {"address": f"{cid}.{domain}", "port": rg.port},
                "preferred_availability_zone": "us-east-1b",
                "current_role": "replica",
            }
        )
    group["node_group_members"] = primary + replicas
    rg.member_clusters = [m["cache_cluster_id"] for m in group["node_group_members"]]
    _sync_members(self, rg)


def change_replica_count(self, replication_group_id, new_count, increase):
    rg = self.replication_groups.get(replication_group_id)
    if rg is None:
        raise ReplicationGroupNotFound(replication_group_id)
    _available(rg)
    current = len(rg.member_clusters) - 1
    if new_count is None or new_count < 0 or new_count > MAX_REPLICAS:
        raise InvalidParameterValueException(f"NewReplicaCount must be between 0 and {MAX_REPLICAS}.")
    if increase and new_count <= current or not increase and new_count >= current:
        word = "more" if increase else "fewer"
        raise InvalidParameterValueException(f"NewReplicaCount must be {word} than the current {current} replicas.")
    if not increase and new_count == 0 and rg.automatic_failover == "enabled":
        raise InvalidParameterCombinationException("Automatic failover needs at least one replica.")
    _set_replicas(self, rg, new_count)
    return rg


def modify_replication_group_more(self, rg_id, engine_version, security_group_ids, auth_token, strategy):
    rg = self.replication_groups.get(rg_id)
    if rg is None:
        raise ReplicationGroupNotFound(rg_id)
    if auth_token is not None:
        if not rg.transit_encryption_enabled:
            raise InvalidParameterCombinationException("AuthToken requires TransitEncryptionEnabled.")
        if strategy == "ROTATE" and not rg.auth_token_enabled:
            raise InvalidParameterCombinationException("ROTATE needs a group with an auth token; use SET.")
        rg.auth_token_enabled = True
    if engine_version is not None:
        rg.engine_version = engine_version
    if security_group_ids is not None:
        rg.security_group_ids = list(security_group_ids)
    for cid in rg.member_clusters:
        cluster = self.cache_clusters.get(cid)
        if cluster is not None:
            cluster.engine_version = rg.engine_version
            cluster.security_group_ids = list(rg.security_group_ids or [])
            cluster.cache_node_type = rg.cache_node_type


def modify_cache_subnet_group(self, name, subnet_ids):
    group = self.cache_subnet_groups.get(name)
    if group is None:
        raise CacheSubnetGroupNotFound(name)
    if subnet_ids:
        fresh = models.CacheSubnetGroup(
            account_id=self.account_id,
            region_name=self.region_name,
            cache_subnet_group_name=name,
            cache_subnet_group_description=group.cache_subnet_group_description,
            subnet_ids=subnet_ids,
            tags=group.tags,
        )
        self.cache_subnet_groups[name] = fresh
    return self.cache_subnet_groups[name]


def delete_cache_subnet_group(self, name):
    _finish_deletes(self)
    group = self.cache_subnet_groups.get(name)
    if group is None:
        raise CacheSubnetGroupNotFound(name)
    if any(rg.cache_subnet_group_name == name for rg in self.replication_groups.values()):
        raise CacheSubnetGroupInUse(name)
    del self.cache_subnet_groups[name]
    self.tagging_service.delete_all_tags_for_resource(group.arn)


models.ElastiCacheBackend.create_replication_group = create_replication_group
models.ElastiCacheBackend.describe_replication_groups = describe_replication_groups
models.ElastiCacheBackend.delete_replication_group = delete_replication_group
models.ElastiCacheBackend.change_replica_count = change_replica_count
models.ElastiCacheBackend.modify_replication_group_more = modify_replication_group_more
models.ElastiCacheBackend.modify_cache_subnet_group = modify_cache_subnet_group
models.ElastiCacheBackend.delete_cache_subnet_group = delete_cache_subnet_group

original_modify_response = responses.ElastiCacheResponse.modify_replication_group


def modify_replication_group_response(self):
    rg_id = self._get_param("ReplicationGroupId")
    backend = self.elasticache_backend
    rg = backend.replication_groups.get(rg_id)
    if rg is None:
        raise ReplicationGroupNotFound(rg_id)
    _available(rg)
    failover = self._get_bool_param("AutomaticFailoverEnabled")
    if failover and len(rg.member_clusters) < 2:
        raise InvalidParameterCombinationException("Automatic failover needs at least one replica.")
    result = original_modify_response(self)
    backend.modify_replication_group_more(
        rg_id,
        self._get_param("EngineVersion"),
        self._get_param("SecurityGroupIds"),
        self._get_param("AuthToken"),
        self._get_param("AuthTokenUpdateStrategy"),
    )
    return result


def increase_replica_count(self):
    rg = self.elasticache_backend.change_replica_count(
        self._get_param("ReplicationGroupId"), self._get_int_param("NewReplicaCount"), True
    )
    return ActionResult({"ReplicationGroup": rg})


def decrease_replica_count(self):
    rg = self.elasticache_backend.change_replica_count(
        self._get_param("ReplicationGroupId"), self._get_int_param("NewReplicaCount"), False
    )
    return ActionResult({"ReplicationGroup": rg})


def modify_cache_subnet_group_response(self):
    group = self.elasticache_backend.modify_cache_subnet_group(
        self._get_param("CacheSubnetGroupName"), self._get_param("SubnetIds", [])
    )
    return ActionResult({"CacheSubnetGroup": group})


def delete_cache_subnet_group_response(self):
    self.elasticache_backend.delete_cache_subnet_group(self._get_param("CacheSubnetGroupName"))
    return EmptyResult()


responses.ElastiCacheResponse.modify_replication_group = modify_replication_group_response
responses.ElastiCacheResponse.increase_replica_count = increase_replica_count
responses.ElastiCacheResponse.decrease_replica_count = decrease_replica_count
responses.ElastiCacheResponse.modify_cache_subnet_group = modify_cache_subnet_group_response
responses.ElastiCacheResponse.delete_cache_subnet_group = delete_cache_subnet_group_response

if __name__ == "__main__":
    main(sys.argv[1:])
