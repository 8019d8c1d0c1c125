/**
 * Every input of a list of specs as one stream, in an order that is the same on every walk of
 * unchanged inputs, with memory bounded by one folder listing (per level), one S3 page or one
 * manifest row, never the catalog; and after each item a cursor that resumes the stream right
 * after it, so a producer killed at any point starts again from its last checkpoint.
 *
 * A cursor names the spec list (a fingerprint of the specs, local paths resolved), the spec, and
 * the position in it: for an S3 prefix the last key yielded (the listing resumes with StartAfter,
 * earlier pages are not listed again), for a manifest the row number, for a folder, glob or file
 * how many of its items were yielded (the walk is repeated and those skipped: cheap next to
 * enqueueing them). Duplicates across specs are not removed: the enqueue side does that.
 */
import { createHash } from "node:crypto";
import { resolve } from "node:path";
import type { AwsSettings } from "../runtime/aws.js";
import { isStoreUri } from "../storage/index.js";
import { localSpecKind, streamManifest, walkLocal, type FollowedLink, type SkippedInput, type StreamedInput } from "./discover.js";
import { listStoreInputs } from "./discover-store.js";

export type { StreamedInput } from "./discover.js";

/** Opaque, JSON-serialisable resume point: resuming after it yields exactly the items after the last one yielded before it. */
export type InputCursor = string;

export interface InputStreamOptions {
  /** Resume after this cursor (from a previous stream's yielded cursor). */
  after?: InputCursor;
  /** S3 page size (default 1000). */
  pageSize?: number;
  /** Called for each file found and not used (same SkippedInput/reasons as discover.ts), and each symlinked folder followed. */
  onSkipped?: (s: SkippedInput) => void;
  onFollowed?: (f: FollowedLink) => void;
}

/** What a cursor holds. */
interface CursorState {
  v: 1;
  /** The fingerprint of the spec list it belongs to. */
  specs: string;
  /** The index of the spec of the last item yielded. */
  spec: number;
  /** Where in that spec: the S3 key of the last item, or how many of the spec's items were yielded. */
  at: string | number;
}

/** Items skipped on resume between two turns of the event loop (a local walk skips without I/O waits). */
const skipsPerTurn = 10_000;

/** Every input of these specs in a deterministic order, one at a time, with the cursor that resumes right after it. */
export async function* streamInputs(specs: readonly string[], aws: AwsSettings, opts: InputStreamOptions = {}): AsyncGenerator<{ item: StreamedInput; cursor: InputCursor }> {
  const fingerprint = fingerprintOf(specs);
  const from = opts.after === undefined ? undefined : parseCursor(opts.after, specs, fingerprint);
  const events = { onSkipped: opts.onSkipped, onFollowed: opts.onFollowed };
  for (let index = from?.spec ?? 0; index < specs.length; index++) {
    const spec = specs[index] as string;
    const resumeAt = index === from?.spec ? from.at : undefined;
    const cursor = (at: string | number): InputCursor => JSON.stringify({ v: 1, specs: fingerprint, spec: index, at } satisfies CursorState);
    if (isStoreUri(spec)) {
      const startAfter = typeof resumeAt === "string" ? resumeAt : undefined;
      const listed = listStoreInputs(spec, aws, { ...(opts.pageSize !== undefined && { pageSize: opts.pageSize }), ...(startAfter !== undefined && { startAfter }) });
      for await (const { item, key } of listed) yield { item, cursor: cursor(key) };
      continue;
    }
    const done = typeof resumeAt === "number" ? resumeAt : 0;
    if (localSpecKind(spec) === "manifest") {
      let row = done;
      for await (const item of streamManifest(spec, done)) yield { item, cursor: cursor(++row) };
      continue;
    }
    let n = 0;
    for (const item of walkLocal(spec, events)) {
      if (++n > done) yield { item, cursor: cursor(n) };
      else if (n % skipsPerTurn === 0) await new Promise((r) => setImmediate(r));
    }
  }
}

/** The spec list a cursor belongs to, local paths resolved: "./in" and "in" are the same input, and so is the absolute path. */
function fingerprintOf(specs: readonly string[]): string {
  const normalised = specs.map((s) => (isStoreUri(s) ? s : resolve(s)));
  return createHash("sha256").update(JSON.stringify(normalised)).digest("hex").slice(0, 16);
}

/** A cursor's state, checked against the spec list it is used with. */
function parseCursor(cursor: InputCursor, specs: readonly string[], fingerprint: string): CursorState {
  let state: Partial<CursorState> | undefined;
  try {
    state = JSON.parse(cursor) as Partial<CursorState>;
  } catch {
    state = undefined;
  }
  if (state?.v !== 1 || typeof state.specs !== "string" || !Number.isInteger(state.spec) || (typeof state.at !== "string" && typeof state.at !== "number")) {
    throw new Error(`not an input cursor: ${JSON.stringify(cursor).slice(0, 200)}`);
  }
  if (state.specs !== fingerprint) throw new Error(`input cursor is for another list of inputs than ${specs.join(" ")}: start over without it`);
  const spec = state.spec as number;
  const uri = specs[spec];
  const fits = uri !== undefined && (isStoreUri(uri) ? typeof state.at === "string" : Number.isInteger(state.at) && (state.at as number) >= 0);
  if (!fits) throw new Error(`input cursor does not fit input ${spec + 1} of ${specs.join(" ")}: start over without it`);
  return state as CursorState;
}
