/**
 * The fleet on several hosts of one machine (issue 6): network namespaces on a bridge
 * (test/scenarios/netns.ts), Redis on host "redis", worker processes on hosts A, B and C, each
 * reaching Redis, the S3 stand-in and the Bedrock stand-in only over the bridge:
 *
 *   root namespace   bridge 10.77.N.1: the producer, the S3 and Bedrock stand-ins, the metric scrapes
 *   redis            10.77.N.10: redis-server bound to that address only (AOF, fsync always)
 *   A                10.77.N.11: detect, mask, generate, finalize
 *   B                10.77.N.12: detect, generate, finalize
 *   C                10.77.N.13: nothing at first; a second mask worker in phase 2
 *
 * A catalog (default 300 photos x 1 prompt x 1 seed, Titan through the real SDK, the stand-in
 * answering after 300 ms) goes through the fleet in three phases:
 * 1. mask workers on host A only: mask throughput over a window, from the workers' metrics
 *    (the increase of maskfleet_jobs_completed_total{stage="mask"}, summed over mask workers);
 * 2. a mask worker started on host C: the same measure with two mask hosts;
 * 3. host B cut off (its veth down) while its workers hold jobs: its processes live on but reach
 *    nothing; their jobs' locks lapse and the other hosts' workers take them over. The run must
 *    complete, every output whole (verifyOutputs of test/scenarios/chaos.ts).
 *
 * Mask is the bottleneck, honestly: every mask worker runs one job at a time on one onnxruntime
 * thread (--threads 1, as README: Benchmarks advises for N mask workers on a host) with a real
 * ViT-B patch embedding and neck (benchmarks/standins/make-sam-vit-encoder.ts with no transformer blocks, 11.3
 * GFLOP, ~160 ms per image on one core) and the tiny decoder, so one mask process uses at most one
 * of the machine's cores and a second can use another.
 */
import { copyFile, rm, writeFile } from "node:fs/promises";
import { join, relative } from "node:path";
import { makeVitBEncoder } from "../../benchmarks/standins/make-sam-vit-encoder.js";
import { runStatus, waitForRun, type RunStatus } from "../../src/runs/status.js";
import { QueueEvents } from "bullmq";
import { keyPrefix, openQueues, stages, type Stage } from "../../src/pipeline/queues.js";
import { samples, scratchDir, sleep, type Sample } from "../helpers.js";
import { catalogConfig, enqueueCatalog, startChaosEnv, uploadSmallPhotos, verifyOutputs, WorkerSet, type ChaosEnv, type WorkerProcess } from "./chaos.js";
import { createTopology, type Topology } from "./netns.js";

export interface MultihostOptions {
  /** Photos in the catalog (default 300). */
  images?: number;
  /** Length of each throughput window, ms (default 10000). */
  windowMs?: number;
  /** The workers' MASKFLEET_LOCK_DURATION_MS: how soon the cut host's jobs can be taken over (default 4000). */
  lockDurationMs?: number;
  /** Bedrock stand-in latency, ms (default 300): generate jobs are in flight on host B when it is cut. */
  latencyMs?: number;
  /** Transformer blocks of the mask workers' ViT-B encoder (default 0: patch embedding and neck). */
  encoderDepth?: number;
  /**
   * Niceness of the detect, generate and finalize processes (default 19; 0: all equal). All the
   * "hosts" share this machine's cores: so that a mask host gets CPU of its own, as it would on
   * its own machine, the other pools take what the mask workers leave.
   */
  othersNice?: number;
  timeoutMs?: number;
  onEvent?: (line: string) => void;
}

export interface Throughput {
  /** Hosts with a mask worker during the window. */
  maskHosts: string[];
  /** Mask jobs completed in the window, summed over the mask workers' metrics. */
  jobs: number;
  seconds: number;
  perSecond: number;
  /** CPU seconds per second (cores busy) in the window: the mask processes together, the other worker processes, this process (producer, S3 and Bedrock stand-ins), redis-server. */
  cores: { mask: number; otherWorkers: number; root: number; redis: number };
  /** Mask jobs still waiting at the end of the window (> 0: the window was never short of work). */
  waitingAtEnd: number;
}

