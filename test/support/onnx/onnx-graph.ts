/**
 * A small ONNX graph builder for the benchmark models (benchmarks/standins/make-sam-vit-encoder.ts,
 * benchmarks/standins/make-sam-decoder.ts, the MatMul peak graph of benchmarks/sam.ts, ...): seeded random
 * weights, static shape tracking (a -1 dimension is one known only at run time), parameter and
 * multiply-add counts (MatMul, Conv, ConvTranspose), and the ModelProto encoding: in memory
 * (encodeModel) or streamed to disk (writeModel), optionally with the weights in an ONNX external
 * data file next to the .onnx, as models over protobuf's 2 GB limit (SAM ViT-H) are published.
 */
import { open, rename, stat, unlink, writeFile, type FileHandle } from "node:fs/promises";
import path from "node:path";
import onnxProto from "onnx-proto";
import type { onnx as OnnxTypes } from "onnx-proto";

const { onnx } = onnxProto;

/** The opset every benchmark model is written with. */
export const OPSET = 17;

// Seeded weights: sfc32 seeded per tensor from (seed, name), Box-Muller normals.

function hashName(seed: number, name: string): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

export function sfc32(seed: number): () => number {
  let a = 0x9e3779b9;
  let b = 0x243f6a88;
  let c = 0xb7e15162;
  let d = seed >>> 0;
  const next = (): number => {
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296;
  };
  for (let i = 0; i < 12; i++) next();
  return next;
}

function fillNormal(out: Float32Array, rand: () => number, mean: number, std: number): void {
  for (let i = 0; i < out.length; i += 2) {
    const u = 1 - rand(); // (0, 1]
    const r = std * Math.sqrt(-2 * Math.log(u));
    const theta = 2 * Math.PI * rand();
    out[i] = mean + r * Math.cos(theta);
    if (i + 1 < out.length) out[i + 1] = mean + r * Math.sin(theta);
  }
}

// ---------------------------------------------------------------------------------------------
// A small graph builder that tracks static shapes, counts parameters and multiply-adds.

export type Shape = readonly number[];
export type DType = "float32" | "int64";

export interface Value {
  readonly name: string;
  readonly shape: Shape;
  readonly dtype: DType;
}

export type Fill = { kind: "normal"; mean: number; std: number } | { kind: "constant"; value: number };

interface Initializer {
  name: string;
  dims: Shape;
  dtype: DType;
  /** Counted as a model parameter (learned weight), as opposed to a shape/index constant. */
  param: boolean;
  data: () => Uint8Array;
}

type Attr = number | number[] | string;

export const numel = (s: Shape): number => s.reduce((a, b) => a * b, 1);

export function broadcast(a: Shape, b: Shape, what: string): number[] {
  const n = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const x = a[a.length - n + i] ?? 1;
    const y = b[b.length - n + i] ?? 1;
    // -1: a dimension only known at run time (the HWC input's height and width).
    if (x < 0 || y < 0) {
      out.push(x < 0 ? (y === 1 ? x : y) : x === 1 ? y : x);
      continue;
    }
    if (x !== y && x !== 1 && y !== 1) throw new Error(`${what}: cannot broadcast [${a.join(",")}] with [${b.join(",")}]`);
    out.push(x === 1 ? y : x);
  }
  return out;
}

export class GraphBuilder {
  readonly nodes: OnnxTypes.INodeProto[] = [];
  readonly initializers: Initializer[] = [];
  params = 0;
  /** Multiply-adds of MatMul and Conv nodes. */
  macs = 0;
  private counter = 0;
  private readonly constCache = new Map<string, Value>();

  constructor(private readonly seed: number) {}

  private fresh(prefix: string): string {
    return `${prefix}_${this.counter++}`;
  }

  param(name: string, shape: Shape, fill: Fill): Value {
    this.params += numel(shape);
    return this.floatTensor(name, shape, fill, true);
  }

  /**
   * A float tensor that is not a learned parameter (e.g. a constant an exporter folded into the
   * file): seeded like param(), or the given values. Not counted in params.
   */
  constant(name: string, shape: Shape, values: Fill | (() => Float32Array)): Value {
    return this.floatTensor(name, shape, values, false);
  }

