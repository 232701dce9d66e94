"""Two teams on one corral server, each connecting with its own client
certificate (the README's "Teams on shared infrastructure" walkthrough).

    python3 examples/teams.py [HOST:TLS_PORT] [CERT_DIR]

Needs kazoo (pip install kazoo). Prints what each team sees.
"""
import sys

from kazoo.client import KazooClient
from kazoo.exceptions import QuotaExceededError

hosts = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:2281"
certs = sys.argv[2] if len(sys.argv) > 2 else "certs"


def team(name):
    zk = KazooClient(
        hosts=hosts,
        use_ssl=True,
        verify_certs=True,
        ca=f"{certs}/ca.pem",
        certfile=f"{certs}/client-{name}.pem",
        keyfile=f"{certs}/client-{name}.key",
    )
    zk.start(timeout=15)
    return zk


a = team("team-a")  # bound to team-a by its SAN URI spiffe://corp/team-a/api
a.create("/jobs")  # the server stores /tenants/team-a/jobs
for i in range(3):
    try:
        a.create(f"/jobs/j{i}")
        print(f"team-a created /jobs/j{i}")
    except QuotaExceededError:
        print(f"team-a /jobs/j{i}: QuotaExceeded")  # max_znodes=3 counts /jobs too
print("team-a sees", a.get_children("/"))

b = team("team-b")  # bound to team-b by its subject DN CN=svc,OU=team-b,O=corp
b.create("/cache", b"warm")
print("team-b sees", b.get_children("/"))
print("team-b /jobs exists:", b.exists("/jobs") is not None)
a.stop()
b.stop()
