/**
 * Specification of the house's layout (docs/ARCHITECTURE.md): lib/ is made
 * of rooms, each a folder with a `mod.ts` front door; a room imports another
 * room only through that front door; only main.ts reads the process's
 * arguments, environment and signals; no file outside the fake API server
 * grows past 600 lines.
 */

import assert from "node:assert/strict";

const LIB = new URL("../lib/", import.meta.url);
const MAIN = new URL("../main.ts", import.meta.url);

/** Every .ts file under `dir`, as URLs. */
async function tsFiles(dir: URL): Promise<URL[]> {
  const out: URL[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const url = new URL(entry.name + (entry.isDirectory ? "/" : ""), dir);
    if (entry.isDirectory) out.push(...await tsFiles(url));
    else if (entry.name.endsWith(".ts")) out.push(url);
  }
  return out.sort((a, b) => a.href.localeCompare(b.href));
}

/** The relative module specifiers `text` imports or re-exports, static or dynamic. */
function relativeImports(text: string): string[] {
  const specs: string[] = [];
  const pattern = /(?:\bfrom\s*|\bimport\s*\(\s*|^import\s+)"(\.{1,2}\/[^"]+)"/gm;
  for (const m of text.matchAll(pattern)) specs.push(m[1]!);
  return specs;
}

/** The room of a file under lib/ (its first folder), or "" for lib/collector.ts and main.ts. */
function roomOf(url: URL): string {
  if (!url.href.startsWith(LIB.href)) return "";
  const rest = url.href.slice(LIB.href.length).split("/");
  return rest.length > 1 ? rest[0]! : "";
}

function name(url: URL): string {
  return url.href.slice(new URL("../", import.meta.url).href.length);
}

/** Source text without comments, so that prose naming `Deno.env` does not count. */
function code(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
}

Deno.test("lib/ is made of rooms, each with a mod.ts front door", async () => {
  const rooms: string[] = [];
  for await (const entry of Deno.readDir(LIB)) if (entry.isDirectory) rooms.push(entry.name);
  assert.ok(rooms.length >= 10, `rooms: ${rooms.join(", ")}`);
  const without = [];
  for (const room of rooms.sort()) {
    try {
      await Deno.stat(new URL(`${room}/mod.ts`, LIB));
    } catch {
      without.push(room);
    }
  }
  assert.deepEqual(without, [], "rooms without a mod.ts");
});

Deno.test("a room reaches another room only through its mod.ts", async () => {
  const files = [MAIN, ...await tsFiles(LIB)];
  const breaches: string[] = [];
  for (const file of files) {
    const from = roomOf(file);
    for (const spec of relativeImports(await Deno.readTextFile(file))) {
      const target = new URL(spec, file);
      const to = roomOf(target);
      if (to === "" || to === from) continue;
      if (!target.href.endsWith(`/lib/${to}/mod.ts`)) {
        breaches.push(`${name(file)} imports ${spec}`);
      }
    }
  }
  assert.deepEqual(breaches, []);
});

Deno.test("the checker sees a breach: it is not vacuous", () => {
  const file = new URL("pump/pump.ts", LIB);
  const specs = relativeImports(
    'import { a } from "../kube/client.ts";\nconst m = await import("../demo/mod.ts");\n',
  );
  assert.deepEqual(specs, ["../kube/client.ts", "../demo/mod.ts"]);
  assert.equal(roomOf(new URL(specs[0]!, file)), "kube");
  assert.equal(roomOf(file), "pump");
});

Deno.test("only main.ts reads the arguments, the environment and signals", async () => {
  const readers: string[] = [];
  for (const file of await tsFiles(LIB)) {
    const text = code(await Deno.readTextFile(file));
    for (const api of ["Deno.env", "Deno.args", "Deno.addSignalListener"]) {
      if (text.includes(api)) readers.push(`${name(file)} uses ${api}`);
    }
  }
  assert.deepEqual(readers, []);
  const main = code(await Deno.readTextFile(MAIN));
  assert.ok(main.includes("Deno.args") && main.includes("Deno.addSignalListener"));
});

Deno.test("no file in lib/ outside the fake API server is over 600 lines", async () => {
  const large: string[] = [];
  for (const file of await tsFiles(LIB)) {
    if (roomOf(file) === "fake_apiserver") continue;
    const lines = (await Deno.readTextFile(file)).split("\n").length - 1;
    if (lines > 600) large.push(`${name(file)}: ${lines} lines`);
  }
  assert.deepEqual(large, []);
});
