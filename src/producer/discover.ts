/**
 * Expands what the user named into input images: files, folders (recursively), globs, and
 * manifests (.csv / .jsonl) whose rows give a path and, optionally, boxes and prompts.
 *
 * Folders and globs list only the extensions this sharp build decodes; every other file found is
 * reported with its reason (`onSkipped`), never silently dropped. Symlinked folders are followed
 * once each (`onFollowed`): a link back into a folder being walked (a cycle) or to a folder already
 * listed is skipped and reported, as are broken links and folders that cannot be read. Hidden
 * files and folders (a name starting with ".") are left out quietly.
 *
 * One walker serves every caller: `walkLocal` yields one image at a time in a fixed order, with one
 * folder listing per level in memory; `discover` collects it into arrays, and input-stream.ts
 * streams it (and a manifest one row at a time, `streamManifest`) into a resumable producer.
 */
import { createReadStream, readdirSync, readFileSync, realpathSync, statSync, type Dirent, type Stats } from "node:fs";
import { createRequire } from "node:module";
import { basename, dirname, extname, join, relative, resolve, sep } from "node:path";
import { createInterface } from "node:readline";
import { pipeline } from "node:stream";
import fg from "fast-glob";
import { CsvError, parse as parseCsvStream, type Info as CsvInfo } from "csv-parse";
import { parse as parseCsv } from "csv-parse/sync";
import sharp from "sharp";
import { z } from "zod";
import { ConfigError } from "../runtime/errors.js";
import type { Box } from "../imaging/types.js";

/**
 * Extensions (lower case, no dot) of the formats sharp decodes from a buffer here, as the workers
 * read images: with the prebuilt libvips jpg/jpeg/jpe/jfif, png, webp, tif/tiff, gif and avif (no
 * BMP; HEIC only with a libvips built with libde265). SVG is left out: a drawing, not a photo.
 */
export const imageExtensions: readonly string[] = [
  ...new Set(
    Object.entries(sharp.format)
      .filter(([id, f]) => f.input.buffer && id !== "svg")
      .flatMap(([, f]) => f.input.fileSuffix ?? [])
      .map((s) => s.replace(/^\./, "").toLowerCase()),
  ),
];

/**
 * Image formats people keep next to their photos: one of these that this build does not decode is
 * reported as "format not readable here", not as "not an image" (the usual ones are listed too,
 * for builds without them).
 */
const imageLikeExtensions = new Set([
  "bmp",
  "dib",
  "heic",
  "heif",
  "hif",
  "jp2",
  "j2k",
  "jpf",
  "jpx",
  "jxl",
  "ico",
  "cur",
  "psd",
  "tga",
  "ppm",
  "pgm",
  "pbm",
  "pnm",
  "pfm",
  "exr",
  "hdr",
  "dng",
  "cr2",
  "cr3",
  "nef",
  "arw",
  "orf",
  "rw2",
  "raf",
  "srw",
  "pef",
  "jpg",
  "jpeg",
  "png",
  "webp",
  "tif",
  "tiff",
  "gif",
  "avif",
]);

const readable = new Set(imageExtensions);

export type SkipReason = "not an image" | "format not readable here" | "symlink loop" | "symlinked folder already listed" | "broken symlink" | "unreadable folder";

/** A file or folder discovery found and did not use; name as for inputs (relative to what was named). */
export interface SkippedInput {
  name: string;
  path: string;
  reason: SkipReason;
}

/** A symlinked folder that was walked: its name and the real folder it leads to. */
export interface FollowedLink {
  name: string;
  target: string;
}

/** What discovery tells as it goes: the files found and not used, and the symlinked folders walked. */
export interface DiscoveryEvents {
  onSkipped?: (s: SkippedInput) => void;
  onFollowed?: (f: FollowedLink) => void;
}

export interface Discovery {
  items: InputItem[];
  skipped: SkippedInput[];
  followed: FollowedLink[];
}

export interface InputItem {
  /** Absolute path. */
  path: string;
  /** Shown to people and used for output names: the path relative to what was named. */
  name: string;
  boxes?: Box[];
  prompts?: string[];
}

export interface StreamedInput extends InputItem {
  /** For S3 objects: "s3:<ETag>:<Size>" from the listing itself (so enqueue needs no HEAD request); undefined for local files. */
  contentTag?: string;
}

