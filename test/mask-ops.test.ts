import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { binarize, featherMask, fillHoles, growMask, invertMask, maskStats, removeSmallIslands, toBedrockMask, unionMasks } from "../src/imaging/mask-ops.js";
import type { Mask } from "../src/imaging/types.js";

/** Rows of '#' (255) and '.' (0); digits 1-9 stand for soft values 10..90 where needed. */
function m(...rows: string[]): Mask {
  const height = rows.length;
  const width = rows[0]!.length;
  const data = new Uint8Array(width * height);
  rows.forEach((row, y) => {
    assert.equal(row.length, width);
    [...row].forEach((c, x) => {
      data[y * width + x] = c === "#" ? 255 : c === "." ? 0 : Number(c) * 10;
    });
  });
  return { data, width, height };
}

/** Back to rows, for readable failures. */
function rows(mask: Mask): string[] {
  const out: string[] = [];
  for (let y = 0; y < mask.height; y++) {
    let s = "";
    for (let x = 0; x < mask.width; x++) {
      const v = mask.data[y * mask.width + x]!;
      s += v === 255 ? "#" : v === 0 ? "." : v % 10 === 0 && v <= 90 ? String(v / 10) : "?";
    }
    out.push(s);
  }
  return out;
}

const dot = m(".......", ".......", ".......", "...#...", ".......", ".......", ".......");
const square5 = m(".......", ".#####.", ".#####.", ".#####.", ".#####.", ".#####.", ".......");

