"""What the threaded workloads (psycopg_workload.py, psycopg2_workload.py) share: run worker(i, out) for each i on
a thread of its own, all at once, and print every worker's transcript as one JSON object (null for a worker that
died in an exception, which the test reports with the script's stderr)."""
import json
import threading


def run_threads(worker, workers):
    out = {}
    threads = [threading.Thread(target=worker, args=(i, out)) for i in range(workers)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    print(json.dumps({str(k): out.get(k) for k in range(workers)}, sort_keys=True))
