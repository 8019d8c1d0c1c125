/**
 * Expands what the user named into input images: files, folders (recursively), globs, and
 * manifests (.csv / .jsonl) whose rows give a path and, optionally, boxes and prompts.
 *
 * Folders and globs list only the extensions this sharp build decodes; every other file found is
 * reported with its reason (`skipped`), never silently dropped. Symlinked folders are followed
 * once each (`followed`): a link back into a folder being walked (a cycle) or to a folder already
 * listed is skipped and reported, as are broken links and folders that cannot be read.
 */
import { lstatSync, readdirSync, readFileSync, realpathSync, statSync, type Dirent, type Stats } from "node:fs";
import { basename, dirname, extname, relative, resolve, sep } from "node:path";
import fg from "fast-glob";
import { parse as parseCsv } from "csv-parse/sync";
import sharp from "sharp";
import { z } from "zod";
import { ConfigError } from "../shared/errors.js";
import type { Box } from "../shared/types.js";

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
  "bmp", "dib", "heic", "heif", "hif", "jp2", "j2k", "jpf", "jpx", "jxl", "ico", "cur", "psd", "tga", "ppm", "pgm", "pbm", "pnm", "pfm",
  "exr", "hdr", "dng", "cr2", "cr3", "nef", "arw", "orf", "rw2", "raf", "srw", "pef", "jpg", "jpeg", "png", "webp", "tif", "tiff", "gif", "avif",
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

/** A point prompt: [x, y, label] or {x, y, label}; label 1 = on the object, 0 = background. */
const pointLabel = z.union([z.literal(0), z.literal(1)]);
const point = z
  .tuple([z.number(), z.number(), pointLabel])
  .transform(([x, y, label]) => ({ x, y, label }))
  .or(z.object({ x: z.number(), y: z.number(), label: pointLabel }));

const boxArray = z.array(z.tuple([z.number(), z.number(), z.number(), z.number()]).or(
  z.object({ x0: z.number(), y0: z.number(), x1: z.number(), y1: z.number(), label: z.string().optional(), points: z.array(point).optional() }),
));

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

/** The images of these specs (without duplicates), the files found and not used with reasons, and the symlinked folders followed. */
export function discover(specs: readonly string[]): Discovery {
  const out: Discovery = { items: [], skipped: [], followed: [] };
  for (const spec of specs) {
    const one = discoverOne(spec);
    appendAll(out.items, one.items);
    appendAll(out.skipped, one.skipped);
    appendAll(out.followed, one.followed);
  }
  const seen = new Set<string>();
  out.items = out.items.filter((i) => (seen.has(i.path) ? false : (seen.add(i.path), true)));
  return out;
}

/** `into.push(...more)` without spreading: a spread of more than ~120k elements overflows the stack. */
export function appendAll<T>(into: T[], more: readonly T[]): T[] {
  for (const x of more) into.push(x);
  return into;
}

function discoverOne(spec: string): Discovery {
  if (fg.isDynamicPattern(spec)) {
    const base = resolve(fg.generateTasks([spec])[0]?.base ?? ".");
    const walk = new SafeWalk(base);
    const files = fg.sync(spec, { absolute: true, onlyFiles: true, caseSensitiveMatch: false, fs: walk.fs });
    return walk.classify(files);
  }
  let st;
  try {
    st = statSync(spec);
  } catch {
    throw new ConfigError("inputs", `${spec}: no such file or folder`);
  }
  if (st.isDirectory()) {
    const root = resolve(spec);
    const walk = new SafeWalk(root);
    const files = fg.sync("**/*", { cwd: root, absolute: true, onlyFiles: true, dot: false, fs: walk.fs });
    return walk.classify(files);
  }
  if (/\.(csv|jsonl)$/i.test(spec)) return { items: readManifest(spec), skipped: [], followed: [] };
  return { items: [{ path: resolve(spec), name: spec.replace(/^.*[\\/]/, "") }], skipped: [], followed: [] };
}

/** A folder's identity: device and inode (the same folder under two names, bind mounts included). */
const idOf = (st: Stats) => `${st.dev}:${st.ino}`;

/**
 * The file-system calls fast-glob walks with, guarded: each real folder is read once (the first
 * route to it wins; real subfolders claim theirs before links are resolved, so a link to a
 * sibling loses), a link to a folder that contains it is a loop and is not followed, and what is
 * not followed is returned as the link itself (neither file nor folder: fast-glob leaves it).
 * fast-glob's sync walk is breadth-first, so a folder's parents are always read before it.
 */
class SafeWalk {
  readonly skipped: SkippedInput[] = [];
  readonly followed: FollowedLink[] = [];
  /** Folder id -> the path it is listed under. */
  private readonly claimed = new Map<string, string>();

  constructor(private readonly base: string) {}

  private skip(path: string, reason: SkipReason): void {
    this.skipped.push({ name: relative(this.base, path), path, reason });
  }