/** A point prompt: [x, y, label] or {x, y, label}; label 1 = on the object, 0 = background. */
const pointLabel = z.union([z.literal(0), z.literal(1)]);
const point = z
  .tuple([z.number(), z.number(), pointLabel])
  .transform(([x, y, label]) => ({ x, y, label }))
  .or(z.object({ x: z.number(), y: z.number(), label: pointLabel }));

const boxArray = z.array(
  z
    .tuple([z.number(), z.number(), z.number(), z.number()])
    .or(z.object({ x0: z.number(), y0: z.number(), x1: z.number(), y1: z.number(), label: z.string().optional(), points: z.array(point).optional() })),
);

const manifestRow = z.object({
  path: z.string().min(1),
  /** [[x0,y0,x1,y1], ...] or [{x0,y0,x1,y1, points?}, ...], pixels of the EXIF-oriented image. */
  boxes: boxArray.optional(),
  prompts: z.array(z.string().min(1)).min(1).optional(),
});

/** The images of these specs, without duplicates; see discover() for what was left out and why. */
export function discoverInputs(specs: readonly string[]): InputItem[] {
  return discover(specs).items;
}

/**
 * The images of these specs (without duplicates), the files found and not used with reasons, and
 * the symlinked folders followed (both sorted by name within each spec).
 */
export function discover(specs: readonly string[]): Discovery {
  const out: Discovery = { items: [], skipped: [], followed: [] };
  const seen = new Set<string>();
  for (const spec of specs) {
    const skipped: SkippedInput[] = [];
    const followed: FollowedLink[] = [];
    for (const item of walkLocal(spec, { onSkipped: (s) => skipped.push(s), onFollowed: (f) => followed.push(f) })) {
      if (seen.has(item.path)) continue;
      seen.add(item.path);
      out.items.push(item);
    }
    for (const s of skipped.sort(byName)) out.skipped.push(s);
    for (const f of followed.sort(byName)) out.followed.push(f);
  }
  return out;
}

const byName = (a: { name: string }, b: { name: string }) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

export type LocalSpecKind = "glob" | "folder" | "manifest" | "file";

/** What a local spec names; one that names nothing is a ConfigError. */
export function localSpecKind(spec: string): LocalSpecKind {
  if (fg.isDynamicPattern(spec)) return "glob";
  let st: Stats;
  try {
    st = statSync(spec);
  } catch {
    throw new ConfigError("inputs", `${spec}: no such file or folder`);
  }
  if (st.isDirectory()) return "folder";
  return /\.(csv|jsonl)$/i.test(spec) ? "manifest" : "file";
}

/**
 * The images one local spec names, one at a time: a folder's or a glob's in walk order (the order
 * of their paths sorted as strings; names relative to the folder or the glob's static base), a
 * manifest's rows in file order (read whole; streamManifest reads one row at a time), a file as
 * itself. A spec that names nothing is a ConfigError.
 */
export function* walkLocal(spec: string, events: DiscoveryEvents = {}): Generator<InputItem> {
  switch (localSpecKind(spec)) {
    case "glob": {
      const glob = GlobMatcher.of(spec);
      if (glob) yield* new TreeWalk(glob.root, events, glob).walk();
      return;
    }
    case "folder":
      yield* new TreeWalk(resolve(spec), events).walk();
      return;
    case "manifest":
      yield* readManifest(spec);
      return;
    case "file":
      yield { path: resolve(spec), name: spec.replace(/^.*[\\/]/, "") };
  }
}

/** A folder's identity: device and inode (the same folder under two names, bind mounts included). */
const idOf = (st: Stats) => `${st.dev}:${st.ino}`;

/**
 * A folder entry the walk keeps: a file (or a link to one), a real folder, a link to a folder (with
 * the folder's id), or a link that leads nowhere. `key` orders the entries: the name, and for a
 * folder `name/`, so that a depth-first walk meets paths in the order of their sorted strings.
 */
type Entry =
  | { kind: "file" | "folder"; name: string; key: string }
  | { kind: "link"; name: string; key: string; id: string }
  | { kind: "broken"; name: string; key: string; reason: SkipReason };

/** A folder being walked: its path, its path below the root ("a/b", "" for the root), its entries and the next one. */
interface Frame {
  path: string;
  rel: string;
  entries: Entry[];
  next: number;
}

/**
 * A depth-first walk of a folder, each folder's entries sorted by `Entry.key`, yielding its images
 * one at a time. Guarded: each real folder is listed once (a folder claims its real subfolders when
 * it is listed, a symlink claims its target when the walk reaches it; any later route to a claimed
 * folder is not listed), a link to a folder that contains it is a loop and is not followed, and
 * what is left out is reported. Memory: the listings of the folders on the current path, and one id
 * per folder listed.
 */
