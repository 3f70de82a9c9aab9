import assert from "node:assert/strict";
import { startHealthServer } from "../../lib/ops/health_server.ts";

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
    await t.step("without a metrics source, /metrics is not served", async () => {
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

Deno.test("/healthz answers the liveness verdict and /metrics the exposition", async () => {
  let verdict = { live: true, detail: "ok: not leading" };
  const server = await startHealthServer({
    hostname: "127.0.0.1",
    port: 0,
    ready: () => true,
    live: () => verdict,
    metrics: () => Promise.resolve({ contentType: "text/plain; version=0.0.4", text: "x 1\n" }),
  });
  const get = async (path: string) => {
    const res = await fetch(`http://127.0.0.1:${server.port}${path}`);
    return { status: res.status, type: res.headers.get("content-type"), body: await res.text() };
  };
  try {
    assert.deepEqual(await get("/healthz"), {
      status: 200,
      type: "text/plain; charset=utf-8",
      body: "ok: not leading\n",
    });
    verdict = { live: false, detail: "stalled: nothing for 10 ms" };
    assert.deepEqual(await get("/livez"), {
      status: 503,
      type: "text/plain; charset=utf-8",
      body: "stalled: nothing for 10 ms\n",
    });
    assert.deepEqual(await get("/metrics"), {
      status: 200,
      type: "text/plain; version=0.0.4",
      body: "x 1\n",
    });
  } finally {
    await server.close();
  }
});
