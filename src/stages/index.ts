/** The stage registry: each stage's work on one job. */
import type { Job } from "bullmq";
import type { Stage } from "../pipeline/stages.js";
import type { WorkerContext } from "./context.js";
import { detectStage } from "./detect.js";
import { maskStage } from "./mask.js";
import { generateStage } from "./generate.js";
import { finalizeStage } from "./finalize.js";

/** A stage's work on one job; returns what the job stores as its result. */
export type StageProcessor = (job: Job, ctx: WorkerContext) => Promise<unknown>;

export const stageProcessors: Record<Stage, StageProcessor> = {
  detect: detectStage,
  mask: maskStage,
  generate: generateStage,
  finalize: finalizeStage,
};
