/**
 * Named models (src/models/manifest.json) and local model folders/files.
 *
 * - resolveModel(spec): a manifest name (downloaded into the cache on first use, sha256-checked)
 *   or a local path: a folder with model.json {format, task, files: {role: file}} plus the files,
 *   or one .onnx file for single-file formats. It never falls back to another model.
 * - pullModel(name): download + verify + atomic rename; an unpinned file (sha256 null) is refused
 *   unless allowUnverified, which prints the computed hash so it can be pinned.
 * - verifyModel(name): sha256 of the cached files against the manifest.
 *
 * Cache: opts.cacheDir, else $MASKFLEET_CACHE, else ~/.cache/maskfleet/models; one folder per model.
 */
import { createHash, randomBytes } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, readFile, rename, stat, unlink } from "node:fs/promises";
import { homedir } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import { Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { z } from "zod";
import { ModelError } from "../runtime/errors.js";
import { listZip, openZipEntry } from "./unzip.js";
// Imported (not read from disk) so the build copies it next to the compiled registry.
import manifestJson from "./manifest.json" with { type: "json" };

export const tasks = ["segment", "face-detect", "salient", "detect"] as const;
export type Task = (typeof tasks)[number];
export const formats = ["samexporter", "ultraface", "salient", "sam2", "hf-sam", "owlv2"] as const;
export type Format = (typeof formats)[number];

/** What each format (one adapter each) needs: its task and the file roles it loads. */
export const formatInfo: Record<Format, { task: Task; roles: readonly string[] }> = {
  samexporter: { task: "segment", roles: ["encoder", "decoder"] },
  ultraface: { task: "face-detect", roles: ["model"] },
  salient: { task: "salient", roles: ["model"] },
  sam2: { task: "segment", roles: ["encoder", "decoder"] },
  "hf-sam": { task: "segment", roles: ["encoder", "decoder"] },
  owlv2: { task: "detect", roles: ["model", "tokenizer"] },
};

/**
 * How a salient-object model wants its input and what its output means (model.json or manifest
 * `preprocess`): the image is resized to size [width, height], scaled to 0-1, then (x - mean) / std
 * per RGB channel, NCHW; the output [1, 1, h, w] is "logits" (sigmoid applied here) or "probability"
 * (already 0-1). input/output name the tensors when the file's names are not the usual ones.
 */
export const preprocessSchema = z.strictObject({
  size: z.tuple([z.number().int().min(16).max(4096), z.number().int().min(16).max(4096)]).default([1024, 1024]),
  mean: z.tuple([z.number(), z.number(), z.number()]),
  std: z.tuple([z.number().positive(), z.number().positive(), z.number().positive()]),
  output: z.enum(["logits", "probability"]),
  input: z.string().min(1).optional(),
  outputName: z.string().min(1).optional(),
});
export type Preprocess = z.infer<typeof preprocessSchema>;

const sha256Schema = z
  .string()
  .regex(/^[0-9a-f]{64}$/, "a sha256 is 64 lower-case hex digits")
  .nullable();
const fileSchema = z.strictObject({
  role: z.string().min(1),
  file: z.string().regex(/^[^/\\]+$/, "a plain file name"),
  url: z.url().optional(),
  sha256: sha256Schema,
  bytes: z.number().int().positive().nullable(),
});
const entrySchema = z
  .strictObject({
    name: z.string().regex(/^[a-z0-9][a-z0-9.-]*$/),
    task: z.enum(tasks),
    format: z.enum(formats),
    licence: z.string().min(1),
    description: z.string().min(1),
    /** What the model is the right choice for, and what it is not (shown by `maskfleet models list`). */
    goodFor: z.string().min(1).optional(),
    input: z.string().min(1),
    source: z.string().min(1),
    archive: z.strictObject({ url: z.url(), sha256: sha256Schema, bytes: z.number().int().positive().nullable() }).optional(),
    files: z.array(fileSchema).min(1),
    preprocess: preprocessSchema.optional(),
  })
  .refine((m) => formatInfo[m.format].task === m.task, { message: "task does not match the format" })
  .refine((m) => formatInfo[m.format].roles.every((r) => m.files.some((f) => f.role === r)), { message: "a role the format needs is missing" })
  .refine((m) => m.archive !== undefined || m.files.every((f) => f.url !== undefined), { message: "every file needs a url (or the model an archive)" })
  .refine((m) => m.format !== "salient" || m.preprocess !== undefined, { message: "a salient model needs preprocess" });

export type ModelEntry = z.infer<typeof entrySchema>;
export type ModelFile = ModelEntry["files"][number];

/** A model ready to load: absolute paths by role. */
export interface ResolvedModel {
  /** Manifest name, or the local path as given. */
  name: string;
  task: Task;
  format: Format;
  dir: string;
  files: Record<string, string>;
  origin: "manifest" | "local";
  /** Input/output conventions of formats that need them (salient), from model.json or the manifest. */
  preprocess?: Preprocess;
}

export interface RegistryOptions {
  /** Root of the download cache (a folder per model inside). */
  cacheDir?: string;
  /** Another manifest instead of src/models/manifest.json (tests). */
  manifest?: readonly ModelEntry[];
}

export interface PullOptions extends RegistryOptions {
  /** Download files the manifest has no sha256 for, and print their hash. Off by default. */
  allowUnverified?: boolean;
  /** Progress and notices (default: stderr). */
  log?: (line: string) => void;
}

export interface ResolveOptions extends PullOptions {
  /** Download a missing manifest model (default true). */
  download?: boolean;
  /** The task the caller needs; a model of another task is refused. */
  task?: Task;
}

let builtIn: ModelEntry[] | undefined;

function manifestOf(opts: RegistryOptions): readonly ModelEntry[] {
  if (opts.manifest) return opts.manifest;
  if (!builtIn) {
    const parsed = z.strictObject({ models: z.array(entrySchema) }).safeParse(manifestJson);
    if (!parsed.success) throw new ModelError(`src/models/manifest.json is invalid: ${z.prettifyError(parsed.error)}`);
    builtIn = parsed.data.models;
  }
  return builtIn;
}

/** Validates a manifest entry (for manifests given in options). */
export function parseModelEntry(value: unknown): ModelEntry {
  return entrySchema.parse(value);
}

export function listModels(opts: RegistryOptions = {}): readonly ModelEntry[] {
  return manifestOf(opts);
}

export function getModel(name: string, opts: RegistryOptions = {}): ModelEntry {
  const all = manifestOf(opts);
  const entry = all.find((m) => m.name === name);
  if (!entry) throw new ModelError(`unknown model "${name}"; the manifest has ${all.map((m) => m.name).join(", ")}`);
  return entry;
}

export function cacheRoot(opts: RegistryOptions = {}): string {
  const dir = opts.cacheDir ?? process.env.MASKFLEET_CACHE ?? join(homedir(), ".cache", "maskfleet", "models");
  return resolve(dir.replace(/^~(?=$|[/\\])/, homedir()));
}

/** The folder a manifest model lives in once pulled. */
export function modelDir(name: string, opts: RegistryOptions = {}): string {
  return join(cacheRoot(opts), getModel(name, opts).name);
}

const pullCommand = (name: string) => `maskfleet models pull ${name}`;

function byHandList(entry: ModelEntry, dir: string): string {
  const lines = entry.files.map((f) => `  ${join(dir, f.file)}  (${f.bytes ?? "?"} bytes, sha256 ${f.sha256 ?? "not pinned"})`);
  const from = entry.archive ? `extracted from ${entry.archive.url}` : "from the urls in src/models/manifest.json";
  return `${lines.join("\n")}\n(${from})`;
}

/**
 * Resolves a manifest name or a local path to files on disk, downloading a missing manifest model
 * unless opts.download is false. A failed download is a ModelError naming the pull command and the
 * exact paths to place the files by hand.
 */
export async function resolveModel(spec: string, opts: ResolveOptions = {}): Promise<ResolvedModel> {
  const entry = manifestOf(opts).find((m) => m.name === spec);
  const resolved = entry ? await resolveManifestModel(entry, opts) : await resolveLocal(spec, opts);
  if (opts.task && resolved.task !== opts.task) {
    throw new ModelError(`${spec} is a ${resolved.task} model (format ${resolved.format}); a ${opts.task} model is needed here`);
  }
  return resolved;
}

/**
 * Whether `spec` can name a `task` model here, without loading or downloading anything: a manifest
 * name of that task, or a local file or folder that resolves as one. The reason when not.
 */
export async function modelSpecProblem(spec: string, task: Task, opts: RegistryOptions = {}): Promise<string | undefined> {
  const entry = manifestOf(opts).find((m) => m.name === spec);
  if (entry) return entry.task === task ? undefined : `${spec} is a ${entry.task} model; a ${task} model is needed here`;
  try {
    // Not a manifest name, so nothing is downloaded: resolveModel reads the local path and checks its task.
    await resolveModel(spec, { ...opts, task, download: false });
    return undefined;
  } catch (err) {
    if (err instanceof ModelError) return err.message;
    throw err;
  }
}

async function resolveManifestModel(entry: ModelEntry, opts: ResolveOptions): Promise<ResolvedModel> {
  const dir = join(cacheRoot(opts), entry.name);
  const present = await Promise.all(entry.files.map((f) => fileLooksComplete(join(dir, f.file), f)));
  if (present.includes(false)) {
    if (opts.download === false) {
      throw new ModelError(
        `model "${entry.name}" is not in the cache and downloading is off. Run \`${pullCommand(entry.name)}\`, or place these files by hand:\n${byHandList(entry, dir)}`,
      );
    }
    await pullModel(entry.name, opts);
  }
  const files = Object.fromEntries(entry.files.map((f) => [f.role, join(dir, f.file)]));
  return { name: entry.name, task: entry.task, format: entry.format, dir, files, origin: "manifest", ...(entry.preprocess && { preprocess: entry.preprocess }) };
}

/** Present with the expected size (the full sha256 is checked when pulled and by verifyModel). */
async function fileLooksComplete(path: string, f: ModelFile): Promise<boolean> {
  const s = await stat(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT") return undefined;
    throw err;
  });
  return s !== undefined && s.isFile() && (f.bytes === null || s.size === f.bytes);
}