class TreeWalk {
  /** Folder id -> the path it is listed under. */
  private readonly claimed = new Map<string, string>();

  constructor(
    private readonly root: string,
    private readonly events: DiscoveryEvents,
    private readonly glob?: GlobMatcher,
  ) {}

  *walk(): Generator<InputItem> {
    const stack: Frame[] = [];
    const rootEntries = this.list(this.root, "");
    if (rootEntries) stack.push({ path: this.root, rel: "", entries: rootEntries, next: 0 });
    while (stack.length > 0) {
      const frame = stack[stack.length - 1] as Frame;
      const entry = frame.entries[frame.next++];
      if (entry === undefined) {
        stack.pop();
        continue;
      }
      const path = join(frame.path, entry.name);
      const rel = frame.rel ? `${frame.rel}/${entry.name}` : entry.name;
      if (entry.kind === "file") {
        const ext = extname(entry.name).slice(1).toLowerCase();
        if (readable.has(ext)) yield { path, name: nameOf(rel) };
        else this.skip(path, rel, imageLikeExtensions.has(ext) ? "format not readable here" : "not an image");
        continue;
      }
      if (entry.kind === "broken") {
        this.skip(path, rel, entry.reason);
        continue;
      }
      if (entry.kind === "link" && !this.follow(path, frame.path, rel, entry.id)) continue;
      const entries = this.list(path, rel);
      if (entries) stack.push({ path, rel, entries, next: 0 });
    }
  }

  private skip(path: string, rel: string, reason: SkipReason): void {
    this.events.onSkipped?.({ name: nameOf(rel), path, reason });
  }

  /**
   * A folder's entries in walk order, without hidden ones nor what the glob cannot reach; undefined
   * when the folder is not listed here: listed under another name, gone, or unreadable (reported).
   */
  private list(path: string, rel: string): Entry[] | undefined {
    let dirents: Dirent[];
    try {
      const id = idOf(statSync(path));
      const owner = this.claimed.get(id);
      if (owner !== undefined && owner !== path) return undefined; // listed under another name
      this.claimed.set(id, path);
      dirents = readdirSync(path, { withFileTypes: true });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "ENOENT" || code === "ENOTDIR") return undefined; // gone (or a glob's base that is not a folder)
      if (code !== "EACCES" && code !== "EPERM") throw err;
      this.skip(path, rel, "unreadable folder");
      return undefined;
    }
    const entries: Entry[] = [];
    for (const d of dirents) {
      const name = d.name;
      const sub = rel ? `${rel}/${name}` : name;
      // Hidden entries are left out quietly, links among them: never followed, never reported. A
      // glob keeps those it names (".cache/*.jpg"): its wildcards never match a leading dot.
      const hidden = name.startsWith(".");
      if (hidden && (!this.glob || d.isSymbolicLink())) continue;
      if (d.isFile()) {
        if (!this.glob || this.glob.matchesFile(sub)) entries.push({ kind: "file", name, key: name });
      } else if (d.isDirectory()) {
        if (this.glob && !this.glob.mayContain(sub)) continue;
        entries.push({ kind: "folder", name, key: `${name}/` });
        this.claimFirst(join(path, name));
      } else if (d.isSymbolicLink()) {
        const link = linkEntry(join(path, name), name);
        if (!link) continue;
        // A glob reports a broken link where it would match it as a file or walk it as a folder.
        const reached = !this.glob || (link.kind !== "link" && this.glob.matchesFile(sub)) || (link.kind !== "file" && this.glob.mayContain(sub));
        if (reached) entries.push(link);
      }
    }
    return entries.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  /** Claims a real subfolder for its path, unless a route to it was claimed before. */
  private claimFirst(path: string): void {
    try {
      const id = idOf(statSync(path));
      if (!this.claimed.has(id)) this.claimed.set(id, path);
    } catch {
      // gone or unreadable: its own listing says so
    }
  }

