/**
 * Finalize: runs once all of an image's generate jobs ended; writes manifest.json (detections,
 * mask stats, every result with its status) and a contact sheet (original | mask | results).
 */
import type { Job } from "bullmq";
import { generateJobId, generateJobsOf, imageJobSchema, outputKeys } from "../../shared/jobs.js";
import { decodeImage } from "../../shared/image.js";
import type { PromptVars } from "../../shared/prompts.js";
import type { Mask, RgbImage } from "../../shared/types.js";
import type { WorkerContext } from "../context.js";
import { decodeMask, type GenerateResult } from "../generate/stage.js";
import { contactSheet } from "./contact-sheet.js";

const sheetResults = 22;

export async function finalizeStage(job: Job, ctx: WorkerContext): Promise<{ ok: number; failed: number }> {
  const data = imageJobSchema.parse(job.data);
  const store = ctx.store(data.out);
  const keys = outputKeys(data.outPrefix);
  const done = Object.values(await job.getChildrenValues<GenerateResult>());
  // Failed children, keyed "<prefix>:generate:<job id>" -> reason.
  const failures = await job.getIgnoredChildrenFailures();
  const failureOf = (jobId: string) => Object.entries(failures).find(([key]) => key.endsWith(`:${jobId}`))?.[1];
  const byKey = new Map(done.map((r) => [r.resultKey, r]));
  const maskInfo = JSON.parse((await store.read(keys.maskInfo)).toString("utf8")) as { promptVars?: PromptVars };
  // Every expected result, in prompt x seed order, with its status.
  const results = generateJobsOf(data, maskInfo.promptVars).map((g) => {
    const r = byKey.get(g.resultKey);
    return r
      ? { status: "ok" as const, key: g.resultKey, prompt: g.prompt, promptIndex: g.promptIndex, seed: g.seed, generator: r.generator, ms: r.ms, reused: r.reused }
      : { status: "failed" as const, key: g.resultKey, prompt: g.prompt, promptIndex: g.promptIndex, seed: g.seed, generator: data.options.generator, reason: failureOf(generateJobId(g)) ?? "unknown" };
  });
  const manifest = {
    imageId: data.imageId,
    name: data.name,
    input: data.input,
    runId: data.runId,
    options: data.options,
    detections: JSON.parse((await store.read(keys.detections)).toString("utf8")),
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
  if (ok === 0) await ctx.runState.failed(data.imageId, "generate", `every generate job failed: ${Object.values(failures)[0] ?? "unknown reason"}`);
  else await ctx.runState.stageDone(data.imageId, "generate");
  await ctx.runState.stageDone(data.imageId, "finalize");
  return { ok, failed: results.length - ok };
}
