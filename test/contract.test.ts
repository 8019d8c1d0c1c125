/**
 * The pipeline's contract (src/pipeline/jobs.ts, artifacts.ts): every job names its kind, the
 * boxes ride in the mask job and the prompt variables in the finalize job, every artifact a real
 * run writes parses with its schema, and docs/manifest.schema.json is current and fits a real
 * manifest. One photo goes through the real stages, one pool at a time (tiny SAM graphs,
 * composite generator), so the jobs between them can be looked at.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { copyFile, readFile, rename } from "node:fs/promises";
import { join } from "node:path";
import type { Redis } from "ioredis";
import { resolveConfig, type Config } from "../src/config/config.js";
import { detectionsSchema, manifestSchema, maskInfoSchema } from "../src/pipeline/artifacts.js";
import { outPrefixOf, parseJobData, safeParseJobData, type DataOf } from "../src/pipeline/jobs.js";
import { openQueues, type Stage, type StageQueues } from "../src/pipeline/queues.js";
import { discoverInputs } from "../src/producer/discover.js";
import { enqueueImages } from "../src/producer/enqueue.js";
import { RunState, jobIdOf } from "../src/runs/run-state.js";
import { waitForRun } from "../src/runs/status.js";
import { connect } from "../src/runtime/redis.js";
import { startFleet, type Fleet } from "../src/fleet/fleet.js";
import { manifestSchemaPath, manifestSchemaText } from "../scripts/manifest-schema.js";
import { freshRedis, repoRoot, scratchDir, tinyModels, until } from "./helpers.js";

/** The JSON Schema keywords docs/manifest.schema.json uses; `violations` checks each of them. */
interface JsonSchema {
  $schema?: string;
  title?: string;
  description?: string;
  format?: string;
  type?: string;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: boolean | JsonSchema;
  items?: JsonSchema;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  const?: unknown;
  enum?: unknown[];
  pattern?: string;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  minimum?: number;
  maximum?: number;
}
const knownKeywords = new Set([
  "$schema",
  "title",
  "description",
  "format",
  "type",
  "properties",
  "required",
  "additionalProperties",
  "items",
  "anyOf",
  "oneOf",
  "const",
  "enum",
  "pattern",
  "minLength",
  "maxLength",
  "minItems",
  "minimum",
  "maximum",
]);

const typeOf = (v: unknown) => (v === null ? "null" : Array.isArray(v) ? "array" : Number.isInteger(v) ? "integer" : typeof v);

/** Where `value` breaks `schema`: a small validator for the keywords above (the repository has no JSON Schema library). */
function violations(schema: JsonSchema, value: unknown, at = "$"): string[] {
  for (const k of Object.keys(schema)) if (!knownKeywords.has(k)) return [`${at}: the schema uses ${k}, which this check does not know`];
  const fits = (s: JsonSchema) => violations(s, value, at).length === 0;
  if (schema.anyOf && !schema.anyOf.some(fits)) return [`${at}: fits none of anyOf`];
  if (schema.oneOf && schema.oneOf.filter(fits).length !== 1) return [`${at}: fits ${schema.oneOf.filter(fits).length} of oneOf`];
  const type = typeOf(value);
  if (schema.type !== undefined && schema.type !== type && !(schema.type === "number" && type === "integer")) return [`${at}: ${type}, not ${schema.type}`];
  const out: string[] = [];
  if ("const" in schema && value !== schema.const) out.push(`${at}: not ${JSON.stringify(schema.const)}`);
  if (schema.enum && !schema.enum.includes(value)) out.push(`${at}: ${JSON.stringify(value)} not in enum`);
  if (typeof value === "string") {
    if (schema.pattern !== undefined && !new RegExp(schema.pattern, "u").test(value)) out.push(`${at}: does not match ${schema.pattern}`);
    if (value.length < (schema.minLength ?? 0) || value.length > (schema.maxLength ?? Infinity)) out.push(`${at}: length ${value.length}`);
  }
  if (typeof value === "number" && (value < (schema.minimum ?? -Infinity) || value > (schema.maximum ?? Infinity))) out.push(`${at}: ${value} out of range`);
  if (Array.isArray(value)) {
    if (value.length < (schema.minItems ?? 0)) out.push(`${at}: ${value.length} items`);
    if (schema.items) value.forEach((v, i) => out.push(...violations(schema.items as JsonSchema, v, `${at}[${i}]`)));
  }
  if (type === "object") {
    const record = value as Record<string, unknown>;
    for (const key of schema.required ?? []) if (!(key in record)) out.push(`${at}.${key}: missing`);
    for (const [key, v] of Object.entries(record)) {
      const own = schema.properties?.[key];
      if (own) out.push(...violations(own, v, `${at}.${key}`));
      else if (schema.additionalProperties === false) out.push(`${at}.${key}: not allowed`);
      else if (typeof schema.additionalProperties === "object") out.push(...violations(schema.additionalProperties, v, `${at}.${key}`));
    }
  }
  return out;
}

