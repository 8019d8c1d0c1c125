/**
 * Benchmark stand-ins for BiRefNet (ZhengPeng7/BiRefNet, models/birefnet.py + config.py) as the
 * rembg project's ONNX exports ship it: the same architecture with seeded random weights, so the
 * "salient" adapter (src/segmenters/salient.ts) can be timed without the 973 / 224 MB downloads.
 *
 *   birefnet-general  Swin-L backbone (embed 192, depths [2, 2, 18, 2], heads [6, 12, 24, 48], window 12)
 *   birefnet-lite     Swin-T backbone (embed 96,  depths [2, 2, 6, 2],  heads [3, 6, 12, 24],  window 7)
 *
 * Graph, for a 1024 x 1024 input (config: mul_scl_ipt "cat", cxt_num 3, squeeze_block
 * BasicDecBlk_x1, dec_blk BasicDecBlk, dec_att ASPPDeformable with branch kernels [1, 3, 7],
 * lat_blk BasicLatBlk, dec_ipt with dec_ipt_split, ms_supervision + out_ref), as torch.onnx
 * (opset 17, eval, constant folding) with deform_conv2d_onnx_exporter writes it
 * (BiRefNet's cpp/py/pth2onnx.py):
 *   - Swin v1 backbone on the image and again on the image resized to 512 (bilinear, align
 *     corners); the half-size run's four stage outputs (LayerNorm'd, NCHW) upsampled and
 *     concatenated to the full-size ones: channels 2 x [C, 2C, 4C, 8C] at 1/4 .. 1/32. Swin
 *     blocks: window partition by Reshape/Transpose, padding to a multiple of the window, the
 *     cyclic shift of every second block as Slice + Concat (torch.roll), the shifted-window
 *     attention mask (0 / -100, computed in the graph from a constant region map, once per stage
 *     and input size) added to the scores, the relative position bias folded to a constant
 *     [1, heads, N, N] per block;
 *   - x4 = cat(x1, x2, x3 resized to 1/32, x4), squeeze module BasicDecBlk(30C -> 16C);
 *   - decoder: four BasicDecBlk (3x3 conv to 64, ASPPDeformable(64), 3x3 conv out), 1x1 lateral
 *     convs, the "ipt" blocks (the image cut into patches stacked as channels, b c (hg h) (wg w)
 *     -> b (c hg wg) h w, two 3x3 convs) concatenated at every level, the gradient-attention gates
 *     (3x3 conv to 16 + ReLU, 1x1 conv to 1, sigmoid, multiply), and a 1x1 conv to one channel at
 *     full size: output_image [1, 1, 1024, 1024] logits;
 *   - the deformable convs (ONNX has no such op) as the exporter decomposes them: sampling grid
 *     constant + offsets, floor, clip, four GatherND, bilinear weights, modulator, strided Conv
 *     (see deformConvBnRelu; opts.deform "conv" swaps in a plain k x k conv instead).
 * BatchNorms are folded into the preceding convs (what torch's eval export does with Conv + BN;
 * after a deformable conv the real file may keep a BatchNormalization node: same cost).
 *
 * Input "input_image" float32 [1, 3, 1024, 1024] (ImageNet-normalised RGB), output "output_image"
 * (BiRefNet's own export names; the adapter also accepts input / output).
 *
 *   npx tsx benchmarks/standins/make-birefnet.ts <outDir> birefnet-general|birefnet-lite [--seed N] [--deform exporter|conv]
 */
import { stat } from "node:fs/promises";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { getModel } from "../../src/models/registry.js";
import { encodeModel, GraphBuilder, numel, valueInfo, type BuiltModel, type Fill, type Shape, type Value } from "../../test/support/onnx/onnx-graph.js";
import { concat, conv2d, relu, resize, sigmoid, writeSalientFolder } from "./make-isnet.js";

export type { BuiltModel };
export type BirefnetVariant = "birefnet-general" | "birefnet-lite";
export const BIREFNET_VARIANTS: readonly BirefnetVariant[] = ["birefnet-general", "birefnet-lite"];

const TOOL_VERSION = "make-birefnet@1";

export interface SwinConfig {
  embedDim: number;
  depths: readonly number[];
  heads: readonly number[];
  window: number;
}

export const SWIN: Record<BirefnetVariant, SwinConfig> = {
  "birefnet-general": { embedDim: 192, depths: [2, 2, 18, 2], heads: [6, 12, 24, 48], window: 12 },
  "birefnet-lite": { embedDim: 96, depths: [2, 2, 6, 2], heads: [3, 6, 12, 24], window: 7 },
};

