/**
 * kevents ships its V8 flags in one place, deno.json's compile task, and
 * `deno task start` must run it the same way; the benchmarks read them
 * from there (bench/_shipped.ts).
 */

import assert from "node:assert/strict";
import { keventsFlags, readShippedFlags, shippedFlagsOf } from "../bench/_shipped.ts";

const ROOT = new URL("../", import.meta.url);

Deno.test("deno task start runs kevents with the compiled binary's V8 flags and no code cache", () => {
  // Throws naming the difference when the two tasks diverge.
  const shipped = readShippedFlags(new URL("deno.json", ROOT));
  assert.equal(shipped.noCodeCache, true, "the compile task has --no-code-cache");
  assert.ok(shipped.runFlags.includes("--no-code-cache"));
});

const COMPILE =
  "deno compile --frozen --no-code-cache --v8-flags=--optimize-for-size --allow-read --output dist/kevents main.ts";

Deno.test("the shipped flags are read from the compile task and checked against start", async (t) => {
  const cases: {
    name: string;
    start: string;
    compile?: string;
    runFlags?: string[];
    error?: RegExp;
  }[] = [
    {
      name: "the same flags: --no-code-cache and the V8 flags, for deno run",
      start: "deno run --frozen --no-code-cache --v8-flags=--optimize-for-size main.ts run",
      runFlags: ["--no-code-cache", "--v8-flags=--optimize-for-size"],
    },
    {
      name: "no V8 flags in either: only --no-code-cache",
      compile: "deno compile --no-code-cache --output dist/kevents main.ts",
      start: "deno run --no-code-cache main.ts run",
      runFlags: ["--no-code-cache"],
    },
    {
      name: "repeated --v8-flags options add up, in order",
      compile: "deno compile --no-code-cache --v8-flags=--a,--b --v8-flags=--c main.ts",
      start: "deno run --no-code-cache --v8-flags=--a --v8-flags=--b,--c main.ts run",
      runFlags: ["--no-code-cache", "--v8-flags=--a,--b,--c"],
    },
    {
      name: "flags after the entry point are kevents' own, not Deno's",
      start: "deno run --no-code-cache --v8-flags=--optimize-for-size main.ts run --v8-flags=--x",
      runFlags: ["--no-code-cache", "--v8-flags=--optimize-for-size"],
    },
    {
      name: "start without the V8 flags",
      start: "deno run --frozen --no-code-cache main.ts run",
      error:
        /start task's V8 flags \(none\) differ from the compile task's \(--optimize-for-size\)/,
    },
    {
      name: "start with other V8 flags",
      start: "deno run --no-code-cache --v8-flags=--optimize-for-size,--max-lazy main.ts run",
      error: /--optimize-for-size,--max-lazy\) differ/,
    },
    {
      name: "start writing a code cache",
      start: "deno run --frozen --v8-flags=--optimize-for-size main.ts run",
      error: /compile task has --no-code-cache and the start task does not/,
    },
  ];
  for (const c of cases) {
    await t.step(c.name, () => {
      const tasks = { compile: c.compile ?? COMPILE, start: c.start };
      if (c.error !== undefined) assert.throws(() => shippedFlagsOf(tasks), c.error);
      else assert.deepEqual(shippedFlagsOf(tasks).runFlags, c.runFlags);
    });
  }
  await t.step("a task given as an object is read by its command", () => {
    const tasks = {
      compile: { command: COMPILE, description: "the binary" },
      start: "deno run --no-code-cache --v8-flags=--optimize-for-size main.ts run",
    };
    assert.deepEqual(shippedFlagsOf(tasks).v8Flags, ["--optimize-for-size"]);
  });
  await t.step("a missing task is an error", () => {
    assert.throws(() => shippedFlagsOf({ compile: COMPILE }), /deno.json has no "start" task/);
  });
});

Deno.test("benchmarks run kevents with the shipped flags unless --kevents-v8-flags overrides them", () => {
  const shipped = shippedFlagsOf({
    compile: COMPILE,
    start: "deno run --no-code-cache --v8-flags=--optimize-for-size main.ts run",
  });
  assert.deepEqual(keventsFlags(undefined, shipped), {
    runFlags: ["--no-code-cache", "--v8-flags=--optimize-for-size"],
    v8Flags: "--optimize-for-size",
    source: "shipped",
  });
  assert.deepEqual(keventsFlags("--max-semi-space-size=4", shipped), {
    runFlags: ["--no-code-cache", "--v8-flags=--max-semi-space-size=4"],
    v8Flags: "--max-semi-space-size=4",
    source: "override",
    override: "--max-semi-space-size=4",
  });
  assert.deepEqual(keventsFlags("none", shipped).runFlags, ["--no-code-cache"]);
});