export interface TakenOver {
  queue: Stage;
  jobId: string;
  /** Times its lock lapsed and it went back to the queue (BullMQ's stalledCounter). */
  stalled: number;
  /** From the cut to BullMQ's stall check putting it back in the queue (its "stalled" event), ms. */
  releasedAfterMs: number;
  /** From the cut to another worker starting it again, ms. */
  retakenAfterMs: number;
  /** From the cut to its completion, ms. */
  finishedAfterMs: number;
}

export interface PlacedWorker {
  host: string;
  stage: Stage;
  concurrency: number;
  pid: number;
  metricsUrl: string;
}

export interface MultihostReport {
  images: number;
  runId: string;
  topology: { bridge: string; gateway: string; hosts: { name: string; ns: string; address: string }[] };
  workers: PlacedWorker[];
  redis: { url: string; bind: string; clientsByHost: Record<string, number>; clientAddresses: string[] };
  oneMaskHost: Throughput;
  twoMaskHosts: Throughput;
  cut: {
    host: string;
    /** From the enqueue to the cut, ms. */
    atMs: number;
    finishedAtCut: number;
    /** maskfleet_jobs_active summed over the host's workers just before the cut. */
    activeOnHost: number;
    /** Jobs active in any queue at the cut (every host's). */
    activeAtCut: number;
    takenOver: TakenOver[];
    /** Jobs whose lock lapsed though they were not active at the cut (a worker too slow to renew its lock): none expected. */
    stalledElsewhere: string[];
    /** The cut host's worker processes were still running when the run finished (partitioned, not dead). */
    aliveAtEnd: boolean;
  };
  status: RunStatus;
  /** From the enqueue to the last image finished, ms. */
  wallMs: number;
  problems: string[];
  objectsChecked: number;
  logs: string;
}

/** "cores busy: mask 0.93, other workers 0.52, ..." */
export const cores = (t: Throughput): string =>
  `cores busy: mask ${t.cores.mask.toFixed(2)}, other workers ${t.cores.otherWorkers.toFixed(2)}, producer and stand-ins ${t.cores.root.toFixed(2)}, redis ${t.cores.redis.toFixed(2)}`;

async function scrape(url: string): Promise<Sample[]> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  return samples(await res.text());
}

const sum = (all: Sample[], name: string, labels: Record<string, string> = {}): number =>
  all.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)).reduce((a, s) => a + s.value, 0);

/** A samexporter model folder: the ViT-B encoder with `depth` blocks (random weights) and the tiny decoder. */
async function maskModel(tinySam: string, depth: number): Promise<string> {
  const dir = await scratchDir(`multihost-sam-${process.pid}`);
  const encoder = await makeVitBEncoder(dir, { depth });
  await copyFile(join(tinySam, "decoder.onnx"), join(dir, "decoder.onnx"));
  const files = { encoder: relative(dir, encoder), decoder: "decoder.onnx" };
  await writeFile(join(dir, "model.json"), JSON.stringify({ format: "samexporter", task: "segment", files }, null, 2) + "\n");
  return dir;
}

/** The fleet's processes, each on a host of the topology. */
class Fleet {
  /** Each process's host. */
  readonly placed = new Map<WorkerProcess, string>();
  private readonly concurrency = new Map<WorkerProcess, number>();

  constructor(
    private readonly topo: Topology,
    readonly set: WorkerSet,
    /** The niceness of the pools other than mask (0: the same priority). */
    private readonly othersNice: number,
  ) {}

  start(host: string, stage: Stage, concurrency: number): WorkerProcess {
    const h = this.topo.hosts[host];
    if (!h) throw new Error(`no host ${host}`);
    const w = this.set.start(stage, concurrency, {
      launcher: [...this.topo.launcher(host), ...(stage !== "mask" && this.othersNice ? ["nice", "-n", String(this.othersNice)] : [])],
      env: { MASKFLEET_METRICS_HOST: h.address, MASKFLEET_METRICS_PORT: "0", ...(stage === "mask" && { MASKFLEET_THREADS: "1" }) },
    });
    this.placed.set(w, host);
    this.concurrency.set(w, concurrency);
    return w;
  }

  async ready(): Promise<void> {
    await Promise.all([...this.placed.keys()].map((w) => w.ready));
    const down = [...this.placed.keys()].filter((w) => w.child.exitCode !== null || w.child.signalCode !== null || !w.metricsUrl);
    if (down.length) throw new Error(`workers did not start: ${down.map((w) => w.id).join(", ")}\n${this.set.logs()}`);
  }