/** The published ONNX files (manifest sizes). */
export const BIREFNET_PUBLISHED: Record<BirefnetVariant, { onnxBytes: number }> = {
  "birefnet-general": { onnxBytes: 972_666_916 },
  "birefnet-lite": { onnxBytes: 224_005_088 },
};

export const BIREFNET_IO = { input: "input_image", output: "output_image" } as const;

export interface BirefnetOptions {
  seed?: number;
  /** Input side (1024 for the real models; a multiple of 64 * window keeps shapes simple, any multiple of 64 works). */
  size?: number;
  /** Backbone override (tests: a narrower, shallower Swin). */
  swin?: Partial<SwinConfig>;
  /** BasicDecBlk inter channels (64 in BiRefNet). */
  decInter?: number;
  /** ASPPDeformable branch channels (256 in BiRefNet). */
  asppPlanes?: number;
  /**
   * Kernel sizes of the ASPPDeformable branches after aspp1 (1x1): [1, 3, 7] in the current
   * BiRefNet code (and the HF checkpoints), [3] in the "old" blocks, [3, 3, 3] in the first release.
   */
  asppKernels?: readonly number[];
  /** How the deformable convs are written (see deformConvBnRelu): "exporter" (default) or "conv". */
  deform?: "exporter" | "conv";
}

export interface BirefnetConfig {
  variant: BirefnetVariant;
  size: number;
  seed: number;
  swin: SwinConfig;
  decInter: number;
  asppPlanes: number;
  asppKernels: readonly number[];
  deform: "exporter" | "conv";
}

export function birefnetConfig(variant: BirefnetVariant, opts: BirefnetOptions = {}): BirefnetConfig {
  if (!BIREFNET_VARIANTS.includes(variant)) throw new RangeError(`unknown variant ${String(variant)}; one of ${BIREFNET_VARIANTS.join(", ")}`);
  const size = opts.size ?? 1024;
  if (!Number.isInteger(size) || size < 64 || size % 64 !== 0) throw new RangeError(`size must be a multiple of 64, got ${size}`);
  const swin = { ...SWIN[variant], ...opts.swin };
  if (swin.depths.length !== 4 || swin.heads.length !== 4) throw new RangeError("swin: four stages");
  swin.heads.forEach((h, i) => {
    if ((swin.embedDim * 2 ** i) % h !== 0) throw new RangeError(`swin: stage ${i} dim ${swin.embedDim * 2 ** i} not divisible by ${h} heads`);
  });
  return {
    variant,
    size,
    seed: opts.seed ?? 20240302,
    swin,
    decInter: opts.decInter ?? 64,
    asppPlanes: opts.asppPlanes ?? 256,
    asppKernels: opts.asppKernels ?? [1, 3, 7],
    deform: opts.deform ?? "exporter",
  };
}

// ---------------------------------------------------------------------------------------------
// Graph helpers

/** Learned weights shared by both backbone runs: created once, reused by name. */
class Params {
  private readonly cache = new Map<string, Value>();
  constructor(readonly g: GraphBuilder) {}
  get(name: string, shape: Shape, fill: Fill): Value {
    const hit = this.cache.get(name);
    if (hit) return hit;
    const v = this.g.param(name, shape, fill);
    this.cache.set(name, v);
    return v;
  }
  linear(x: Value, prefix: string, din: number, dout: number, bias = true): Value {
    const w = this.get(`${prefix}.weight`, [din, dout], { kind: "normal", mean: 0, std: 0.02 });
    const y = this.g.matmul(x, w);
    return bias ? this.g.binary("Add", y, this.get(`${prefix}.bias`, [dout], { kind: "normal", mean: 0, std: 0.02 })) : y;
  }
  layerNorm(x: Value, prefix: string, dim: number): Value {
    const w = this.get(`${prefix}.weight`, [dim], { kind: "constant", value: 1 });
    const b = this.get(`${prefix}.bias`, [dim], { kind: "constant", value: 0 });
    return this.g.node("LayerNormalization", [x, w, b], x.shape, { axis: -1, epsilon: 1e-5 });
  }
}

