/**
 * Adapter for UltraFace (Ultra-Light-Fast-Generic-Face-Detector, ONNX model zoo): input
 * [1, 3, H, W] (240 x 320 for version-RFB-320, read from the file), RGB stretched to that size,
 * (px - 127) / 128; outputs scores [1, N, 2] (softmax, index 1 = face) and boxes [1, N, 4]
 * (corners normalised to 0-1). Post-processing as the model zoo's box_utils.predict: threshold,
 * hard NMS over the 200 best candidates, scale to pixels; then clamp inside the image.
 */
import sharp from "sharp";
import { ModelError } from "../runtime/errors.js";
import { checkSessionIO, createSession, inputShape, Tensor, type InferenceSession } from "../runtime/onnx.js";
import type { Box, RgbImage } from "../imaging/types.js";
import type { ResolvedModel } from "../models/registry.js";
import type { Detector, DetectorOptions } from "./types.js";
import { nms } from "./nms.js";

export { nms };

export const ULTRAFACE_IO = { inputs: ["input"], outputs: ["scores", "boxes"] } as const;
const CANDIDATES = 200;

export class UltraFaceDetector implements Detector {
  private constructor(
    readonly name: string,
    private readonly session: InferenceSession,
    private readonly inputWidth: number,
    private readonly inputHeight: number,
    private readonly scoreThreshold: number,
    private readonly nmsIou: number,
  ) {}

  static async load(model: ResolvedModel, opts: DetectorOptions & { scoreThreshold: number; nmsIou: number }): Promise<UltraFaceDetector> {
    const path = model.files.model;
    if (!path) throw new ModelError(`${model.name}: ultraface models need a "model" file`);
    const session = await createSession(path, { executionProvider: opts.executionProvider, intraOpThreads: opts.intraOpThreads });
    try {
      checkSessionIO(session, path, ULTRAFACE_IO, "UltraFace face detector");
      const shape = inputShape(session, "input");
      const [, c, h, w] = shape ?? [];
      if (shape?.length !== 4 || c !== 3 || typeof h !== "number" || typeof w !== "number") {
        throw new ModelError(`${path}: input is [${shape?.join(", ") ?? "?"}], expected [1, 3, height, width] with a fixed size`);
      }
      return new UltraFaceDetector(model.name, session, w, h, opts.scoreThreshold, opts.nmsIou);
    } catch (err) {
      await session.release();
      throw err;
    }
  }

  async detect(image: RgbImage): Promise<Box[]> {
    const { inputWidth: w, inputHeight: h } = this;
    const px = await sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } })
      .resize(w, h, { kernel: "linear", fit: "fill" })
      .raw()
      .toBuffer();
    const input = new Float32Array(3 * w * h);
    for (let c = 0; c < 3; c++) {
      const plane = c * w * h;
      for (let i = 0; i < w * h; i++) input[plane + i] = (px[i * 3 + c]! - 127) / 128;
    }
    const out = await this.session.run({ input: new Tensor("float32", input, [1, 3, h, w]) });
    const scores = out.scores;
    const boxes = out.boxes;
    const n = scores?.dims[1] ?? 0;
    if (!scores || !boxes || scores.dims[2] !== 2 || boxes.dims[1] !== n || boxes.dims[2] !== 4) {
      throw new ModelError(`${this.name}: expected scores [1, N, 2] and boxes [1, N, 4], got [${scores?.dims.join(", ")}] and [${boxes?.dims.join(", ")}]`);
    }
    return decodeFaces(scores.data as Float32Array, boxes.data as Float32Array, image, this.scoreThreshold, this.nmsIou);
  }

  async close(): Promise<void> {
    await this.session.release();
  }
}

/** Threshold, NMS and scaling (corners rounded to whole pixels, clamped) of UltraFace outputs (scores [N, 2], boxes [N, 4]). */
export function decodeFaces(scores: Float32Array, boxes: Float32Array, image: { width: number; height: number }, threshold: number, nmsIou: number): Box[] {
  const n = scores.length / 2;
  const kept: number[] = [];
  for (let i = 0; i < n; i++) if (scores[i * 2 + 1]! > threshold) kept.push(i);
  kept.sort((a, b) => scores[b * 2 + 1]! - scores[a * 2 + 1]!);
  const picked = nms(boxes, kept.slice(0, CANDIDATES), nmsIou);
  const { width: W, height: H } = image;
  const clamp = (v: number, max: number) => Math.min(Math.max(v, 0), max);
  const out: Box[] = [];
  for (const i of picked) {
    const x0 = clamp(Math.round(boxes[i * 4]! * W), W);
    const y0 = clamp(Math.round(boxes[i * 4 + 1]! * H), H);
    const x1 = clamp(Math.round(boxes[i * 4 + 2]! * W), W);
    const y1 = clamp(Math.round(boxes[i * 4 + 3]! * H), H);
    if (x1 > x0 && y1 > y0) out.push({ x0, y0, x1, y1, score: scores[i * 2 + 1]!, label: "face" });
  }
  return out;
}