describe("growMask: exact Euclidean disk", () => {
  test("grow a single pixel by 1: the 4-neighbour cross", () => {
    assert.deepEqual(rows(growMask(dot, 1)), [".......", ".......", "...#...", "..###..", "...#...", ".......", "......."]);
  });

  test("grow a single pixel by 1.5: the 3x3 square", () => {
    assert.deepEqual(rows(growMask(dot, 1.5)), [".......", ".......", "..###..", "..###..", "..###..", ".......", "......."]);
  });

  test("grow a single pixel by 2: the 13-pixel disk", () => {
    assert.deepEqual(rows(growMask(dot, 2)), [".......", "...#...", "..###..", ".#####.", "..###..", "...#...", "......."]);
  });

  test("grow clips at the image border", () => {
    const corner = m("#....", ".....", ".....", ".....");
    assert.deepEqual(rows(growMask(corner, 2)), ["###..", "##...", "#....", "....."]);
  });

  test("shrink a 5x5 square by 1 and by 2", () => {
    assert.deepEqual(rows(growMask(square5, -1)), [".......", ".......", "..###..", "..###..", "..###..", ".......", "......."]);
    assert.deepEqual(rows(growMask(square5, -2)), [".......", ".......", ".......", "...#...", ".......", ".......", "......."]);
    assert.deepEqual(rows(growMask(square5, -3)), Array(7).fill("......."));
  });

  test("the image frame does not erode an object cut by it", () => {
    const bottom = m(".......", ".......", ".......", ".......", "#######", "#######", "#######");
    assert.deepEqual(rows(growMask(bottom, -1)), [".......", ".......", ".......", ".......", ".......", "#######", "#######"]);
    const full = m("###", "###", "###");
    assert.deepEqual(rows(growMask(full, -5)), ["###", "###", "###"]);
  });

  test("0 binarizes at 128; an empty mask stays empty either way", () => {
    const soft: Mask = { data: Uint8Array.from([0, 127, 128, 255]), width: 4, height: 1 };
    assert.deepEqual([...growMask(soft, 0).data], [0, 0, 255, 255]);
    const empty = m("....", "....");
    assert.deepEqual(rows(growMask(empty, 3)), ["....", "...."]);
    assert.deepEqual(rows(growMask(empty, -3)), ["....", "...."]);
  });

  test("matches brute force on a random mask for many radii", () => {
    const w = 41;
    const h = 29;
    let s = 12345;
    const rand = (): number => (s = (s * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
    const data = new Uint8Array(w * h).map(() => (rand() < 0.15 ? 255 : 0));
    // A solid blob as well, so erosion has something to keep.
    for (let y = 8; y < 22; y++) for (let x = 10; x < 30; x++) data[y * w + x] = 255;
    const mask: Mask = { data, width: w, height: h };
    for (const r of [1, 1.5, 2, 2.5, 3, 4, 6.3]) {
      for (const sign of [1, -1]) {
        const got = growMask(mask, sign * r).data;
        const R = Math.ceil(r);
        for (let y = 0; y < h; y++) {
          for (let x = 0; x < w; x++) {
            // Dilation: any object pixel within the disk. Erosion: object with no background in the disk.
            let hit = sign < 0 ? data[y * w + x] === 255 : false;
            for (let dy = -R; dy <= R; dy++) {
              for (let dx = -R; dx <= R; dx++) {
                const xx = x + dx;
                const yy = y + dy;
                if (dx * dx + dy * dy > r * r || xx < 0 || yy < 0 || xx >= w || yy >= h) continue;
                const obj = data[yy * w + xx] === 255;
                if (sign > 0 && obj) hit = true;
                if (sign < 0 && !obj) hit = false;
              }
            }
            assert.equal(got[y * w + x], hit ? 255 : 0, `radius ${sign * r} at ${x},${y}`);
          }
        }
      }
    }
  });
});

describe("fillHoles", () => {
  test("a hole inside a ring is filled, an island inside it stays", () => {
    const ring = m(".......", ".#####.", ".#...#.", ".#.#.#.", ".#...#.", ".#####.", ".......");
    assert.deepEqual(rows(fillHoles(ring)), [".......", ".#####.", ".#####.", ".#####.", ".#####.", ".#####.", "......."]);
  });

  test("background touching the border is never a hole", () => {
    const cup = m(".......", ".#...#.", ".#...#.", ".#####.", ".......");
    assert.deepEqual(rows(fillHoles(cup)), rows(cup));
  });

  test("background is 4-connected: a diagonal gap in the wall still closes the hole", () => {
    const gap = m(".......", ".###...", ".#..#..", ".#..#..", ".####..", ".......");
    assert.deepEqual(rows(fillHoles(gap)), [".......", ".###...", ".####..", ".####..", ".####..", "......."]);
  });

  test("soft values: a hole that is not see-through becomes 255, others keep their value", () => {
    const soft = m("5....", ".###.", ".#5#.", ".###.", ".....");
    assert.deepEqual(rows(fillHoles(soft)), ["5....", ".###.", ".###.", ".###.", "....."]);
  });

  test("maxArea: only holes up to that many pixels are filled", () => {
    const two = m("........", ".######.", ".#.##..#", ".#.##..#", ".######.", "........");
    assert.deepEqual(rows(fillHoles(two, { maxArea: 2 })), ["........", ".######.", ".####..#", ".####..#", ".######.", "........"]);
    assert.deepEqual(rows(fillHoles(two, { maxArea: 4 })), ["........", ".######.", ".#######", ".#######", ".######.", "........"]);
    assert.deepEqual(rows(fillHoles(two, { maxArea: 1 })), rows(two));
  });

  test("a soft mask keeps its see-through holes: spokes of a wheel and the cells of a lattice", () => {
    // A soft object (alpha 200 body, soft 100 rim) with a wheel: a ring of object around a hub,
    // the spaces between spokes at alpha 0-20, and a lattice of 2x2 cells at alpha 10.
    const w = 40;
    const h = 30;
    const data = new Uint8Array(w * h);
    const at = (x: number, y: number, v: number) => (data[y * w + x] = v);
    for (let y = 2; y < 28; y++) for (let x = 2; x < 38; x++) at(x, y, x === 2 || x === 37 || y === 2 || y === 27 ? 100 : 200);
    for (let y = 5; y < 25; y++) {
      for (let x = 5; x < 20; x++) {
        const r = Math.hypot(x - 12, y - 15);
        // Spokes every 45 degrees; between them the floor shows through (0, with a soft 20 rim).
        const spoke = Math.abs(Math.sin(4 * Math.atan2(y - 15, x - 12))) < 0.35;
        if (r > 2 && r < 6.5 && !spoke) at(x, y, r > 6 ? 20 : 0);
      }
    }
    for (let y = 6; y < 24; y += 3) for (let x = 24; x < 36; x += 3) [0, 1].forEach((dy) => [0, 1].forEach((dx) => at(x + dx, y + dy, 10)));
    const mask = { data, width: w, height: h };
    const filled = fillHoles(mask);
    assert.deepEqual([...filled.data], [...data], "no see-through hole was filled");
    // Told to treat it as binary, the same holes would close: the test can fail.
    assert.notDeepEqual([...fillHoles(mask, { soft: false }).data], [...data]);
  });

  test("a SAM-like speckled binary mask still gets its small holes filled, and keeps a big one", () => {
    const w = 60;
    const h = 60;
    const data = new Uint8Array(w * h);
    for (let y = 5; y < 55; y++) for (let x = 5; x < 55; x++) data[y * w + x] = 255;
    // Speckle: single pixels and 2x2 holes; and one 12x12 hole (a real gap, e.g. a cup handle).
    const speckles = [
      [10, 10],
      [20, 33],
      [40, 12],
      [15, 45],
      [47, 47],
    ] as const;
    for (const [x, y] of speckles) data[y * w + x] = 0;
    for (const [x, y] of [
      [30, 20],
      [12, 30],
    ] as const)
      for (const [dx, dy] of [
        [0, 0],
        [1, 0],
        [0, 1],
        [1, 1],
      ] as const)
        data[(y + dy) * w + x + dx] = 0;
    for (let y = 36; y < 48; y++) for (let x = 26; x < 38; x++) data[y * w + x] = 0;
    const mask = { data, width: w, height: h };
    const area = maskStats(mask).area;
    const filled = fillHoles(mask, { maxArea: 0.01 * area });
    for (const [x, y] of speckles) assert.equal(filled.data[y * w + x], 255, `speckle at ${x},${y}`);
    assert.equal(filled.data[20 * w + 30], 255);
    assert.equal(filled.data[40 * w + 30], 0, "the 144-pixel hole is over 1% of the object and stays");
  });
});

describe("removeSmallIslands (8-connected)", () => {
  const islands = m("#......", ".......", "..##...", "..##...", ".......", "......#", ".....#.");
  test("minArea 2 removes the single pixel, keeps the diagonal pair and the block", () => {
    assert.deepEqual(rows(removeSmallIslands(islands, 2)), [".......", ".......", "..##...", "..##...", ".......", "......#", ".....#."]);
  });
  test("minArea 3 removes the diagonal pair too", () => {
    assert.deepEqual(rows(removeSmallIslands(islands, 3)), [".......", ".......", "..##...", "..##...", ".......", ".......", "......."]);
  });
  test("minArea 5 removes everything; minArea 0 or 1 removes nothing", () => {
    assert.deepEqual(rows(removeSmallIslands(islands, 5)), Array(7).fill("......."));
    assert.deepEqual(rows(removeSmallIslands(islands, 1)), rows(islands));
    assert.deepEqual(rows(removeSmallIslands(islands, 0)), rows(islands));
  });
});

describe("removeSmallIslands on soft masks: no pinholes", () => {
  test("object pixels inside a soft region are not cut out of it", () => {
    // Fur: a soft region (alpha 60-90) joined to the body, with small opaque tufts inside it.
    const fur = m("############....", "############6...", "######666666666.", "######66#66#966.", "######666666666.", "################");
    assert.deepEqual(rows(removeSmallIslands(fur, 4)), rows(fur));
  });

  test("a stray blob with a soft halo goes as a whole; a faint wisp without object pixels stays", () => {
    const blob = m("####.......", "####..666..", "####..6#6..", "####..666..", "####.......", "####.....4.");
    assert.deepEqual(rows(removeSmallIslands(blob, 4)), ["####.......", "####.......", "####.......", "####.......", "####.......", "####.....4."]);
  });
});

describe("invert, union, binarize", () => {
  test("invertMask", () => {
    assert.deepEqual(rows(invertMask(m("#.#", "..."))), [".#.", "###"]);
    assert.deepEqual([...invertMask({ data: Uint8Array.from([50, 128]), width: 2, height: 1 }).data], [205, 127]);
  });

  test("unionMasks is the per-pixel maximum", () => {
    const a = m("#..", "...", "3..");
    const b = m("..#", ".#.", "5..");
    const c = m("...", "...", "..#");
    assert.deepEqual(rows(unionMasks([a, b, c])), ["#.#", ".#.", "5.#"]);
    assert.deepEqual(rows(unionMasks([a])), rows(a));
    assert.throws(() => unionMasks([]), RangeError);
    assert.throws(() => unionMasks([a, m("..", "..")]), RangeError);
  });

  test("union does not modify its inputs", () => {
    const a = m("#..");
    const b = m("..#");
    unionMasks([a, b]);
    assert.deepEqual(rows(a), ["#.."]);
  });

  test("binarize", () => {
    const soft: Mask = { data: Uint8Array.from([0, 1, 127, 128, 200, 255]), width: 6, height: 1 };
    assert.deepEqual([...binarize(soft).data], [0, 0, 0, 255, 255, 255]);
    assert.deepEqual([...binarize(soft, 201).data], [0, 0, 0, 0, 0, 255]);
  });
});

describe("toBedrockMask", () => {
  test("object (>= 128) is pure black, the rest pure white, RGB, same size", () => {
    const soft: Mask = { data: Uint8Array.from([0, 127, 128, 255, 64, 192]), width: 3, height: 2 };
    const bedrock = toBedrockMask(soft);
    assert.deepEqual([bedrock.width, bedrock.height, bedrock.data.length], [3, 2, 18]);
    assert.deepEqual([...bedrock.data], [255, 255, 255, 255, 255, 255, 0, 0, 0, 0, 0, 0, 255, 255, 255, 0, 0, 0]);
    for (let i = 0; i < bedrock.data.length; i += 3) {
      const t = [...bedrock.data.subarray(i, i + 3)];
      assert.ok(t.every((v) => v === 0) || t.every((v) => v === 255));
    }
  });
});

describe("maskStats", () => {
  test("area, fraction, exclusive bbox", () => {
    const s = maskStats(m(".......", ".......", "..##...", "..#5...", "....#..", ".......", "......."));
    assert.deepEqual(s, { area: 4, fraction: 4 / 49, bbox: { x0: 2, y0: 2, x1: 5, y1: 5 } });
  });
  test("an empty mask has no bbox", () => {
    assert.deepEqual(maskStats(m("...", "...")), { area: 0, fraction: 0, bbox: null });
  });
  test("a full mask", () => {
    assert.deepEqual(maskStats(m("##", "##")), { area: 4, fraction: 1, bbox: { x0: 0, y0: 0, x1: 2, y1: 2 } });
  });
});

describe("featherMask", () => {
  const size = 40;
  const block: Mask = { data: new Uint8Array(size * size), width: size, height: size };
  for (let y = 10; y < 30; y++) for (let x = 10; x < 30; x++) block.data[y * size + x] = 255;
  const at = (mask: Mask, x: number, y: number): number => mask.data[y * mask.width + x]!;

  test("soft across the edge, unchanged far from it", async () => {
    const f = await featherMask(block, 2);
    assert.deepEqual([f.width, f.height, f.data.length], [size, size, size * size]);
    assert.equal(at(f, 20, 20), 255);
    assert.equal(at(f, 2, 2), 0);
    for (const x of [9, 10]) assert.ok(at(f, x, 20) > 0 && at(f, x, 20) < 255, `edge pixel ${x}: ${at(f, x, 20)}`);
    assert.ok(at(f, 9, 20) < at(f, 10, 20));
  });

  test("sigma 0 returns an equal copy", async () => {
    const f = await featherMask(block, 0);
    assert.deepEqual(f.data, block.data);
    assert.notEqual(f.data, block.data);
  });
});
