/**
 * onnxruntime-node sessions, created once per model file per process: the execution provider
 * (CPU by default, CUDA only when asked and present; never a silent fall-back to CPU), thread
 * counts and full graph optimisation; plus a check of a session's input/output names against what
 * an adapter expects, so a wrong file fails at load time naming the file and the missing name.
 */
import { basename } from "node:path";
import * as ort from "onnxruntime-node";
import { ConfigError, ModelError } from "./errors.js";

export type ExecutionProvider = "cpu" | "cuda";
export type InferenceSession = ort.InferenceSession;
export { Tensor } from "onnxruntime-node";

export interface SessionOptions {
  /** "cpu" (default) or "cuda". CUDA needs onnxruntime-node's CUDA binaries and a GPU; if they are missing the session fails. */
  executionProvider?: ExecutionProvider;
  /** Threads used inside one operator (onnxruntime's default when absent or 0: all physical cores). */
  intraOpThreads?: number;
  /** Threads used to run independent operators in parallel (onnxruntime's default when absent or 0). */
  interOpThreads?: number;
}

function threads(value: number | undefined, key: string): number | undefined {
  if (value === undefined || value === 0) return undefined;
  if (!Number.isInteger(value) || value < 0) throw new ConfigError(key, `expected a whole number >= 0, got ${value}`);
  return value;
}

/** Loads one .onnx file (external weight files next to it are found by onnxruntime). */
export async function createSession(modelPath: string, opts: SessionOptions = {}): Promise<InferenceSession> {
  const ep = opts.executionProvider ?? "cpu";
  if (ep !== "cpu" && ep !== "cuda") throw new ConfigError("executionProvider", `expected "cpu" or "cuda", got ${JSON.stringify(ep)}`);
  // onnxruntime-node rejects keys set to undefined: add the thread counts only when given.
  const intra = threads(opts.intraOpThreads, "threads");
  const inter = threads(opts.interOpThreads, "interOpThreads");
  const options: ort.InferenceSession.SessionOptions = {
    executionProviders: [ep],
    graphOptimizationLevel: "all",
    // Photos come in every aspect ratio, so the encoder's input shape changes from job to job. A
    // memory pattern is planned per shape and kept: on the ViT-B-sized encoder RSS grew from 3.8 to
    // 7.2 GB over five shapes and each new shape cost a slower run; without it RSS stays flat.
    enableMemPattern: false,
    ...(intra !== undefined && { intraOpNumThreads: intra }),
    ...(inter !== undefined && { interOpNumThreads: inter }),
  };
  try {
    return await ort.InferenceSession.create(modelPath, options);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    if (ep === "cuda" && /cuda|shared library|providers/i.test(reason)) {
      throw new ConfigError(
        "executionProvider",
        `CUDA was asked for but onnxruntime could not start it (${reason.trim()}). ` +
          "Install onnxruntime-node's CUDA binaries on this GPU host (ONNXRUNTIME_NODE_INSTALL_CUDA=v12 npm rebuild onnxruntime-node) " +
          "with CUDA 12 and cuDNN 9, or set executionProvider to cpu.",
      );
    }
    throw new ModelError(`${modelPath}: onnxruntime could not load this model: ${reason.trim()}`, { cause: err });
  }
}

/** Names an adapter needs from one session. Extra inputs/outputs in the file are not an error. */
export interface ExpectedIO {
  inputs: readonly string[];
  outputs: readonly string[];
}

/** Throws a ModelError naming the file, what is missing and what the file has instead. */
export function checkSessionIO(session: InferenceSession, modelPath: string, expected: ExpectedIO, what = "model"): void {
  const missingIn = expected.inputs.filter((n) => !session.inputNames.includes(n));
  const missingOut = expected.outputs.filter((n) => !session.outputNames.includes(n));
  if (missingIn.length === 0 && missingOut.length === 0) return;
  const parts: string[] = [];
  if (missingIn.length) parts.push(`input ${missingIn.map((n) => JSON.stringify(n)).join(", ")} missing (it has ${session.inputNames.join(", ") || "none"})`);
  if (missingOut.length) parts.push(`output ${missingOut.map((n) => JSON.stringify(n)).join(", ")} missing (it has ${session.outputNames.join(", ") || "none"})`);
  throw new ModelError(`${basename(modelPath)} is not a ${what}: ${parts.join("; ")} [${modelPath}]`);
}

/** Declared shape of a tensor input (numbers for fixed dims, strings for symbolic ones), or undefined. */
export function inputShape(session: InferenceSession, name: string): ReadonlyArray<number | string> | undefined {
  const meta = session.inputMetadata.find((m) => m.name === name);
  return meta?.isTensor ? meta.shape : undefined;
}