  private floatTensor(name: string, shape: Shape, values: Fill | (() => Float32Array), param: boolean): Value {
    const seed = this.seed;
    this.initializers.push({
      name,
      dims: shape,
      dtype: "float32",
      param,
      data: () => {
        let arr: Float32Array;
        if (typeof values === "function") {
          arr = values();
          if (arr.length !== numel(shape)) throw new Error(`${name}: ${arr.length} values for [${shape.join(", ")}]`);
        } else {
          arr = new Float32Array(numel(shape));
          if (values.kind === "constant") arr.fill(values.value);
          else fillNormal(arr, sfc32(hashName(seed, name)), values.mean, values.std);
        }
        return new Uint8Array(arr.buffer, arr.byteOffset, arr.byteLength);
      },
    });
    return { name, shape, dtype: "float32" };
  }

  /** A float scalar constant (shared). */
  scalar(value: number): Value {
    const key = `f:${value}`;
    const hit = this.constCache.get(key);
    if (hit) return hit;
    const v: Value = { name: this.fresh("const_f"), shape: [], dtype: "float32" };
    this.initializers.push({ name: v.name, dims: [], dtype: "float32", param: false, data: () => new Uint8Array(new Float32Array([value]).buffer) });
    this.constCache.set(key, v);
    return v;
  }

  /** A float32 constant tensor (not a parameter). */
  floats(values: readonly number[], dims: Shape = [values.length]): Value {
    const key = `fs:${dims.join("x")}:${values.join(",")}`;
    const hit = this.constCache.get(key);
    if (hit) return hit;
    const v: Value = { name: this.fresh("const_f"), shape: dims, dtype: "float32" };
    this.initializers.push({ name: v.name, dims, dtype: "float32", param: false, data: () => new Uint8Array(Float32Array.from(values).buffer) });
    this.constCache.set(key, v);
    return v;
  }

  /** An int64 constant tensor (shared by contents). */
  ints(values: readonly number[], dims: Shape = [values.length]): Value {
    const key = `i:${dims.join("x")}:${values.join(",")}`;
    const hit = this.constCache.get(key);
    if (hit) return hit;
    if (numel(dims) !== values.length) throw new Error(`ints: ${values.length} values for dims [${dims.join(",")}]`);
    const v: Value = { name: this.fresh("const_i"), shape: dims, dtype: "int64" };
    this.initializers.push({
      name: v.name,
      dims,
      dtype: "int64",
      param: false,
      data: () => new Uint8Array(BigInt64Array.from(values, (x) => BigInt(x)).buffer),
    });
    this.constCache.set(key, v);
    return v;
  }

  node(opType: string, inputs: readonly Value[], outShape: Shape, attrs: Record<string, Attr> = {}, outName?: string): Value {
    const name = outName ?? this.fresh(opType.toLowerCase());
    const attribute: OnnxTypes.IAttributeProto[] = Object.entries(attrs).map(([key, v]) => {
      if (typeof v === "string") return { name: key, type: onnx.AttributeProto.AttributeType.STRING, s: Buffer.from(v) };
      if (Array.isArray(v)) return { name: key, type: onnx.AttributeProto.AttributeType.INTS, ints: v };
      return Number.isInteger(v) && !(key === "epsilon" || key === "alpha")
        ? { name: key, type: onnx.AttributeProto.AttributeType.INT, i: v }
        : { name: key, type: onnx.AttributeProto.AttributeType.FLOAT, f: v };
    });
    this.nodes.push({ opType, name: `${opType}_${this.nodes.length}`, input: inputs.map((i) => i.name), output: [name], attribute });
    return { name, shape: outShape, dtype: inputs[0]?.dtype ?? "float32" };
  }

  binary(op: "Add" | "Sub" | "Mul" | "Div" | "Pow", a: Value, b: Value, outName?: string): Value {
    return this.node(op, [a, b], broadcast(a.shape, b.shape, op), {}, outName);
  }

  unary(op: "Erf" | "Sqrt" | "Relu" | "Sin" | "Cos", x: Value): Value {
    return this.node(op, [x], x.shape);
  }

  matmul(a: Value, b: Value): Value {
    if (a.shape.length < 2 || b.shape.length < 2) throw new Error("matmul: rank < 2 not used here");
    const [m, k] = a.shape.slice(-2) as [number, number];
    const [k2, n] = b.shape.slice(-2) as [number, number];
    if (k !== k2) throw new Error(`matmul: inner dims ${k} vs ${k2}`);
    const batch = broadcast(a.shape.slice(0, -2), b.shape.slice(0, -2), "MatMul");
    this.macs += Math.abs(numel(batch)) * m * k * n;
    return this.node("MatMul", [a, b], [...batch, m, n]);
  }

