/**
 * `maskfleet eval`: mask quality of segmentation models on a COCO-format dataset. Every instance
 * is prompted with its ground-truth box; its mask is scored against the ground-truth mask (IoU,
 * DAVIS boundary F). Each image is decoded once and segmented by every model (all its boxes in one
 * call); ms/image is the time of that call.
 */
import { constants } from "node:fs";
import { access, readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { ConfigError } from "../runtime/errors.js";
import { decodeImage } from "../imaging/image.js";
import type { ExecutionProvider } from "../runtime/onnx.js";
import type { Box, Mask } from "../imaging/types.js";
import { loadSegmenter, type Segmenter, type SegmenterOptions } from "../segmenters/segmenter.js";
import { annotationMask, bboxToBox, readCoco, type CocoAnnotation, type CocoImage } from "./coco.js";
import { boundaryF, defaultBoundaryTolerance, maskIoU } from "../imaging/mask-metrics.js";

export interface EvalOptions {
  /** COCO instances JSON. */
  annotations: string;
  /** Folder the images' file_name values are relative to. */
  images: string;
  /** Model specs: manifest names or local folders. */
  models: readonly string[];
  /** Only the first N images that have instances to score. */
  limit?: number;
  /** Skip instances whose ground-truth mask has fewer pixels (default 1: empty masks are skipped). */
  minArea?: number;
  /** Boundary F tolerance in px (default ceil(0.008 x image diagonal), per image). */
  boundaryTolerance?: number;
  executionProvider?: ExecutionProvider;
  intraOpThreads?: number;
  cacheDir?: string;
  download?: boolean;
  /** Called after each image with the count done so far. */
  onImage?: (done: number, total: number, file: string) => void;
  /** Already loaded segmenters (tests); models is then ignored. */
  segmenters?: readonly Segmenter[];
}

export interface InstanceRow {
  model: string;
  imageId: number;
  file: string;
  annotationId: number;
  categoryId: number;
  category: string | null;
  box: [number, number, number, number];
  gtArea: number;
  predArea: number;
  iou: number;
  boundaryF: number;
  boundaryPrecision: number;
  boundaryRecall: number;
  /** The model's own predicted IoU. */
  score: number;
}

export interface ModelSummary {
  model: string;
  executionProvider: string;
  images: number;
  instances: number;
  mIoU: number;
  boundaryF: number;
  msPerImage: number;
}

export interface EvalReport {
  annotations: string;
  images: string;
  imagesEvaluated: number;
  instances: number;
  skipped: { crowd: number; tooSmall: number; emptyBox: number };
  boundaryTolerance: number | "ceil(0.008 * diagonal)";
  minArea: number;
  models: ModelSummary[];
  rows: InstanceRow[];
}

interface Work {
  image: CocoImage;
  anns: CocoAnnotation[];
}

const area = (m: Mask) => m.data.reduce((n, v) => n + (v >= 128 ? 1 : 0), 0);

export async function runEval(opts: EvalOptions): Promise<EvalReport> {
  const minArea = opts.minArea ?? 1;
  if (opts.limit !== undefined && (!Number.isInteger(opts.limit) || opts.limit < 1)) throw new ConfigError("--limit", `expected a whole number >= 1, got ${opts.limit}`);
  if (opts.boundaryTolerance !== undefined && !(opts.boundaryTolerance >= 0))
    throw new ConfigError("--boundary-tolerance", `expected a number >= 0, got ${opts.boundaryTolerance}`);
  if (!opts.segmenters && opts.models.length === 0) throw new ConfigError("--model", "at least one model is needed");
  const coco = await readCoco(opts.annotations);
  const categories = new Map(coco.categories.map((c) => [c.id, c.name]));
  const byImage = new Map<number, CocoAnnotation[]>();
  const skipped = { crowd: 0, tooSmall: 0, emptyBox: 0 };
  for (const a of coco.annotations) {
    if (a.iscrowd === 1 || a.iscrowd === true) {
      skipped.crowd++;
      continue;
    }
    if (!(a.bbox[2] > 0 && a.bbox[3] > 0)) {
      skipped.emptyBox++;
      continue;
    }
    const list = byImage.get(a.image_id) ?? [];
    list.push(a);
    byImage.set(a.image_id, list);
  }
  let work: Work[] = coco.images.filter((img) => byImage.has(img.id)).map((image) => ({ image, anns: byImage.get(image.id)! }));
  if (opts.limit !== undefined) work = work.slice(0, opts.limit);

  // Every image must be there before any model is loaded or run.
  const imagesDir = resolve(opts.images);
  const imageError = (image: CocoImage, err: NodeJS.ErrnoException) =>
    new ConfigError(opts.annotations, `images[${coco.images.indexOf(image)}].file_name: cannot read ${join(imagesDir, image.file_name)}: ${err.code ?? err.message}`);
  const checks = await Promise.allSettled(work.map(({ image }) => access(join(imagesDir, image.file_name), constants.R_OK)));
  checks.forEach((r, w) => {
    if (r.status === "rejected") throw imageError(work[w]!.image, r.reason as NodeJS.ErrnoException);
  });

  const segOpts: SegmenterOptions = { executionProvider: opts.executionProvider, intraOpThreads: opts.intraOpThreads, cacheDir: opts.cacheDir, download: opts.download };
  const owned: Segmenter[] = [];
  const segmenters: readonly Segmenter[] = opts.segmenters ?? owned;
  try {
    if (!opts.segmenters) for (const spec of opts.models) owned.push(await loadSegmenter(spec, segOpts));
    const labels = opts.segmenters ? opts.segmenters.map((s) => s.name) : opts.models;
    const rows: InstanceRow[] = [];
    const ms = segmenters.map(() => 0);
    const imagesPerModel = segmenters.map(() => 0);
    let imagesEvaluated = 0;

    for (let w = 0; w < work.length; w++) {
      const { image, anns } = work[w]!;
      const bytes = await readFile(join(imagesDir, image.file_name)).catch((err: NodeJS.ErrnoException) => {
        throw imageError(image, err);
      });
      const decoded = await decodeImage(bytes, image.file_name);
      if (decoded.width !== image.width || decoded.height !== image.height) {
        throw new ConfigError(
          opts.annotations,
          `images[${coco.images.indexOf(image)}]: ${image.file_name} is ${decoded.width}x${decoded.height} (EXIF-oriented), the annotations say ${image.width}x${image.height}`,
        );
      }
      const scored: { ann: CocoAnnotation; gt: Mask; gtArea: number; box: Box }[] = [];
      for (const ann of anns) {
        let gt: Mask;
        try {
          gt = annotationMask(ann, image.width, image.height);
        } catch (err) {
          throw new ConfigError(opts.annotations, `annotations[${coco.annotations.indexOf(ann)}].segmentation: ${(err as Error).message}`);
        }
        const gtArea = area(gt);
        if (gtArea < minArea) {
          skipped.tooSmall++;
          continue;
        }
        scored.push({ ann, gt, gtArea, box: bboxToBox(ann.bbox, image.width, image.height) });
      }
      if (scored.length === 0) continue;
      imagesEvaluated++;
      const tolerance = opts.boundaryTolerance ?? defaultBoundaryTolerance(image.width, image.height);
      for (let m = 0; m < segmenters.length; m++) {
        const started = performance.now();
        const result = await segmenters[m]!.segment(
          decoded,
          scored.map((s) => s.box),
        );
        ms[m]! += performance.now() - started;
        imagesPerModel[m]!++;
        scored.forEach((s, i) => {
          const pred = result.masks[i]!;
          const bf = boundaryF(pred, s.gt, tolerance);
          rows.push({
            model: labels[m]!,
            imageId: image.id,
            file: image.file_name,
            annotationId: s.ann.id,
            categoryId: s.ann.category_id,
            category: categories.get(s.ann.category_id) ?? null,
            box: [s.box.x0, s.box.y0, s.box.x1, s.box.y1],
            gtArea: s.gtArea,
            predArea: area(pred),
            iou: maskIoU(pred, s.gt),
            boundaryF: bf.f,
            boundaryPrecision: bf.precision,
            boundaryRecall: bf.recall,
            score: result.scores[i] ?? NaN,
          });
        });
      }
      opts.onImage?.(w + 1, work.length, image.file_name);
    }

    const models = segmenters.map((s, m): ModelSummary => {
      const mine = rows.filter((r) => r.model === labels[m]);
      const mean = (k: "iou" | "boundaryF") => (mine.length ? mine.reduce((sum, r) => sum + r[k], 0) / mine.length : NaN);
      return {
        model: labels[m]!,
        executionProvider: s.executionProvider,
        images: imagesPerModel[m]!,
        instances: mine.length,
        mIoU: mean("iou"),
        boundaryF: mean("boundaryF"),
        msPerImage: imagesPerModel[m]! ? ms[m]! / imagesPerModel[m]! : NaN,
      };
    });
    return {
      annotations: opts.annotations,
      images: imagesDir,
      imagesEvaluated,
      instances: rows.length / Math.max(1, segmenters.length),
      skipped,
      boundaryTolerance: opts.boundaryTolerance ?? "ceil(0.008 * diagonal)",
      minArea,
      models,
      rows,
    };
  } finally {
    await Promise.all(owned.map((s) => s.close()));
  }
}

/** The per-model table: instances, mIoU, boundary F, ms/image. */
export function formatEvalTable(report: EvalReport): string {
  const header = ["model", "ep", "images", "instances", "mIoU", "boundary F", "ms/image"];
  const body = report.models.map((m) => [m.model, m.executionProvider, String(m.images), String(m.instances), m.mIoU.toFixed(4), m.boundaryF.toFixed(4), m.msPerImage.toFixed(1)]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
  const skipped = report.skipped;
  return [
    line(header),
    ...body.map(line),
    `${report.imagesEvaluated} images, ${report.instances} instances per model; skipped: ${skipped.crowd} crowd, ${skipped.tooSmall} under ${report.minArea} px, ${skipped.emptyBox} empty boxes`,
  ].join("\n");
}
