/**
 * Adapter for SAM 2 / 2.1 in samexporter's SAM2 ONNX format (samexporter/export_sam2.py, the files
 * of vietanhdev/segment-anything-2(.1)-onnx-models):
 *
 * - encoder: image float32 [1, 3, 1024, 1024] -> high_res_feats_0 [1, 32, 256, 256],
 *   high_res_feats_1 [1, 64, 128, 128], image_embed [1, 256, 64, 64];
 * - decoder: image_embed, high_res_feats_0, high_res_feats_1, point_coords [B, N, 2],
 *   point_labels [B, N], mask_input [B, 1, 256, 256], has_mask_input [1] -> masks
 *   [B, 3, 256, 256] (low-res logits, clamped to +-32; the export always returns SAM 2's three
 *   multimask candidates) and iou_predictions [B, 3]. point_coords/point_labels/mask_input have a
 *   dynamic first dimension, so all boxes go in one decoder run.
 *
 * Pre-processing as SAM 2 (SAM2Transforms) and samexporter's runtime (sam2_onnx.py): the image is
 * resized to 1024 x 1024 WITHOUT keeping its aspect ratio (no padding), scaled to 0-1 and
 * normalised with the ImageNet mean/std; points are mapped by x * 1024 / width, y * 1024 / height.
 * The decoder adds its own padding point, so a box is just its corners (labels 2, 3) plus its points;
 * boxes with fewer points are padded with label -1 (samexporter's runtime does the same).
 * The chosen logits are upscaled to the original size (256 -> 1024 x 1024 -> original, bilinear).
 *
 * has_mask_input is fed as [1] even though the export names its first dimension num_labels: the
 * export multiplies it into the [B, 256, 64, 64] mask embedding, which only broadcasts for B = 1.
 *
 * Some other SAM 2 exports add orig_im_size and return masks at that size; given such an input we
 * pass 256 x 256 so `masks` stays the low-res logits (an assumption; not checked against such a file).
 */
import sharp from "sharp";
import { ModelError } from "../runtime/errors.js";
import { checkSessionIO, inputShape, Tensor, type InferenceSession } from "../runtime/onnx.js";
import type { Box, RgbImage } from "../imaging/types.js";
import type { ResolvedModel } from "../models/registry.js";
import { chooseCandidates, EncoderDecoderSegmenter, loadSessionPair, selectionFor, toResult, type Chosen } from "./sam-common.js";
import { normalizePadChw, SAM_INPUT_SIDE, SAM_LOW_RES_SIDE, type Size } from "./sam-processing.js";
import { boxPrompts, checkPoints } from "./sam-prompts.js";
import { checkInput } from "./sam-prompts.js";
import type { MaskSelection, SegmentResult, Segmenter, SegmenterOptions } from "./types.js";

export const SAM2_ENCODER_IO = { inputs: ["image"], outputs: ["high_res_feats_0", "high_res_feats_1", "image_embed"] } as const;
export const SAM2_DECODER_IO = {
  inputs: ["image_embed", "high_res_feats_0", "high_res_feats_1", "point_coords", "point_labels", "mask_input", "has_mask_input"],
  outputs: ["masks", "iou_predictions"],
} as const;

const SQUARE: Size = { width: SAM_INPUT_SIDE, height: SAM_INPUT_SIDE };

export class Sam2Segmenter extends EncoderDecoderSegmenter implements Segmenter {
  private constructor(
    name: string,
    executionProvider: string,
    encoder: InferenceSession,
    decoder: InferenceSession,
    private readonly batched: boolean,
    private readonly refine: boolean,
    private readonly takesOrigSize: boolean,
    private readonly maskSelection: MaskSelection | undefined,
  ) {
    super(name, executionProvider, encoder, decoder);
  }