  /** x @ w + b with w [in, out] (torch Linear as exported: MatMul + Add). */
  linear(x: Value, prefix: string, inDim: number, outDim: number): Value {
    const w = this.param(`${prefix}.weight`, [inDim, outDim], { kind: "normal", mean: 0, std: 0.02 });
    const b = this.param(`${prefix}.bias`, [outDim], { kind: "normal", mean: 0, std: 0.02 });
    return this.binary("Add", this.matmul(x, w), b);
  }

  conv(x: Value, w: Value, b: Value | null, stride: number, pad: number): Value {
    const [n, cin, h, wd] = x.shape as [number, number, number, number];
    const [cout, cin2, kh, kw] = w.shape as [number, number, number, number];
    if (cin !== cin2) throw new Error(`conv: ${cin} input channels vs weight ${cin2}`);
    const ho = Math.floor((h + 2 * pad - kh) / stride) + 1;
    const wo = Math.floor((wd + 2 * pad - kw) / stride) + 1;
    this.macs += Math.abs(n) * cout * ho * wo * cin * kh * kw;
    return this.node("Conv", b ? [x, w, b] : [x, w], [n, cout, ho, wo], {
      kernel_shape: [kh, kw],
      strides: [stride, stride],
      pads: [pad, pad, pad, pad],
      dilations: [1, 1],
      group: 1,
    });
  }

  /** ConvTranspose with kernel == stride (SAM's 2x upscaling), no padding: [N, Cin, H, W] -> [N, Cout, H*s, W*s]. */
  convTranspose(x: Value, w: Value, b: Value, stride: number): Value {
    const [n, cin, h, wd] = x.shape as [number, number, number, number];
    const [cin2, cout, kh, kw] = w.shape as [number, number, number, number];
    if (cin !== cin2 || kh !== stride || kw !== stride) throw new Error(`convTranspose: weight [${w.shape.join(",")}] for ${cin} channels, stride ${stride}`);
    this.macs += Math.abs(n) * cin * h * wd * cout * kh * kw;
    return this.node("ConvTranspose", [x, w, b], [n, cout, h * stride, wd * stride], { kernel_shape: [kh, kw], strides: [stride, stride] });
  }

  reshape(x: Value, shape: Shape): Value {
    if (numel(shape) !== numel(x.shape)) throw new Error(`reshape: [${x.shape.join(",")}] -> [${shape.join(",")}]`);
    return this.node("Reshape", [x, this.ints(shape)], shape);
  }

  transpose(x: Value, perm: readonly number[]): Value {
    return this.node(
      "Transpose",
      [x],
      perm.map((p) => x.shape[p] as number),
      { perm: [...perm] },
    );
  }

  unsqueeze(x: Value, axis: number): Value {
    const shape = [...x.shape];
    shape.splice(axis, 0, 1);
    return this.node("Unsqueeze", [x, this.ints([axis])], shape);
  }

  /** Gather along axis 0 with constant indices. */
  gather(data: Value, indices: readonly number[], indexDims: Shape): Value {
    const idx = indexDims.length === 0 ? this.ints(indices, []) : this.ints(indices, indexDims);
    return this.node("Gather", [data, idx], [...indexDims, ...data.shape.slice(1)], { axis: 0 });
  }

  /** Zero padding at the end of each axis. */
  padEnd(x: Value, amounts: readonly number[]): Value {
    const pads = [...x.shape.map(() => 0), ...amounts];
    return this.node(
      "Pad",
      [x, this.ints(pads)],
      x.shape.map((d, i) => d + (amounts[i] ?? 0)),
      { mode: "constant" },
    );
  }

  /** x[..., :end, ...] on the given axes. */
  sliceTo(x: Value, axes: readonly number[], ends: readonly number[]): Value {
    const shape = [...x.shape];
    axes.forEach((a, i) => (shape[a] = Math.min(shape[a] as number, ends[i] as number)));
    return this.node("Slice", [x, this.ints(axes.map(() => 0)), this.ints(ends), this.ints(axes)], shape);
  }