/** torch.roll(x, shift, axis) as torch exports it: two Slices and a Concat. */
function roll(g: GraphBuilder, x: Value, shift: number, axis: number): Value {
  const n = x.shape[axis] as number;
  const s = ((shift % n) + n) % n;
  if (s === 0) return x;
  const part = (start: number, end: number): Value => {
    const shape = [...x.shape];
    shape[axis] = end - start;
    return g.node("Slice", [x, g.ints([start]), g.ints([end]), g.ints([axis])], shape);
  };
  return concat(g, [part(n - s, n), part(0, n - s)], axis);
}

/** The Swin shifted-window region id of every token of every window, [nW, N] (BasicLayer's img_mask). */
function windowRegions(hp: number, wp: number, ws: number, shift: number): number[] {
  const region = (i: number, n: number) => (i < n - ws ? 0 : i < n - shift ? 1 : 2);
  const out: number[] = [];
  for (let wi = 0; wi < hp / ws; wi++) {
    for (let wj = 0; wj < wp / ws; wj++) {
      for (let a = 0; a < ws; a++) for (let b = 0; b < ws; b++) out.push(region(wi * ws + a, hp) * 3 + region(wj * ws + b, wp));
    }
  }
  return out;
}

interface Ctx {
  g: GraphBuilder;
  p: Params;
  cfg: BirefnetConfig;
  /** Floats in the file that are not learned parameters (folded position biases, deform sampling grids). */
  foldedFloats: number;
  folded: Map<string, Value>;
}

function windowAttention(ctx: Ctx, x: Value, prefix: string, dim: number, heads: number, mask: Value | null): Value {
  const { g, p } = ctx;
  const [nw, n] = x.shape as [number, number, number];
  const hd = dim / heads;
  const qkv = p.linear(x, `${prefix}.qkv`, dim, 3 * dim);
  const t = g.transpose(g.reshape(qkv, [nw, n, 3, heads, hd]), [2, 0, 3, 1, 4]);
  const q = g.binary("Mul", g.gather(t, [0], []), g.scalar(hd ** -0.5));
  const k = g.gather(t, [1], []);
  const v = g.gather(t, [2], []);
  let attn = g.matmul(q, g.transpose(k, [0, 1, 3, 2]));
  // relative_position_bias_table[(2ws-1)^2, heads] gathered by the index buffer: constant-folded
  // by the export to [1, heads, N, N] per block (one initializer, shared by both backbone runs).
  const biasName = `${prefix}.relative_position_bias`;
  let bias = ctx.folded.get(biasName);
  if (!bias) {
    bias = g.constant(biasName, [1, heads, n, n], { kind: "normal", mean: 0, std: 0.02 }); // the exporter folds the relative position bias
    ctx.folded.set(biasName, bias);
    ctx.foldedFloats += heads * n * n;
    g.params += (2 * ctx.cfg.swin.window - 1) ** 2 * heads; // the learned table
  }
  attn = g.binary("Add", attn, bias);
  if (mask) {
    attn = g.reshape(g.binary("Add", g.reshape(attn, [1, nw, heads, n, n]), mask), [nw, heads, n, n]);
  }
  attn = g.softmax(attn);
  const out = g.reshape(g.transpose(g.matmul(attn, v), [0, 2, 1, 3]), [nw, n, dim]);
  return p.linear(out, `${prefix}.proj`, dim, dim);
}

function swinBlock(ctx: Ctx, x: Value, prefix: string, hw: [number, number], dim: number, heads: number, shift: number, mask: Value | null): Value {
  const { g, p } = ctx;
  const ws = ctx.cfg.swin.window;
  const [h, w] = hw;
  const hp = Math.ceil(h / ws) * ws;
  const wp = Math.ceil(w / ws) * ws;
  let y = g.reshape(p.layerNorm(x, `${prefix}.norm1`, dim), [1, h, w, dim]);
  if (hp > h || wp > w) y = g.padEnd(y, [0, hp - h, wp - w, 0]);
  if (shift > 0) y = roll(g, roll(g, y, -shift, 1), -shift, 2);
  const nw = (hp / ws) * (wp / ws);
  y = g.reshape(g.transpose(g.reshape(y, [1, hp / ws, ws, wp / ws, ws, dim]), [0, 1, 3, 2, 4, 5]), [nw, ws * ws, dim]);
  y = windowAttention(ctx, y, `${prefix}.attn`, dim, heads, shift > 0 ? mask : null);
  y = g.reshape(g.transpose(g.reshape(y, [1, hp / ws, wp / ws, ws, ws, dim]), [0, 1, 3, 2, 4, 5]), [1, hp, wp, dim]);
  if (shift > 0) y = roll(g, roll(g, y, shift, 1), shift, 2);
  if (hp > h || wp > w) y = g.sliceTo(y, [1, 2], [h, w]);
  x = g.binary("Add", x, g.reshape(y, [1, h * w, dim]));
  let m = p.linear(p.layerNorm(x, `${prefix}.norm2`, dim), `${prefix}.mlp.fc1`, dim, 4 * dim);
  m = p.linear(g.gelu(m), `${prefix}.mlp.fc2`, 4 * dim, dim);
  return g.binary("Add", x, m);
}