  static async load(model: ResolvedModel, opts: SegmenterOptions = {}): Promise<Sam2Segmenter> {
    return loadSessionPair(model, opts, ({ encoder, decoder, encoderPath, decoderPath }) => {
      checkSessionIO(encoder, encoderPath, SAM2_ENCODER_IO, "SAM 2 encoder (samexporter format)");
      checkSessionIO(decoder, decoderPath, SAM2_DECODER_IO, "SAM 2 decoder (samexporter format)");
      const shape = inputShape(encoder, "image");
      if (shape && shape.length === 4 && (shape[1] !== 3 || shape[2] !== SAM_INPUT_SIDE || shape[3] !== SAM_INPUT_SIDE)) {
        throw new ModelError(`${encoderPath}: image is [${shape.join(", ")}], expected [1, 3, 1024, 1024]`);
      }
      const batched = typeof inputShape(decoder, "point_coords")?.[0] !== "number";
      const takesOrigSize = decoder.inputNames.includes("orig_im_size");
      return new Sam2Segmenter(model.name, opts.executionProvider ?? "cpu", encoder, decoder, batched, opts.refine ?? false, takesOrigSize, opts.maskSelection);
    });
  }

  async segment(image: RgbImage, boxes: Box[]): Promise<SegmentResult> {
    checkInput(image, boxes);
    checkPoints(boxes);
    const t0 = performance.now();
    const square = await sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } })
      .resize(SAM_INPUT_SIDE, SAM_INPUT_SIDE, { kernel: "linear", fit: "fill" })
      .raw()
      .toBuffer();
    const input = new Tensor("float32", normalizePadChw({ data: square, ...SQUARE }), [1, 3, SAM_INPUT_SIDE, SAM_INPUT_SIDE]);
    const t1 = performance.now();

    const features = await this.encode({ image: input }, SAM2_ENCODER_IO.outputs);
    const t2 = performance.now();
    const groups = this.batched ? [boxes] : boxes.map((b) => [b]);
    const chosen: Chosen[] = [];
    for (const group of groups) {
      const first = await this.decode(features, group, image, null);
      chosen.push(...(this.refine ? await this.decode(features, group, image, first) : first));
    }
    return toResult(chosen, SQUARE, image, [t0, t1, t2, performance.now()]);
  }

  /** One decoder run for `boxes` (optionally with the previous pass's chosen logits as mask_input): each box's best candidate. */
  private async decode(features: Record<string, Tensor>, boxes: Box[], original: Size, previous: Chosen[] | null): Promise<Chosen[]> {
    const sx = SAM_INPUT_SIDE / original.width;
    const sy = SAM_INPUT_SIDE / original.height;
    const p = boxPrompts(boxes, (x, y) => [x * sx, y * sy], -1);
    const n = p.boxes;
    const low = SAM_LOW_RES_SIDE;
    const maskInput = new Float32Array(n * low * low);
    previous?.forEach((c, i) => {
      if (c.side !== low) throw new ModelError(`${this.name}: cannot refine with ${c.side}x${c.side} logits, mask_input is ${low}x${low}`);
      maskInput.set(c.logits, i * low * low);
    });
    const feeds: Record<string, Tensor> = {
      image_embed: features.image_embed as Tensor,
      high_res_feats_0: features.high_res_feats_0 as Tensor,
      high_res_feats_1: features.high_res_feats_1 as Tensor,
      point_coords: new Tensor("float32", p.coords, [n, p.points, 2]),
      point_labels: new Tensor("float32", Float32Array.from(p.labels), [n, p.points]),
      mask_input: new Tensor("float32", maskInput, [n, 1, low, low]),
      has_mask_input: new Tensor("float32", Float32Array.of(previous ? 1 : 0), [1]),
    };
    if (this.takesOrigSize) feeds.orig_im_size = new Tensor("float32", Float32Array.of(low, low), [2]);
    const out = await this.decoder.run(feeds, [...SAM2_DECODER_IO.outputs]);
    this.stats.decoderRuns++;
    const masks = out.masks;
    const iou = out.iou_predictions;
    if (!masks || !iou || masks.dims.length !== 4 || masks.dims[0] !== n || masks.dims[2] !== masks.dims[3]) {
      throw new ModelError(`${this.name}: unexpected decoder output masks [${masks?.dims.join(", ") ?? "missing"}] for ${n} box(es)`);
    }
    const [, k = 1, side = 0] = masks.dims;
    return chooseCandidates(masks.data as Float32Array, iou.data as Float32Array, n, k, side, selectionFor(this.maskSelection, k, { model: this.name, oneMaskRule: "single" }));
  }
}