  layerNorm(x: Value, prefix: string, dim: number, eps: number): Value {
    const g = this.param(`${prefix}.weight`, [dim], { kind: "constant", value: 1 });
    const b = this.param(`${prefix}.bias`, [dim], { kind: "constant", value: 0 });
    return this.node("LayerNormalization", [x, g, b], x.shape, { axis: -1, epsilon: eps });
  }

  /** segment_anything's LayerNorm2d over the channel axis of NCHW, as torch exports it. */
  layerNorm2d(x: Value, prefix: string, channels: number, eps: number, outName?: string): Value {
    const g = this.param(`${prefix}.weight`, [channels, 1, 1], { kind: "constant", value: 1 });
    const b = this.param(`${prefix}.bias`, [channels, 1, 1], { kind: "constant", value: 0 });
    const meanShape = x.shape.map((d, i) => (i === 1 ? 1 : d));
    const u = this.node("ReduceMean", [x], meanShape, { axes: [1], keepdims: 1 });
    const d = this.binary("Sub", x, u);
    const s = this.node("ReduceMean", [this.binary("Pow", d, this.scalar(2))], meanShape, { axes: [1], keepdims: 1 });
    const xn = this.binary("Div", d, this.unary("Sqrt", this.binary("Add", s, this.scalar(eps))));
    return this.binary("Add", this.binary("Mul", xn, g), b, outName);
  }

  softmax(x: Value): Value {
    return this.node("Softmax", [x], x.shape, { axis: -1 });
  }

  /** Exact (erf) GELU as torch exports nn.GELU: 0.5 * x * (1 + erf(x / sqrt(2))). */
  gelu(x: Value): Value {
    const e = this.unary("Erf", this.binary("Div", x, this.scalar(Math.SQRT2)));
    return this.binary("Mul", this.binary("Mul", x, this.binary("Add", e, this.scalar(1))), this.scalar(0.5));
  }
}

