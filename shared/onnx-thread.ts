/**
 * The worker-thread side of shared/onnx.ts: one onnxruntime session per thread. onnxruntime-node
 * runs a model synchronously on the calling thread, so a session on the main thread would block
 * the event loop for the whole run (48 s for SAM ViT-H on 2 cores); BullMQ could not renew job
 * locks, and the metrics server and Redis would go unanswered. Here the run blocks only this thread.
 *
 * Messages in: {op: "run", id, feeds, fetches} and {op: "release", id}. Out: {id, outputs} or
 * {id, error}. Tensors cross as {type, data, dims}; the typed arrays are copied (a few MB at most).
 */
import { parentPort, workerData } from "node:worker_threads";
import * as ort from "onnxruntime-node";

export interface WireTensor {
  type: ort.Tensor.Type;
  data: ort.Tensor.DataType;
  dims: readonly number[];
}

export type Request =
  | { op: "run"; id: number; feeds: Record<string, WireTensor>; fetches?: readonly string[] }
  | { op: "release"; id: number };

export type Reply = { id: number; outputs?: Record<string, WireTensor>; error?: string };

/** What the thread reports once the session is loaded (or why it could not be). */
export type Ready =
  | { ready: true; inputNames: string[]; outputNames: string[]; inputMetadata: ort.InferenceSession.ValueMetadata[] }
  | { ready: false; error: string };

export interface ThreadData {
  modelPath: string;
  options: ort.InferenceSession.SessionOptions;
}

async function serve(): Promise<void> {
  const port = parentPort;
  if (!port) throw new Error("shared/onnx-thread.ts runs as a worker thread");
  const { modelPath, options } = workerData as ThreadData;
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(modelPath, options);
  } catch (err) {
    port.postMessage({ ready: false, error: err instanceof Error ? err.message : String(err) } satisfies Ready);
    return;
  }
  port.postMessage({ ready: true, inputNames: [...session.inputNames], outputNames: [...session.outputNames], inputMetadata: [...session.inputMetadata] } satisfies Ready);
  port.on("message", (req: Request) => {
    void handle(session, req).then(
      (reply) => {
        port.postMessage(reply);
        if (req.op === "release") port.close();
      },
      (err: unknown) => port.postMessage({ id: req.id, error: err instanceof Error ? err.message : String(err) } satisfies Reply),
    );
  });
}

async function handle(session: ort.InferenceSession, req: Request): Promise<Reply> {
  if (req.op === "release") {
    await session.release();
    return { id: req.id };
  }
  const feeds = Object.fromEntries(Object.entries(req.feeds).map(([name, t]) => [name, new ort.Tensor(t.type, t.data as never, t.dims)]));
  const out = req.fetches ? await session.run(feeds, [...req.fetches]) : await session.run(feeds);
  const outputs: Record<string, WireTensor> = {};
  for (const [name, t] of Object.entries(out)) outputs[name] = { type: t.type, data: t.data, dims: t.dims };
  return { id: req.id, outputs };
}

void serve();