  readonly fs = {
    readdirSync: ((dir: string, options: { withFileTypes: true }): Dirent[] => {
      const path = resolve(dir);
      let entries: Dirent[];
      try {
        const id = idOf(statSync(path));
        const owner = this.claimed.get(id);
        if (owner !== undefined && owner !== path) return []; // listed under another name already
        this.claimed.set(id, path);
        entries = readdirSync(path, options);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== "EACCES" && code !== "EPERM") throw err;
        this.skip(path, "unreadable folder");
        return [];
      }
      entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      for (const e of entries) {
        if (!e.isDirectory() || e.name.startsWith(".")) continue; // hidden folders are not walked
        try {
          const sub = resolve(path, e.name);
          const id = idOf(statSync(sub));
          if (!this.claimed.has(id)) this.claimed.set(id, sub);
        } catch {
          // gone or unreadable: its own read says so
        }
      }
      return entries;
    }) as unknown as typeof readdirSync,
    /** Called for symbolic links only (fast-glob lstat's everything else). */
    statSync: ((p: string): Stats => {
      const path = resolve(p);
      // Hidden entries are left out quietly, links among them too: never followed, never reported.
      if (basename(path).startsWith(".")) return lstatSync(path);
      let st: Stats;
      try {
        st = statSync(path);
      } catch (err) {
        this.skip(path, (err as NodeJS.ErrnoException).code === "ELOOP" ? "symlink loop" : "broken symlink");
        throw err;
      }
      if (!st.isDirectory() || !lstatSync(path).isSymbolicLink()) return st;
      const target = realpathSync(path);
      const here = realpathSync(dirname(path));
      if (here === target || here.startsWith(target.endsWith(sep) ? target : target + sep)) {
        this.skip(path, "symlink loop");
        return lstatSync(path);
      }
      const id = idOf(st);
      if (this.claimed.has(id)) {
        this.skip(path, "symlinked folder already listed");
        return lstatSync(path);
      }
      this.claimed.set(id, path);
      this.followed.push({ name: relative(this.base, path), target });
      return st;
    }) as unknown as typeof statSync,
  };

  /** The files found, split into the images to use and the rest with reasons; both sorted by name. */
  classify(files: readonly string[]): Discovery {
    const items: InputItem[] = [];
    for (const path of [...files].sort()) {
      const ext = extname(path).slice(1).toLowerCase();
      if (readable.has(ext)) items.push({ path, name: relative(this.base, path) });
      else this.skip(path, imageLikeExtensions.has(ext) ? "format not readable here" : "not an image");
    }
    const byName = (a: { name: string }, b: { name: string }) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
    return { items, skipped: this.skipped.sort(byName), followed: this.followed.sort(byName) };
  }
}

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
  for (const s of skipped) groups.set(s.reason, [...(groups.get(s.reason) ?? []), s]);
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
 * A row that cannot be parsed is a ConfigError of one line naming the file and its line.
 */
export function readManifest(file: string): InputItem[] {
  const base = dirname(resolve(file));
  const text = readFileSync(file, "utf8");
  const rows = /\.csv$/i.test(file) ? csvRows(text, file) : jsonlRows(text, file);
  const items: InputItem[] = [];
  for (const [i, row] of rows.entries()) {
    const parsed = manifestRow.safeParse(row);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new ConfigError(`${file} row ${i + 1}${issue?.path.length ? ` ${issue.path.join(".")}` : ""}`, issue?.message ?? "invalid row");
    }
    const r = parsed.data;
    items.push({
      path: resolve(base, r.path),
      name: r.path,
      boxes: r.boxes?.map((b) => (Array.isArray(b) ? { x0: b[0], y0: b[1], x1: b[2], y1: b[3] } : b)),
      prompts: r.prompts,
    });
  }
  return items;
}

function csvRows(text: string, file: string): unknown[] {
  let records: { record: Record<string, string>; info: { lines: number } }[];
  try {
    records = parseCsv(text, { columns: true, skip_empty_lines: true, trim: true, info: true }) as typeof records;
  } catch (err) {
    // csv-parse's errors say where as "on line N" / "at line N" and carry it as `lines`.
    const e = err as Error & { lines?: unknown };
    const line = typeof e.lines === "number" ? e.lines : Number(/ (?:on|at) line (\d+)/.exec(e.message)?.[1] ?? NaN);
    const message = withoutInput(e.message.replace(/ (?:on|at) line \d+/, "").split("\n")[0]!);
    throw new ConfigError("inputs", `${file}${Number.isFinite(line) ? ` line ${line}` : ""}: ${message}`, { cause: err });
  }
  return records.map(({ record: r, info }) => ({
    path: r.path,
    boxes: r.boxes ? parseJsonCell(r.boxes, file, `line ${info.lines} boxes`) : undefined,
    prompts: r.prompts ? r.prompts.split("|").map((s) => s.trim()).filter(Boolean) : undefined,
  }));
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