  /** Whether to walk the symlinked folder at `path` (in folder `dir`); says why not, or that it is followed. */
  private follow(path: string, dir: string, rel: string, id: string): boolean {
    let target: string;
    let here: string;
    try {
      target = realpathSync(path);
      here = realpathSync(dir);
    } catch {
      this.skip(path, rel, "broken symlink"); // gone since its folder was listed
      return false;
    }
    if (isWithin(here, target)) {
      this.skip(path, rel, "symlink loop");
      return false;
    }
    if (this.claimed.has(id)) {
      this.skip(path, rel, "symlinked folder already listed");
      return false;
    }
    this.claimed.set(id, path);
    this.events.onFollowed?.({ name: nameOf(rel), target });
    return true;
  }
}

/** A symlink as an entry: what it leads to (a file, a folder, nowhere), or undefined for anything else (a socket, a device). */
function linkEntry(path: string, name: string): Entry | undefined {
  let st: Stats;
  try {
    st = statSync(path);
  } catch (err) {
    return { kind: "broken", name, key: name, reason: (err as NodeJS.ErrnoException).code === "ELOOP" ? "symlink loop" : "broken symlink" };
  }
  if (st.isDirectory()) return { kind: "link", name, key: `${name}/`, id: idOf(st) };
  return st.isFile() ? { kind: "file", name, key: name } : undefined;
}

/** A path below the walk's root ("a/b.jpg") as a name for people, with this system's separator. */
const nameOf = (rel: string) => (sep === "/" ? rel : rel.replaceAll("/", sep));

interface PicomatchOptions {
  dot: boolean;
  nocase: boolean;
  posix: boolean;
}

/** picomatch (fast-glob's matcher, a CommonJS package without types of its own): only what is used here. */
const picomatch = createRequire(import.meta.url)("picomatch") as {
  (glob: string, options: PicomatchOptions): (path: string) => boolean;
  makeRe(glob: string, options: PicomatchOptions): RegExp;
};

/** As fast-glob matched before: case-insensitive, wildcards never match a leading dot, POSIX classes. */
const globOptions: PicomatchOptions = { dot: false, nocase: true, posix: true };

/** One pattern of a glob, split at its static base. */
interface GlobPattern {
  /** The static path from the walk's root to the pattern's base, as "a/b/" ("" when the base is the root). */
  prefix: string;
  prefixParts: string[];
  /** The segments below the base: a regular expression each, null for a globstar ("**"). */
  segments: (RegExp | null)[];
  /** Whether a path below the base matches the pattern. */
  matches: (path: string) => boolean;
  /** Whether a segment below the base starts with a dot (the pattern may match in hidden folders). */
  namesHidden: boolean;
}

/**
 * Which paths a glob matches, as fast-glob matched them: braces expanded and patterns grouped by
 * static base (fast-glob's tasks), each matched with picomatch. `root` is the deepest folder holding
 * every base: the walk starts there and names are relative to it (the base itself for one base).
 */
class GlobMatcher {
  private constructor(
    readonly root: string,
    private readonly patterns: GlobPattern[],
  ) {}

  /** The matcher of a glob spec; undefined when it has no positive pattern (matches nothing). */
  static of(spec: string): GlobMatcher | undefined {
    const tasks = fg.generateTasks([spec]);
    if (tasks.length === 0) return undefined;
    let root = resolve(tasks[0]?.base ?? ".");
    for (const task of tasks) while (!isWithin(resolve(task.base), root)) root = dirname(root);
    const patterns: GlobPattern[] = [];
    for (const task of tasks) {
      const prefix = relative(root, resolve(task.base)).split(sep).filter(Boolean);
      // The pattern's segments below its base: fast-glob's base is the pattern's static leading segments.
      const baseDepth = task.base === "/" ? 1 : withoutLeadingDots(task.base.split("/")).length;
      for (const pattern of task.patterns) {
        const below = withoutLeadingDots(pattern.split("/")).slice(baseDepth);
        if (below.length === 0) continue;
        patterns.push({
          prefix: prefix.length ? `${prefix.join("/")}/` : "",
          prefixParts: prefix,
          segments: below.map((s) => (s === "**" ? null : s === "" ? /^$/ : picomatch.makeRe(s, globOptions))),
          matches: picomatch(below.join("/"), globOptions),
          namesHidden: below.some((s) => s.startsWith(".")),
        });
      }
    }
    return new GlobMatcher(root, patterns);
  }

  /** Whether the file at `rel` (below the root, "/"-separated) matches. */
  matchesFile(rel: string): boolean {
    return this.patterns.some((p) => rel.startsWith(p.prefix) && p.matches(rel.slice(p.prefix.length)));
  }

