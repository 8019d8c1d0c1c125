/**
 * Adapter for Meta's SAM ONNX format as samexporter writes it: an image encoder
 * (input_image -> image_embeddings [1, 256, 64, 64]) and Meta's SamOnnxModel decoder
 * (image_embeddings, point_coords, point_labels, mask_input, has_mask_input, orig_im_size ->
 * masks, iou_predictions, low_res_masks).
 *
 * Encoder input, read from the file: rank 3 = [H, W, 3] raw RGB 0-255 of the resized image, the
 * graph normalises and pads (samexporter --use-preprocess, the published files); rank 4 =
 * [1, 3, 1024, 1024] normalised and padded here (export without preprocessing).
 *
 * Boxes: two points labelled 2 and 3 (top-left, bottom-right) in the 1024 frame and no padding
 * point, as Meta's demo feeds a box. Meta's export makes only num_points dynamic
 * (point_coords [1, N, 2]), so such files take one box per decoder run; a decoder with a dynamic
 * first dimension gets all boxes in one run. Either way the encoder runs once per image.
 * A box's own points (Box.points, labels 1/0) follow its corners; in a batch, shorter prompts are
 * padded with label -1. With SegmenterOptions.refine each box is decoded a second time with its
 * chosen low_res_masks as mask_input (has_mask_input = 1), one box per run (mask_input is
 * [1, 1, 256, 256] in Meta's export).
 *
 * We read low_res_masks and upscale them ourselves (sam-processing.ts), not the decoder's `masks`:
 * - `masks` is float32 B x H x W at the original size: 96 MB per box for a 24 MP photo, against
 *   256 KB of low-res logits; our upscale writes 1 byte per pixel straight into the mask.
 * - The segment-anything 1.0 wrapper can freeze the crop size of `masks` to the export's dummy
 *   image when traced (samexporter's runtime notes this and prefers low_res_masks too).
 * orig_im_size only feeds that `masks` output (SamOnnxModel.mask_postprocessing), so we pass the
 * resized size: whatever onnxruntime computes for the unused output stays <= 1024 x 1024 per box.
 */
import { ModelError } from "../runtime/errors.js";
import { checkSessionIO, inputShape, Tensor, type InferenceSession } from "../runtime/onnx.js";
import type { Box, RgbImage } from "../imaging/types.js";
import type { ResolvedModel } from "../models/registry.js";
import { chooseCandidates, EncoderDecoderSegmenter, loadSessionPair, selectionFor, toResult, type Chosen } from "./sam-common.js";
import { normalizePadChw, resizeLongestSide, SAM_INPUT_SIDE, toHwcFloat, type Size } from "./sam-processing.js";
import { boxPrompts, checkInput, checkPoints } from "./sam-prompts.js";
import type { MaskSelection, SegmentResult, Segmenter, SegmenterOptions } from "./types.js";

export const SAMEXPORTER_ENCODER_IO = { inputs: ["input_image"], outputs: ["image_embeddings"] } as const;
export const SAMEXPORTER_DECODER_IO = {
  inputs: ["image_embeddings", "point_coords", "point_labels", "mask_input", "has_mask_input", "orig_im_size"],
  outputs: ["iou_predictions", "low_res_masks"],
} as const;

type EncoderLayout = "hwc" | "nchw";

function encoderLayout(session: InferenceSession, path: string): EncoderLayout {
  const shape = inputShape(session, "input_image");
  if (shape?.length === 3 && shape[2] === 3) return "hwc";
  if (shape?.length === 4 && shape[1] === 3) {
    if (shape[2] !== SAM_INPUT_SIDE || shape[3] !== SAM_INPUT_SIDE) throw new ModelError(`${path}: input_image is [${shape.join(", ")}], expected [1, 3, 1024, 1024]`);
    return "nchw";
  }
  throw new ModelError(`${path}: input_image is [${shape?.join(", ") ?? "?"}]; expected [H, W, 3] (preprocessing inside) or [1, 3, 1024, 1024]`);
}

export class SamexporterSegmenter extends EncoderDecoderSegmenter implements Segmenter {
  private readonly noMask = new Tensor("float32", new Float32Array(256 * 256), [1, 1, 256, 256]);
  private readonly hasNoMask = new Tensor("float32", new Float32Array(1), [1]);

  private readonly hasMask = new Tensor("float32", Float32Array.of(1), [1]);

  private constructor(
    name: string,
    executionProvider: string,
    encoder: InferenceSession,
    decoder: InferenceSession,
    private readonly layout: EncoderLayout,
    /** The decoder takes several prompts in one run (dynamic first dimension of point_coords). */
    private readonly batched: boolean,
    /** SegmenterOptions.refine: a second pass per box with the first pass's logits as mask_input. */
    private readonly refine: boolean,
    private readonly maskSelection: MaskSelection | undefined,
  ) {
    super(name, executionProvider, encoder, decoder);
  }