const image = { runId: "r", settings: "0123456789ab", imageId: "ab".repeat(12), input: "/in/cat.jpg", name: "cat.jpg" };

describe("pipeline contract", () => {
  it("docs/manifest.schema.json is what scripts/manifest-schema.ts writes now", async () => {
    assert.equal(await readFile(manifestSchemaPath, "utf8"), manifestSchemaText(), "stale: run npx tsx scripts/manifest-schema.ts");
  });

  it("a job is read as its queue's kind: a payload without a kind is the queue's own, another stage's job is refused", () => {
    const mask = parseJobData("mask", { ...image, kind: "mask", detected: [{ x0: 0, y0: 0, x1: 4, y1: 4, label: "cat" }] });
    assert.equal(mask.kind, "mask");
    assert.deepEqual(mask.detected, [{ x0: 0, y0: 0, x1: 4, y1: 4, label: "cat" }]);
    // Queued by a version before payloads named their kind.
    assert.equal(parseJobData("detect", image).kind, "detect");
    assert.deepEqual(parseJobData("finalize", { ...image, promptVars: { label: "cat", color: "white" } }).promptVars, { label: "cat", color: "white" });
    assert.deepEqual(parseJobData("generate", { runId: "r", imageId: image.imageId, promptIndex: 1, seed: 34 }), {
      kind: "generate",
      runId: "r",
      imageId: image.imageId,
      promptIndex: 1,
      seed: 34,
    });
    // Handed on by an older detect (its own payload): a mask job without boxes; a later stage's job is refused.
    assert.deepEqual(parseJobData("mask", { ...image, kind: "detect" }), { ...image, kind: "mask" });
    assert.equal(parseJobData("finalize", { ...image, kind: "mask", promptVars: { label: "cat", color: "white" } }).kind, "finalize");
    assert.throws(() => parseJobData("detect", { ...image, kind: "mask" }), /a mask job on the detect queue/);
    assert.throws(() => parseJobData("finalize", { ...image, kind: "finalize" }), /promptVars/);
    assert.equal(safeParseJobData("generate", { seed: 37 }), undefined, "no job of this version");
    assert.equal(safeParseJobData("detect", { ...image, kind: "generate" }), undefined);
  });

  describe("one photo through the stages", () => {
    let config: Config;
    let redis: Redis;
    let queues: StageQueues;
    let fleet: Fleet | undefined;
    let outDir: string;

    before(async () => {
      const redisUrl = await freshRedis(1);
      const models = await tinyModels();
      const dir = await scratchDir("contract");
      await scratchDir("contract/in");
      await copyFile(join(repoRoot, "samples", "photos", "chelsea.jpg"), join(dir, "in", "chelsea.jpg"));
      outDir = join(dir, "out");
      config = resolveConfig({ target: "auto", samModel: models.sam, out: outDir, redisUrl, prompts: ["a {color} {label} on a marble counter"], seeds: { from: 34, to: 35 } });
      redis = connect(redisUrl);
      queues = openQueues(redis);
      await enqueueImages(redis, config, "contract", discoverInputs([join(dir, "in")]));
    });

    after(async () => {
      await fleet?.close();
      await Promise.all(Object.values(queues ?? {}).map((q) => q.close()));
      await redis?.quit();
    });

    /** Runs these pools until `done`, then stops them. */
    const runPools = async (stages: Stage[], what: string, done: () => Promise<boolean>) => {
      fleet = startFleet(config, stages);
      try {
        await until(what, done, 60_000, 50);
      } finally {
        await fleet.close();
        fleet = undefined;
      }
    };

    it("detect hands on the boxes, mask the prompt variables; every artifact parses; the manifest fits the published schema", async () => {
      const [record] = await new RunState(redis).images("contract");
      assert.ok(record);
      const jobId = jobIdOf((await new RunState(redis).tag("contract")) as string, record.imageId);
      const dir = join(outDir, outPrefixOf("chelsea.jpg", record.imageId));
      const artifact = async (file: string): Promise<unknown> => JSON.parse(await readFile(join(dir, file), "utf8"));
      const queued = async (stage: Stage): Promise<unknown> => (await queues[stage].getJob(jobId))?.data;

      await runPools(["detect"], "the mask job", async () => (await queued("mask")) !== undefined);
      const detections = detectionsSchema.parse(await artifact("detections.json"));
      const maskJob: DataOf<"mask"> = parseJobData("mask", await queued("mask"));
      assert.deepEqual(maskJob.detected, detections.boxes, "the boxes ride in the mask job");

      // Mask reads no detections.json: without it, the image still gets its mask.
      await rename(join(dir, "detections.json"), join(dir, "detections.json.away"));
      await runPools(["mask"], "the finalize job", async () => (await queued("finalize")) !== undefined);
      await rename(join(dir, "detections.json.away"), join(dir, "detections.json"));
      const maskInfo = maskInfoSchema.parse(await artifact("mask.json"));
      const finalizeJob = parseJobData("finalize", await queued("finalize"));
      assert.deepEqual(finalizeJob.promptVars, maskInfo.promptVars, "the prompt variables ride in the finalize job");

      fleet = startFleet(config, ["generate", "finalize"]);
      const status = await waitForRun(redis, "contract", { intervalMs: 100, timeoutMs: 60_000 });
      assert.deepEqual([status.finished, status.succeeded], [1, 1]);

      const written = await artifact("manifest.json");
      const manifest = manifestSchema.parse(written);
      assert.deepEqual(manifest, written, "the schema knows every field finalize writes");
      assert.deepEqual(manifest.detections, detections, "detections.json, as written");
      assert.deepEqual(manifest.mask, maskInfo, "mask.json, as written");
      const prompt = `a ${maskInfo.promptVars.color} ${maskInfo.promptVars.label} on a marble counter`;
      assert.deepEqual(
        manifest.results.map((r) => [r.status, r.seed, r.prompt]),
        [
          ["ok", 34, prompt],
          ["ok", 35, prompt],
        ],
      );

      const published = JSON.parse(await readFile(manifestSchemaPath, "utf8")) as JsonSchema;
      assert.deepEqual(violations(published, written), []);
      // The check finds what a broken manifest lacks or gets wrong.
      const broken = structuredClone(written) as { results: { status?: string }[]; finishedAt: unknown; mask: { stats: { area: unknown } } };
      delete broken.results[0]?.status;
      broken.finishedAt = 1;
      broken.mask.stats.area = "big";
      assert.deepEqual(violations(published, broken), ["$.mask.stats.area: string, not integer", "$.results[0]: fits 0 of oneOf", "$.finishedAt: integer, not string"]);
    });
  });

  it("rolling update: an image payload handed on by an older detect is masked; one no stage of this version reads fails its image instead of vanishing", async () => {
    const redisUrl = await freshRedis(2);
    const models = await tinyModels();
    const dir = await scratchDir("contract-rolling");
    await scratchDir("contract-rolling/in");
    for (const photo of ["chelsea.jpg", "coffee.jpg"]) await copyFile(join(repoRoot, "samples", "photos", photo), join(dir, "in", photo));
    const config = resolveConfig({ target: "auto", samModel: models.sam, out: join(dir, "out"), redisUrl, prompts: ["a {label}"], seeds: { from: 1, to: 1 }, attempts: 1 });
    const redis = connect(redisUrl);
    const queues = openQueues(redis);
    let fleet: Fleet | undefined;
    try {
      await enqueueImages(redis, config, "rolling", discoverInputs([join(dir, "in")]));
      const state = new RunState(redis);
      const tag = (await state.tag("rolling")) as string;
      const records = await state.images("rolling");
      assert.equal(records.length, 2);
      const [first, second] = records as [(typeof records)[number], (typeof records)[number]];
      const [handedOn, unreadable] = await Promise.all(records.map(async (r) => (await queues.detect.getJob(jobIdOf(tag, r.imageId)))?.data));
      assert.equal(handedOn?.kind, "detect");
      // This version's detect finds the boxes and writes detections.json; its mask jobs are then swapped for
      // what an older detect worker queued: its own payload (kind "detect", no boxes) under the image's job id.
      fleet = startFleet(config, ["detect"]);
      await until("the mask jobs", async () => (await queues.mask.getJobCounts("wait")).wait === 2, 60_000, 50);
      await fleet.close();
      for (const r of records) await (await queues.mask.getJob(jobIdOf(tag, r.imageId)))?.remove();
      await queues.mask.add("mask", handedOn as unknown as DataOf<"mask">, { jobId: jobIdOf(tag, first.imageId) });
      // A payload of a kind the mask stage cannot take, naming its image.
      await queues.mask.add("mask", { ...unreadable, kind: "generate" } as unknown as DataOf<"mask">, { jobId: jobIdOf(tag, second.imageId) });
      fleet = startFleet(config, ["mask", "generate", "finalize"]);
      const status = await waitForRun(redis, "rolling", { intervalMs: 100, timeoutMs: 60_000 });
      assert.deepEqual([status.finished, status.succeeded, status.failed], [2, 1, 1]);
      const failed = await state.failures("rolling", 10);
      assert.deepEqual(
        failed.map((f) => [f.name, f.stage]),
        [[unreadable?.name, "mask"]],
      );
    } finally {
      await fleet?.close();
      await Promise.all(Object.values(queues).map((q) => q.close()));
      await redis.quit();
    }
  });
});