const localModelJson = z.strictObject({
  format: z.enum(formats),
  task: z.enum(tasks).optional(),
  files: z.record(z.string(), z.string().min(1)),
  name: z.string().optional(),
  preprocess: preprocessSchema.optional(),
});

async function resolveLocal(spec: string, opts: ResolveOptions): Promise<ResolvedModel> {
  const path = resolve(spec.replace(/^~(?=$|[/\\])/, homedir()));
  const s = await stat(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT" || err.code === "ENOTDIR") return undefined;
    throw err;
  });
  if (!s) {
    const names = manifestOf(opts).map((m) => m.name);
    throw new ModelError(`model "${spec}" is neither a manifest name (${names.join(", ")}) nor an existing file or folder (${path})`);
  }
  if (s.isDirectory()) return resolveFolder(spec, path);
  if (!path.endsWith(".onnx")) throw new ModelError(`${path}: expected a model folder (with model.json) or an .onnx file`);
  // A single .onnx is only unambiguous for single-file formats of the task asked for.
  const candidates = formats.filter((f) => formatInfo[f].roles.length === 1 && (!opts.task || formatInfo[f].task === opts.task));
  const format = candidates.length === 1 ? candidates[0] : undefined;
  if (!format) {
    throw new ModelError(
      `${path}: a single .onnx file is not enough for a ${opts.task ?? "model of unknown task"}; pass a folder with model.json ` +
        `{"format": ..., "files": {role: file}} (formats: ${formats.map((f) => `${f} needs ${formatInfo[f].roles.join(" + ")}`).join("; ")})`,
    );
  }
  const role = formatInfo[format].roles[0] as string;
  return { name: spec, task: formatInfo[format].task, format, dir: dirname(path), files: { [role]: path }, origin: "local" };
}

