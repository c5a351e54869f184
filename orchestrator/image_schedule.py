"""Images at catalogue scale: which node runs which image's episodes, what is built ahead,
what is evicted, and a simulator that measures it.

With one environment image per (repository, version), a large schedule touches thousands
of images, and a node that starts an episode whose image it lacks first builds (or pulls)
it. Three ways to hand episodes to nodes:

- `fifo`: the queue in arrival order, the next episode to whichever node frees a slot;
- `grouped`: the queue sorted by image (what `RolloutRunner.plan` does), same hand-out:
  consecutive episodes of one image still spread over every node with a free slot;
- `affinity`: each image has a home node (`ImageAffinity`, used by the Ray executor);
  its episodes go there while the home has a free slot, else to the least loaded node
  (which then holds the image too). With `prebuild_ahead=N` each node builds the next N
  images its queue will need while its slots run (one build at a time per node), so an
  episode rarely waits for a build.

Each node keeps images under a disk budget (`DiskCache`): least recently used first out,
never an image in use or one its queue needs within the prebuild window.

`simulate(...)` replays a schedule through a policy, event by event, and counts cache
hits (episode starts whose image was ready), builds, build seconds, seconds episodes
waited on builds and the makespan; benchmarks/scale_images.py runs it on a catalogue drawn
from the measured image builds and writes benchmarks/results/scale.md's image section.
"""

from __future__ import annotations

import collections
import heapq
import random
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

Policy = Literal["fifo", "grouped", "affinity"]


class ImageAffinity:
    """Image key → home worker: the first worker an image's episode went to. Thread-safe.

    `choose(key, load, capacity, usable)` returns the home when it has a free slot, else
    the least loaded usable worker (the new home when the image had none)."""

    def __init__(self) -> None:
        self.home: dict[str, int] = {}
        self._lock = threading.Lock()

    def choose(self, key: str | None, load: Sequence[int], capacity: int,
               usable: Sequence[int]) -> int:
        pool = list(usable) or list(range(len(load)))
        least = min(pool, key=load.__getitem__)
        if not key:
            return least
        with self._lock:
            home = self.home.get(key)
            if home is not None and home in pool and load[home] < capacity:
                return home
            if home is None or home not in pool:
                self.home[key] = least
            return least

    def assign(self, key: str, pick: Callable[[], int]) -> int:
        """`key`'s home, given it now (`pick()`) when it has none: build-ahead plans an
        image onto a worker before its first episode is dispatched there."""
        with self._lock:
            if key not in self.home:
                self.home[key] = pick()
            return self.home[key]


@dataclass
class DiskCache:
    """One node's images under a disk budget (MB). LRU eviction that spares what is in use
    and what the node's queue needs soon (`pinned`)."""

    budget_mb: float
    sizes: dict[str, float] = field(default_factory=dict)
    last_used: dict[str, float] = field(default_factory=dict)
    evictions: int = 0

    used_mb: float = 0.0

    def __contains__(self, image: str) -> bool:
        return image in self.sizes

    def touch(self, image: str, now: float) -> None:
        self.last_used[image] = now

    def add(self, image: str, size_mb: float, now: float, pinned: set[str]) -> None:
        """Add `image`, evicting least recently used unpinned images to fit the budget
        (when they cannot all fit, the node runs over budget rather than fail)."""
        self.used_mb += size_mb - self.sizes.get(image, 0.0)
        self.sizes[image] = size_mb
        self.last_used[image] = now
        if self.used_mb <= self.budget_mb:
            return
        for victim in sorted(self.sizes, key=lambda i: self.last_used.get(i, 0.0)):
            if victim == image or victim in pinned:
                continue
            self.used_mb -= self.sizes.pop(victim)
            self.last_used.pop(victim, None)
            self.evictions += 1
            if self.used_mb <= self.budget_mb:
                return


@dataclass(frozen=True)
class Image:
    key: str
    build_s: float
    size_mb: float


@dataclass
class SimResult:
    policy: str
    prebuild_ahead: int
    episodes: int = 0
    hits: int = 0
    builds: int = 0
    build_s: float = 0.0
    waited_s: float = 0.0
    makespan_s: float = 0.0
    evictions: int = 0

    @property
    def hit_rate(self) -> float:
        return self.hits / max(1, self.episodes)


def make_catalogue(images: int, episodes: int, measured: Sequence[tuple[float, float]],
                   seed: int = 0, zipf_s: float = 1.0) -> tuple[dict[str, Image], list[str]]:
    """`images` images (build seconds and size drawn from `measured` (build_s, size_mb)
    pairs) and `episodes` episodes over them, image popularity Zipf-like (a few
    repositories hold most tasks, as in SWE-bench), in random arrival order."""
    rng = random.Random(seed)
    catalogue = {}
    for i in range(images):
        build_s, size_mb = rng.choice(list(measured))
        catalogue[f"img{i}"] = Image(f"img{i}", build_s, size_mb)
    weights = [1.0 / (i + 1) ** zipf_s for i in range(images)]
    keys = list(catalogue)
    schedule = [keys[i] for i in range(images)]  # every image at least once
    schedule += rng.choices(keys, weights=weights, k=max(0, episodes - images))
    rng.shuffle(schedule)
    return catalogue, schedule


