/**
 * Generate: image + mask + (prompt, seed) -> one result. A result already in the store is never
 * made again (no duplicate work, no double charge for paid generators).
 */
import type { Job } from "bullmq";
import sharp from "sharp";
import { ConfigError } from "../../shared/errors.js";
import { generateJobSchema, outputKeys, type GenerateJob } from "../../shared/jobs.js";
import { readInput } from "../../shared/input.js";
import { decodeImage, encodePng } from "../../shared/image.js";
import type { Mask } from "../../shared/types.js";
import type { WorkerContext } from "../context.js";
import { compositeBackground, parseBackground } from "./composite.js";

export interface GenerateResult {
  resultKey: string;
  promptIndex: number;
  prompt: string;
  seed: number;
  generator: string;
  ms: number;
  /** True when the result was already in the store and nothing was generated. */
  reused: boolean;
}

export async function generateStage(job: Job, ctx: WorkerContext): Promise<GenerateResult> {
  const g = generateJobSchema.parse(job.data);
  const { image: img } = g;
  const store = ctx.store(img.out);
  const started = performance.now();
  const base = { resultKey: g.resultKey, promptIndex: g.promptIndex, prompt: g.prompt, seed: g.seed, generator: img.options.generator };
  if (await store.exists(g.resultKey)) {
    await ctx.runState.resultDone(img.imageId, g.resultKey);
    return { ...base, ms: 0, reused: true };
  }
  if (img.options.generator !== "composite") {
    throw new ConfigError("generator", `${img.options.generator} is not available in this worker; use composite`);
  }
  const image = await decodeImage(await readInput(img.input, img.name), img.name, { maxPixels: img.options.maxPixels });
  const mask = await decodeMask(await store.read(outputKeys(img.outPrefix).mask));
  const out = await compositeBackground(image, mask, {
    background: await backgroundOf(g),
    featherPx: img.options.featherPx,
    mode: img.options.mode,
  });
  await store.write(g.resultKey, await encodePng(out));
  await ctx.runState.resultDone(img.imageId, g.resultKey);
  return { ...base, ms: Math.round(performance.now() - started), reused: false };
}

export async function decodeMask(png: Buffer): Promise<Mask> {
  const { data, info } = await sharp(png).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
  return { data: new Uint8Array(data.buffer, data.byteOffset, data.length), width: info.width, height: info.height };
}

type Background = Parameters<typeof compositeBackground>[2]["background"];

async function backgroundOf(g: GenerateJob): Promise<Background> {
  const { background, blurSigma, maxPixels } = g.image.options;
  const spec = parseBackground(background);
  if (spec.kind === "blur") return { kind: "blur", sigma: blurSigma };
  if (spec.kind === "color") return spec;
  return { kind: "image", image: await decodeImage(await readInput(spec.path), spec.path, { maxPixels }) };
}
