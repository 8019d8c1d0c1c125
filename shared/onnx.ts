/**
 * onnxruntime-node sessions, created once per model file per process: the execution provider
 * (CPU by default, CUDA only when asked and present; never a silent fall-back to CPU), thread
 * counts and full graph optimisation; plus a check of a session's input/output names against what
 * an adapter expects, so a wrong file fails at load time naming the file and the missing name.
 */
import { basename } from "node:path";
import { Worker } from "node:worker_threads";
import type * as ort from "onnxruntime-node";
import { Tensor } from "onnxruntime-node";
import { ConfigError, ModelError } from "./errors.js";
import type { Ready, Reply, Request, ThreadData, WireTensor } from "./onnx-thread.js";

export type ExecutionProvider = "cpu" | "cuda";
export { Tensor };

/** A loaded model. It runs on a worker thread of its own, so a long run never blocks the event loop. */
export interface InferenceSession {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  readonly inputMetadata: readonly ort.InferenceSession.ValueMetadata[];
  run(feeds: Record<string, ort.Tensor>, fetches?: readonly string[]): Promise<Record<string, ort.Tensor>>;
  /** Frees the session and ends its thread. */
  release(): Promise<void>;
}

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
    return await ThreadedSession.start(modelPath, options);
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

/**
 * The thread's entry. Built, it is onnx-thread.js next to this file. Under tsx (tests, benchmarks)
 * a worker does not inherit the TypeScript loader, so it registers tsx before importing the .ts.
 */
function startThread(data: ThreadData): Worker {
  const entry = new URL(import.meta.url.endsWith(".ts") ? "./onnx-thread.ts" : "./onnx-thread.js", import.meta.url);
  if (entry.pathname.endsWith(".js")) return new Worker(entry, { workerData: data });
  const tsx = import.meta.resolve("tsx/esm/api");
  const boot = `import { register } from ${JSON.stringify(tsx)}; register(); await import(${JSON.stringify(entry.href)});`;
  return new Worker(boot, { eval: true, workerData: data });
}

const toWire = (t: ort.Tensor): WireTensor => ({ type: t.type, data: t.data, dims: t.dims });

class ThreadedSession implements InferenceSession {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (r: Reply) => void; reject: (e: Error) => void }>();
  private failure: Error | undefined;

  private constructor(
    private readonly worker: Worker,
    readonly inputNames: readonly string[],
    readonly outputNames: readonly string[],
    readonly inputMetadata: readonly ort.InferenceSession.ValueMetadata[],
  ) {
    // The thread keeps the process alive only while a call is in flight, as a pending run would.
    worker.unref();
    worker.on("message", (reply: Reply) => {
      const p = this.pending.get(reply.id);
      this.pending.delete(reply.id);
      if (this.pending.size === 0) worker.unref();
      p?.resolve(reply);
    });
    const fail = (err: Error) => {
      this.failure = err;
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    };
    worker.on("error", fail);
    worker.on("exit", (code) => fail(new Error(`the onnxruntime thread exited (code ${code})`)));
  }

  static start(modelPath: string, options: ort.InferenceSession.SessionOptions): Promise<ThreadedSession> {
    const worker = startThread({ modelPath, options });
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      worker.once("error", onError);
      worker.once("message", (msg: Ready) => {
        worker.off("error", onError);
        if (!msg.ready) {
          void worker.terminate();
          reject(new Error(msg.error));
          return;
        }
        resolve(new ThreadedSession(worker, msg.inputNames, msg.outputNames, msg.inputMetadata));
      });
    });
  }

  private call(req: Request): Promise<Reply> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.pending.set(req.id, { resolve, reject });
      this.worker.ref();
      this.worker.postMessage(req);
    });
  }

  async run(feeds: Record<string, ort.Tensor>, fetches?: readonly string[]): Promise<Record<string, ort.Tensor>> {
    const wire = Object.fromEntries(Object.entries(feeds).map(([name, t]) => [name, toWire(t)]));
    const reply = await this.call({ op: "run", id: this.nextId++, feeds: wire, ...(fetches && { fetches }) });
    if (reply.error !== undefined) throw new Error(reply.error);
    return Object.fromEntries(Object.entries(reply.outputs ?? {}).map(([name, t]) => [name, new Tensor(t.type, t.data as never, t.dims)]));
  }

  async release(): Promise<void> {
    if (this.failure) return;
    const reply = await this.call({ op: "release", id: this.nextId++ });
    await this.worker.terminate();
    if (reply.error !== undefined) throw new Error(reply.error);
  }
}
