/**
 * Prometheus metrics: a real fleet (tiny SAM graphs, composite) runs a small catalog with one bad
 * file while its metrics endpoint is scraped over HTTP; the counts must match what happened. Then
 * every metric the Grafana board queries must be in that exposition, the scrape config must
 * point at it, and a worker process must print its endpoint and serve it.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { copyFile, readFile, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";
import { resolveConfig, type Config } from "../shared/config.js";
import { ConfigError } from "../shared/errors.js";
import { DEFAULT_METRICS_PORT, startMetricsServer, type MetricsServer } from "../shared/metrics.js";
import { stages } from "../shared/queues.js";
import { discoverInputs } from "../producer/discover.js";
import { enqueueImages } from "../producer/enqueue.js";
import { waitForRun } from "../producer/status.js";
import { startFleet, type Fleet } from "../workers/fleet.js";
import { freshRedis, repoRoot, samples, scratchDir, tinyModels, type Sample } from "./helpers.js";

/** The value of the one series of `name` whose labels include `labels`. */
function valueOf(all: Sample[], name: string, labels: Record<string, string> = {}): number {
  const found = all.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  assert.equal(found.length, 1, `one series ${name}${JSON.stringify(labels)}, found ${found.length}`);
  return (found[0] as Sample).value;
}

/** PromQL words that are not metric names. */
const promqlWords = new Set(
  ["sum", "avg", "min", "max", "count", "rate", "irate", "increase", "histogram_quantile", "avg_over_time", "max_over_time", "topk", "bottomk", "abs", "clamp_min"]
    .concat(["by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset", "inf", "nan"]),
);

/** The metric names a PromQL expression reads: identifiers outside strings, label matchers, ranges and label lists, not called as functions. */
function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, " ")
    .replace(/\[[^\]]*\]/g, " ")
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, " ");
  const names = new Set<string>();
  for (const m of bare.matchAll(/(?<![\w.$])[a-zA-Z_:][\w:]*/g)) {
    const called = bare.slice(m.index + m[0].length).trimStart().startsWith("(");
    if (!called && !promqlWords.has(m[0].toLowerCase())) names.add(m[0]);
  }
  return [...names];
}

/** Those of `names` the exposition does not have: no sample and no TYPE line, also for a histogram's _bucket/_sum/_count. */
function missingFrom(exposition: string, names: string[]): string[] {
  const types = new Map([...exposition.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1], m[2]]));
  const sampled = new Set(samples(exposition).map((s) => s.name));
  return names.filter((name) => {
    if (types.has(name) || sampled.has(name)) return false;
    const base = name.replace(/_(bucket|sum|count)$/, "");
    return !(base !== name && ["histogram", "summary"].includes(types.get(base) ?? ""));
  });
}

/** Every PromQL expression of a Grafana dashboard, rows' nested panels included. */
function dashboardExprs(dashboard: { panels?: unknown[] }): string[] {
  const exprs: string[] = [];
  const visit = (panels: unknown[] = []) => {
    for (const p of panels as { targets?: { expr?: string }[]; panels?: unknown[] }[]) {
      for (const t of p.targets ?? []) if (t.expr) exprs.push(t.expr);
      visit(p.panels);
    }
  };
  visit(dashboard.panels);
  return exprs;
}

const photos = ["astronaut.jpg", "chelsea.jpg", "coffee.jpg"];
const prompts = ["studio white background", "sunny beach"];

