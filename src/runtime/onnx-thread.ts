/**
 * The worker-thread side of src/runtime/onnx.ts: the thread that holds a process's onnxruntime sessions.
 * onnxruntime-node runs a model synchronously on the calling thread, so a session on the main
 * thread would block the event loop for the whole run (48 s for SAM ViT-H on 2 cores); BullMQ could
 * not renew job locks, and the metrics server and Redis would go unanswered. Here a run blocks only
 * this thread. One thread serves every session of the process, so it starts once.
 *
 * Messages in: load {modelPath, options}, run {session, feeds, fetches}, release {session}, each
 * with an id; out: {id, ...result} or {id, error}. A session is known by its load's id. Tensors
 * cross as {type, data, dims}; the typed arrays are copied (a few MB at most).
 */
import { parentPort } from "node:worker_threads";
import * as ort from "onnxruntime-node";

export interface WireTensor {
  type: ort.Tensor.Type;
  data: ort.Tensor.DataType;
  dims: readonly number[];
}

export type Request =
  | { op: "load"; id: number; modelPath: string; options: ort.InferenceSession.SessionOptions }
  | { op: "run"; id: number; session: number; feeds: Record<string, WireTensor>; fetches?: readonly string[] }
  | { op: "release"; id: number; session: number };

export interface SessionInfo {
  inputNames: string[];
  outputNames: string[];
  inputMetadata: ort.InferenceSession.ValueMetadata[];
}

export interface Reply {
  id: number;
  error?: string;
  /** load */
  info?: SessionInfo;
  /** run */
  outputs?: Record<string, WireTensor>;
}

const sessions = new Map<number, ort.InferenceSession>();

async function handle(req: Request): Promise<Reply> {
  if (req.op === "load") {
    const session = await ort.InferenceSession.create(req.modelPath, req.options);
    sessions.set(req.id, session);
    return { id: req.id, info: { inputNames: [...session.inputNames], outputNames: [...session.outputNames], inputMetadata: [...session.inputMetadata] } };
  }
  const session = sessions.get(req.session);
  if (!session) throw new Error(`no session ${req.session} (released?)`);
  if (req.op === "release") {
    sessions.delete(req.session);
    await session.release();
    return { id: req.id };
  }
  const feeds = Object.fromEntries(Object.entries(req.feeds).map(([name, t]) => [name, new ort.Tensor(t.type, t.data as never, t.dims)]));
  const out = req.fetches ? await session.run(feeds, [...req.fetches]) : await session.run(feeds);
  const outputs: Record<string, WireTensor> = {};
  for (const [name, t] of Object.entries(out)) outputs[name] = { type: t.type, data: t.data, dims: t.dims };
  return { id: req.id, outputs };
}

const port = parentPort;
if (!port) throw new Error("src/runtime/onnx-thread.ts runs as a worker thread");
port.on("message", (req: Request) => {
  void handle(req).then(
    (reply) => port.postMessage(reply),
    (err: unknown) => port.postMessage({ id: req.id, error: err instanceof Error ? err.message : String(err) } satisfies Reply),
  );
});