async function resolveFolder(spec: string, dir: string): Promise<ResolvedModel> {
  const jsonPath = join(dir, "model.json");
  const text = await readFile(jsonPath, "utf8").catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT")
      throw new ModelError(`${dir}: a model folder needs a model.json like {"format": "samexporter", "files": {"encoder": "encoder.onnx", "decoder": "decoder.onnx"}}`);
    throw err;
  });
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ModelError(`${jsonPath}: not valid JSON (${(err as Error).message})`, { cause: err });
  }
  const parsed = localModelJson.safeParse(raw);
  if (!parsed.success) throw new ModelError(`${jsonPath}: ${z.prettifyError(parsed.error)}`);
  const { format, task, files, preprocess } = parsed.data;
  const info = formatInfo[format];
  if (task && task !== info.task) throw new ModelError(`${jsonPath}: format ${format} is a ${info.task} format, not ${task}`);
  const missingRoles = info.roles.filter((r) => !(r in files));
  if (missingRoles.length) throw new ModelError(`${jsonPath}: files needs ${missingRoles.map((r) => `"${r}"`).join(", ")} for format ${format}`);
  const abs: Record<string, string> = {};
  for (const [role, file] of Object.entries(files)) {
    const p = resolve(dir, file);
    const fs = await stat(p).catch(() => undefined);
    if (!fs?.isFile()) throw new ModelError(`${jsonPath}: ${role} file ${p} does not exist`);
    abs[role] = p;
  }
  return { name: spec, task: info.task, format, dir, files: abs, origin: "local", ...(preprocess && { preprocess }) };
}

