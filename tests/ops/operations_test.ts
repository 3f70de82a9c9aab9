/**
 * Specification of what an operator sees of a running `kevents run`: the
 * health endpoint (`/healthz`, `/readyz`, `/metrics`) and the logs, with
 * recognisable credentials that must never show up in any of them.
 */

import assert from "node:assert/strict";
import { startFakeApiServer } from "../../lib/fake_apiserver/mod.ts";
import { startReceiver } from "../_http_receiver.ts";
import { LineReader } from "../_process.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;
const BOUND_MS = 30_000;
const KUBE_TOKEN = "kube-token-SECRET-1b7e4f";
const API_KEY = "ddapikey-SECRET-93c1d2";
const WEBHOOK_TOKEN = "webhook-token-SECRET-5a0f";

Deno.test("kevents run serves health, readiness and metrics, and shows no credential anywhere", async (t) => {
  await using server = await startFakeApiServer({
    users: [{ name: "kevents", token: KUBE_TOKEN }],
    serveComponentStatuses: false,
  });
  await using receiver = startReceiver();
  const dir = await Deno.makeTempDir();
  const kubeconfig = `${dir}/kubeconfig`;
  await Deno.writeTextFile(kubeconfig, server.kubeconfig({ user: "kevents" }));
  assert.ok((await Deno.readTextFile(kubeconfig)).includes(KUBE_TOKEN), "the token is in use");
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net", "--allow-read", "--allow-env", MAIN, "run"],
    env: {
      KUBECONFIG: kubeconfig,
      KUBERNETES: "1",
      DD_API_KEY: API_KEY,
      DD_LOG_LEVEL: "debug",
      KEVENTS_SINKS: "stdout,webhook",
      KEVENTS_WEBHOOK_URL: receiver.url,
      KEVENTS_WEBHOOK_BEARER_TOKEN: WEBHOOK_TOKEN,
      KEVENTS_LEASE_DURATION_MS: "4000",
      KEVENTS_HEALTH_ADDRESS: "127.0.0.1",
      KEVENTS_HEALTH_PORT: "0",
      POD_NAME: "ops",
    },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stdout = new LineReader(child.stdout);
  const stderr = new LineReader(child.stderr);
  let stopped = false;
  try {
    const listening = JSON.parse(await stderr.waitFor(/Health and metrics on/));
    const port = listening.properties.port as number;
    assert.equal(listening.properties.address, "127.0.0.1");
    const get = async (path: string) => {
      const res = await fetch(`http://127.0.0.1:${port}${path}`);
      return { status: res.status, body: await res.text() };
    };
    await stderr.waitFor(/Pump started for term/);

    await t.step("/readyz and /healthz answer 200 once the collector runs", async () => {
      assert.equal((await get("/readyz")).status, 200);
      const live = await get("/healthz");
      assert.equal(live.status, 200);
      assert.match(live.body, /^ok/);
    });

    await t.step("/metrics counts the events delivered to each sink", async () => {
      for (let i = 0; i < 3; i++) {
        server.create("events", "default", {
          metadata: { name: `api-${i}.x` },
          involvedObject: { kind: "Pod", namespace: "default", name: `api-${i}` },
          reason: "Started",
          message: "Started container api",
          type: "Normal",
          source: { component: "kubelet" },
        });
      }
      await stdout.waitFor(/"api-2\.x"/);
      let text = "";
      const deadline = Date.now() + BOUND_MS;
      do {
        text = (await get("/metrics")).body;
        if (/kevents_events_delivered_total\{sink="webhook",type="Normal"\} 3/.test(text)) break;
        await new Promise((r) => setTimeout(r, 20));
      } while (Date.now() < deadline);
      assert.match(text, /kevents_events_delivered_total\{sink="stdout",type="Normal"\} 3/);
      assert.match(text, /kevents_events_delivered_total\{sink="webhook",type="Normal"\} 3/);
      assert.match(text, /^kevents_leader 1$/m);
      assert.match(text, /kevents_api_requests_total\{verb="watch",code="200"\} \d+/);
      // When the leader's watch last received something: these events, moments ago.
      const activity = Number(
        /^kevents_watch_last_activity_timestamp_seconds (\S+)$/m.exec(text)?.[1],
      );
      assert.ok(
        Math.abs(activity - Date.now() / 1000) < 60,
        `kevents_watch_last_activity_timestamp_seconds ${activity} is not recent`,
      );
      assert.ok(receiver.requests.length > 0, "the webhook received the events");
      assert.ok(
        receiver.requests.every((r) =>
          r.headers.get("authorization") === `Bearer ${WEBHOOK_TOKEN}`
        ),
      );
      for (const secret of [KUBE_TOKEN, API_KEY, WEBHOOK_TOKEN]) {
        assert.ok(!text.includes(secret), `/metrics shows ${secret}`);
      }
    });

    await t.step("nothing but the three paths is served", async () => {
      assert.equal((await get("/")).status, 404);
      assert.equal((await get("/debug/pprof")).status, 404);
    });

    await t.step("no log line and no output line holds a credential", async () => {
      child.kill("SIGTERM");
      const status = await child.status;
      stopped = true;
      await Promise.all([stdout.done, stderr.done]);
      assert.equal(status.code, 0);
      const all = [...stdout.lines, ...stderr.lines];
      assert.ok(stderr.lines.length > 5, "the replica logged its lifecycle");
      for (const secret of [KUBE_TOKEN, API_KEY, WEBHOOK_TOKEN]) {
        const leaks = all.filter((l) => l.includes(secret));
        assert.deepEqual(leaks, [], `lines showing ${secret}`);
      }
    });
  } finally {
    if (!stopped) {
      child.kill("SIGKILL");
      await child.status;
      await Promise.allSettled([stdout.done, stderr.done]);
    }
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("kevents run refuses to start when the health port is taken, naming the setting", async () => {
  await using server = await startFakeApiServer({ serveComponentStatuses: false });
  const dir = await Deno.makeTempDir();
  const kubeconfig = `${dir}/kubeconfig`;
  await Deno.writeTextFile(kubeconfig, server.kubeconfig());
  using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-net", "--allow-read", "--allow-env", MAIN, "run"],
      env: {
        KUBECONFIG: kubeconfig,
        KUBERNETES: "1",
        KEVENTS_HEALTH_ADDRESS: "127.0.0.1",
        KEVENTS_HEALTH_PORT: String(taken.addr.port),
      },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 1);
    assert.match(stderr, /Cannot serve the health endpoint on \W*127\.0\.0\.1\W* port \d+/);
    assert.match(stderr, /kevents_health_port/);
    assert.match(stderr, /AddrInUse/);
    assert.equal(
      server.requestLog.count({ resource: "leases.coordination.k8s.io" }),
      0,
      "nothing started",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
