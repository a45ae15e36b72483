"""chatctl cluster: storage, server replicas, groups and clients of one cluster, supervised as one."""