/** The attention mask of a shifted-window stage: 0 within a region, -100 across, [1, nW, 1, N, N]. */
function shiftMask(ctx: Ctx, hw: [number, number]): Value {
  const { g } = ctx;
  const ws = ctx.cfg.swin.window;
  const hp = Math.ceil(hw[0] / ws) * ws;
  const wp = Math.ceil(hw[1] / ws) * ws;
  const nw = (hp / ws) * (wp / ws);
  const n = ws * ws;
  const ids = windowRegions(hp, wp, ws, Math.floor(ws / 2));
  const diff = g.binary("Sub", g.floats(ids, [nw, 1, n]), g.floats(ids, [nw, n, 1]));
  const same = g.node("Equal", [diff, g.scalar(0)], [nw, n, n]);
  const mask = g.node("Where", [same, g.scalar(0), g.scalar(-100)], [nw, n, n]);
  return g.reshape(mask, [1, nw, 1, n, n]);
}

/** PatchMerging: 2x2 neighbours concatenated (x0, x1, x2, x3 order), LayerNorm(4C), Linear(4C -> 2C, no bias). */
function patchMerging(ctx: Ctx, x: Value, prefix: string, hw: [number, number], dim: number): Value {
  const { g, p } = ctx;
  const [h, w] = hw;
  if (h % 2 || w % 2) throw new Error(`patch merging of odd ${h} x ${w}`);
  const y = g.reshape(x, [1, h, w, dim]);
  const part = (dy: number, dx: number) => g.node("Slice", [y, g.ints([dy, dx]), g.ints([h, w]), g.ints([1, 2]), g.ints([2, 2])], [1, h / 2, w / 2, dim]);
  const cat = g.reshape(concat(g, [part(0, 0), part(1, 0), part(0, 1), part(1, 1)], -1), [1, (h / 2) * (w / 2), 4 * dim]);
  return ctx.p.linear(p.layerNorm(cat, `${prefix}.norm`, 4 * dim), `${prefix}.reduction`, 4 * dim, 2 * dim, false);
}

/** SwinTransformer.forward: the four normalised stage outputs, NCHW. */
function swin(ctx: Ctx, image: Value): Value[] {
  const { g, p } = ctx;
  const { embedDim, depths, heads, window } = ctx.cfg.swin;
  const side = image.shape[2] as number;
  const pw = p.get("bb.patch_embed.proj.weight", [embedDim, 3, 4, 4], { kind: "normal", mean: 0, std: 0.02 });
  const pb = p.get("bb.patch_embed.proj.bias", [embedDim], { kind: "normal", mean: 0, std: 0.02 });
  let hw: [number, number] = [side / 4, side / 4];
  const pe = g.conv(image, pw, pb, 4, 0);
  let x = p.layerNorm(g.transpose(g.reshape(pe, [1, embedDim, hw[0] * hw[1]]), [0, 2, 1]), "bb.patch_embed.norm", embedDim);
  const outs: Value[] = [];
  for (let i = 0; i < 4; i++) {
    const dim = embedDim * 2 ** i;
    const depth = depths[i] as number;
    const mask = depth > 1 ? shiftMask(ctx, hw) : null;
    for (let b = 0; b < depth; b++) {
      x = swinBlock(ctx, x, `bb.layers.${i}.blocks.${b}`, hw, dim, heads[i] as number, b % 2 === 1 ? Math.floor(window / 2) : 0, mask);
    }
    const out = p.layerNorm(x, `bb.norm${i}`, dim);
    outs.push(g.transpose(g.reshape(out, [1, hw[0], hw[1], dim]), [0, 3, 1, 2]));
    if (i < 3) {
      x = patchMerging(ctx, x, `bb.layers.${i}.downsample`, hw, dim);
      hw = [hw[0] / 2, hw[1] / 2];
    }
  }
  return outs;
}