  /** Whether the folder at `rel` may hold a match: on the way to a base, or matching a pattern's leading segments. */
  mayContain(rel: string): boolean {
    const parts = rel.split("/");
    return this.patterns.some((p) => {
      const depth = p.prefixParts.length;
      for (let i = 0; i < Math.min(parts.length, depth); i++) if (parts[i] !== p.prefixParts[i]) return false;
      for (let i = depth; i < parts.length; i++) {
        const segment = p.segments[i - depth];
        if (segment === undefined) return false; // the pattern ends above this folder
        // A globstar: anything below, but hidden folders only for a pattern that names one.
        if (segment === null) return p.namesHidden || parts.slice(i).every((part) => !part.startsWith("."));
        if (!segment.test(parts[i] as string)) return false;
      }
      return parts.length <= depth || p.segments.length > parts.length - depth;
    });
  }
}

/** Path segments without leading "." ones ("./in/*.jpg" and "in/*.jpg" alike; "." is none). */
function withoutLeadingDots(segments: string[]): string[] {
  let i = 0;
  while (i < segments.length && segments[i] === ".") i++;
  return segments.slice(i);
}

/** Whether `path` is `folder` or below it. */
const isWithin = (path: string, folder: string) => path === folder || path.startsWith(folder.endsWith(sep) ? folder : folder + sep);

const reasonLabels: Record<SkipReason, [one: string, many: string]> = {
  "not an image": ["not an image", "not images"],
  "format not readable here": ["in a format sharp cannot read here", "in formats sharp cannot read here"],
  "symlink loop": ["symlink loop", "symlink loops"],
  "symlinked folder already listed": ["symlinked folder already listed", "symlinked folders already listed"],
  "broken symlink": ["broken symlink", "broken symlinks"],
  "unreadable folder": ["unreadable folder", "unreadable folders"],
};
const reasonOrder = Object.keys(reasonLabels) as SkipReason[];

/** A few distinct examples, sorted, then ", ..." when there are more. */
function examples(values: readonly string[], max = 3): string {
  const distinct = [...new Set(values)].sort();
  return distinct.slice(0, max).join(", ") + (distinct.length > max ? ", ..." : "");
}

/**
 * One line for people: `skipped 3 files: 2 not images (.svg, .txt), 1 symlink loop (a/loop)`,
 * counts per reason (most first) with a few examples: extensions for file types, names for the
 * rest. Undefined when nothing was skipped.
 */
export function formatSkipped(skipped: readonly SkippedInput[]): string | undefined {
  if (skipped.length === 0) return undefined;
  const groups = new Map<SkipReason, SkippedInput[]>();
  for (const s of skipped) {
    const group = groups.get(s.reason);
    if (group) group.push(s);
    else groups.set(s.reason, [s]);
  }
  const parts = [...groups]
    .sort(([a, x], [b, y]) => y.length - x.length || reasonOrder.indexOf(a) - reasonOrder.indexOf(b))
    .map(([reason, list]) => {
      const byType = reason === "not an image" || reason === "format not readable here";
      const shown = list.map((s) => (byType && extname(s.name) ? extname(s.name).toLowerCase() : byType ? basename(s.name) : s.name));
      return `${list.length} ${reasonLabels[reason][list.length === 1 ? 0 : 1]} (${examples(shown)})`;
    });
  return `skipped ${skipped.length} ${skipped.length === 1 ? "file" : "files"}: ${parts.join(", ")}`;
}

/** One line naming the symlinked folders walked: `followed 1 symlinked folder: ext -> /data/shoes`. Undefined when none. */
export function formatFollowed(followed: readonly FollowedLink[]): string | undefined {
  if (followed.length === 0) return undefined;
  const shown = followed.slice(0, 3).map((f) => `${f.name} -> ${f.target}`);
  return `followed ${followed.length} symlinked ${followed.length === 1 ? "folder" : "folders"}: ${shown.join(", ")}${followed.length > 3 ? ", ..." : ""}`;
}

/**
 * CSV columns: path, boxes (JSON), prompts ("a|b"); JSONL: {path, boxes?, prompts?}. Paths relative to the manifest.
 * A row that cannot be parsed is a ConfigError of one line naming the file and its line. Reads the
 * file whole; streamManifest reads it one row at a time.
 */
export function readManifest(file: string): InputItem[] {
  const base = dirname(resolve(file));
  const text = readFileSync(file, "utf8");
  const rows = isCsv(file) ? csvRows(text, file) : jsonlRows(text, file);
  return rows.map((row, i) => manifestItem(row, file, i + 1, base));
}