def simulate(catalogue: dict[str, Image], schedule: Sequence[str], *, policy: Policy,
             nodes: int, slots: int, budget_mb: float, episode_s: Sequence[float],
             prebuild_ahead: int = 0) -> SimResult:
    """Replay `schedule` (image key per episode, arrival order) on `nodes` × `slots`.

    `episode_s[i]` is episode i's run time once its image is ready. A missing image is
    built by the node that needs it (an episode arriving while it builds waits for the
    same build). With `prebuild_ahead`, each node (affinity) builds the next images of its
    own queue ahead, one at a time."""
    res = SimResult(policy, prebuild_ahead, episodes=len(schedule))
    caches = [DiskCache(budget_mb) for _ in range(nodes)]
    ready_at: list[dict[str, float]] = [{} for _ in range(nodes)]  # image -> built at
    in_use: list[collections.Counter[str]] = [collections.Counter() for _ in range(nodes)]
    prebuilding = [0.0] * nodes  # when the node's builder is free again
    order = list(range(len(schedule)))
    if policy == "grouped":
        order.sort(key=lambda i: schedule[i])
    queues: list[collections.deque[int]] = [collections.deque() for _ in range(nodes)]
    shared: collections.deque[int] = collections.deque(order)
    if policy == "affinity":
        # Homes in order of first need, each image to the node with the least work queued.
        work = [0.0] * nodes
        home: dict[str, int] = {}
        groups: dict[str, list[int]] = collections.defaultdict(list)
        for i in order:
            groups[schedule[i]].append(i)
        for key in sorted(groups, key=lambda k: -len(groups[k])):
            n = min(range(nodes), key=work.__getitem__)
            home[key] = n
            work[n] += sum(episode_s[i] for i in groups[key])
            queues[n].extend(groups[key])
        shared.clear()
    events: list[tuple[float, int, int, int]] = []  # (time, seq, node, episode)
    seq = 0
    busy = [0] * nodes

    def window(n: int) -> list[str]:
        """The next `prebuild_ahead` (at least 1) distinct images of node n's queue."""
        out: list[str] = []
        for i in queues[n]:
            key = schedule[i]
            if key not in out:
                out.append(key)
                if len(out) >= max(1, prebuild_ahead):
                    break
        return out

    def ensure(n: int, key: str, now: float, pinned: set[str]) -> float:
        """When `key` is ready on node n, building it now if it is absent."""
        if key in caches[n] and ready_at[n].get(key, 0.0) <= now:
            return now
        if key in caches[n]:
            return ready_at[n][key]
        image = catalogue[key]
        res.builds += 1
        res.build_s += image.build_s
        ready_at[n][key] = now + image.build_s
        caches[n].add(key, image.size_mb, now, pinned | set(in_use[n]))
        for gone in [k for k in ready_at[n] if k not in caches[n]]:
            del ready_at[n][gone]
        return ready_at[n][key]

    def prebuild(n: int, now: float) -> None:
        if not prebuild_ahead or prebuilding[n] > now:
            return
        pins = window(n)
        for key in pins:
            if key not in caches[n]:
                prebuilding[n] = ensure(n, key, now, set(pins))
                return

    def take(n: int) -> int | None:
        if queues[n]:
            return queues[n].popleft()
        if shared:
            return shared.popleft()
        if policy == "affinity":  # steal the tail group of the node with the most queued
            victim = max(range(nodes), key=lambda m: len(queues[m]))
            if queues[victim]:
                key = schedule[queues[victim][-1]]
                stolen = [i for i in queues[victim] if schedule[i] == key]
                queues[victim] = collections.deque(i for i in queues[victim] if schedule[i] != key)
                queues[n].extend(stolen)
                return queues[n].popleft()
        return None

    def start(n: int, now: float) -> None:
        nonlocal seq
        while busy[n] < slots:
            i = take(n)
            if i is None:
                return
            key = schedule[i]
            ready = ensure(n, key, now, set(window(n)))
            if ready <= now:
                res.hits += 1
            res.waited_s += ready - now
            caches[n].touch(key, now)
            in_use[n][key] += 1
            busy[n] += 1
            seq += 1
            heapq.heappush(events, (ready + episode_s[i], seq, n, i))
            prebuild(n, now)

    for n in range(nodes):
        start(n, 0.0)
    now = 0.0
    while events:
        now, _, n, i = heapq.heappop(events)
        busy[n] -= 1
        key = schedule[i]
        in_use[n][key] -= 1
        if not in_use[n][key]:
            del in_use[n][key]
        caches[n].touch(key, now)
        start(n, now)
        prebuild(n, now)
    res.makespan_s = now
    res.evictions = sum(c.evictions for c in caches)
    return res
