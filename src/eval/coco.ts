/**
 * COCO instance annotations for `maskfleet eval`: the JSON read and checked (errors name the file
 * and the field), polygons rasterised and RLE decoded to 0/255 masks of the image size.
 *
 * Polygons: a pixel is inside when its centre (x + 0.5, y + 0.5) is inside the ring (even-odd);
 * the rings of one annotation are unioned. pycocotools rasterises on a 5x grid and rounds, so its
 * masks can differ from these by about one pixel along edges. RLE: runs alternate 0s and 1s
 * (starting with 0s) in column-major order, as counts arrays ("uncompressed") or COCO's string
 * encoding ("compressed", maskApi.c rleToString / rleFrString).
 */
import { readFile } from "node:fs/promises";
import { z } from "zod";
import { ConfigError } from "../runtime/errors.js";
import type { Box, Mask } from "../imaging/types.js";

const rleSchema = z.object({
  size: z.tuple([z.number().int().nonnegative(), z.number().int().nonnegative()]),
  counts: z.union([z.string(), z.array(z.number().int().nonnegative())]),
});
const polygonsSchema = z.array(z.array(z.number()).refine((p) => p.length >= 6 && p.length % 2 === 0, "a polygon needs at least 3 x,y pairs"));

const cocoSchema = z.object({
  images: z.array(
    z.object({
      id: z.number(),
      file_name: z.string().min(1),
      width: z.number().int().positive(),
      height: z.number().int().positive(),
    }),
  ),
  annotations: z.array(
    z.object({
      id: z.number(),
      image_id: z.number(),
      category_id: z.number(),
      bbox: z.tuple([z.number(), z.number(), z.number(), z.number()]),
      segmentation: z.union([polygonsSchema, rleSchema]),
      iscrowd: z.union([z.literal(0), z.literal(1), z.boolean()]).optional(),
      area: z.number().optional(),
    }),
  ),
  categories: z.array(z.object({ id: z.number(), name: z.string() })).default([]),
});

export type CocoDataset = z.infer<typeof cocoSchema>;
export type CocoImage = CocoDataset["images"][number];
export type CocoAnnotation = CocoDataset["annotations"][number];
export type Rle = z.infer<typeof rleSchema>;
export type Polygons = z.infer<typeof polygonsSchema>;

/** Checks a parsed COCO instances document; `source` (the file) starts every error. */
export function parseCoco(value: unknown, source: string): CocoDataset {
  const parsed = cocoSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const path = issue.path
      .map((p) => (typeof p === "number" ? `[${p}]` : `.${String(p)}`))
      .join("")
      .replace(/^\./, "");
    throw new ConfigError(source, `${path || "(document)"}: ${issue.message}`);
  }
  const data = parsed.data;
  const imageIds = new Set<number>();
  data.images.forEach((img, i) => {
    if (imageIds.has(img.id)) throw new ConfigError(source, `images[${i}].id: duplicate image id ${img.id}`);
    imageIds.add(img.id);
  });
  data.annotations.forEach((a, i) => {
    if (!imageIds.has(a.image_id)) throw new ConfigError(source, `annotations[${i}].image_id: no image with id ${a.image_id}`);
  });
  return data;
}