  on(host: string, stage?: Stage): WorkerProcess[] {
    return [...this.placed].filter(([w, h]) => h === host && (!stage || w.stage === stage)).map(([w]) => w);
  }

  of(stage: Stage): WorkerProcess[] {
    return [...this.placed.keys()].filter((w) => w.stage === stage);
  }

  describe(): PlacedWorker[] {
    return [...this.placed].map(([w, host]) => ({ host, stage: w.stage, concurrency: this.concurrency.get(w) ?? 0, pid: w.child.pid ?? 0, metricsUrl: w.metricsUrl ?? "" }));
  }
}

interface Reading {
  at: number;
  /** Mask jobs completed, per mask worker. */
  each: number[];
  jobs: number;
  cpu: { mask: number; otherWorkers: number; root: number; redis: number };
}

/** Every worker's metrics, this process's CPU time and Redis's (INFO cpu), at one moment. */
async function read(env: ChaosEnv, fleet: Fleet): Promise<Reading> {
  const workers = [...fleet.placed.keys()].filter((w) => w.child.exitCode === null && w.child.signalCode === null);
  const all = await Promise.all(workers.map(async (w) => ({ w, s: await scrape(w.metricsUrl as string) })));
  const masks = all.filter((x) => x.w.stage === "mask");
  const each = masks.map((x) => sum(x.s, "maskfleet_jobs_completed_total", { stage: "mask" }));
  const cpu = (xs: typeof all) => xs.reduce((a, x) => a + sum(x.s, "process_cpu_seconds_total"), 0);
  const info = await env.conn.info("cpu");
  const redisCpu = ["used_cpu_sys", "used_cpu_user"].reduce((a, k) => a + Number(new RegExp(`^${k}:([\\d.]+)`, "m").exec(info)?.[1] ?? 0), 0);
  const own = process.cpuUsage();
  return {
    at: performance.now(),
    each,
    jobs: each.reduce((a, b) => a + b, 0),
    cpu: { mask: cpu(masks), otherWorkers: cpu(all.filter((x) => x.w.stage !== "mask")), root: (own.user + own.system) / 1e6, redis: redisCpu },
  };
}

/** Mask throughput over `windowMs`, once every mask worker has completed `warmup` jobs (its sessions loaded). */
async function measureMask(env: ChaosEnv, fleet: Fleet, windowMs: number, warmup = 3): Promise<Throughput> {
  const deadline = Date.now() + 60_000;
  while (!(await read(env, fleet)).each.every((n) => n >= warmup)) {
    if (Date.now() > deadline) throw new Error(`mask workers did not warm up\n${fleet.set.logs()}`);
    await sleep(200);
  }
  const a = await read(env, fleet);
  await sleep(windowMs);
  const b = await read(env, fleet);
  const queues = openQueues(env.conn);
  const waitingAtEnd = await queues.mask.getWaitingCount();
  await Promise.all(Object.values(queues).map((q) => q.close()));
  const seconds = (b.at - a.at) / 1000;
  const rate = (k: keyof Reading["cpu"]) => (b.cpu[k] - a.cpu[k]) / seconds;
  return {
    maskHosts: [...new Set(fleet.of("mask").map((w) => fleet.placed.get(w) as string))].sort(),
    jobs: b.jobs - a.jobs,
    seconds,
    perSecond: (b.jobs - a.jobs) / seconds,
    cores: { mask: rate("mask"), otherWorkers: rate("otherWorkers"), root: rate("root"), redis: rate("redis") },
    waitingAtEnd,
  };
}

/** Redis's clients by address (CLIENT LIST), the producer's connection included. */
async function redisClients(env: ChaosEnv): Promise<string[]> {
  const list = (await env.conn.call("CLIENT", "LIST")) as string;
  return list
    .split("\n")
    .map((line) => /(?:^| )addr=(\S+):\d+ /.exec(line)?.[1])
    .filter((a): a is string => a !== undefined);
}

