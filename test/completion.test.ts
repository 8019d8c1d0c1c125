/**
 * `maskfleet completion bash|zsh`: the scripts loaded in real shells. bash: the completion function
 * called as bash calls it (COMP_WORDS, COMP_CWORD). zsh: an interactive zsh on a pseudo-terminal
 * (zsh/zpty) with compinit, a Tab pressed after each line, and what it printed read back.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import { runMaskfleet, scratchDir } from "./helpers.js";

describe("shell completion", () => {
  let dir: string;

  before(async () => {
    dir = await scratchDir("completion");
    for (const shell of ["bash", "zsh"]) {
      const r = await runMaskfleet(["completion", shell]);
      assert.equal(r.code, 0, r.stderr);
      await writeFile(join(dir, shell), r.stdout);
    }
  });

  /** What bash offers for the words typed so far (the last one being completed). */
  function bash(words: string[]): string[] {
    const script = `source ${JSON.stringify(join(dir, "bash"))}
COMP_WORDS=(${words.map((w) => `'${w}'`).join(" ")}); COMP_CWORD=${words.length - 1}; COMPREPLY=()
_maskfleet
printf '%s\\n' "\${COMPREPLY[@]}"`;
    const r = spawnSync("bash", ["--norc", "-c", script], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    return r.stdout.split("\n").filter(Boolean);
  }

  it("bash: commands, subcommands, flags, choices and a worker's stages", () => {
    assert.deepEqual(bash(["maskfleet", ""]), ["run", "enqueue", "worker", "models", "status", "retry", "report", "clean", "eval", "ui", "completion"]);
    assert.deepEqual(bash(["maskfleet", "wor"]), ["worker"]);
    assert.deepEqual(bash(["maskfleet", "worker", ""]), ["detect", "mask", "generate", "finalize"]);
    assert.deepEqual(bash(["maskfleet", "models", ""]), ["list", "show", "pull", "verify", "cloud"]);
    assert.deepEqual(bash(["maskfleet", "run", "--ep", ""]), ["cpu", "cuda"]);
    assert.deepEqual(bash(["maskfleet", "enqueue", "x.jpg", "--mode", "in"]), ["inpaint"]);
    assert.deepEqual(bash(["maskfleet", "status", "--w"]), ["--wait"]);
    assert.deepEqual(bash(["maskfleet", "models", "pull", "--allow"]), ["--allow-unverified"]);
    // A worker is offered what it reads; `run` also what jobs carry.
    assert.deepEqual(bash(["maskfleet", "worker", "--t"]), ["--threads"]);
    assert.deepEqual(bash(["maskfleet", "run", "--t"]).sort(), ["--target", "--text-detector-model", "--text-min-confidence", "--threads"]);
  });

  it("zsh: the same tree through compinit, with descriptions", () => {
    const script = `zmodload zsh/zpty
zpty z zsh -f -i
drain() { local chunk; buf=""; for i in {1..20}; do while zpty -r -t z chunk 2>/dev/null; do buf+=$chunk; done; sleep 0.1; done }
zpty -w z 'PS1="> "; autoload -U compinit; compinit -u -D; source ${join(dir, "zsh")}'
drain
for line in 'maskfleet wor' 'maskfleet worker ' 'maskfleet models ' 'maskfleet run --mode '; do
  zpty -w -n z "$line"$'\\t'
  drain
  print -r -- "=== $line"; print -r -- "$buf"
  zpty -w -n z $'\\x03'
  drain
done
zpty -d z`;
    const r = spawnSync("zsh", ["-f", "-c", script], { encoding: "utf8", timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    // eslint-disable-next-line no-control-regex
    const out = r.stdout.replace(/\x1b\[[0-9;?]*[a-zA-Z]/g, "").replace(/\r/g, "");
    const section = (line: string) => out.split(`=== ${line}\n`)[1]?.split("=== ")[0] ?? "";
    assert.match(section("maskfleet wor"), /maskfleet worker /, "the command completed");
    assert.match(section("maskfleet worker "), /detect\s+finalize\s+generate\s+mask/, "the four stages, as zsh sorts them");
    assert.match(section("maskfleet models "), /pull\s+-- download models into the cache/);
    assert.match(section("maskfleet models "), /verify\s+-- sha256 of every cached file/);
    assert.match(section("maskfleet run --mode "), /inpaint[\s\S]*outpaint|outpaint[\s\S]*inpaint/);
  });
});
