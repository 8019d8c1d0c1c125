/**
 * The cloud path end to end on loopback: S3 in and out, Titan through the real SDK against a
 * stand-in that throttles above a known rate, blocks one prompt and fails its first requests,
 * with generate pools in two separate worker processes under one global rate limit.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { resolveConfig } from "../src/config/config.js";
import { FatalServiceError } from "../src/runtime/errors.js";
import { RunState } from "../src/runs/run-state.js";
import { outPrefixOf } from "../src/pipeline/jobs.js";
import { enqueueImages } from "../src/producer/enqueue.js";
import { findInputs } from "../src/producer/inputs.js";
import { waitForRun } from "../src/runs/status.js";
import { startFleet } from "../src/fleet/fleet.js";
import { acceptedPerKey, acceptedRate, runAwsFleet, standInCredentials, startTitanControl } from "./scenarios/aws-fleet.js";
import { startBedrockStandIn } from "./standins/bedrock.js";
import { startRekognitionStandIn } from "./standins/rekognition.js";
import { startS3Server } from "./standins/s3-server.js";
import { freshRedis, repoRoot, scratchDir, tinyModels } from "./helpers.js";

describe("AWS backends end to end (stand-ins)", () => {
  it("every result exactly once under throttling, the filtered prompt recorded, 500s retried, the rate held", async () => {
    const redisUrl = await freshRedis(6);
    const models = await tinyModels();
    const prompts = ["a studio backdrop", "a forbidden beach", "a marble counter"];
    const seeds = { from: 1, to: 4 };
    const images = 6;
    const run = await runAwsFleet({
      redisUrl,
      samModel: models.sam,
      images,
      prompts,
      seeds,
      rate: "8/s",
      generateWorkers: 2,
      generateConcurrency: 4,
      bedrock: { throttleAbovePerSecond: 10, blockPrompts: ["forbidden"], failFirst: 3 },
    });
    const { requests, status, manifests } = run;
    const expected = images * prompts.length * 4;

    // The run finished; no image failed as a whole (one prompt of each is filtered, the rest succeed).
    assert.equal(status.finished, images, run.workerLogs.join(""));
    assert.equal(status.failed, 0);
    assert.equal(manifests.length, images);
    for (const m of manifests) {
      assert.equal(m.results.length, prompts.length * 4);
      for (const r of m.results) {
        if (r.prompt.includes("forbidden")) {
          assert.equal(r.status, "failed");
          assert.match(r.reason ?? "", /content filters/);
        } else {
          assert.equal(r.status, "ok", JSON.stringify(r));
        }
      }
    }

    // 500s were retried: the first requests failed, yet every allowed (image, prompt, seed) got one answer.
    assert.equal(requests.filter((r) => r.status === 500).length, 3);
    const accepted = acceptedPerKey(requests);
    assert.equal(accepted.size, expected - images * 4, "one accepted request per allowed (image, prompt, seed)");
    assert.ok(
      [...accepted.values()].every((n) => n === 1),
      "no result was paid for twice",
    );
    // The filtered prompt was asked once per (image, seed): recorded, never retried.
    const filtered = requests.filter((r) => r.prompt?.includes("forbidden") && r.status === 400);
    assert.equal(filtered.length, images * 4);

    // Each worker process passed the lifecycle gate: Titan v2 looked up, Legacy, a warning, then on.
    const looked = run.controlRequests.filter((q) => q.operation === "GetFoundationModel" && q.path.includes("amazon.titan-image-generator-v2"));
    assert.equal(looked.length, 2, "one lookup per generate worker");
    assert.ok(looked.every((q) => q.status === 200));
    assert.equal(run.workerLogs.join("").match(/Bedrock model amazon\.titan-image-generator-v2:0 is Legacy/g)?.length, 2, run.workerLogs.join(""));

    // The fleet-wide limiter held across the two worker processes.
    assert.ok(acceptedRate(requests) <= 8 * 1.1, `accepted ${acceptedRate(requests).toFixed(2)}/s with the rate set to 8/s`);

    // Outputs: every result and the per-image files are in the output bucket, written once each.
    const puts = run.s3.requests.filter((r) => r.op === "PutObject" && r.bucket === "out-bucket" && r.key.includes("/results/"));
    assert.equal(puts.length, expected - images * 4);
    assert.equal(new Set(puts.map((p) => p.key)).size, puts.length);
  });
});

describe("a service that refuses every request (stand-ins)", () => {
  it("access denied stops the generate pool with one clear error; the job goes back to the queue unspent", async () => {
    Object.assign(process.env, standInCredentials);
    const redisUrl = await freshRedis(8);
    const models = await tinyModels();
    const bedrock = await startBedrockStandIn({ denyAccess: true });
    // Nothing in-process asks the control plane; should anything, it must be a stand-in.
    const control = await startTitanControl();
    const config = resolveConfig({
      target: "auto",
      samModel: models.sam,
      generator: "titan",
      prompts: ["a studio backdrop"],
      seeds: { from: 1, to: 1 },
      out: await scratchDir("aws-denied-out"),
      redisUrl,
      bedrockEndpoint: bedrock.endpoint,
      // No limiter, as before the adaptive rate: the first request goes straight out.
      rate: "unlimited",
    });
    const fleet = startFleet(config, ["detect", "mask", "generate", "finalize"]);
    try {
      const items = await findInputs([join(repoRoot, "samples/photos/coffee.jpg")], { region: config.region });
      await enqueueImages(fleet.ctx.redis, config, "denied", items);
      await assert.rejects(fleet.fatal, (err: unknown) => err instanceof FatalServiceError && /AccessDenied|not authorized|access/i.test(err.message));
      assert.equal(bedrock.requests.length, 1, "one request, then the pool stopped");
      const [job] = await fleet.ctx.queues.generate.getJobs(["delayed", "waiting"]);
      assert.ok(job, "the generate job is back in the queue");
      assert.equal(job.attemptsMade, 0, "no attempt spent");
      assert.equal((await fleet.ctx.queues.generate.getJobCounts("failed")).failed, 0);
    } finally {
      await fleet.close();
      await bedrock.close();
      await control.close();
    }
  });
});

describe("Rekognition in the detect stage (stand-ins)", () => {
  it("a label target finds boxes through S3Object, fills {label} and {color}, an image without the object fails alone; a re-run writes nothing", async () => {
    Object.assign(process.env, standInCredentials);
    const redisUrl = await freshRedis(7);
    const models = await tinyModels();
    const s3 = await startS3Server();
    s3.createBucket("catalog-bucket");
    s3.createBucket("out-bucket");
    const coffee = await readFile(join(repoRoot, "samples/photos/coffee.jpg"));
    const rocket = await readFile(join(repoRoot, "samples/photos/rocket.jpg"));
    s3.putObject("catalog-bucket", "shop/cup.jpg", coffee, "image/jpeg");
    s3.putObject("catalog-bucket", "shop/rocket.jpg", rocket, "image/jpeg");
    // The stand-in sees a "Cup" in the coffee photo only: a box over its cup and saucer, partly outside the frame.
    const rekognition = await startRekognitionStandIn({
      s3Objects: new Map([
        ["catalog-bucket/shop/cup.jpg", coffee],
        ["catalog-bucket/shop/rocket.jpg", rocket],
      ]),
      answer: (call) =>
        call.image.s3?.key === "shop/cup.jpg"
          ? { Labels: [{ Name: "Cup", Confidence: 97, Instances: [{ Confidence: 96, BoundingBox: { Left: 0.125, Top: -0.05, Width: 0.675, Height: 1 } }] }] }
          : { Labels: [] },
    });
    const config = resolveConfig({
      target: "Cup",
      detector: "rekognition",
      minConfidence: 0.5,
      samModel: models.sam,
      prompts: ["a {color} {label} on a marble counter"],
      seeds: { from: 7, to: 7 },
      out: "s3://out-bucket/rek/",
      redisUrl,
      s3Endpoint: s3.endpoint,
      rekognitionEndpoint: rekognition.endpoint,
    });
    const fleet = startFleet(config, ["detect", "mask", "generate", "finalize"]);
    try {
      const items = await findInputs(["s3://catalog-bucket/shop/"], { region: config.region, endpoints: { s3: s3.endpoint } });
      await enqueueImages(fleet.ctx.redis, config, "rek", items);
      const status = await waitForRun(fleet.ctx.redis, "rek", { intervalMs: 100, timeoutMs: 60_000 });
      assert.equal(status.finished, 2);
      const images = await new RunState(fleet.ctx.redis).images("rek");
      // The failure record names the image that failed; the run keeps no names of the others.
      const noCup = images.find((i) => i.name === "rocket.jpg");
      const found = images.find((i) => i !== noCup);
      assert.ok(found && noCup && images.length === 2);
      const cup = { ...found, outPrefix: outPrefixOf("cup.jpg", found.imageId) };
      assert.equal(noCup.failedStage, "detect");
      assert.equal(noCup.reason, "rocket.jpg: no Cup found");
      assert.equal(cup.failedStage, undefined, cup.reason);

      // Both were sent by reference with the label filter and the confidence threshold.
      const sent = rekognition.requests.filter((r) => r.op === "DetectLabels");
      assert.equal(sent.length, 2);
      assert.ok(sent.every((r) => r.image?.kind === "s3" && r.image.s3?.bucket === "catalog-bucket"));
      const settings = sent[0]?.request?.Settings as { GeneralLabels: { LabelInclusionFilters: string[] } };
      assert.deepEqual(settings.GeneralLabels.LabelInclusionFilters, ["Cup"]);
      assert.equal(sent[0]?.request?.MinConfidence, 50);
      assert.deepEqual(rekognition.invalid(), []);

      // The box came back in pixels of the 600x400 photo, clamped at the top edge.
      const manifest = JSON.parse(s3.getObject("out-bucket", `rek/${cup.outPrefix}/manifest.json`)?.body.toString("utf8") ?? "null");
      assert.deepEqual(
        manifest.detections.boxes.map((b: { x0: number; y0: number; x1: number; y1: number; label: string }) => [b.x0, b.y0, b.x1, b.y1, b.label]),
        [[75, 0, 480, 380, "Cup"]],
      );
      assert.equal(manifest.detections.detector, "rekognition:labels");
      // {label} from the detection, {color} from the photo's background (the coffee photo's wooden table).
      assert.equal(manifest.results[0].prompt, `a ${manifest.mask.promptVars.color} cup on a marble counter`);
      assert.equal(manifest.mask.promptVars.label, "cup");
      assert.ok(["brown", "orange", "red"].includes(manifest.mask.promptVars.color), manifest.mask.promptVars.color);

      // The same catalog in a new run: its stored detections are reused (the one that found no cup
      // too), so nothing is asked of Rekognition again; only the manifest and contact sheet are written.
      s3.resetCounts();
      const again = await enqueueImages(fleet.ctx.redis, config, "rek-again", items);
      assert.deepEqual([again.added, again.alreadyKnown], [2, 0]);
      const status2 = await waitForRun(fleet.ctx.redis, "rek-again", { intervalMs: 100, timeoutMs: 30_000 });
      assert.deepEqual([status2.succeeded, status2.failed], [1, 1]);
      assert.equal((await new RunState(fleet.ctx.redis).failures("rek-again", 10))[0]?.reason, "rocket.jpg: no Cup found");
      assert.equal(rekognition.requests.length, 2);
      const written = s3.requests
        .filter((r) => r.op === "PutObject")
        .map((r) => r.key?.slice(r.key.lastIndexOf("/") + 1))
        .sort();
      assert.deepEqual(written, ["contact-sheet.jpg", "manifest.json"]);
    } finally {
      await fleet.close();
      await rekognition.close();
      await s3.close();
    }
  });
});
