/**
 * The random-weight salient-object graphs (benchmarks/standins/make-isnet.ts: RMBG-1.4; benchmarks/standins/make-birefnet.ts:
 * BiRefNet): the full-size configs' parameter counts against hand counts and the published files
 * (counted, not written), then reduced builds of both through the same code path, loaded and run
 * by the real adapter (SalientModel) end to end.
 */
import assert from "node:assert/strict";
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { before, describe, test } from "node:test";
import * as ort from "onnxruntime-node";
import { SalientModel } from "../src/segmenters/salient.js";
import { BIREFNET_IO, BIREFNET_PUBLISHED, birefnetStats, makeBirefnet, SWIN, type BirefnetOptions, type SwinConfig } from "../benchmarks/standins/make-birefnet.js";
import { ISNET_IO, isnetStats, makeIsnet, RMBG_PUBLISHED, RMBG_STAGES } from "../benchmarks/standins/make-isnet.js";
import { scratchDir } from "./helpers.js";

const conv = (cin: number, cout: number, k: number) => cin * cout * k * k + cout;

/** RMBG-1.4 by hand: conv_in, the RSU stages (RSU-4F has RSU-4's convs), side1; BatchNorm folded into conv biases. */
function rmbgParams(widthDiv: number): number {
  const c = (x: number) => x / widthDiv;
  let n = conv(3, c(64), 3) + conv(c(64), 1, 3);
  for (const [, height, cin, mid, out] of RMBG_STAGES) {
    const l = height === 0 ? 4 : height;
    n += conv(c(cin), c(out), 3) + conv(c(out), c(mid), 3) + (l - 1) * conv(c(mid), c(mid), 3);
    n += (l - 2) * conv(2 * c(mid), c(mid), 3) + conv(2 * c(mid), c(out), 3);
  }
  return n;
}

/** BiRefNet by hand (config.py settings, ASPPDeformable kernels [1, 3, 7] after aspp1). */
function birefnetParams(swin: SwinConfig, size: number, inter = 64, planes = 256, kernels = [1, 3, 7]): number {
  const e = swin.embedDim;
  let n = 3 * e * 16 + e + 2 * e; // patch embed conv + norm
  for (let i = 0; i < 4; i++) {
    const c = e * 2 ** i;
    const block = 2 * c + (3 * c * c + 3 * c) + (c * c + c) + 2 * c + (4 * c * c + 4 * c) + (4 * c * c + c) + (2 * swin.window - 1) ** 2 * (swin.heads[i] as number);
    n += (swin.depths[i] as number) * block + 2 * c + (i < 3 ? 8 * c + 8 * c * c : 0);
  }
  const deform = (cin: number, k: number) => conv(cin, 2 * k * k, k) + conv(cin, k * k, k) + conv(cin, planes, k);
  const aspp = deform(inter, 1) + kernels.reduce((s, k) => s + deform(inter, k), 0) + conv(inter, planes, 1) + conv(planes * (2 + kernels.length), inter, 1);
  const dec = (cin: number, cout: number) => conv(cin, inter, 3) + aspp + conv(inter, cout, 3);
  const ipt = (cin: number, cout: number) => conv(cin, 64, 3) + conv(64, cout, 3);
  const [c0, c1, c2, c3] = [16 * e, 8 * e, 4 * e, 2 * e]; // the backbone's channels, doubled by the half-size run
  n += dec(30 * e, c0);
  n += ipt(3 * 32 * 32, c0 / 8) + ipt(3 * 16 * 16, c0 / 8) + ipt(3 * 8 * 8, c1 / 8) + ipt(3 * 4 * 4, c2 / 8) + ipt(3, c3 / 8);
  n += dec(c0 + c0 / 8, c1) + dec(c1 + c0 / 8, c2) + dec(c2 + c1 / 8, c3) + dec(c3 + c2 / 8, c3 / 2);
  n += conv(c1, c1, 1) + conv(c2, c2, 1) + conv(c3, c3, 1);
  n += [c1, c2, c3].reduce((s, c) => s + conv(c, 16, 3) + conv(16, 1, 1), 0);
  n += conv(c3 / 2 + c3 / 8, 1, 1);
  assert.ok(size % 64 === 0);
  return n;
}

const within = (got: number, want: number, frac: number, what: string) => assert.ok(Math.abs(got - want) / want < frac, `${what}: ${got} vs ${want}`);