export function valueInfo(name: string, dims: readonly (number | string)[]): OnnxTypes.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: onnx.TensorProto.DataType.FLOAT,
        shape: { dim: dims.map((d) => (typeof d === "number" ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

export interface ModelInfo {
  graphName: string;
  producerName: string;
  docString: string;
  inputs: OnnxTypes.IValueInfoProto[];
  outputs: OnnxTypes.IValueInfoProto[];
}

/** What a benchmarks/standins/make-<family>.ts build returns: the model folder and its size and cost. */
export interface BuiltModel {
  dir: string;
  params: number;
  macs: number;
}

/** protobuf's limit for one message, so for one .onnx file without external data (2 GiB - 1). */
export const PROTOBUF_LIMIT = 2 ** 31 - 1;

const ELEM_BYTES: Record<DType, number> = { float32: 4, int64: 8 };
const dataType = (d: DType) => (d === "float32" ? onnx.TensorProto.DataType.FLOAT : onnx.TensorProto.DataType.INT64);
const tensorBytes = (t: Initializer) => numel(t.dims) * ELEM_BYTES[t.dtype];

function modelHeader(info: ModelInfo): OnnxTypes.IModelProto {
  return { irVersion: 8, producerName: info.producerName, producerVersion: "1", docString: info.docString, opsetImport: [{ domain: "", version: OPSET }] };
}

/** The encoded ModelProto of a built graph (initializers written as raw data), in memory: for models well under 2 GB. */
export function encodeModel(g: GraphBuilder, info: ModelInfo): Uint8Array {
  const raw = g.initializers.reduce((n, t) => n + tensorBytes(t), 0);
  if (raw > PROTOBUF_LIMIT) {
    throw new RangeError(`encodeModel: ${(raw / 1e9).toFixed(2)} GB of initializers exceed protobuf's 2 GB limit; use writeModel with externalData`);
  }
  const model: OnnxTypes.IModelProto = {
    ...modelHeader(info),
    graph: {
      name: info.graphName,
      node: g.nodes,
      initializer: g.initializers.map((t) => ({
        name: t.name,
        dims: [...t.dims],
        dataType: dataType(t.dtype),
        rawData: t.data(),
      })),
      input: info.inputs,
      output: info.outputs,
    },
  };
  return onnx.ModelProto.encode(model).finish();
}

// ---------------------------------------------------------------------------------------------
// Streaming writer, with optional ONNX external data.

/**
 * ONNX external data (onnx.save_model(..., save_as_external_data=True, all_tensors_to_one_file=True)):
 * learned weights of at least `threshold` bytes are written to one side file `location` (a plain
 * file name, resolved by onnxruntime relative to the .onnx file's folder); their TensorProto gets
 * data_location EXTERNAL and external_data {location, offset, length}. Constants stay inline.
 */
export interface ExternalDataOptions {
  /** File name of the side file, next to the .onnx. */
  location: string;
  /** Weights of at least this many bytes go to the side file (default 1024, as onnx.save_model's size_threshold). */
  threshold?: number;
  /**
   * Each tensor's offset in the side file is a multiple of this (default 4096, a page, which lets
   * onnxruntime map it instead of reading it); 1 packs them back to back as onnx.save_model does.
   */
  align?: number;
}

export interface WriteModelOptions {
  externalData?: ExternalDataOptions;
}

export interface WrittenModel {
  /** The .onnx file and its size. */
  file: string;
  bytes: number;
  /** The external data file (null without externalData) and its size. */
  dataFile: string | null;
  dataBytes: number;
  /** How many initializers went to the side file. */
  externalTensors: number;
}

/** protobuf varint of a non-negative integer up to 2^53. */
function varint(n: number): Uint8Array {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80);
    n = Math.floor(n / 0x80);
  }
  out.push(n);
  return Uint8Array.from(out);
}
const varintLength = (n: number) => varint(n).length;

// Tags (field number << 3 | wire type 2) of the length-delimited fields written by hand.
const TAG_MODEL_GRAPH = 58; // ModelProto.graph = 7
const TAG_GRAPH_INITIALIZER = 42; // GraphProto.initializer = 5
const TAG_TENSOR_RAW_DATA = 74; // TensorProto.raw_data = 9

/** Sequential writes to one file, small pieces gathered into ~1 MB writes. */
class FileSink {
  private parts: Uint8Array[] = [];
  private pending = 0;
  written = 0;
  constructor(private readonly fh: FileHandle) {}

  /** Bytes written so far, gathered ones included. */
  get position(): number {
    return this.written + this.pending;
  }

  async write(bytes: Uint8Array): Promise<void> {
    this.parts.push(bytes);
    this.pending += bytes.length;
    if (this.pending >= 1 << 20) await this.flush();
  }

  async zeros(n: number): Promise<void> {
    if (n > 0) await this.write(new Uint8Array(n));
  }

  async flush(): Promise<void> {
    if (this.pending === 0) return;
    let buf = this.parts.length === 1 ? (this.parts[0] as Uint8Array) : Buffer.concat(this.parts);
    this.parts = [];
    this.pending = 0;
    while (buf.length > 0) {
      const { bytesWritten } = await this.fh.write(buf, 0, buf.length, null);
      this.written += bytesWritten;
      buf = buf.subarray(bytesWritten);
    }
  }
}

interface PlannedTensor {
  init: Initializer;
  /** The TensorProto without raw_data (for an external tensor: with its external_data). */
  header: Uint8Array;
  /** Bytes of raw_data written inline after the header (0 for an external tensor). */
  inline: number;
  /** Encoded TensorProto length. */
  length: number;
  /** Offset in the side file, or -1. */
  offset: number;
}

function planTensors(g: GraphBuilder, ext: ExternalDataOptions | undefined): { tensors: PlannedTensor[]; dataBytes: number } {
  const threshold = ext?.threshold ?? 1024;
  const align = ext?.align ?? 4096;
  if (ext && (!Number.isInteger(align) || align < 1)) throw new RangeError(`externalData.align must be a whole number >= 1, got ${align}`);
  if (ext && (ext.location !== path.basename(ext.location) || ext.location === "" || ext.location.startsWith("."))) {
    throw new RangeError(`externalData.location must be a plain file name next to the model, got ${JSON.stringify(ext.location)}`);
  }
  let end = 0;
  const tensors = g.initializers.map((init): PlannedTensor => {
    const n = tensorBytes(init);
    const base = { name: init.name, dims: [...init.dims], dataType: dataType(init.dtype) };
    if (ext && init.param && n >= threshold) {
      const offset = Math.ceil(end / align) * align;
      end = offset + n;
      const header = onnx.TensorProto.encode({
        ...base,
        dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
        externalData: [
          { key: "location", value: ext.location },
          { key: "offset", value: String(offset) },
          { key: "length", value: String(n) },
        ],
      }).finish();
      return { init, header, inline: 0, length: header.length, offset };
    }
    const header = onnx.TensorProto.encode(base).finish();
    return { init, header, inline: n, length: header.length + 1 + varintLength(n) + n, offset: -1 };
  });
  return { tensors, dataBytes: end };
}

async function removeQuietly(file: string): Promise<void> {
  await unlink(file).catch(() => undefined);
}

/**
 * Writes the model to `file` without building it in memory: each initializer's data is made and
 * written one at a time (the ModelProto's graph length is computed from the tensor sizes first).
 * With opts.externalData the large weights go to the side file next to `file` (see
 * ExternalDataOptions), so the model may exceed 2 GB; without it the .onnx must stay under
 * PROTOBUF_LIMIT. Both files are written under temporary names and renamed into place, the side
 * file first. onnxruntime loads the result from the .onnx path (not from bytes: a session made
 * from a buffer cannot find the side file).
 */
export async function writeModel(file: string, g: GraphBuilder, info: ModelInfo, opts: WriteModelOptions = {}): Promise<WrittenModel> {
  const ext = opts.externalData;
  const { tensors, dataBytes } = planTensors(g, ext);
  const head = onnx.ModelProto.encode(modelHeader(info)).finish();
  const graph0 = onnx.GraphProto.encode({ name: info.graphName, node: g.nodes, input: info.inputs, output: info.outputs }).finish();
  const graphLength = tensors.reduce((n, t) => n + 1 + varintLength(t.length) + t.length, graph0.length);
  const total = head.length + 1 + varintLength(graphLength) + graphLength;
  if (total > PROTOBUF_LIMIT) {
    throw new RangeError(
      `writeModel: ${file} would be ${(total / 1e9).toFixed(2)} GB, over protobuf's 2 GB limit; ` +
        (ext ? "lower externalData.threshold" : "write the weights as external data (opts.externalData)"),
    );
  }

  const dataFile = ext ? path.join(path.dirname(file), ext.location) : null;
  const suffix = `.${process.pid}.${Date.now()}.tmp`;
  const tmp = `${file}${suffix}`;
  const dataTmp = dataFile ? `${dataFile}${suffix}` : null;
  try {
    if (dataFile && dataTmp) {
      const fh = await open(dataTmp, "w");
      try {
        const sink = new FileSink(fh);
        for (const t of tensors) {
          if (t.offset < 0) continue;
          await sink.zeros(t.offset - sink.position);
          await sink.write(t.init.data());
        }
        await sink.flush();
        if (sink.written !== dataBytes) throw new Error(`writeModel: wrote ${sink.written} bytes of external data, planned ${dataBytes}`);
      } finally {
        await fh.close();
      }
    }
    const fh = await open(tmp, "w");
    try {
      const sink = new FileSink(fh);
      await sink.write(head);
      await sink.write(Uint8Array.of(TAG_MODEL_GRAPH));
      await sink.write(varint(graphLength));
      await sink.write(graph0);
      for (const t of tensors) {
        await sink.write(Uint8Array.of(TAG_GRAPH_INITIALIZER));
        await sink.write(varint(t.length));
        await sink.write(t.header);
        if (t.offset >= 0) continue;
        await sink.write(Uint8Array.of(TAG_TENSOR_RAW_DATA));
        await sink.write(varint(t.inline));
        await sink.write(t.init.data());
      }
      await sink.flush();
      if (sink.written !== total) throw new Error(`writeModel: wrote ${sink.written} bytes, planned ${total}`);
    } finally {
      await fh.close();
    }
    if (dataFile && dataTmp) await rename(dataTmp, dataFile);
    await rename(tmp, file);
  } catch (err) {
    await removeQuietly(tmp);
    if (dataTmp) await removeQuietly(dataTmp);
    throw err;
  }
  return { file, bytes: total, dataFile, dataBytes, externalTensors: tensors.filter((t) => t.offset >= 0).length };
}

/** Writes a small file (model.json, a decoder) under a temporary name, then renames it into place. */
export async function writeFileAtomic(file: string, data: Uint8Array | string): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, data);
  await rename(tmp, file);
}

/** Whether `file` exists and is a regular file (build stamps check their folders with it). */
export async function fileExists(file: string): Promise<boolean> {
  return (await stat(file).catch(() => undefined))?.isFile() ?? false;
}
