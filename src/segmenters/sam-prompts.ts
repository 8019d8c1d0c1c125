/**
 * Prompt tensors shared by the point-taking SAM adapters (sam2.ts, hf-sam.ts): each box becomes its
 * two corners labelled 2 (top-left) and 3 (bottom-right), followed by the box's own points
 * (label 1 = object, 0 = background), all mapped into the model's input frame; boxes with fewer
 * points are padded with (0, 0) and the format's "not a point" label, so all boxes fit one
 * [boxes, points, 2] tensor. And the checks every SAM adapter makes of an image and its boxes.
 */
import { InputError } from "../runtime/errors.js";
import type { Box, RgbImage } from "../imaging/types.js";
import { SAM_INPUT_SIDE, samResizeShape } from "./sam-processing.js";

export interface PromptBatch {
  /** [boxes, points, 2] in the model's frame. */
  coords: Float32Array;
  /** [boxes, points]. */
  labels: number[];
  boxes: number;
  points: number;
}

/** Point prompts of each box: corners (labels 2, 3) then its points, padded with `padLabel`. */
export function boxPrompts(boxes: readonly Box[], toFrame: (x: number, y: number) => [number, number], padLabel: number): PromptBatch {
  const perBox = boxes.map((b) => [{ x: b.x0, y: b.y0, label: 2 }, { x: b.x1, y: b.y1, label: 3 }, ...(b.points ?? []).map((p) => ({ x: p.x, y: p.y, label: p.label as number }))]);
  const points = Math.max(...perBox.map((p) => p.length));
  const coords = new Float32Array(boxes.length * points * 2);
  const labels: number[] = new Array<number>(boxes.length * points).fill(padLabel);
  perBox.forEach((pts, i) =>
    pts.forEach((p, j) => {
      coords.set(toFrame(p.x, p.y), (i * points + j) * 2);
      labels[i * points + j] = p.label;
    }),
  );
  return { coords, labels, boxes: boxes.length, points };
}

/** Box points must be finite with label 0 or 1. */
export function checkPoints(boxes: readonly Box[]): void {
  boxes.forEach((b, i) =>
    (b.points ?? []).forEach((p, j) => {
      if (!Number.isFinite(p.x) || !Number.isFinite(p.y) || (p.label !== 0 && p.label !== 1)) {
        throw new InputError(`segment: point ${j} of box ${i} (${p.x}, ${p.y}, label ${String(p.label)}) must be finite with label 0 or 1`);
      }
    }),
  );
}

/** The encoder sees 16 x 16 patches: a thinner image has no full patch of content. */
const MIN_RESIZED_SIDE = 16;

export function checkInput(image: RgbImage, boxes: Box[]): void {
  if (!(image.width > 0 && image.height > 0) || image.data.length !== image.width * image.height * 3) {
    throw new InputError(`segment: expected ${image.width}x${image.height} RGB pixels (${image.width * image.height * 3} bytes), got ${image.data.length} bytes`);
  }
  if (boxes.length === 0) throw new InputError("segment: no boxes to segment");
  const resized = samResizeShape(image);
  if (Math.min(resized.width, resized.height) < MIN_RESIZED_SIDE) {
    throw new InputError(
      `segment: a ${image.width}x${image.height} image is ${resized.width}x${resized.height} at SAM's ${SAM_INPUT_SIDE}-px input, ` +
        `too elongated to segment (the short side must reach ${MIN_RESIZED_SIDE} px, one encoder patch)`,
    );
  }
  boxes.forEach((b, i) => {
    if (![b.x0, b.y0, b.x1, b.y1].every(Number.isFinite) || b.x1 <= b.x0 || b.y1 <= b.y0) {
      throw new InputError(`segment: box ${i} (${b.x0}, ${b.y0}, ${b.x1}, ${b.y1}) is empty or not finite`);
    }
  });
}