  static async load(model: ResolvedModel, opts: SegmenterOptions = {}): Promise<SamexporterSegmenter> {
    return loadSessionPair(model, opts, ({ encoder, decoder, encoderPath, decoderPath }) => {
      checkSessionIO(encoder, encoderPath, SAMEXPORTER_ENCODER_IO, "samexporter SAM encoder");
      checkSessionIO(decoder, decoderPath, SAMEXPORTER_DECODER_IO, "samexporter SAM decoder");
      const layout = encoderLayout(encoder, encoderPath);
      const batched = typeof inputShape(decoder, "point_coords")?.[0] === "string";
      return new SamexporterSegmenter(model.name, opts.executionProvider ?? "cpu", encoder, decoder, layout, batched, opts.refine ?? false, opts.maskSelection);
    });
  }

  async segment(image: RgbImage, boxes: Box[]): Promise<SegmentResult> {
    checkInput(image, boxes);
    checkPoints(boxes);
    const t0 = performance.now();
    const resized = await resizeLongestSide(image);
    const input =
      this.layout === "hwc"
        ? new Tensor("float32", toHwcFloat(resized), [resized.height, resized.width, 3])
        : new Tensor("float32", normalizePadChw(resized), [1, 3, SAM_INPUT_SIDE, SAM_INPUT_SIDE]);
    const t1 = performance.now();

    const { image_embeddings: embeddings } = await this.encode({ input_image: input }, SAMEXPORTER_ENCODER_IO.outputs);
    const t2 = performance.now();

    // mask_input is [1, 1, 256, 256] in Meta's export: a refined box gets a run of its own.
    const groups = this.batched && !this.refine ? [boxes] : boxes.map((b) => [b]);
    const decoded: Chosen[] = [];
    for (const group of groups) {
      const first = await this.decode(embeddings as Tensor, group, image, resized, null);
      decoded.push(...(this.refine ? await this.decode(embeddings as Tensor, group, image, resized, first[0] ?? null) : first));
    }
    return toResult(decoded, resized, image, [t0, t1, t2, performance.now()]);
  }

  /**
   * One decoder run for `boxes` (with `previous`, one box's first-pass logits, as mask_input);
   * returns each box's chosen low-res logits (a view) and IoU score. A box is its corners (labels
   * 2, 3) plus its points (1, 0); shorter prompts of a batch are padded with label -1, which
   * Meta's decoder embeds as "not a point".
   */
  private async decode(embeddings: Tensor, boxes: Box[], original: Size, resized: Size, previous: Chosen | null): Promise<Chosen[]> {
    const sx = resized.width / original.width;
    const sy = resized.height / original.height;
    const p = boxPrompts(boxes, (x, y) => [x * sx, y * sy], -1);
    const n = p.boxes;
    if (previous && previous.logits.length !== 256 * 256) throw new ModelError(`${this.name}: cannot refine with ${previous.side}x${previous.side} logits, mask_input is 256x256`);
    const out = await this.decoder.run(
      {
        image_embeddings: embeddings,
        point_coords: new Tensor("float32", p.coords, [n, p.points, 2]),
        point_labels: new Tensor("float32", Float32Array.from(p.labels), [n, p.points]),
        mask_input: previous ? new Tensor("float32", Float32Array.from(previous.logits), [1, 1, 256, 256]) : this.noMask,
        has_mask_input: previous ? this.hasMask : this.hasNoMask,
        orig_im_size: new Tensor("float32", Float32Array.from([resized.height, resized.width]), [2]),
      },
      ["iou_predictions", "low_res_masks"],
    );
    this.stats.decoderRuns++;
    const low = out.low_res_masks;
    const iou = out.iou_predictions;
    if (!low || !iou || low.dims.length !== 4 || low.dims[0] !== n) {
      throw new ModelError(`${this.name}: unexpected decoder output low_res_masks [${low?.dims.join(", ") ?? "missing"}] for ${n} box(es)`);
    }
    const [, k = 1, h = 0, w = 0] = low.dims;
    if (h !== w) throw new ModelError(`${this.name}: low_res_masks must be square, got ${h}x${w}`);
    // A single-mask export chose by select_masks: mask 0 for prompts of more than 2 points, else the best candidate.
    const rule = selectionFor(this.maskSelection, k, { model: this.name, oneMaskRule: p.points > 2 ? "single" : "best" });
    return chooseCandidates(low.data as Float32Array, iou.data as Float32Array, n, k, h, rule);
  }
}
