"""The anchors of benches/million.sh: hnswlib and faiss (HNSW, inner product on unit vectors,
M = 16, efConstruction = 200, as Quarry's defaults) on the vectors and queries `quarry bench
recall --dump` wrote, built with every core and searched on one thread, recall@10 against exact
search (numpy) at each ef. Prints a table per library and the queries/s of the smallest ef that
reaches recall@10 >= 0.95.

    python3 anchors.py DUMP_DIR [EF,EF,...]
"""
import json
import os
import sys
import time

import numpy as np

K = 10


def load(folder):
    meta = json.load(open(os.path.join(folder, "meta.json")))
    dim = meta["dimension"]
    x = np.fromfile(os.path.join(folder, "vectors.f32"), dtype="<f4").reshape(meta["vectors"], dim)
    q = np.fromfile(os.path.join(folder, "queries.f32"), dtype="<f4").reshape(meta["queries"], dim)
    return x, q


def exact(x, q):
    out = []
    for i in range(0, len(q), 32):
        s = q[i:i + 32] @ x.T
        top = np.argpartition(-s, K, axis=1)[:, :K]
        out.extend(set(row) for row in top)
    return out


def recall(found, truth):
    return sum(len(set(f) & t) for f, t in zip(found, truth)) / (K * len(truth))


def measure(name, search, efs, truth, q):
    for i in range(len(q)):  # one untimed pass, as quarry bench recall makes
        search(q[i:i + 1], efs[0])
    rows = []
    for ef in efs:
        started = time.perf_counter()
        found = [search(q[i:i + 1], ef)[0] for i in range(len(q))]  # one query at a time
        qps = len(q) / (time.perf_counter() - started)
        rows.append((ef, recall(found, truth), qps))
    print(f"\n{name}\n| ef | recall@10 | queries/s (1 thread) |\n|---|---|---|")
    for ef, r, qps in rows:
        print(f"| {ef} | {r:.3f} | {qps:,.0f} |")
    best = next(((ef, qps) for ef, r, qps in rows if r >= 0.95), None)
    print(f"RESULT {name} " + (f"ef={best[0]} qps={best[1]:.0f}" if best else "recall 0.95 not reached"))


def main():
    folder = sys.argv[1]
    efs = [int(e) for e in (sys.argv[2] if len(sys.argv) > 2 else "40,100,200,400,800").split(",")]
    x, q = load(folder)
    print(f"{len(x)} vectors of {x.shape[1]} dimensions, {len(q)} queries")
    truth = exact(x, q)

    import hnswlib
    index = hnswlib.Index(space="ip", dim=x.shape[1])
    index.init_index(max_elements=len(x), M=16, ef_construction=200)
    index.set_num_threads(os.cpu_count())
    started = time.perf_counter()
    index.add_items(x)
    print(f"hnswlib {hnswlib.__version__ if hasattr(hnswlib, '__version__') else ''} built in {time.perf_counter() - started:.0f}s")
    index.set_num_threads(1)

    def hnsw_search(v, ef):
        index.set_ef(max(ef, K))
        return index.knn_query(v, k=K)[0]
    measure("hnswlib", hnsw_search, efs, truth, q)
    del index

    import faiss
    faiss.omp_set_num_threads(os.cpu_count())
    flat = faiss.IndexHNSWFlat(x.shape[1], 16, faiss.METRIC_INNER_PRODUCT)
    flat.hnsw.efConstruction = 200
    started = time.perf_counter()
    flat.add(x)
    print(f"faiss {faiss.__version__} built in {time.perf_counter() - started:.0f}s")
    faiss.omp_set_num_threads(1)

    def faiss_search(v, ef):
        flat.hnsw.efSearch = max(ef, K)
        return flat.search(v, K)[1]
    measure("faiss", faiss_search, efs, truth, q)


if __name__ == "__main__":
    main()