/**
 * DeformableConv2d + BatchNorm (folded into the conv bias) + ReLU. The offset and modulator convs
 * are ordinary convs; the deformable sampling is written in one of two ways:
 * - "exporter": as deform_conv2d_onnx_exporter (register_deform_conv2d_onnx_op(), GatherND; the
 *   exporter BiRefNet's ONNX conversion uses) writes torchvision's deform_conv2d: sampling points
 *   p = p_0 + p_k (a float constant [1, 1, K, 2, h, w] in the file) + offset, floor / clip to the
 *   four neighbours, four GatherND over the padded input, bilinear weights, the modulator, then
 *   the k x k conv as a Conv with stride k over the [C, h*k, w*k] rearranged samples;
 * - "conv": the k x k conv at the regular positions, scaled per pixel by mean(modulator) +
 *   mean(offset) (exact for zero offsets and a modulator uniform over the kernel; no sampling work).
 */
function deformConvBnRelu(ctx: Ctx, x: Value, prefix: string, cout: number, k: number): Value {
  const { g } = ctx;
  const [n, cin, h, w] = x.shape as [number, number, number, number];
  const pad = Math.floor(k / 2);
  const small = 0.1 * Math.sqrt(1 / (cin * k * k));
  const offset = conv2d(g, x, `${prefix}.offset_conv`, 2 * k * k, k, { pad, std: small });
  const modulator = g.binary("Mul", sigmoid(g, conv2d(g, x, `${prefix}.modulator_conv`, k * k, k, { pad, std: small })), g.scalar(2));
  if (ctx.cfg.deform === "conv") {
    const y = conv2d(g, x, `${prefix}.regular_conv`, cout, k, { pad });
    const mean = (v: Value) => g.node("ReduceMean", [v], [n, 1, h, w], { axes: [1], keepdims: 1 });
    return relu(g, g.binary("Mul", y, g.binary("Add", mean(modulator), mean(offset))));
  }
  const kk = k * k;
  const extra = pad === 0 ? 1 : 0;
  const inH = h + 2 * (pad + extra);
  const inW = w + 2 * (pad + extra);
  // p_0 + p_k, [1, 1, K, 2, h, w]: (y + extra + ky, x + extra + kx).
  const grid = (): Float32Array => {
    const p0 = new Float32Array(kk * 2 * h * w);
    for (let ky = 0; ky < k; ky++) {
      for (let kx = 0; kx < k; kx++) {
        const base = (ky * k + kx) * 2 * h * w;
        for (let yy = 0; yy < h; yy++) {
          for (let xx = 0; xx < w; xx++) {
            p0[base + yy * w + xx] = yy + extra + ky;
            p0[base + h * w + yy * w + xx] = xx + extra + kx;
          }
        }
      }
    }
    return p0;
  };
  const pk = g.constant(`${prefix}.p0_pk`, [1, 1, kk, 2, h, w], grid);
  ctx.foldedFloats += kk * 2 * h * w;
  const p = g.binary("Add", pk, g.reshape(offset, [1, 1, kk, 2, h, w]));
  const pFloor = g.node("Floor", [p], p.shape);
  const half: Shape = [1, 1, kk, 1, h, w];
  const slice3 = (v: Value, i: number) => g.node("Slice", [v, g.ints([i]), g.ints([i + 1]), g.ints([3])], half);
  const pInt: Value = { ...g.node("Cast", [pFloor], p.shape, { to: 7 }), dtype: "int64" };
  const one = g.ints([1], []);
  const clip = (v: Value, max: number) => g.node("Clip", [v, g.ints([0], []), g.ints([max], [])], half);
  const pt0 = slice3(pInt, 0);
  const pl0 = slice3(pInt, 1);
  const tlbr = {
    t: clip(pt0, inH - 1),
    l: clip(pl0, inW - 1),
    b: clip(g.binary("Add", pt0, one), inH - 1),
    r: clip(g.binary("Add", pl0, one), inW - 1),
  };
  const diff = g.binary("Sub", p, pFloor);
  const dy = slice3(diff, 0);
  const dx = slice3(diff, 1);
  const dyInv = g.binary("Sub", g.scalar(1), dy);
  const dxInv = g.binary("Sub", g.scalar(1), dx);
  const wshape: Shape = [1, 1, 1, kk, h, w];
  const weights = {
    tl: g.reshape(g.binary("Mul", dxInv, dyInv), wshape),
    br: g.reshape(g.binary("Mul", dx, dy), wshape),
    bl: g.reshape(g.binary("Mul", dxInv, dy), wshape),
    tr: g.reshape(g.binary("Mul", dx, dyInv), wshape),
  };
  const padded = g.reshape(g.node("Pad", [x, g.ints([0, 0, pad + extra, pad + extra, 0, 0, pad + extra, pad + extra])], [n, cin, inH, inW], { mode: "constant" }), [
    1,
    1,
    cin,
    inH,
    inW,
  ]);
  const m = kk * h * w;
  const gather = (py: Value, px: Value): Value => {
    const index = concat(g, [g.reshape(py, [1, 1, m, 1]), g.reshape(px, [1, 1, m, 1])], 3);
    const src = g.transpose(padded, [0, 1, 3, 4, 2]);
    const v = g.node("GatherND", [src, index], [1, 1, m, cin], { batch_dims: 2 });
    return g.reshape(g.transpose(v, [0, 1, 3, 2]), [1, 1, cin, kk, h, w]);
  };
  const terms = (["tl", "br", "bl", "tr"] as const).map((key) => {
    const v = gather(tlbr[key[0] as "t" | "b"], tlbr[key[1] as "l" | "r"]);
    return g.binary("Mul", weights[key], v);
  });
  let v = g.node("Sum", terms, [1, 1, cin, kk, h, w]);
  v = g.binary("Mul", v, g.reshape(modulator, [1, 1, 1, kk, h, w]));
  v = g.reshape(g.transpose(g.reshape(v, [1, cin, k, k, h, w]), [0, 1, 4, 2, 5, 3]), [1, cin, h * k, w * k]);
  const y = conv2d(g, v, `${prefix}.regular_conv`, cout, k, { stride: k, pad: 0 });
  return relu(g, y);
}

