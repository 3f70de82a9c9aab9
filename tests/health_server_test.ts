import assert from "node:assert/strict";
import { startHealthServer } from "../lib/health_server.ts";

Deno.test("the health endpoint", async (t) => {
  let ready = false;
  const server = await startHealthServer({ hostname: "127.0.0.1", port: 0, ready: () => ready });
  const get = async (path: string, method = "GET") => {
    const res = await fetch(`http://127.0.0.1:${server.port}${path}`, { method });
    return { status: res.status, body: await res.text() };
  };
  try {
    await t.step("/healthz answers 200 while the process serves requests", async () => {
      assert.deepEqual(await get("/healthz"), { status: 200, body: "ok\n" });
    });
    await t.step("/readyz answers 503 until the collector has started, then 200", async () => {
      assert.deepEqual(await get("/readyz"), { status: 503, body: "not ready\n" });
      ready = true;
      assert.deepEqual(await get("/readyz"), { status: 200, body: "ok\n" });
    });
    await t.step("nothing else is exposed", async () => {
      assert.equal((await get("/metrics")).status, 404);
      assert.equal((await get("/")).status, 404);
      assert.equal((await get("/healthz", "POST")).status, 405);
    });
    await t.step("a port already in use is refused at start", async () => {
      await assert.rejects(
        () => startHealthServer({ hostname: "127.0.0.1", port: server.port, ready: () => true }),
        Deno.errors.AddrInUse,
      );
    });
  } finally {
    await server.close();
  }
});
