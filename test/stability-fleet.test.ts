/**
 * Stability AI Image Services end to end through Redis: `maskfleet run` (a child process, the
 * tiny models, this process's private Redis) against the validating Bedrock stand-in and the
 * control-plane stand-in. Per edit (outpaint, inpaint, search-replace): every result made exactly
 * once, the filtered prompt recorded as failed and counted by `maskfleet report`, the kept pixels
 * bit-identical to the photo, and the request bodies as the contract says. Also --extend square,
 * Remove Background as the salient model, and the seed and region checks.
 *
 * The tiny SAM's mask is exactly its box prompt, so `--target auto` (the whole image as the box)
 * would keep every pixel: the pixel checks give boxes (a .jsonl manifest), which leaves a
 * background around each object.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { copyFile, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import sharp from "sharp";
import { freshRedis, repoRoot, runMaskfleet, scratchDir, tinyModels, type CliResult } from "./helpers.js";
import { startBedrockStandIn, type BedrockStandIn } from "./standins/bedrock.js";
import { startBedrockControlStandIn, type ControlStandIn } from "./standins/bedrock-control.js";
import { ellipseAlpha } from "./standins/stability.js";
import { acceptedPerKey, standInCredentials } from "./scenarios/aws-fleet.js";

/** Two non-square photos of different sizes (a request's size tells which photo it carried), each with the object's box. */
const BOXES: Record<string, [number, number, number, number]> = { "chelsea.jpg": [100, 50, 350, 260], "coffee.jpg": [150, 60, 480, 380] };
const PHOTOS = Object.keys(BOXES);
const PROMPTS = ["a sunlit studio backdrop", "a forbidden alley"];
const BLOCKED = "forbidden";

interface Raster {
  data: Buffer;
  width: number;
  height: number;
  channels: number;
}

interface ManifestResult {
  status: "ok" | "failed";
  key: string;
  prompt: string;
  seed: number;
  generator: string;
  reason?: string;
}

interface Manifest {
  name: string;
  results: ManifestResult[];
  outputs: { mask: string };
}

/** The photo as the pipeline reads it: EXIF-oriented 8-bit sRGB, no alpha. */
async function photoRgb(file: string): Promise<Raster> {
  const { data, info } = await sharp(file).rotate().removeAlpha().toColourspace("srgb").raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height, channels: info.channels };
}

async function rgbOf(file: string): Promise<Raster> {
  const { data, info } = await sharp(file).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height, channels: info.channels };
}

async function greyOf(file: string): Promise<Raster> {
  const { data, info } = await sharp(file).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height, channels: 1 };
}

/** Every image's manifest under `out`, by photo name. */
async function manifests(out: string): Promise<Map<string, Manifest>> {
  const found = new Map<string, Manifest>();
  for (const dir of await readdir(out)) {
    const m = JSON.parse(await readFile(join(out, dir, "manifest.json"), "utf8")) as Manifest;
    found.set(m.name, m);
  }
  return found;
}

/** Fraction of the mask's pixels that are object (>= 128). */
function objectFraction(mask: Raster): number {
  let n = 0;
  for (const v of mask.data) if (v >= 128) n++;
  return n / mask.data.length;
}

/**
 * Compares `result` with `photo` placed at (dx, dy): pixels where `keep(x, y)` must be equal (the
 * count of those that differ is returned as `keptDiffer`), the rest is counted when it differs.
 */
function compareKept(result: Raster, photo: Raster, keep: (x: number, y: number) => boolean, dx = 0, dy = 0) {
  let kept = 0;
  let keptDiffer = 0;
  let otherDiffer = 0;
  for (let y = 0; y < photo.height; y++) {
    for (let x = 0; x < photo.width; x++) {
      const r = ((y + dy) * result.width + (x + dx)) * 3;
      const p = (y * photo.width + x) * 3;
      const same = result.data[r] === photo.data[p] && result.data[r + 1] === photo.data[p + 1] && result.data[r + 2] === photo.data[p + 2];
      if (keep(x, y)) {
        kept++;
        if (!same) keptDiffer++;
      } else if (!same) otherDiffer++;
    }
  }
  return { kept, keptDiffer, otherDiffer };
}