/** ASPPDeformable(in): aspp1 (1x1) + the k x k branches + global pooling branch, cat, 1x1 conv back to in. */
function asppDeformable(ctx: Ctx, x: Value, prefix: string): Value {
  const { g, cfg } = ctx;
  const [n, cin, h, w] = x.shape as [number, number, number, number];
  const planes = cfg.asppPlanes;
  const branches = [deformConvBnRelu(ctx, x, `${prefix}.aspp1.atrous_conv`, planes, 1)];
  cfg.asppKernels.forEach((k, i) => branches.push(deformConvBnRelu(ctx, x, `${prefix}.aspp_deforms.${i}.atrous_conv`, planes, k)));
  const pooled = g.node("GlobalAveragePool", [x], [n, cin, 1, 1]);
  const gp = relu(g, conv2d(g, pooled, `${prefix}.global_avg_pool.1`, planes, 1));
  branches.push(resize(g, gp, h, w, true));
  return relu(g, conv2d(g, concat(g, branches), `${prefix}.conv1`, cin, 1));
}

/** BasicDecBlk: conv_in 3x3 (+BN, ReLU) to decInter, ASPPDeformable, conv_out 3x3 (+BN). */
function basicDecBlk(ctx: Ctx, x: Value, prefix: string, cout: number): Value {
  const { g, cfg } = ctx;
  const y = relu(g, conv2d(g, x, `${prefix}.conv_in`, cfg.decInter, 3));
  return conv2d(g, asppDeformable(ctx, y, `${prefix}.dec_att`), `${prefix}.conv_out`, cout, 3);
}

/** image2patches(x, patch_ref, 'b c (hg h) (wg w) -> b (c hg wg) h w'). */
function imagePatches(g: GraphBuilder, x: Value, side: number): Value {
  const s = x.shape[2] as number;
  const grid = s / side;
  if (grid === 1) return x;
  return g.reshape(g.transpose(g.reshape(x, [1, 3, grid, side, grid, side]), [0, 1, 2, 4, 3, 5]), [1, 3 * grid * grid, side, side]);
}

/** SimpleConvs on the image patches for a decoder level of the given side. */
function iptBlock(ctx: Ctx, x: Value, prefix: string, side: number, cout: number): Value {
  const { g } = ctx;
  const patches = imagePatches(g, x, side);
  const y = conv2d(g, patches, `${prefix}.conv1`, 64, 3);
  return conv2d(g, y, `${prefix}.conv_out`, cout, 3, { std: Math.sqrt(1 / (64 * 9)) });
}

