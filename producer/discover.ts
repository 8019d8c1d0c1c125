/**
 * Expands what the user named into input images: files, folders (recursively), globs, and
 * manifests (.csv / .jsonl) whose rows give a path and, optionally, boxes and prompts.
 */
import { readFileSync, statSync } from "node:fs";
import { dirname, relative, resolve } from "node:path";
import fg from "fast-glob";
import { parse as parseCsv } from "csv-parse/sync";
import { z } from "zod";
import { ConfigError } from "../shared/errors.js";
import type { Box } from "../shared/types.js";

export const imageExtensions = ["jpg", "jpeg", "png", "webp", "tif", "tiff", "gif", "avif", "heic", "heif", "bmp"];

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

export function discoverInputs(specs: string[]): InputItem[] {
  const items: InputItem[] = [];
  for (const spec of specs) items.push(...discoverOne(spec));
  const seen = new Set<string>();
  return items.filter((i) => (seen.has(i.path) ? false : (seen.add(i.path), true)));
}

function discoverOne(spec: string): InputItem[] {
  if (fg.isDynamicPattern(spec)) {
    const base = resolve(fg.generateTasks([spec])[0]?.base ?? ".");
    return fg.sync(spec, { absolute: true, onlyFiles: true, caseSensitiveMatch: false }).sort().map((p) => ({ path: p, name: relative(base, p) }));
  }
  let st;
  try {
    st = statSync(spec);
  } catch {
    throw new ConfigError("inputs", `${spec}: no such file or folder`);
  }
  if (st.isDirectory()) {
    const root = resolve(spec);
    const pattern = `**/*.{${imageExtensions.join(",")}}`;
    return fg
      .sync(pattern, { cwd: root, absolute: true, onlyFiles: true, caseSensitiveMatch: false, dot: false })
      .sort()
      .map((p) => ({ path: p, name: relative(root, p) }));
  }
  if (/\.(csv|jsonl)$/i.test(spec)) return readManifest(spec);
  return [{ path: resolve(spec), name: spec.replace(/^.*[\\/]/, "") }];
}

/** CSV columns: path, boxes (JSON), prompts ("a|b"); JSONL: {path, boxes?, prompts?}. Paths relative to the manifest. */
export function readManifest(file: string): InputItem[] {
  const base = dirname(resolve(file));
  const text = readFileSync(file, "utf8");
  const rows: unknown[] = /\.csv$/i.test(file)
    ? (parseCsv(text, { columns: true, skip_empty_lines: true, trim: true }) as Record<string, string>[]).map((r) => ({
        path: r.path,
        boxes: r.boxes ? parseJsonCell(r.boxes, file, "boxes") : undefined,
        prompts: r.prompts ? r.prompts.split("|").map((s) => s.trim()).filter(Boolean) : undefined,
      }))
    : text.split(/\r?\n/).filter((l) => l.trim()).map((l, i) => parseJsonCell(l, file, `line ${i + 1}`));
  return rows.map((row, i) => {
    const parsed = manifestRow.safeParse(row);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new ConfigError(`${file} row ${i + 1}${issue?.path.length ? ` ${issue.path.join(".")}` : ""}`, issue?.message ?? "invalid row");
    }
    const r = parsed.data;
    return {
      path: resolve(base, r.path),
      name: r.path,
      boxes: r.boxes?.map((b) => (Array.isArray(b) ? { x0: b[0], y0: b[1], x1: b[2], y1: b[3] } : b)),
      prompts: r.prompts,
    };
  });
}

function parseJsonCell(text: string, file: string, where: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`${file} ${where}`, `not valid JSON: ${(err as Error).message}`);
  }
}