describe("Stability AI Image Services end to end (maskfleet run, Redis, stand-ins)", () => {
  let redis: string;
  let sam: string;
  let photos: string;
  /** .jsonl manifests of the photos with their boxes: both, and chelsea alone. */
  let both: string;
  let chelsea: string;
  let control: ControlStandIn;
  let env: NodeJS.ProcessEnv;

  before(async () => {
    redis = await freshRedis(3);
    sam = (await tinyModels()).sam;
    photos = await scratchDir("stability-fleet-photos");
    for (const p of PHOTOS) await copyFile(join(repoRoot, "samples/photos", p), join(photos, p));
    const row = (p: string) => JSON.stringify({ path: p, boxes: [BOXES[p]] });
    both = join(photos, "both.jsonl");
    chelsea = join(photos, "chelsea.jsonl");
    await writeFile(both, PHOTOS.map(row).join("\n") + "\n");
    await writeFile(chelsea, row("chelsea.jpg") + "\n");
    control = await startBedrockControlStandIn();
    env = {
      ...standInCredentials,
      AWS_REGION: "us-east-1",
      AWS_ENDPOINT_URL_BEDROCK: control.endpoint,
      AWS_CONFIG_FILE: join(photos, "no-aws-config"),
      AWS_SHARED_CREDENTIALS_FILE: join(photos, "no-aws-credentials"),
    };
  });

  after(async () => {
    await control.close();
  });

  /** `maskfleet run` of `input` (a manifest: target boxes; else target auto) on Stability against `bedrock`, into a fresh scratch folder. */
  async function run(name: string, bedrock: BedrockStandIn, flags: string[], input = both): Promise<{ r: CliResult; out: string }> {
    const out = await scratchDir(`stability-fleet-${name}`);
    const target = input.endsWith(".jsonl") ? "boxes" : "auto";
    const args = ["run", input, "--run", name, "--target", target, "--sam-model", sam, "--generator", "stability"];
    args.push("--bedrock-endpoint", bedrock.endpoint, "--redis", redis, "--no-progress", "--out", out, ...flags);
    const r = await runMaskfleet(args, { env });
    assert.equal(r.code, 0, `${name}: ${r.stderr}${r.stdout}`);
    return { r, out };
  }

  const cases = [
    { name: "outpaint", flags: ["--mode", "outpaint"], service: "inpaint", keep: 255 },
    { name: "inpaint", flags: ["--mode", "inpaint"], service: "inpaint", keep: 0 },
    { name: "search-replace", flags: ["--mode", "outpaint", "--edit", "search-replace", "--search-prompt", "background"], service: "search-replace", keep: 255 },
  ] as const;

  for (const c of cases) {
    it(`${c.name}: every result once, the filtered prompt failed and counted, kept pixels bit-identical, the request bodies`, async () => {
      const bedrock = await startBedrockStandIn({ blockPrompts: [BLOCKED], recordBodies: true });
      try {
        const { out } = await run(c.name, bedrock, [...c.flags, "--prompts", ...PROMPTS, "--seeds", "1-2", "--feather", "0"]);
        const requests = bedrock.requests.filter((q) => q.service === c.service);
        assert.equal(requests.length, bedrock.requests.length, "only the edit's service was called");
        assert.ok(
          requests.every((q) => q.status === 200),
          JSON.stringify(requests.map((q) => [q.status, q.message])),
        );

        // Every allowed (image, prompt, seed) answered exactly once; the filtered prompt asked once per (image, seed), never retried.
        const accepted = acceptedPerKey(requests);
        assert.equal(accepted.size, PHOTOS.length * 1 * 2);
        assert.ok(
          [...accepted.values()].every((n) => n === 1),
          "no result was paid for twice",
        );
        assert.ok([...accepted.keys()].every((k) => !k.includes(BLOCKED)));
        const filtered = requests.filter((q) => q.filtered);
        assert.equal(filtered.length, PHOTOS.length * 2);
        assert.ok(filtered.every((q) => q.prompt?.includes(BLOCKED) && q.filtered === "Filter reason: prompt"));

        // The manifests: the filtered prompt's results failed with the service's reason, the others ok.
        const found = await manifests(out);
        assert.deepEqual([...found.keys()].sort(), [...PHOTOS].sort());
        for (const [photo, m] of found) {
          assert.equal(m.results.length, PROMPTS.length * 2);
          for (const r of m.results) {
            if (r.prompt.includes(BLOCKED)) {
              assert.equal(r.status, "failed", JSON.stringify(r));
              assert.match(r.reason ?? "", /Filter reason/);
            } else {
              assert.equal(r.status, "ok", JSON.stringify(r));
            }
          }

          // Kept pixels: where mask.png is `keep`, each result equals the photo bit for bit; elsewhere the flat answer shows.
          const original = await photoRgb(join(photos, photo));
          const mask = await greyOf(join(out, m.outputs.mask));
          assert.deepEqual([mask.width, mask.height], [original.width, original.height]);
          const keep = (x: number, y: number) => mask.data[y * mask.width + x] === c.keep;
          for (const r of m.results.filter((x) => x.status === "ok")) {
            const result = await rgbOf(join(out, r.key));
            assert.deepEqual([result.width, result.height], [original.width, original.height]);
            const cmp = compareKept(result, original, keep);
            assert.ok(cmp.kept > 0, `${photo} ${r.key}: nothing kept`);
            assert.equal(cmp.keptDiffer, 0, `${photo} ${r.key}: ${cmp.keptDiffer} of ${cmp.kept} kept pixels changed`);
            assert.ok(cmp.otherDiffer > 0, `${photo} ${r.key}: no pixel outside the kept region changed`);
          }

          // The bodies sent for this photo (its size tells which): as the contract says.
          const sent = requests.filter((q) => q.width === original.width && q.height === original.height);
          assert.equal(sent.length, PROMPTS.length * 2);
          const objFrac = objectFraction(mask);
          assert.ok(objFrac > 0.01 && objFrac < 0.99, `${photo}: object fraction ${objFrac}`);
          for (const q of sent) {
            const body = q.body as Record<string, unknown>;
            assert.equal(body.output_format, "png");
            assert.ok(typeof body.seed === "number" && body.seed >= 1 && body.seed <= 2, `seed ${String(body.seed)}`);
            assert.equal(body.grow_mask, 0);
            if (c.service === "inpaint") {
              assert.equal(typeof body.mask, "string");
              assert.equal(q.maskSameSize, true);
              // outpaint regenerates the background (white), inpaint the object
              const white = c.name === "outpaint" ? 1 - objFrac : objFrac;
              assert.ok(Math.abs((q.maskWhiteFraction ?? -1) - white) < 0.01, `${photo}: mask white ${q.maskWhiteFraction}, expected ${white.toFixed(4)}`);
            } else {
              assert.equal(body.mask, undefined);
              assert.equal(body.search_prompt, "background");
              assert.equal(q.maskValues, undefined);
            }
          }
        }

        // maskfleet report counts the rejections.
        const reportFile = join(out, "r.json");
        const rep = await runMaskfleet(["report", c.name, "--out", reportFile, "--redis", redis], { env });
        assert.equal(rep.code, 0, rep.stderr);
        const report = JSON.parse(await readFile(reportFile, "utf8")) as { generator: { calls: number; rejected: number }; results: { ok: number; failed: number } };
        assert.equal(report.generator.rejected, PHOTOS.length * 2);
        assert.equal(report.results.ok, PHOTOS.length * 2);
        assert.equal(report.results.failed, PHOTOS.length * 2);
      } finally {
        await bedrock.close();
      }
    });
  }

  it("--extend square: square results with the photo's pixels unchanged at the centring offset", async () => {
    const bedrock = await startBedrockStandIn({ recordBodies: true });
    try {
      const photo = "chelsea.jpg";
      const original = await photoRgb(join(photos, photo));
      assert.ok(original.width > original.height);
      const side = original.width;
      const dy = Math.floor((side - original.height) / 2);

      // Extend only: the whole photo is kept, the new bands are painted.
      const { out } = await run("extend-only", bedrock, ["--edit", "extend", "--extend", "square", "--prompts", "a studio", "--seeds", "1-1", "--feather", "0"], chelsea);
      const outpaint = bedrock.requests.filter((q) => q.service === "outpaint");
      assert.equal(outpaint.length, 1);
      assert.deepEqual(outpaint[0]?.extend, { left: 0, right: 0, up: dy, down: side - original.height - dy });
      const [m] = [...(await manifests(out)).values()];
      assert.ok(m && m.results.length === 1 && m.results[0]?.status === "ok", JSON.stringify(m?.results));
      const result = await rgbOf(join(out, m.results[0]!.key));
      assert.deepEqual([result.width, result.height], [side, side]);
      const cmp = compareKept(result, original, () => true, 0, dy);
      assert.equal(cmp.keptDiffer, 0, `${cmp.keptDiffer} of the photo's pixels changed`);
      const band = compareKept(result, original, () => true, 0, 0); // shifted: the painted band and the photo do not line up
      assert.ok(band.keptDiffer > 0);

      // Extend, then inpaint the background: the object's pixels are kept at the offset.
      const before = bedrock.requests.length;
      const { out: out2 } = await run("extend-inpaint", bedrock, ["--extend", "square", "--prompts", "a studio", "--seeds", "1-1", "--feather", "0"], chelsea);
      const calls = bedrock.requests.slice(before);
      assert.deepEqual(
        calls.map((q) => q.service),
        ["outpaint", "inpaint"],
      );
      assert.deepEqual([calls[1]?.width, calls[1]?.height], [side, side]);
      const [m2] = [...(await manifests(out2)).values()];
      assert.ok(m2 && m2.results[0]?.status === "ok", JSON.stringify(m2?.results));
      const result2 = await rgbOf(join(out2, m2.results[0].key));
      assert.deepEqual([result2.width, result2.height], [side, side]);
      const mask = await greyOf(join(out2, m2.outputs.mask));
      const kept = compareKept(result2, original, (x, y) => mask.data[y * mask.width + x] === 255, 0, dy);
      assert.ok(kept.kept > 0);
      assert.equal(kept.keptDiffer, 0, `${kept.keptDiffer} of ${kept.kept} object pixels changed`);
      assert.ok(kept.otherDiffer > 0);
    } finally {
      await bedrock.close();
    }
  });

  it("--target auto --salient-model bedrock:remove-background: the mask comes from the service's alpha, the run completes", async () => {
    const bedrock = await startBedrockStandIn();
    try {
      const { out } = await run("salient", bedrock, ["--salient-model", "bedrock:remove-background", "--prompts", "a studio", "--seeds", "1-1"], join(photos, "coffee.jpg"));
      assert.deepEqual(
        bedrock.requests.map((q) => [q.service, q.status]),
        [
          ["remove-background", 200],
          ["inpaint", 200],
        ],
      );
      const [m] = [...(await manifests(out)).values()];
      assert.ok(m && m.results.length === 1 && m.results[0]?.status === "ok", JSON.stringify(m?.results));
      // The stand-in's alpha is a centred ellipse with a soft edge. SAM, prompted with its box (the
      // tiny SAM answers the box itself), decides inside; the soft alpha stays along the edge. So:
      // the ellipse's bounding box, soft values, and not the whole photo (what target auto alone gives).
      const mask = await greyOf(join(out, m.outputs.mask));
      const alpha = ellipseAlpha(mask.width, mask.height);
      const bbox = (at: (i: number) => number) => {
        let [x0, y0, x1, y1] = [Infinity, Infinity, -1, -1];
        for (let i = 0; i < mask.width * mask.height; i++) {
          if (at(i) < 128) continue;
          const x = i % mask.width;
          const y = Math.floor(i / mask.width);
          [x0, y0, x1, y1] = [Math.min(x0, x), Math.min(y0, y), Math.max(x1, x), Math.max(y1, y)];
        }
        return [x0, y0, x1, y1];
      };
      const expected = bbox((i) => alpha[i]!);
      const got = bbox((i) => mask.data[i]!);
      assert.ok(
        got.every((v, k) => Math.abs(v - expected[k]!) <= 3),
        `mask box ${got}, the alpha's ${expected}`,
      );
      assert.ok(
        mask.data.some((v) => v > 0 && v < 255),
        "the soft edge is kept",
      );
      const fraction = objectFraction(mask);
      assert.ok(fraction > 0.25 && fraction < 0.5, `object fraction ${fraction}`);
    } finally {
      await bedrock.close();
    }
  });

  it("seeds 0-3 with --generator stability: exit 2, one line saying seed 0 means random", async () => {
    const bedrock = await startBedrockStandIn();
    try {
      const r = await runMaskfleet(
        ["run", photos, "--target", "auto", "--sam-model", sam, "--generator", "stability", "--seeds", "0-3", "--bedrock-endpoint", bedrock.endpoint, "--redis", redis],
        { env },
      );
      assert.equal(r.code, 2, r.stderr);
      const lines = r.stderr.trimEnd().split("\n");
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0] ?? "", /^maskfleet: seeds: .*seed 0 as "pick a random seed".*0-3/);
      assert.equal(bedrock.requests.length, 0);
    } finally {
      await bedrock.close();
    }
  });

  it("a region without Stability (--region eu-west-1): exit 2 naming the three regions", async () => {
    const r = await runMaskfleet(["run", photos, "--target", "auto", "--sam-model", sam, "--generator", "stability", "--region", "eu-west-1", "--redis", redis], { env });
    assert.equal(r.code, 2, r.stderr);
    const lines = r.stderr.trimEnd().split("\n");
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0] ?? "", /^maskfleet: region: .*us-east-1, us-east-2, us-west-2.*eu-west-1/);
    assert.equal(control.requests.filter((q) => q.region === "eu-west-1").length, 0, "refused before asking the control plane");
  });
});