/** out_ref's gradient attention: p * sigmoid(conv1x1(relu(bn(conv3x3(p))))). */
function gdtGate(ctx: Ctx, p: Value, level: number): Value {
  const { g } = ctx;
  const t = relu(g, conv2d(g, p, `decoder.gdt_convs_${level}.0`, 16, 3));
  return g.binary("Mul", p, sigmoid(g, conv2d(g, t, `decoder.gdt_convs_attn_${level}.0`, 1, 1)));
}

function buildBirefnet(cfg: BirefnetConfig): { g: GraphBuilder; input: Value; output: Value; foldedFloats: number } {
  const g = new GraphBuilder(cfg.seed);
  const ctx: Ctx = { g, p: new Params(g), cfg, foldedFloats: 0, folded: new Map() };
  const s = cfg.size;
  const input: Value = { name: BIREFNET_IO.input, shape: [1, 3, s, s], dtype: "float32" };

  // Encoder: the backbone on the image and on the half-size image, concatenated per level.
  const full = swin(ctx, input);
  const half = swin(ctx, resize(g, input, s / 2, s / 2, true));
  const xs = full.map((f, i) => concat(g, [f, resize(g, half[i] as Value, f.shape[2] as number, f.shape[3] as number, true)]));
  const [x1, x2, x3, x4raw] = xs as [Value, Value, Value, Value];
  const side4 = x4raw.shape[2] as number;
  const x4cat = concat(g, [...[x1, x2, x3].map((v) => resize(g, v, side4, side4, true)), x4raw]);
  const ch = [x4raw, x3, x2, x1].map((v) => v.shape[1] as number) as [number, number, number, number];
  const x4 = basicDecBlk(ctx, x4cat, "squeeze_module.0", ch[0]);

  // Decoder.
  const side = (v: Value) => v.shape[2] as number;
  let p = concat(g, [x4, iptBlock(ctx, input, "decoder.ipt_blk5", side(x4), ch[0] / 8)]);
  let d = gdtGate(ctx, basicDecBlk(ctx, p, "decoder.decoder_block4", ch[1]), 4);
  p = g.binary("Add", resize(g, d, side(x3), side(x3), true), conv2d(g, x3, "decoder.lateral_block4.conv", ch[1], 1));
  p = concat(g, [p, iptBlock(ctx, input, "decoder.ipt_blk4", side(x3), ch[0] / 8)]);
  d = gdtGate(ctx, basicDecBlk(ctx, p, "decoder.decoder_block3", ch[2]), 3);
  p = g.binary("Add", resize(g, d, side(x2), side(x2), true), conv2d(g, x2, "decoder.lateral_block3.conv", ch[2], 1));
  p = concat(g, [p, iptBlock(ctx, input, "decoder.ipt_blk3", side(x2), ch[1] / 8)]);
  d = gdtGate(ctx, basicDecBlk(ctx, p, "decoder.decoder_block2", ch[3]), 2);
  p = g.binary("Add", resize(g, d, side(x1), side(x1), true), conv2d(g, x1, "decoder.lateral_block2.conv", ch[3], 1));
  p = concat(g, [p, iptBlock(ctx, input, "decoder.ipt_blk2", side(x1), ch[2] / 8)]);
  d = resize(g, basicDecBlk(ctx, p, "decoder.decoder_block1", ch[3] / 2), s, s, true);
  p = concat(g, [d, iptBlock(ctx, input, "decoder.ipt_blk1", s, ch[3] / 8)]);
  const w = g.param("decoder.conv_out1.0.weight", [1, p.shape[1] as number, 1, 1], { kind: "normal", mean: 0, std: Math.sqrt(1 / (p.shape[1] as number)) });
  const b = g.param("decoder.conv_out1.0.bias", [1], { kind: "constant", value: 0 });
  g.macs += s * s * (p.shape[1] as number);
  const output = g.node("Conv", [p, w, b], [1, 1, s, s], { kernel_shape: [1, 1], strides: [1, 1], pads: [0, 0, 0, 0], dilations: [1, 1], group: 1 }, BIREFNET_IO.output);
  return { g, input, output, foldedFloats: ctx.foldedFloats };
}

export interface BirefnetStats {
  /** Learned parameters (BatchNorm folded; the position bias tables counted once, as tables). */
  params: number;
  /** Multiply-adds of the MatMul and Conv nodes for one image. */
  macs: number;
  /** Float values in the file: params with the bias tables replaced by their folded copies. */
  fileFloats: number;
  nodes: number;
}

