"""Starts gcloud-tasks-emulator bound to 127.0.0.1 only (its own CLI binds every interface).

Run by the emulator's own venv python (see install-tasks.sh), not by the project's.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

import grpc
from gcloud_tasks_emulator import server
from gcloud_tasks_emulator.cloudtasks_pb2_grpc import add_CloudTasksServicer_to_server

HOST = "127.0.0.1"


class LoopbackAPIThread(server.APIThread):
    """The emulator's gRPC API thread, listening on 127.0.0.1 instead of [::]."""

    def run(self) -> None:
        self._httpd = grpc.server(server.futures.ThreadPoolExecutor(max_workers=4))
        add_CloudTasksServicer_to_server(server.Greeter(self._state), self._httpd)
        address = f"{HOST}:{self._port}"
        if self._httpd.add_insecure_port(address) == 0:
            raise SystemExit(f"cannot bind {address}")
        self._httpd.start()
        server.logger.info("[API] Starting API server at %s", address)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--target-port", type=int, default=8080, help="for App Engine tasks")
    parser.add_argument("--max-retries", type=int, default=-1, help="-1: retry for ever")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")

    server.APIThread = LoopbackAPIThread
    emulator = server.create_server(HOST, args.port, HOST, args.target_port, [], args.max_retries)

    emulator.run()  # returns on Ctrl-C; SIGTERM's default action ends the process at once
    # Its per-queue threads may sit in a dispatch without a timeout: do not wait for them.
    os._exit(0)


if __name__ == "__main__":
    main()