export async function runMultihost(o: MultihostOptions = {}): Promise<MultihostReport> {
  const images = o.images ?? 300;
  const windowMs = o.windowMs ?? 10_000;
  const lockDurationMs = o.lockDurationMs ?? 4000;
  const say = o.onEvent ?? (() => undefined);
  const runId = "multihost";
  const topo = await createTopology(["redis", "A", "B", "C"]);
  const byAddress = new Map([[topo.gateway, "root"], ...Object.values(topo.hosts).map((h) => [h.address, h.name] as [string, string])]);
  const redisHost = topo.hosts.redis as { address: string };
  say(
    `topology ${topo.prefix}: bridge ${topo.bridge} ${topo.gateway}, ${Object.values(topo.hosts)
      .map((h) => `${h.name} ${h.address} (${h.ns})`)
      .join(", ")}`,
  );
  let env: ChaosEnv | undefined;
  let fleet: Fleet | undefined;
  let model: string | undefined;
  try {
    env = await startChaosEnv(
      `multihost-redis-${process.pid}`,
      { latencyMs: o.latencyMs ?? 300 },
      { host: topo.gateway, redis: { host: redisHost.address, port: 6379, launcher: topo.launcher("redis") } },
    );
    model = await maskModel(env.samModel, o.encoderDepth ?? 0);
    await uploadSmallPhotos(env.s3, images);
    const config = catalogConfig({ ...env, samModel: model }, { prompts: ["a studio backdrop"], seeds: { from: 1, to: 1 } });
    fleet = new Fleet(
      topo,
      new WorkerSet(env, { MASKFLEET_LOCK_DURATION_MS: String(lockDurationMs), MASKFLEET_ATTEMPTS: "4", MASKFLEET_SHUTDOWN_GRACE_MS: "5000" }),
      o.othersNice ?? 19,
    );
    const layout: [string, Stage, number][] = [
      ["A", "detect", 2],
      ["A", "mask", 1],
      ["A", "generate", 4],
      ["A", "finalize", 2],
      ["B", "detect", 2],
      ["B", "generate", 4],
      ["B", "finalize", 2],
    ];
    for (const [host, stage, c] of layout) fleet.start(host, stage, c);
    await fleet.ready();
    say(
      `workers up: ${fleet
        .describe()
        .map((w) => `${w.host}/${w.stage} ${w.metricsUrl}`)
        .join(", ")}`,
    );

    const started = performance.now();
    const enqueuedAt = Date.now();
    await enqueueCatalog(env, config, runId);
    let finished = false;
    const done = waitForRun(env.conn, runId, { intervalMs: 200, timeoutMs: o.timeoutMs ?? 240_000 }).finally(() => (finished = true));
    done.catch(() => undefined);

    // Phase 1: one mask host.
    const oneMaskHost = await measureMask(env, fleet, windowMs);
    say(`mask on A: ${oneMaskHost.jobs} jobs in ${oneMaskHost.seconds.toFixed(1)} s = ${oneMaskHost.perSecond.toFixed(2)}/s (${cores(oneMaskHost)})`);

    // Phase 2: a second mask host.
    fleet.start("C", "mask", 1);
    await fleet.ready();
    const twoMaskHosts = await measureMask(env, fleet, windowMs);
    say(`mask on A and C: ${twoMaskHosts.jobs} jobs in ${twoMaskHosts.seconds.toFixed(1)} s = ${twoMaskHosts.perSecond.toFixed(2)}/s (${cores(twoMaskHosts)})`);

    // Every host reached Redis over the bridge (before B is cut off).
    const clientAddresses = await redisClients(env);
    const clientsByHost: Record<string, number> = {};
    for (const a of clientAddresses) clientsByHost[byAddress.get(a) ?? a] = (clientsByHost[byAddress.get(a) ?? a] ?? 0) + 1;
    const bind = ((await env.conn.call("CONFIG", "GET", "bind")) as string[])[1] ?? "";

    // Phase 3: cut host B off while its workers hold jobs.
    const onB = fleet.on("B");
    let activeOnHost = 0;
    const deadline = Date.now() + 30_000;
    while (activeOnHost === 0) {
      if (finished || Date.now() > deadline) throw new Error("host B's workers held no job to cut off");
      activeOnHost = (await Promise.all(onB.map((w) => scrape(w.metricsUrl as string)))).reduce((a, s) => a + sum(s, "maskfleet_jobs_active"), 0);
    }
    // The jobs whose lock lapses, followed live from the queues' event streams (finished jobs leave
    // BullMQ at once, and the streams are capped): when each was put back, taken again, and ended.
    const lapsed = new Map<string, { queue: Stage; jobId: string; stalled: number; releasedAt: number; retakenAt?: number; finishedAt?: number }>();
    const eventTime = (id: string) => Number(id.split("-")[0]);
    const conn = env.conn;
    const watchConnections = stages.map(() => conn.duplicate());
    const watchers = stages.map((stage, i) => {
      const events = new QueueEvents(stage, { connection: watchConnections[i] as typeof conn, prefix: keyPrefix });
      events.on("stalled", ({ jobId }, id) => {
        const seen = lapsed.get(`${stage}/${jobId}`);
        if (seen) seen.stalled++;
        else lapsed.set(`${stage}/${jobId}`, { queue: stage, jobId, stalled: 1, releasedAt: eventTime(id) });
      });
      events.on("active", ({ jobId }, id) => {
        const seen = lapsed.get(`${stage}/${jobId}`);
        if (seen && seen.retakenAt === undefined) seen.retakenAt = eventTime(id);
      });
      const ended = ({ jobId }: { jobId: string }, id: string) => {
        const seen = lapsed.get(`${stage}/${jobId}`);
        if (seen && seen.finishedAt === undefined) seen.finishedAt = eventTime(id);
      };
      events.on("completed", ended).on("failed", ended);
      return events;
    });
    await Promise.all(watchers.map((w) => w.waitUntilReady()));
    await topo.cut("B");
    const cutAt = Date.now();
    const queues = openQueues(env.conn);
    const activeAtCut: { queue: Stage; id: string }[] = [];
    for (const stage of stages) for (const job of await queues[stage].getActive()) if (job.id) activeAtCut.push({ queue: stage, id: job.id });
    const finishedAtCut = (await runStatus(env.conn, runId, false)).finished;
    say(`host B cut off at ${finishedAtCut}/${images} images: its workers had ${activeOnHost} jobs active; ${activeAtCut.length} active in all`);

    await done;
    const wallMs = performance.now() - started;
    const aliveAtEnd = onB.every((w) => w.child.exitCode === null && w.child.signalCode === null);
    await Promise.all(watchers.map((w) => w.close()));
    for (const c of watchConnections) c.disconnect();
    // Jobs whose lock lapsed: those the cut host held, and no other.
    const takenOver: TakenOver[] = [];
    const stalledElsewhere: string[] = [];
    const heldAtCut = new Set(activeAtCut.map((a) => `${a.queue}/${a.id}`));
    for (const [key, j] of lapsed) {
      if (!heldAtCut.has(key)) stalledElsewhere.push(key);
      else {
        takenOver.push({
          queue: j.queue,
          jobId: j.jobId,
          stalled: j.stalled,
          releasedAfterMs: j.releasedAt - cutAt,
          retakenAfterMs: (j.retakenAt ?? NaN) - cutAt,
          finishedAfterMs: (j.finishedAt ?? NaN) - cutAt,
        });
      }
    }
    await Promise.all(Object.values(queues).map((q) => q.close()));
    say(
      `taken over: ${takenOver.map((j) => `${j.queue} ${j.jobId}: back in the queue after ${j.releasedAfterMs} ms, restarted after ${j.retakenAfterMs} ms, done after ${j.finishedAfterMs} ms`).join("; ") || "none"}`,
    );

    // The cut host's processes can reach nothing, not even to shut down: killed.
    for (const w of onB) fleet.set.signal(w, "SIGKILL");
    const status = await runStatus(env.conn, runId);
    const verified = await verifyOutputs(env, runId, { results: 1 });
    return {
      images,
      runId,
      topology: { bridge: topo.bridge, gateway: topo.gateway, hosts: Object.values(topo.hosts).map(({ name, ns, address }) => ({ name, ns, address })) },
      workers: fleet.describe(),
      redis: { url: env.redis.url, bind, clientsByHost, clientAddresses },
      oneMaskHost,
      twoMaskHosts,
      cut: { host: "B", atMs: cutAt - enqueuedAt, finishedAtCut, activeOnHost, activeAtCut: activeAtCut.length, takenOver, stalledElsewhere, aliveAtEnd },
      status,
      wallMs,
      problems: verified.problems,
      objectsChecked: verified.objects,
      logs: fleet.set.logs(),
    };
  } finally {
    if (fleet) {
      for (const w of fleet.on("B")) w.child.kill("SIGKILL");
      await fleet.set.stopAll(15_000);
    }
    await env?.close();
    await topo.close();
    if (model) await rm(model, { recursive: true, force: true });
  }
}
