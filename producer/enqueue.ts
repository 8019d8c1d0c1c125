/**
 * The producer: turns inputs into detect jobs with deterministic ids, grouped under a run id.
 * Enqueueing the same images with the same options again adds no job.
 */
import { createReadStream } from "node:fs";
import { createHash } from "node:crypto";
import type { Redis } from "ioredis";
import type { Config } from "../shared/config.js";
import { ConfigError } from "../shared/errors.js";
import { imageIdOf, imageJobSchema, outPrefixOf, pickImageOptions, generateJobsOf, type ImageJob } from "../shared/jobs.js";
import { jobOptions, openQueue } from "../shared/queues.js";
import { parseBackground } from "../workers/generate/composite.js";
import { RunState } from "../shared/run-state.js";
import { openStore } from "../shared/storage/index.js";
import type { InputItem } from "./discover.js";

export interface EnqueueSummary {
  runId: string;
  images: number;
  added: number;
  alreadyKnown: number;
}

/** Options that cannot work are refused before anything is enqueued. */
export function checkRunnable(config: Config): void {
  const { target, detector, generator } = config;
  if (detector === "local" && !["face", "auto", "boxes"].includes(target)) {
    throw new ConfigError("target", `"${target}" needs a text-prompted detector: use face, auto or boxes with the local detector`);
  }
  if (detector !== "local") throw new ConfigError("detector", `${detector} is not available in this version; use local`);
  if (generator !== "composite") throw new ConfigError("generator", `${generator} is not available in this version; use composite`);
  if (generator === "composite") parseBackground(config.background);
  openStore(config.out);
}

export async function hashFile(path: string): Promise<Buffer> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest();
}

export function newRunId(): string {
  const stamp = new Date().toISOString().replace(/[-:]/g, "").replace(/\..*$/, "").replace("T", "-");
  return `run-${stamp}-${Math.random().toString(36).slice(2, 6)}`;
}

export async function enqueueImages(
  redis: Redis,
  config: Config,
  runId: string,
  items: InputItem[],
  onProgress?: (done: number, total: number) => void,
): Promise<EnqueueSummary> {
  checkRunnable(config);
  if (config.target === "boxes") {
    const missing = items.find((i) => !i.boxes?.length);
    if (missing) throw new ConfigError("target", `target "boxes" needs boxes for every image; ${missing.name} has none`);
  }
  const base = pickImageOptions(config);
  const queue = openQueue("detect", redis);
  const state = new RunState(redis);
  const out = openStore(config.out).root;
  let added = 0;
  try {
    for (const [i, item] of items.entries()) {
      const options = item.prompts ? { ...base, prompts: item.prompts } : base;
      const boxes = config.target === "boxes" ? item.boxes : undefined;
      // The content hash of an unreadable file is still stable: the detect stage reports why it fails.
      const content = await hashFile(item.path).catch((err: Error) => Buffer.from(`unreadable:${item.path}:${err.message}`));
      const imageId = imageIdOf(content, out, options, boxes);
      const job: ImageJob = imageJobSchema.parse({
        runId,
        imageId,
        input: item.path,
        name: item.name,
        out,
        outPrefix: outPrefixOf(item.name, imageId),
        options,
        boxes,
      });
      const isNew = await state.register(runId, { imageId, name: item.name, outPrefix: job.outPrefix, genTotal: generateJobsOf(job).length });
      if (isNew) {
        await queue.add("detect", job, { ...jobOptions(config.attempts), jobId: imageId });
        added++;
      }
      onProgress?.(i + 1, items.length);
    }
  } finally {
    await queue.close();
  }
  return { runId, images: items.length, added, alreadyKnown: items.length - added };
}
