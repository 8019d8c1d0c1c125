/**
 * Finalize: runs once all of an image's generate jobs ended; writes manifest.json (detections,
 * mask stats, every result with its status) and a contact sheet (original | mask | results).
 */
import type { Job } from "bullmq";
import { generateJobId, generateJobsOf, outputKeys, parseJobData, queuedImageSchema, type ImageJob, type QueuedFinalize } from "../pipeline/jobs.js";
import { detectionsSchema, generateResultSchema, maskInfoSchema, parseArtifact, type Manifest, type ManifestResult } from "../pipeline/artifacts.js";
import { normaliseReason } from "../runs/reasons.js";
import { causeOf, resultCauseOf, type FailureRecord } from "../runs/run-state.js";
import { decodeImage } from "../imaging/image.js";
import { decodeMask } from "../imaging/mask-codec.js";
import type { Mask, RgbImage } from "../imaging/types.js";
import type { WorkerContext } from "./context.js";
import { contactSheet } from "./contact-sheet.js";

const sheetResults = 22;

export async function finalizeStage(job: Job, ctx: WorkerContext): Promise<{ ok: number; failed: number }> {
  const queued = parseJobData("finalize", job.data);
  // The prompt variables come with the job: mask put them there, and mask.json is read for the manifest only.
  const { promptVars } = queued;
  const data = await ctx.imageJob(queued);
  const store = ctx.store(data.out);
  const keys = outputKeys(data.outPrefix);
  const done = Object.values(await job.getChildrenValues()).map((value) => generateResultSchema.parse(value));
  // Failed children, keyed "<prefix>:generate:<job id>" -> reason.
  const failures = await job.getIgnoredChildrenFailures();
  const failureOf = (jobId: string) => Object.entries(failures).find(([key]) => key.endsWith(`:${jobId}`))?.[1];
  const byKey = new Map(done.map((r) => [r.resultKey, r]));
  const maskInfo = parseArtifact(maskInfoSchema, await store.read(keys.maskInfo), keys.maskInfo);
  // Every expected result, in prompt x seed order, with its status. A result without a job here
  // (`maskfleet retry` re-runs only the failed ones) is ok when it is in the store.
  const results = await Promise.all(
    generateJobsOf(data, promptVars).map(async (g): Promise<ManifestResult> => {
      const r = byKey.get(g.resultKey);
      const base = { key: g.resultKey, prompt: g.prompt, promptIndex: g.promptIndex, seed: g.seed };
      if (r) return { status: "ok", ...base, generator: r.generator, ms: r.ms, reused: r.reused };
      const reason = failureOf(generateJobId(String(job.id), g));
      if (reason === undefined && (await store.exists(g.resultKey))) return { status: "ok", ...base, generator: data.options.generator, reused: true };
      return { status: "failed", ...base, generator: data.options.generator, reason: reason ?? "unknown" };
    }),
  );
  const manifest: Manifest = {
    imageId: data.imageId,
    name: data.name,
    input: data.input,
    runId: data.runId,
    options: data.options,
    detections: parseArtifact(detectionsSchema, await store.read(keys.detections), keys.detections),
    mask: maskInfo,
    outputs: { mask: keys.mask, bedrockMask: keys.bedrockMask, cutout: keys.cutout, contactSheet: keys.contactSheet },
    results,
    finishedAt: new Date().toISOString(),
  };

  const image = await ctx.loadImage(data);
  const tiles: { image: RgbImage | Mask; caption: string }[] = [
    { image, caption: "original" },
    { image: await decodeMask(await store.read(keys.mask)), caption: "mask" },
  ];
  const shown = results.filter((x) => x.status === "ok");
  for (const r of shown.slice(0, sheetResults)) {
    tiles.push({ image: await decodeImage(await store.read(r.key), r.key), caption: `p${r.promptIndex} s${r.seed}` });
  }
  const note = shown.length > sheetResults ? `${shown.length - sheetResults} more results not shown` : undefined;
  await store.write(keys.contactSheet, await contactSheet(tiles, { note }));
  await store.write(keys.manifest, Buffer.from(JSON.stringify(manifest, null, 2)));
  const ok = shown.length;
  await recordOutcome(ctx, queued, data, results);
  return { ok, failed: results.length - ok };
}

/**
 * The image's outcome in its run's compact state: finished ok (any failed results grouped by
 * cause, and kept for `maskfleet retry`), or failed at generate when every result failed.
 */
export async function recordOutcome(
  ctx: WorkerContext,
  queued: QueuedFinalize,
  data: ImageJob,
  results: readonly ({ status: "ok" } | { status: "failed"; reason: string; promptIndex: number; seed: number })[],
): Promise<void> {
  const failed = results.flatMap((r) => (r.status === "failed" ? [r] : []));
  const okResults = results.length - failed.length;
  const allFailed = okResults === 0;
  const reason = allFailed ? `every generate job failed: ${failed[0]?.reason ?? "unknown reason"}` : (failed[0]?.reason ?? "");
  // Every failed result under its cause; an image none of whose results was made fails at generate too.
  const causes = new Map<string, number>();
  for (const f of failed) {
    const cause = resultCauseOf(normaliseReason(f.reason, data));
    causes.set(cause, (causes.get(cause) ?? 0) + 1);
  }
  if (allFailed) causes.set(causeOf("generate", normaliseReason(reason, data)), 1);
  const { promptVars } = queued;
  // The image as queued: `retry` makes the finalize job again from it and promptVars.
  const job = queuedImageSchema.parse(queued);
  const record: FailureRecord | undefined = failed.length
    ? { stage: "generate", reason, name: data.name, job, promptVars, failedResults: failed.map(({ promptIndex, seed }) => ({ promptIndex, seed })), okResults, causes: [...causes] }
    : undefined;
  await ctx.runState.finished(data.runId, data.imageId, {
    outcome: allFailed ? "failed" : "ok",
    stage: "generate",
    name: data.name,
    failedResults: failed.length,
    causes: [...causes],
    ...(record && { record }),
  });
}