describe("metrics", () => {
  let config: Config;
  let fleet: Fleet;
  let server: MetricsServer;
  let exposition = "";

  before(async () => {
    const redisUrl = await freshRedis(2);
    const models = await tinyModels();
    const dir = await scratchDir("metrics");
    await scratchDir("metrics/in");
    for (const p of photos) await copyFile(join(repoRoot, "samples/photos", p), join(dir, "in", p));
    await writeFile(join(dir, "in", "notes.jpg"), "Hello, this is a text file with a .jpg name.\n");
    config = resolveConfig({ target: "auto", samModel: models.sam, out: join(dir, "out"), redisUrl, prompts, seeds: { from: 1, to: 2 }, attempts: 2 });
    server = await startMetricsServer(0, "127.0.0.1");
    fleet = startFleet(config, stages);
    await enqueueImages(fleet.ctx.redis, config, "metrics-run", discoverInputs([join(dir, "in")]));
    const status = await waitForRun(fleet.ctx.redis, "metrics-run", { intervalMs: 200, timeoutMs: 60_000 });
    assert.deepEqual([status.succeeded, status.failed], [3, 1]);
    const res = await fetch(server.url);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
    exposition = await res.text();
  });

  after(async () => {
    await fleet?.close();
    await server?.close();
  });

  it("counts each stage's jobs, the bad file's failure by class, the steps, queue depth, the ONNX provider, process memory", () => {
    const all = samples(exposition);
    const results = photos.length * prompts.length * 2;
    for (const [stage, n] of [["detect", 3], ["mask", 3], ["generate", results], ["finalize", 3]] as const) {
      assert.equal(valueOf(all, "maskfleet_jobs_completed_total", { stage }), n, `${stage} completed`);
      assert.equal(valueOf(all, "maskfleet_stage_duration_seconds_count", { stage }), n, `${stage} durations`);
      assert.equal(valueOf(all, "maskfleet_jobs_active", { stage }), 0);
    }
    // notes.jpg is text: refused at detect as bad input, not retried.
    assert.equal(valueOf(all, "maskfleet_jobs_failed_total", { stage: "detect", reason: "input" }), 1);
    assert.equal(all.filter((s) => s.name === "maskfleet_jobs_failed_total").length, 1, "no other failure");
    assert.equal(all.filter((s) => s.name === "maskfleet_jobs_retried_total").length, 0, "no retries");
    assert.equal(valueOf(all, "maskfleet_worker_concurrency", { stage: "generate" }), config.concurrency.generate);
    assert.equal(valueOf(all, "maskfleet_generator_requests_total", { generator: "composite", outcome: "ok" }), results);
    assert.equal(valueOf(all, "maskfleet_throttles_total", { stage: "generate" }), 0);

    const steps = (step: string) => valueOf(all, "maskfleet_step_duration_seconds_count", { step });
    assert.equal(steps("sam_encode"), 3, "the encoder ran once per good image");
    assert.equal(steps("sam_decode"), 3);
    // detect, mask, generate (once per photo in this process, not per result), finalize read the input: 4 + 3 + 3 + 3; the bad one fails decoding.
    assert.equal(steps("input_read"), 4 + 3 + 3 + 3);
    assert.equal(steps("image_decode"), 4 + 3 + 3 + 3);
    // detections; mask, Bedrock mask, cutout, mask.json; results; contact sheet and manifest.
    assert.equal(steps("store_write"), 3 + 4 * 3 + results + 2 * 3);
    assert.equal(steps("generate_request"), results);
    // Looked up before any work: stored detections (4 images), a stored mask (3 good ones), each result.
    assert.ok(steps("store_read") > 0);
    assert.equal(steps("store_exists"), 4 + 3 + results);
    assert.ok(valueOf(all, "maskfleet_step_duration_seconds_sum", { step: "sam_encode" }) > 0);

    for (const queue of stages) {
      assert.equal(valueOf(all, "maskfleet_queue_jobs", { queue, state: "waiting" }), 0, `${queue} waiting`);
      assert.equal(valueOf(all, "maskfleet_queue_jobs", { queue, state: "active" }), 0, `${queue} active`);
      // A job that failed for good is recorded in its run and leaves the queue.
      assert.equal(valueOf(all, "maskfleet_queue_jobs", { queue, state: "failed" }), 0, `${queue} failed`);
    }
    assert.equal(valueOf(all, "maskfleet_onnx_session_info", { model: "sam-tiny", task: "segment", ep: "cpu" }), 1);
    assert.ok(valueOf(all, "process_resident_memory_bytes") > 20e6);
    assert.ok(valueOf(all, "process_cpu_seconds_total") > 0);
  });

  it("the producer exports the watched run's images and images/min", () => {
    const all = samples(exposition);
    const run = "metrics-run";
    assert.deepEqual(
      ["total", "finished", "succeeded", "failed"].map((state) => valueOf(all, "maskfleet_run_images", { run, state })),
      [4, 4, 3, 1],
    );
    const perMin = valueOf(all, "maskfleet_run_images_per_minute", { run });
    assert.ok(perMin > 1 && perMin < 10_000, `${perMin} images/min`);
  });

  it("serves only GET /metrics", async () => {
    assert.equal((await fetch(server.url.replace("/metrics", "/"))).status, 404);
    assert.equal((await fetch(server.url, { method: "POST" })).status, 404);
  });

  it("every metric the Grafana board queries is exported", async () => {
    const dashboard = JSON.parse(await readFile(join(repoRoot, "deploy/grafana/dashboards/maskfleet.json"), "utf8"));
    const exprs = dashboardExprs(dashboard);
    assert.ok(exprs.length >= 15, `${exprs.length} queries`);
    const names = [...new Set(exprs.flatMap(metricNames))];
    assert.ok(names.length >= 14, names.join(", "));
    assert.deepEqual(missingFrom(exposition, names), []);
    // Every panel reads the provisioned data source.
    const provisioned = parseYaml(await readFile(join(repoRoot, "deploy/grafana/provisioning/datasources/prometheus.yml"), "utf8"));
    const uid = provisioned.datasources[0].uid;
    const panels = (dashboard.panels as { type: string; datasource?: { uid: string } }[]).filter((p) => p.type !== "row");
    assert.deepEqual(new Set(panels.map((p) => p.datasource?.uid)), new Set([uid]));
  });

  it("the board check can fail: names come out of PromQL, and an invented one is reported missing", () => {
    assert.deepEqual(metricNames('histogram_quantile(0.99, sum by (le, stage) (rate(maskfleet_stage_duration_seconds_bucket{stage=~"mask|detect"}[1m])))'), [
      "maskfleet_stage_duration_seconds_bucket",
    ]);
    assert.deepEqual(metricNames("sum by (instance) (avg_over_time(maskfleet_jobs_active[1m])) / on (instance) maskfleet_worker_concurrency > 0"), [
      "maskfleet_jobs_active",
      "maskfleet_worker_concurrency",
    ]);
    const invented = metricNames('sum(rate(maskfleet_invented_total{reason="input"}[5m])) + maskfleet_jobs_completed_total_bucket');
    assert.deepEqual(missingFrom(exposition, invented), ["maskfleet_invented_total", "maskfleet_jobs_completed_total_bucket"]);
  });

  it("the Prometheus config finds every pool's and the producer's containers and scrapes /metrics every 5 s", async () => {
    const prom = parseYaml(await readFile(join(repoRoot, "deploy/prometheus/prometheus.yml"), "utf8"));
    assert.equal(prom.global.scrape_interval, "5s");
    const jobs = prom.scrape_configs as { job_name: string; metrics_path?: string; dns_sd_configs: { names: string[]; type: string; port: number }[] }[];
    for (const j of jobs) assert.equal(j.metrics_path ?? "/metrics", "/metrics");
    const sd = jobs.flatMap((j) => j.dns_sd_configs);
    assert.ok(sd.every((d) => d.type === "A" && d.port === DEFAULT_METRICS_PORT));
    const names = sd.flatMap((d) => d.names);
    for (const name of [...stages, "producer"]) assert.ok(names.includes(name), name);
    // The names are the compose services, which set that port.
    const compose = parseYaml(await readFile(join(repoRoot, "deploy/docker-compose.yml"), "utf8"), { merge: true });
    for (const name of names) assert.ok(compose.services[name], `${name} is a compose service`);
    assert.equal(compose["x-maskfleet-env"].MASKFLEET_METRICS_PORT, String(DEFAULT_METRICS_PORT));
  });

  it("a port given and taken fails naming metricsPort; with none given, a taken 9464 gives way to a free port", async () => {
    const taken = await startMetricsServer(0, "127.0.0.1");
    try {
      await assert.rejects(startMetricsServer(taken.port, "127.0.0.1"), (err: unknown) => err instanceof ConfigError && /^metricsPort: port \d+ on 127\.0\.0\.1 is in use/.test(err.message));
    } finally {
      await taken.close();
    }
    // Hold 9464 (unless something else already does), then ask for the default.
    const holder = createServer();
    await new Promise<void>((resolve) => holder.once("error", () => resolve()).listen(DEFAULT_METRICS_PORT, "127.0.0.1", resolve));
    const fallback = await startMetricsServer(undefined, "127.0.0.1");
    try {
      assert.notEqual(fallback.port, DEFAULT_METRICS_PORT);
      assert.equal((await fetch(fallback.url)).status, 200);
    } finally {
      await fallback.close();
      holder.close();
    }
  });

  it("a worker process names its endpoint in its start line and serves it; SIGTERM closes it", async () => {
    // A job waiting a minute in a queue no worker here serves: the depth the worker reads from Redis.
    const later = await fleet.ctx.queues.mask.add("mask", {}, { delay: 60_000, jobId: "metrics-later" });
    const child = spawn(process.execPath, ["--import", "tsx", join(repoRoot, "cli/main.ts"), "worker", "finalize", "--redis", config.redisUrl, "--metrics-port", "0"], {
      env: { ...process.env, MASKFLEET_LOG_LEVEL: "warn" },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
    try {
      const deadline = Date.now() + 20_000;
      while (!/metrics on (\S+)/.test(stderr) && Date.now() < deadline && child.exitCode === null) await new Promise((r) => setTimeout(r, 100));
      const url = /finalize worker \d+ started \(concurrency 2\), metrics on (http:\/\/127\.0\.0\.1:\d+\/metrics)/.exec(stderr)?.[1];
      assert.ok(url, stderr);
      const all = samples(await (await fetch(url)).text());
      assert.equal(valueOf(all, "maskfleet_worker_concurrency", { stage: "finalize" }), 2);
      assert.equal(valueOf(all, "maskfleet_queue_jobs", { queue: "mask", state: "delayed" }), 1, "the queues' depths, read from Redis");
      assert.ok(valueOf(all, "process_resident_memory_bytes") > 0);
      child.kill("SIGTERM");
      assert.equal(await exited, 0);
      await assert.rejects(fetch(url), "the endpoint is closed");
    } finally {
      await later.remove();
      if (child.exitCode === null) child.kill("SIGKILL");
    }
  });
});