export function birefnetStats(variant: BirefnetVariant, opts: BirefnetOptions = {}): BirefnetStats {
  const { g, foldedFloats } = buildBirefnet(birefnetConfig(variant, opts));
  const weights = g.initializers.filter((t) => t.param).reduce((a, t) => a + numel(t.dims), 0);
  return { params: g.params, macs: g.macs, fileFloats: weights + foldedFloats, nodes: g.nodes.length };
}

export function encodeBirefnet(variant: BirefnetVariant, opts: BirefnetOptions = {}): Uint8Array {
  const cfg = birefnetConfig(variant, opts);
  const { g, input, output } = buildBirefnet(cfg);
  const sw = cfg.swin;
  return encodeModel(g, {
    graphName: `${variant.replace(/-/g, "_")}_random`,
    producerName: "maskfleet benchmarks/standins/make-birefnet.ts",
    docString:
      `BiRefNet (${variant}: Swin embed ${sw.embedDim}, depths [${sw.depths.join(", ")}], window ${sw.window}) at ${cfg.size} px with random weights ` +
      `(seed ${cfg.seed}); deformable convs approximated by regular ones; for benchmarks only.`,
    inputs: [valueInfo(input.name, input.shape)],
    outputs: [valueInfo(output.name, output.shape)],
  });
}

/** Writes <outDir>/<variant>/ (the .onnx under its manifest name, model.json, build.json); skips a folder already built alike. */
export async function makeBirefnet(outDir: string, variant: BirefnetVariant, opts: BirefnetOptions = {}): Promise<BuiltModel> {
  const cfg = birefnetConfig(variant, opts);
  const { g } = buildBirefnet(cfg);
  const file = getModel(variant).files.find((f) => f.role === "model")?.file ?? "model.onnx";
  const stamp = {
    builtBy: TOOL_VERSION,
    variant,
    seed: cfg.seed,
    size: cfg.size,
    swin: cfg.swin,
    decInter: cfg.decInter,
    asppPlanes: cfg.asppPlanes,
    asppKernels: cfg.asppKernels,
    deform: cfg.deform,
    params: g.params,
    macs: g.macs,
  };
  const { dir } = await writeSalientFolder(outDir, { name: variant, file, size: cfg.size, stamp }, () => encodeBirefnet(variant, opts));
  return { dir, params: g.params, macs: g.macs };
}

// ---------------------------------------------------------------------------------------------
// CLI

const USAGE = "usage: npx tsx benchmarks/standins/make-birefnet.ts <outDir> birefnet-general|birefnet-lite [--seed N] [--deform exporter|conv]";

async function main(argv: string[]): Promise<void> {
  const args = [...argv];
  let seed: number | undefined;
  let deform: "exporter" | "conv" | undefined;
  const rest: string[] = [];
  while (args.length > 0) {
    const a = args.shift() as string;
    if (a === "--seed") seed = Number(args.shift());
    else if (a === "--deform") {
      const d = args.shift();
      if (d !== "exporter" && d !== "conv") throw new Error(`--deform: exporter or conv, got ${d}`);
      deform = d;
    } else rest.push(a);
  }
  const [dir, variant] = rest;
  if (!dir || rest.length !== 2 || !BIREFNET_VARIANTS.includes(variant as BirefnetVariant)) {
    console.error(USAGE);
    process.exitCode = 2;
    return;
  }
  const v = variant as BirefnetVariant;
  const opts: BirefnetOptions = { ...(seed !== undefined ? { seed } : {}), ...(deform ? { deform } : {}) };
  const stats = birefnetStats(v, opts);
  const t0 = performance.now();
  const built = await makeBirefnet(path.resolve(dir), v, opts);
  const file = getModel(v).files[0]?.file ?? "model.onnx";
  const size = (await stat(path.join(built.dir, file))).size;
  const pub = BIREFNET_PUBLISHED[v].onnxBytes;
  console.log(
    `${built.dir}: ${file} ${(size / 1e6).toFixed(1)} MB (published ${(pub / 1e6).toFixed(1)} MB, ${(((size - pub) / pub) * 100).toFixed(1)} %), ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );
  console.log(
    `params ${stats.params.toLocaleString("en-US")} learned (published file ${(pub / 4 / 1e6).toFixed(1)} M floats; ours ${(stats.fileFloats / 1e6).toFixed(1)} M floats ` +
      `with the folded constants: position biases, deform sampling grids), ${(stats.macs / 1e9).toFixed(1)} GMACs (${((2 * stats.macs) / 1e9).toFixed(1)} GFLOP) per image, ${stats.nodes} nodes`,
  );
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