export interface PulledFile {
  role: string;
  path: string;
  sha256: string;
  /** false when it was already there and verified. */
  downloaded: boolean;
  /** false when the manifest pins no sha256 (downloaded with allowUnverified). */
  pinned: boolean;
}

/**
 * Downloads a manifest model into the cache. Each file is written to a temporary name in the same
 * folder, checked (size and sha256), then renamed into place; on any failure the temporary file is
 * removed, so the cache never holds a half-written or unverified file under its real name.
 */
export async function pullModel(name: string, opts: PullOptions = {}): Promise<{ name: string; dir: string; files: PulledFile[] }> {
  const entry = getModel(name, opts);
  const dir = join(cacheRoot(opts), entry.name);
  const log = opts.log ?? ((line: string) => void process.stderr.write(`${line}\n`));
  await mkdir(dir, { recursive: true });

  const result: PulledFile[] = [];
  const needed: ModelFile[] = [];
  for (const f of entry.files) {
    const path = join(dir, f.file);
    if (f.sha256 && (await fileLooksComplete(path, f)) && (await sha256File(path)) === f.sha256) {
      result.push({ role: f.role, path, sha256: f.sha256, downloaded: false, pinned: true });
    } else {
      needed.push(f);
    }
  }
  if (needed.length === 0) return { name: entry.name, dir, files: result };

  const unpinned = [
    ...(entry.archive && entry.archive.sha256 === null ? [basename(new URL(entry.archive.url).pathname)] : []),
    ...needed.filter((f) => !f.sha256).map((f) => f.file),
  ];
  if (unpinned.length && !opts.allowUnverified) {
    throw new ModelError(
      `model "${entry.name}": the manifest pins no sha256 for ${unpinned.join(", ")}, so it cannot be verified. ` +
        `Pull it with \`${pullCommand(entry.name)} --allow-unverified\` to download it anyway (the computed sha256 is printed so you can pin it in src/models/manifest.json).`,
    );
  }

  const tmp = (file: string) => join(dir, `.${file}.${process.pid}-${randomBytes(4).toString("hex")}.part`);
  if (entry.archive) {
    const archiveName = basename(new URL(entry.archive.url).pathname);
    const archivePath = tmp(archiveName);
    try {
      await download(entry, entry.archive.url, archivePath, { file: archiveName, sha256: entry.archive.sha256, bytes: entry.archive.bytes }, dir, log);
      const entries = await listZip(archivePath);
      for (const f of needed) {
        const matches = entries.filter((e) => basename(e.name) === f.file);
        if (matches.length !== 1) throw new ModelError(`${entry.archive.url}: expected one ${f.file} in the archive, found ${matches.length}`);
        const part = tmp(f.file);
        try {
          const sha256 = await writeVerified(await openZipEntry(archivePath, matches[0] as (typeof matches)[number]), part, f, entry, log, null);
          await rename(part, join(dir, f.file));
          result.push({ role: f.role, path: join(dir, f.file), sha256, downloaded: true, pinned: f.sha256 !== null });
        } finally {
          await removeIfThere(part);
        }
      }
    } finally {
      await removeIfThere(archivePath);
    }
  } else {
    for (const f of needed) {
      const part = tmp(f.file);
      try {
        const sha256 = await download(entry, f.url as string, part, f, dir, log);
        await rename(part, join(dir, f.file));
        result.push({ role: f.role, path: join(dir, f.file), sha256, downloaded: true, pinned: f.sha256 !== null });
      } finally {
        await removeIfThere(part);
      }
    }
  }
  log(`maskfleet: model ${entry.name} is ready in ${dir}`);
  return { name: entry.name, dir, files: result };
}

async function removeIfThere(path: string): Promise<void> {
  await unlink(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== "ENOENT") throw err;
  });
}

interface Expected {
  file: string;
  sha256: string | null;
  bytes: number | null;
}

/** GETs url into `dest`, checking size and sha256; network failures name the pull command and the by-hand paths. */
async function download(entry: ModelEntry, url: string, dest: string, expected: Expected, dir: string, log: (line: string) => void): Promise<string> {
  let res: Response;
  try {
    res = await fetch(url, { redirect: "follow" });
  } catch (err) {
    const cause = (err as Error & { cause?: Error }).cause;
    throw offline(entry, dir, url, cause?.message ?? (err as Error).message, err);
  }
  if (!res.ok || !res.body) throw offline(entry, dir, url, `HTTP ${res.status} ${res.statusText}`);
  const total = expected.bytes ?? (Number(res.headers.get("content-length")) || null);
  log(`maskfleet: downloading ${entry.name}: ${expected.file} from ${url}${total ? ` (${formatBytes(total)})` : ""}`);
  try {
    return await writeVerified(Readable.fromWeb(res.body as import("node:stream/web").ReadableStream<Uint8Array>), dest, expected, entry, log, total);
  } catch (err) {
    if (err instanceof ModelError) throw err;
    throw offline(entry, dir, url, (err as Error).message, err);
  }
}

