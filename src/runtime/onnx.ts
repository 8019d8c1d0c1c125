/**
 * onnxruntime-node sessions, created once per model file per process: the execution provider
 * (CPU by default, CUDA only when asked and present; never a silent fall-back to CPU), thread
 * counts and full graph optimisation; plus a check of a session's input/output names against what
 * an adapter expects, so a wrong file fails at load time naming the file and the missing name.
 */
import { availableParallelism } from "node:os";
import { basename } from "node:path";
import { Worker } from "node:worker_threads";
import type * as ort from "onnxruntime-node";
import { Tensor } from "onnxruntime-node";
import { ConfigError, ModelError } from "./errors.js";
import type { Reply, Request, SessionInfo, WireTensor } from "./onnx-thread.js";

export type ExecutionProvider = "cpu" | "cuda";
export { Tensor };

/** A loaded model. It runs on the process's onnxruntime thread, so a long run never blocks the event loop. */
export interface InferenceSession {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  readonly inputMetadata: readonly ort.InferenceSession.ValueMetadata[];
  run(feeds: Record<string, ort.Tensor>, fetches?: readonly string[]): Promise<Record<string, ort.Tensor>>;
  /** Frees the session. */
  release(): Promise<void>;
}

export interface SessionOptions {
  /** "cpu" (default) or "cuda". CUDA needs onnxruntime-node's CUDA binaries and a GPU; if they are missing the session fails. */
  executionProvider?: ExecutionProvider;
  /** Threads used inside one operator; absent or 0: onnxruntime's own default (the physical cores it detects: one on some 2-vCPU machines). */
  intraOpThreads?: number;
  /** Threads used to run independent operators in parallel (onnxruntime's default when absent or 0). */
  interOpThreads?: number;
}

/**
 * Intra-op threads per session when none are configured: the cores this process may use, shared
 * among the `concurrency` jobs that run models at once, at least 1.
 */
export function defaultIntraOpThreads(concurrency: number): number {
  return Math.max(1, Math.floor(availableParallelism() / concurrency));
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
          "Install onnxruntime-node's CUDA binaries on this GPU host (ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules/onnxruntime-node/script/install) " +
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
function startThread(): Worker {
  const entry = new URL(import.meta.url.endsWith(".ts") ? "./onnx-thread.ts" : "./onnx-thread.js", import.meta.url);
  if (entry.pathname.endsWith(".js")) return new Worker(entry);
  const tsx = import.meta.resolve("tsx/esm/api");
  const boot = `import { register } from ${JSON.stringify(tsx)}; register(); await import(${JSON.stringify(entry.href)});`;
  return new Worker(boot, { eval: true });
}

type Call = { [K in Request["op"]]: Omit<Extract<Request, { op: K }>, "id"> }[Request["op"]];

/**
 * The process's onnxruntime thread, started on the first session. It keeps the process alive only
 * while a call is in flight. If it dies, its calls fail, and the next session starts a new one.
 */
class SessionHost {
  private static current: SessionHost | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (r: Reply) => void; reject: (e: Error) => void }>();
  private failure: Error | undefined;

  static get(): SessionHost {
    if (!SessionHost.current || SessionHost.current.failure) SessionHost.current = new SessionHost(startThread());
    return SessionHost.current;
  }

  private constructor(private readonly worker: Worker) {
    worker.unref();
    worker.on("message", (reply: Reply) => {
      const p = this.pending.get(reply.id);
      this.pending.delete(reply.id);
      if (this.pending.size === 0) worker.unref();
      p?.resolve(reply);
    });
    const fail = (err: Error) => {
      this.failure ??= err;
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    };
    worker.on("error", fail);
    worker.on("exit", (code) => fail(new Error(`the onnxruntime thread exited (code ${code})`)));
  }

  get alive(): boolean {
    return this.failure === undefined;
  }

  async call(call: Call): Promise<Reply> {
    if (this.failure) throw this.failure;
    const id = this.nextId++;
    const reply = await new Promise<Reply>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.ref();
      this.worker.postMessage({ ...call, id } as Request);
    });
    if (reply.error !== undefined) throw new Error(reply.error);
    return reply;
  }
}

const toWire = (t: ort.Tensor): WireTensor => ({ type: t.type, data: t.data, dims: t.dims });

class ThreadedSession implements InferenceSession {
  private released = false;
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  readonly inputMetadata: readonly ort.InferenceSession.ValueMetadata[];

  private constructor(
    private readonly host: SessionHost,
    private readonly id: number,
    info: SessionInfo,
  ) {
    this.inputNames = info.inputNames;
    this.outputNames = info.outputNames;
    this.inputMetadata = info.inputMetadata;
  }

  static async start(modelPath: string, options: ort.InferenceSession.SessionOptions): Promise<ThreadedSession> {
    const host = SessionHost.get();
    const reply = await host.call({ op: "load", modelPath, options });
    return new ThreadedSession(host, reply.id, reply.info as SessionInfo);
  }

  async run(feeds: Record<string, ort.Tensor>, fetches?: readonly string[]): Promise<Record<string, ort.Tensor>> {
    if (this.released) throw new Error("the session was released");
    const wire = Object.fromEntries(Object.entries(feeds).map(([name, t]) => [name, toWire(t)]));
    const reply = await this.host.call({ op: "run", session: this.id, feeds: wire, ...(fetches && { fetches }) });
    return Object.fromEntries(Object.entries(reply.outputs ?? {}).map(([name, t]) => [name, new Tensor(t.type, t.data as never, t.dims)]));
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    if (!this.host.alive) return; // a dead thread has freed its sessions
    await this.host.call({ op: "release", session: this.id });
  }
}