/**
 * A manifest's inputs one row at a time (readline for JSONL, csv-parse's stream for CSV), as
 * readManifest reads them, after its first `afterRow` rows (skipped unchecked). Rows are numbered
 * from 1; blank lines are not rows.
 */
export async function* streamManifest(file: string, afterRow = 0): AsyncGenerator<InputItem> {
  const base = dirname(resolve(file));
  let row = 0;
  if (isCsv(file)) {
    const records: AsyncIterable<CsvRecord> = pipeline(createReadStream(file), parseCsvStream(csvOptions), () => undefined);
    try {
      for await (const { record, info } of records) {
        if (++row > afterRow) yield manifestItem(csvRow(record, info.lines, file), file, row, base);
      }
    } catch (err) {
      throw err instanceof CsvError ? csvErrorOf(err, file) : err;
    }
    return;
  }
  const input = createReadStream(file);
  const lines = createInterface({ input, crlfDelay: Infinity });
  let lineNumber = 0;
  try {
    for await (const line of lines) {
      lineNumber++;
      if (!line.trim() || ++row <= afterRow) continue;
      yield manifestItem(parseJsonCell(line, file, `line ${lineNumber}`), file, row, base);
    }
  } finally {
    lines.close();
    input.destroy();
  }
}

const isCsv = (file: string) => /\.csv$/i.test(file);

/** A manifest row as an input; one that does not fit is a ConfigError naming the file and the row. */
function manifestItem(row: unknown, file: string, rowNumber: number, base: string): InputItem {
  const parsed = manifestRow.safeParse(row);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ConfigError(`${file} row ${rowNumber}${issue?.path.length ? ` ${issue.path.join(".")}` : ""}`, issue?.message ?? "invalid row");
  }
  const r = parsed.data;
  return {
    path: resolve(base, r.path),
    name: r.path,
    boxes: r.boxes?.map((b) => (Array.isArray(b) ? { x0: b[0], y0: b[1], x1: b[2], y1: b[3] } : b)),
    prompts: r.prompts,
  };
}

/** A CSV record with the line it ends on (csv-parse's `info`). */
interface CsvRecord {
  record: Record<string, string>;
  info: CsvInfo;
}

const csvOptions = { columns: true, skip_empty_lines: true, trim: true, info: true } as const;

function csvRows(text: string, file: string): unknown[] {
  let records: CsvRecord[];
  try {
    records = parseCsv(text, csvOptions) as CsvRecord[];
  } catch (err) {
    throw csvErrorOf(err, file);
  }
  return records.map(({ record, info }) => csvRow(record, info.lines, file));
}

/** A CSV record as a manifest row: boxes parsed from their JSON, prompts split at "|". */
function csvRow(r: Record<string, string>, line: number, file: string): unknown {
  return {
    path: r.path,
    boxes: r.boxes ? parseJsonCell(r.boxes, file, `line ${line} boxes`) : undefined,
    prompts: r.prompts
      ? r.prompts
          .split("|")
          .map((s) => s.trim())
          .filter(Boolean)
      : undefined,
  };
}

/** A csv-parse error as one line naming the file and the line, quoting nothing of the file. */
function csvErrorOf(err: unknown, file: string): ConfigError {
  // csv-parse's errors say where as "on line N" / "at line N" and carry it as `lines`.
  const e = err as Error & { lines?: unknown };
  const line = typeof e.lines === "number" ? e.lines : Number(/ (?:on|at) line (\d+)/.exec(e.message)?.[1] ?? NaN);
  const message = withoutInput(e.message.replace(/ (?:on|at) line \d+/, "").split("\n")[0]!);
  return new ConfigError("inputs", `${file}${Number.isFinite(line) ? ` line ${line}` : ""}: ${message}`, { cause: err });
}

function jsonlRows(text: string, file: string): unknown[] {
  const rows: unknown[] = [];
  for (const [i, line] of text.split(/\r?\n/).entries()) if (line.trim()) rows.push(parseJsonCell(line, file, `line ${i + 1}`));
  return rows;
}

function parseJsonCell(text: string, file: string, where: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ConfigError("inputs", `${file} ${where}: not valid JSON: ${withoutInput((err as Error).message.split("\n")[0]!)}`);
  }
}

/** A parser's message without the pieces of input it quotes (a manifest may be any file): "..." and 'x' become "…". */
function withoutInput(message: string): string {
  return message.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, "…");
}