function offline(entry: ModelEntry, dir: string, url: string, reason: string, cause?: unknown): ModelError {
  return new ModelError(
    `could not download model "${entry.name}" from ${url}: ${reason}. ` +
      `Run \`${pullCommand(entry.name)}\` where the internet is reachable, or place these files by hand:\n${byHandList(entry, dir)}`,
    { cause },
  );
}

/** Streams into `dest` while hashing; then checks the byte count and sha256 (when pinned). */
async function writeVerified(source: Readable, dest: string, expected: Expected, entry: ModelEntry, log: (line: string) => void, total: number | null): Promise<string> {
  const hash = createHash("sha256");
  let bytes = 0;
  const progress = progressReporter(expected.file, total, log);
  const tap = new Transform({
    transform(chunk: Buffer, _enc, done) {
      hash.update(chunk);
      bytes += chunk.length;
      progress(bytes);
      done(null, chunk);
    },
  });
  await pipeline(source, tap, createWriteStream(dest, { flags: "wx" }));
  const actual = hash.digest("hex");
  if (expected.bytes !== null && bytes !== expected.bytes) {
    throw new ModelError(`model "${entry.name}": ${expected.file} is ${bytes} bytes, the manifest says ${expected.bytes}; it was discarded`);
  }
  if (expected.sha256 === null) {
    log(`maskfleet: UNVERIFIED ${expected.file}: sha256 ${actual} (${bytes} bytes); pin it in src/models/manifest.json`);
  } else if (actual !== expected.sha256) {
    throw new ModelError(`model "${entry.name}": ${expected.file} has sha256 ${actual}, the manifest pins ${expected.sha256}; it was discarded`);
  }
  return actual;
}

/** Progress on the log: a line every 10 % (or every 100 MB when the size is unknown). */
function progressReporter(file: string, total: number | null, log: (line: string) => void): (bytes: number) => void {
  let next = total ? total / 10 : 100 * 2 ** 20;
  return (bytes) => {
    if (bytes < next) return;
    log(total ? `maskfleet:   ${file} ${Math.floor((bytes / total) * 100)} % (${formatBytes(bytes)} of ${formatBytes(total)})` : `maskfleet:   ${file} ${formatBytes(bytes)}`);
    while (next <= bytes) next += total ? total / 10 : 100 * 2 ** 20;
  };
}

function formatBytes(n: number): string {
  return n >= 2 ** 30 ? `${(n / 2 ** 30).toFixed(2)} GB` : n >= 2 ** 20 ? `${(n / 2 ** 20).toFixed(1)} MB` : `${(n / 1024).toFixed(1)} KB`;
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  await pipeline(createReadStream(path), hash);
  return hash.digest("hex");
}

export interface VerifiedFile {
  role: string;
  file: string;
  path: string;
  expected: string | null;
  actual: string | null;
  /** ok; missing; mismatch (sha256 or size); unpinned (no sha256 in the manifest; actual is printed). */
  status: "ok" | "missing" | "mismatch" | "unpinned";
}

/** sha256 of each cached file of a manifest model against the manifest. */
export async function verifyModel(name: string, opts: RegistryOptions = {}): Promise<{ name: string; dir: string; ok: boolean; files: VerifiedFile[] }> {
  const entry = getModel(name, opts);
  const dir = join(cacheRoot(opts), entry.name);
  const files: VerifiedFile[] = [];
  for (const f of entry.files) {
    const path = join(dir, f.file);
    const s = await stat(path).catch(() => undefined);
    if (!s?.isFile()) {
      files.push({ role: f.role, file: f.file, path, expected: f.sha256, actual: null, status: "missing" });
      continue;
    }
    const actual = await sha256File(path);
    const status = f.sha256 === null ? "unpinned" : actual === f.sha256 && (f.bytes === null || s.size === f.bytes) ? "ok" : "mismatch";
    files.push({ role: f.role, file: f.file, path, expected: f.sha256, actual, status });
  }
  return { name: entry.name, dir, ok: files.every((f) => f.status === "ok"), files };
}
