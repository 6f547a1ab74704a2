"""A real two-node Ray cluster on 127.0.0.1 for the distributed tests, run as its own process.

``python tests/ray_cluster.py INFO.json TEMP_DIR`` (a short path: Ray's socket paths must fit in
107 bytes) starts a head node and a second node joined to it
(each with its own raylet, object store and worker processes; one logical CPU each, custom
resources ``codeit_head`` and ``codeit_second``), writes ``INFO.json`` (the cluster's address and
the second node's raylet pid, which a test kills to lose that node) and keeps the cluster up until
its standard input closes or it gets SIGTERM; then it stops every process it started.

Why not ``ray start`` twice?  Ray turns 127.0.0.1 into the machine's outward address (so its servers
listen on every interface), unless ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` keeps it in loopback mode
-- and in that mode ``ray start --address`` refuses to add a second node.  Ray's own mini-cluster
(:class:`ray.cluster_utils.Cluster`, the tool Ray documents for testing multi-node programs on one
machine) starts the same processes as ``ray start`` without that check.  The cluster runs in its
own process so that the test process never imports ray (loopback mode must be set before that).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # before ray is imported: loopback only

from ray.cluster_utils import Cluster

STORE = 80 << 20  # object store per node: the tests move little data


def main(info_path: str, temp_root: str) -> None:
    temp_dir = os.path.join(temp_root, "ray")
    os.makedirs(temp_dir, exist_ok=True)
    os.environ["RAY_TMPDIR"] = temp_root  # Ray's address file goes there too, not to /tmp/ray
    common = {"include_dashboard": False, "object_store_memory": STORE, "temp_dir": temp_dir}
    cluster = Cluster(initialize_head=True, shutdown_at_exit=True,
                      head_node_args={"num_cpus": 1, "resources": {"codeit_head": 1}, **common})
    second = cluster.add_node(num_cpus=1, resources={"codeit_second": 1}, **common)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        raylet = second.all_processes["raylet"][0].process.pid
        info = {"address": cluster.address, "second_raylet_pid": raylet, "helper_pid": os.getpid()}
        with open(info_path + ".tmp", "w") as f:
            json.dump(info, f)
        os.replace(info_path + ".tmp", info_path)
        threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
        stop.wait()
    finally:
        cluster.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