/** A photo-sized RGB image: a red disc on a green background. */
function photo(w: number, h: number) {
  const data = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const inside = (x - w / 2) ** 2 + (y - h / 2) ** 2 < (h / 3) ** 2;
      data.set(inside ? [200, 30, 30] : [30, 160, 40], (y * w + x) * 3);
    }
  }
  return { data, width: w, height: h };
}

async function runDirect(file: string, input: string, output: string, size: number): Promise<ort.Tensor> {
  const session = await ort.InferenceSession.create(file);
  try {
    assert.deepEqual(session.inputNames, [input]);
    assert.deepEqual(session.outputNames, [output]);
    const x = new Float32Array(3 * size * size).map((_, i) => Math.sin(i * 0.01));
    const out = (await session.run({ [input]: new ort.Tensor("float32", x, [1, 3, size, size]) }))[output];
    assert.ok(out);
    assert.deepEqual(out.dims, [1, 1, size, size]);
    assert.ok((out.data as Float32Array).every(Number.isFinite), "finite output");
    return out;
  } finally {
    await session.release();
  }
}

describe("random-weight salient graphs", () => {
  let dir: string;
  before(async () => {
    dir = await scratchDir("salient-graph");
  });

  test("full-size configs: parameter counts by hand and against the published files (counted, not written)", () => {
    const rmbg = isnetStats();
    assert.equal(rmbg.params, rmbgParams(1));
    within(rmbg.params, RMBG_PUBLISHED.params, 0.03, "RMBG-1.4 params");
    within(rmbg.params * 4, RMBG_PUBLISHED.onnxBytes, 0.03, "RMBG-1.4 file");
    for (const v of ["birefnet-general", "birefnet-lite"] as const) {
      const s = birefnetStats(v);
      assert.equal(s.params, birefnetParams(SWIN[v], 1024), v);
      // The file holds the weights plus the constants the export folds (position biases, deform grids).
      within(s.fileFloats * 4, BIREFNET_PUBLISHED[v].onnxBytes, 0.03, `${v} file`);
    }
    within(birefnetStats("birefnet-general").params, 220e6, 0.03, "general params");
    within(birefnetStats("birefnet-lite").params, 44e6, 0.03, "lite params");
  });

  test("reduced RMBG-1.4 and BiRefNet builds run through the real adapter", async () => {
    const rmbg = await makeIsnet(dir, "rmbg-1.4", { size: 64, widthDiv: 8 });
    assert.equal(rmbg.dir, join(dir, "rmbg-1.4"));
    assert.equal(rmbg.params, rmbgParams(8));
    const swin = { embedDim: 16, depths: [2, 2, 2, 2], heads: [1, 2, 2, 4], window: 3 };
    const opts: BirefnetOptions = { size: 128, swin, decInter: 16, asppPlanes: 32 };
    const lite = await makeBirefnet(dir, "birefnet-lite", opts);
    assert.equal(lite.params, birefnetParams(swin, 128, 16, 32));

    const modelJson = JSON.parse(await readFile(join(lite.dir, "model.json"), "utf8"));
    assert.deepEqual(modelJson.files, { model: "BiRefNet-general-bb_swin_v1_tiny-epoch_232.onnx" });
    assert.deepEqual(modelJson.preprocess, { size: [128, 128], mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], output: "logits" });

    await runDirect(join(rmbg.dir, "model.onnx"), ISNET_IO.input, ISNET_IO.output, 64);
    const logits = await runDirect(join(lite.dir, modelJson.files.model), BIREFNET_IO.input, BIREFNET_IO.output, 128);
    assert.ok(
      (logits.data as Float32Array).some((v) => v !== (logits.data as Float32Array)[0]),
      "not constant",
    );

    for (const built of [rmbg, lite]) {
      const model = await SalientModel.load(built.dir);
      try {
        const { alpha } = await model.predict(photo(150, 100));
        assert.deepEqual([alpha.width, alpha.height], [150, 100]);
        assert.equal(alpha.data.length, 150 * 100);
      } finally {
        await model.close();
      }
    }

    // Built alike again: skipped (build.json stamp), the file untouched.
    const before = (await stat(join(rmbg.dir, "model.onnx"))).mtimeMs;
    await makeIsnet(dir, "rmbg-1.4", { size: 64, widthDiv: 8 });
    assert.equal((await stat(join(rmbg.dir, "model.onnx"))).mtimeMs, before);
  });
});