/** Reads and checks a COCO instances JSON file. */
export async function readCoco(file: string): Promise<CocoDataset> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    throw new ConfigError(file, `cannot read: ${(err as Error).message}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(file, `not valid JSON: ${(err as Error).message}`);
  }
  return parseCoco(value, file);
}

/** COCO's bbox [x, y, w, h] as a Box, clamped to the image. */
export function bboxToBox(bbox: readonly [number, number, number, number], width: number, height: number): Box {
  const [x, y, w, h] = bbox;
  const clamp = (v: number, hi: number) => Math.min(Math.max(v, 0), hi);
  return { x0: clamp(x, width), y0: clamp(y, height), x1: clamp(x + w, width), y1: clamp(y + h, height) };
}

/** Rasterises polygons (flat [x1, y1, x2, y2, ...] rings) by pixel centre, even-odd per ring, rings unioned. */
export function rasterizePolygons(polygons: readonly (readonly number[])[], width: number, height: number): Mask {
  const data = new Uint8Array(width * height);
  const xs: number[] = [];
  for (const ring of polygons) {
    const n = Math.floor(ring.length / 2);
    if (n < 3) continue;
    let minY = Infinity;
    let maxY = -Infinity;
    for (let i = 0; i < n; i++) {
      minY = Math.min(minY, ring[2 * i + 1]!);
      maxY = Math.max(maxY, ring[2 * i + 1]!);
    }
    const rowFrom = Math.max(0, Math.ceil(minY - 0.5));
    const rowTo = Math.min(height - 1, Math.floor(maxY - 0.5));
    for (let row = rowFrom; row <= rowTo; row++) {
      const cy = row + 0.5;
      xs.length = 0;
      for (let i = 0; i < n; i++) {
        const ax = ring[2 * i]!;
        const ay = ring[2 * i + 1]!;
        const bx = ring[2 * ((i + 1) % n)]!;
        const by = ring[2 * ((i + 1) % n) + 1]!;
        // Half-open in y so a vertex on the scanline is counted once.
        if (ay <= cy !== by <= cy) xs.push(ax + ((cy - ay) * (bx - ax)) / (by - ay));
      }
      xs.sort((a, b) => a - b);
      for (let k = 0; k + 1 < xs.length; k += 2) {
        // Pixels whose centre x + 0.5 lies in [xs[k], xs[k + 1]).
        const from = Math.max(0, Math.ceil(xs[k]! - 0.5));
        const to = Math.min(width - 1, Math.ceil(xs[k + 1]! - 0.5) - 1);
        for (let col = from; col <= to; col++) data[row * width + col] = 255;
      }
    }
  }
  return { data, width, height };
}

/** COCO's compressed RLE string to run lengths (maskApi.c rleFrString). */
export function decodeRleString(s: string): number[] {
  const counts: number[] = [];
  let p = 0;
  while (p < s.length) {
    let x = 0;
    let k = 0;
    let more = true;
    while (more) {
      if (p >= s.length) throw new Error(`truncated RLE string at character ${p}`);
      const c = s.charCodeAt(p) - 48;
      if (c < 0 || c > 63) throw new Error(`bad RLE character ${JSON.stringify(s[p])} at ${p}`);
      x += (c & 0x1f) * 2 ** (5 * k);
      more = (c & 0x20) !== 0;
      p++;
      k++;
      if (!more && c & 0x10) x -= 2 ** (5 * k);
    }
    if (counts.length > 2) x += counts[counts.length - 2]!;
    counts.push(x);
  }
  return counts;
}

/** Run lengths to COCO's compressed RLE string (maskApi.c rleToString). */
export function encodeRleString(counts: readonly number[]): string {
  let s = "";
  for (let i = 0; i < counts.length; i++) {
    let x = counts[i]!;
    if (i > 2) x -= counts[i - 2]!;
    let more = true;
    while (more) {
      const c0 = ((x % 32) + 32) % 32;
      x = Math.floor(x / 32);
      more = c0 & 0x10 ? x !== -1 : x !== 0;
      s += String.fromCharCode((more ? c0 | 0x20 : c0) + 48);
    }
  }
  return s;
}

/** A 0/255 mask as uncompressed COCO RLE (column-major runs, starting with 0s). */
export function encodeRle(mask: Mask): { size: [number, number]; counts: number[] } {
  const { width, height, data } = mask;
  const counts: number[] = [];
  let current = 0;
  let run = 0;
  for (let x = 0; x < width; x++) {
    for (let y = 0; y < height; y++) {
      const v = data[y * width + x]! >= 128 ? 1 : 0;
      if (v !== current) {
        counts.push(run);
        run = 0;
        current = v;
      }
      run++;
    }
  }
  counts.push(run);
  return { size: [height, width], counts };
}

/** Decodes COCO RLE (counts array or compressed string) to a 0/255 mask; size is [height, width]. */
export function decodeRle(rle: Rle): Mask {
  const [height, width] = rle.size;
  const counts = typeof rle.counts === "string" ? decodeRleString(rle.counts) : rle.counts;
  const data = new Uint8Array(width * height);
  const total = width * height;
  let pos = 0;
  let value = 0;
  for (const run of counts) {
    if (run < 0 || pos + run > total) throw new Error(`RLE runs exceed the ${width}x${height} mask`);
    if (value) {
      for (let i = pos; i < pos + run; i++) {
        const x = Math.floor(i / height);
        const y = i - x * height;
        data[y * width + x] = 255;
      }
    }
    pos += run;
    value ^= 1;
  }
  return { data, width, height };
}

/** The ground-truth mask of an annotation at its image's size. */
export function annotationMask(ann: CocoAnnotation, width: number, height: number): Mask {
  const seg = ann.segmentation;
  if (Array.isArray(seg)) return rasterizePolygons(seg, width, height);
  if (seg.size[0] !== height || seg.size[1] !== width) {
    throw new Error(`RLE size [${seg.size.join(", ")}] is not the image's [${height}, ${width}]`);
  }
  return decodeRle(seg);
}
