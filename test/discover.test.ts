import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { discoverInputs } from "../src/producer/discover.js";
import { ConfigError } from "../src/runtime/errors.js";
import { boxSchema } from "../src/pipeline/jobs.js";
import { scratchDir } from "./helpers.js";

describe("discoverInputs", () => {
  it("expands folders recursively, globs and files, without duplicates", async () => {
    const dir = await scratchDir("discover");
    await mkdir(join(dir, "a", "b"), { recursive: true });
    for (const f of ["one.jpg", "a/two.PNG", "a/b/three.webp", "notes.txt", "a/b/.hidden.jpg"]) await writeFile(join(dir, f), "x");
    const names = discoverInputs([dir]).map((i) => i.name);
    assert.deepEqual(names, ["a/b/three.webp", "a/two.PNG", "one.jpg"]);
    const globbed = discoverInputs([`${dir}/a/**/*.webp`, join(dir, "one.jpg"), join(dir, "one.jpg")]);
    assert.deepEqual(
      globbed.map((i) => i.name),
      ["b/three.webp", "one.jpg"],
    );
    assert.throws(() => discoverInputs([join(dir, "missing")]), ConfigError);
  });

  it("reads JSONL and CSV manifests with boxes and prompts, paths relative to the manifest", async () => {
    const dir = await scratchDir("discover-manifest");
    await writeFile(
      join(dir, "m.jsonl"),
      '{"path": "shoes/a.jpg", "boxes": [[1,2,30,40]], "prompts": ["on sand"]}\n\n{"path": "b.jpg", "boxes": [{"x0":0,"y0":0,"x1":5,"y1":5,"label":"shoe"}]}\n',
    );
    const rows = discoverInputs([join(dir, "m.jsonl")]);
    assert.equal(rows.length, 2);
    assert.equal(rows[0]?.path, join(dir, "shoes/a.jpg"));
    assert.deepEqual(rows[0]?.boxes, [{ x0: 1, y0: 2, x1: 30, y1: 40 }]);
    assert.deepEqual(rows[0]?.prompts, ["on sand"]);
    assert.equal(rows[1]?.boxes?.[0]?.label, "shoe");

    await writeFile(join(dir, "m.csv"), 'path,boxes,prompts\nc.jpg,"[[0,0,10,10]]",studio white|beach\nd.jpg,,\n');
    const csv = discoverInputs([join(dir, "m.csv")]);
    assert.deepEqual(
      csv.map((r) => [r.name, r.boxes, r.prompts]),
      [
        ["c.jpg", [{ x0: 0, y0: 0, x1: 10, y1: 10 }], ["studio white", "beach"]],
        ["d.jpg", undefined, undefined],
      ],
    );

    await writeFile(join(dir, "bad.jsonl"), '{"path": "a.jpg", "boxes": [[1,2,3]]}\n');
    assert.throws(() => discoverInputs([join(dir, "bad.jsonl")]), /bad\.jsonl row 1 boxes/);
    // Point prompts next to a box, as [x, y, label] or {x, y, label}; they travel in the job.
    await writeFile(join(dir, "points.jsonl"), '{"path": "e.jpg", "boxes": [{"x0":0,"y0":0,"x1":50,"y1":50,"points":[[10,12,1],{"x":40,"y":40,"label":0}]}]}\n');
    const [withPoints] = discoverInputs([join(dir, "points.jsonl")]);
    const points = [
      { x: 10, y: 12, label: 1 },
      { x: 40, y: 40, label: 0 },
    ];
    assert.deepEqual(withPoints?.boxes?.[0]?.points, points);
    assert.deepEqual(boxSchema.parse(withPoints?.boxes?.[0]).points, points, "the job schema keeps them");
    await writeFile(join(dir, "bad3.jsonl"), '{"path": "e.jpg", "boxes": [{"x0":0,"y0":0,"x1":5,"y1":5,"points":[[1,2,3]]}]}\n');
    assert.throws(() => discoverInputs([join(dir, "bad3.jsonl")]), /bad3\.jsonl row 1 boxes/);
    await writeFile(join(dir, "bad2.jsonl"), "{nope\n");
    assert.throws(() => discoverInputs([join(dir, "bad2.jsonl")]), /line 1: not valid JSON/);
  });
});
