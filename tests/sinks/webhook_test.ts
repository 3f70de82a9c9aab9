/**
 * Specification of the webhook sink against a local receiver (plain HTTP and
 * TLS): payloads and headers, retries on 5xx/429 honouring Retry-After, no
 * retry on other 4xx, batches refused for good (400, 413, 422) split down to
 * the records the receiver refuses, which are set aside, secrets kept out of
 * errors and logs, the drop policy,
 * its configuration, and one term delivering generated events through it
 * while the receiver fails for a while.
 */

import assert from "node:assert/strict";
import type { CoreV1Event } from "@kubernetes/client-node";
import { configure, type LogRecord, reset } from "@logtape/logtape";
import { TOKEN_KEY } from "../../lib/checkpoint/checkpointer.ts";
import { runTerm } from "../../lib/collector.ts";
import { ConfigError, parseConfig } from "../../lib/config/mod.ts";
import { EventGenerator, startFakeApiServer } from "../../lib/fake_apiserver/mod.ts";
import { generateTlsMaterial } from "../../lib/fake_apiserver/tls.ts";
import { KubeClient } from "../../lib/kube/client.ts";
import { PooledKubeConfig } from "../../lib/kube/kubeconfig.ts";
import { isSecretHeader, urlSecrets } from "../../lib/ops/redact.ts";
import { HttpSinkError, parseRetryAfter, redact } from "../../lib/sinks/_http.ts";
import { createSinks, isServiceCheckSink } from "../../lib/sinks/mod.ts";
import type { EventRecord } from "../../lib/sinks/sink.ts";
import { WebhookSink, type WebhookSinkOptions } from "../../lib/sinks/webhook.ts";
import { InstantClock, type ReceivedRequest, startReceiver } from "../_http_receiver.ts";

const TOKEN = "s3cr3t-bearer-token-value";
const API_KEY = "0123456789abcdef-api-key-value";
const PASSWORD = "p4ssw0rd-in-the-url";

function event(name: string, fields: Partial<CoreV1Event> = {}): CoreV1Event {
  return {
    metadata: { name, namespace: "default", uid: `uid-${name}`, resourceVersion: "10" },
    involvedObject: { kind: "Pod", namespace: "default", name: "web-1", uid: "pod-uid-1" },
    reason: "Started",
    message: `Started ${name}`,
    type: "Normal",
    count: 1,
    source: { component: "kubelet", host: "node-1" },
    ...fields,
  };
}

function record(name: string, type: "ADDED" | "MODIFIED" = "ADDED"): EventRecord {
  const e = event(name);
  return { key: `${e.metadata!.uid}/${e.metadata!.resourceVersion}`, type, event: e };
}

/** A sink with an instant clock and deterministic jitter (random 0.5: none). */
function sink(url: string, options: Partial<WebhookSinkOptions> = {}) {
  const clock = new InstantClock();
  const s = new WebhookSink({ url, clock, random: () => 0.5, ...options });
  return { sink: s, clock, [Symbol.asyncDispose]: () => s.close() };
}

const never = new AbortController().signal;

/** The rejection of `promise`, which must reject. */
async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (e) {
    return e;
  }
  assert.fail("expected a rejection");
}

/** Logs of the `kevents` categories, captured in memory until disposed. */
async function captureLogs(): Promise<{ records: LogRecord[] } & AsyncDisposable> {
  const records: LogRecord[] = [];
  await configure({
    reset: true,
    sinks: { memory: (r: LogRecord) => void records.push(r) },
    loggers: [
      { category: ["kevents"], lowestLevel: "debug", sinks: ["memory"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["memory"] },
    ],
  });
  return { records, [Symbol.asyncDispose]: () => reset() };
}

/** A log record as text: its message with the values filled in, and its properties. */
function logText(r: LogRecord): string {
  return `${r.message.map(String).join("")} ${JSON.stringify(r.properties)}`;
}

function lines(body: string): unknown[] {
  assert.ok(body.endsWith("\n"), "NDJSON ends with a newline");
  return body.slice(0, -1).split("\n").map((l) => JSON.parse(l));
}

// ---- payloads and headers ------------------------------------------------------

Deno.test("the webhook sink posts NDJSON with each record's key, the headers and the bearer token", async () => {
  await using receiver = startReceiver();
  await using s = sink(`${receiver.url}/hooks/k8s?team=a`, {
    headers: { "X-Team": "platform", "content-type": "application/x-ndjson; charset=utf-8" },
    bearerToken: TOKEN,
    userAgent: "kevents/test",
  });
  const batch = [record("a"), record("b", "MODIFIED")];
  await s.sink.send(batch, never);

  assert.equal(receiver.requests.length, 1);
  const req = receiver.requests[0]!;
  assert.equal(req.method, "POST");
  assert.equal(req.path, "/hooks/k8s?team=a");
  assert.equal(req.headers.get("content-type"), "application/x-ndjson; charset=utf-8");
  assert.equal(req.headers.get("authorization"), `Bearer ${TOKEN}`);
  assert.equal(req.headers.get("x-team"), "platform");
  assert.equal(req.headers.get("user-agent"), "kevents/test");
  assert.equal(req.headers.get("idempotency-key"), null, "only single-record batches carry it");
  assert.deepEqual(
    lines(req.body),
    batch.map((r) => ({ key: r.key, type: r.type, event: r.event })),
  );
});

Deno.test("the json format posts an array; a single-record batch carries Idempotency-Key", async () => {
  await using receiver = startReceiver();
  await using s = sink(receiver.url, { format: "json" });
  const one = record("solo");
  await s.sink.send([one], never);
  await s.sink.send([record("x"), record("y")], never);

  const [first, second] = receiver.requests;
  assert.equal(first!.headers.get("content-type"), "application/json");
  assert.equal(first!.headers.get("idempotency-key"), one.key);
  assert.equal(first!.headers.get("authorization"), null);
  assert.deepEqual(JSON.parse(first!.body), [{ key: one.key, type: "ADDED", event: one.event }]);
  assert.deepEqual(JSON.parse(second!.body).map((r: EventRecord) => r.key), [
    "uid-x/10",
    "uid-y/10",
  ]);
  assert.equal(second!.headers.get("idempotency-key"), null);
});

Deno.test("an empty batch sends nothing", async () => {
  await using receiver = startReceiver();
  await using s = sink(receiver.url);
  await s.sink.send([], never);
  assert.equal(receiver.requests.length, 0);
});

Deno.test("user info in the URL becomes Basic authorization and never reaches a message", async () => {
  await using receiver = startReceiver({ fallback: { status: 401, body: "no" } });
  const url = new URL(receiver.url);
  url.username = "kevents";
  url.password = PASSWORD;
  await using s = sink(url.href);
  const error = await rejection(s.sink.send([record("a")], never));
  const req = receiver.requests[0]!;
  assert.equal(req.headers.get("authorization"), `Basic ${btoa(`kevents:${PASSWORD}`)}`);
  assert.ok(error instanceof HttpSinkError);
  assert.ok(!error.message.includes(PASSWORD), error.message);
  assert.ok(error.message.includes(`${receiver.url}/`), error.message);
});

// ---- TLS -------------------------------------------------------------------------

Deno.test("over TLS the sink trusts the given CA, refuses an unknown one, and skips verification only when told", async (t) => {
  const tls = await generateTlsMaterial();
  await using receiver = startReceiver({ tls: { cert: tls.certPem, key: tls.keyPem } });
  assert.ok(receiver.url.startsWith("https://"));

  await t.step("with the receiver's CA the batch is delivered", async () => {
    await using s = sink(receiver.url, { tls: { ca: tls.caCertPem } });
    await s.sink.send([record("tls")], never);
    assert.equal(receiver.requests.length, 1);
    assert.deepEqual(lines(receiver.requests[0]!.body).length, 1);
  });

  await t.step(
    "without it the certificate is refused, retried as a network error, then the send rejects",
    async () => {
      await using s = sink(receiver.url, { maxAttempts: 2 });
      const error = await rejection(s.sink.send([record("x")], never));
      assert.ok(error instanceof HttpSinkError);
      assert.equal(error.status, undefined);
      assert.equal(error.attempts, 2);
      assert.match(error.message, /^Webhook POST https:\/\/127\.0\.0\.1:\d+\/: .*certificate/i);
      assert.equal(receiver.requests.length, 1, "nothing more reached the receiver");
    },
  );

  await t.step("insecureSkipVerify accepts the unknown certificate", async () => {
    await using s = sink(receiver.url, { tls: { insecureSkipVerify: true } });
    await s.sink.send([record("insecure")], never);
    assert.equal(receiver.requests.length, 2);
  });
});

// Deno cannot serve TLS that asks for a client certificate, so the mutual
// TLS check uses openssl's test server when openssl is installed.
const openssl = await (async () => {
  try {
    const out = await new Deno.Command("openssl", { args: ["version"], stdout: "null" }).output();
    return out.success;
  } catch {
    return false;
  }
})();

Deno.test({
  name: "a client certificate is presented to a server that requires one",
  ignore: !openssl,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "kevents-mtls-" });
    try {
      const run = async (...args: string[]) => {
        const out = await new Deno.Command("openssl", { args, cwd: dir, stderr: "piped" })
          .output();
        assert.ok(out.success, new TextDecoder().decode(out.stderr));
      };
      const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
      await run("req", "-x509", ...ec, "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=ca");
      await Deno.writeTextFile(
        `${dir}/srv.ext`,
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
      );
      await Deno.writeTextFile(`${dir}/cli.ext`, "extendedKeyUsage=clientAuth\n");
      for (const [name, cn] of [["srv", "127.0.0.1"], ["cli", "kevents-client"]]) {
        await run(
          "req",
          ...ec,
          "-keyout",
          `${name}.key`,
          "-out",
          `${name}.csr`,
          "-subj",
          `/CN=${cn}`,
        );
        await run(
          "x509",
          "-req",
          "-in",
          `${name}.csr`,
          "-CA",
          "ca.crt",
          "-CAkey",
          "ca.key",
          "-CAcreateserial",
          "-days",
          "1",
          "-out",
          `${name}.crt`,
          "-extfile",
          `${name}.ext`,
        );
      }
      const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const port = (listener.addr as Deno.NetAddr).port;
      listener.close();
      // Without -www, s_server prints what the client sends and sends what
      // it reads on stdin: the test answers the request itself. It serves
      // one connection at a time.
      const server = new Deno.Command("openssl", {
        args: [
          "s_server",
          "-accept",
          `127.0.0.1:${port}`,
          "-cert",
          "srv.crt",
          "-key",
          "srv.key",
          "-CAfile",
          "ca.crt",
          "-Verify",
          "1",
          "-verify_return_error",
        ],
        cwd: dir,
        stdin: "piped",
        stdout: "piped",
        stderr: "null",
      }).spawn();
      const stdin = server.stdin.getWriter();
      const reader = server.stdout.pipeThrough(new TextDecoderStream()).getReader();
      let out = "";
      const readUntil = async (pattern: RegExp) => {
        while (!pattern.test(out)) {
          const { value, done } = await reader.read();
          assert.ok(!done, `openssl s_server stopped before printing ${pattern}: ${out}`);
          out += value;
        }
      };
      try {
        await readUntil(/ACCEPT/);
        const read = (f: string) => Deno.readTextFileSync(`${dir}/${f}`);
        const url = `https://127.0.0.1:${port}/mtls`;
        const withCert = sink(url, {
          tls: { ca: read("ca.crt"), cert: read("cli.crt"), key: read("cli.key") },
          maxAttempts: 1,
        });
        try {
          const sending = withCert.sink.send([record("mtls")], never);
          await readUntil(/POST \/mtls HTTP\/1\.1\r\n[^]*\r\n\r\n/);
          assert.match(out, /idempotency-key: uid-mtls\/10/i);
          await stdin.write(
            new TextEncoder().encode("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
          );
          await sending;
        } finally {
          // Frees the server for the next connection.
          await withCert.sink.close();
        }
        await using without = sink(url, { tls: { ca: read("ca.crt") }, maxAttempts: 1 });
        const error = await rejection(without.sink.send([record("no-cert")], never));
        assert.ok(error instanceof HttpSinkError, String(error));
        assert.equal(error.status, undefined, "refused in the handshake, not by an answer");
      } finally {
        server.kill();
        await server.status;
        await reader.cancel().catch(() => {});
        await stdin.close().catch(() => {});
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

// ---- retries ---------------------------------------------------------------------

Deno.test("503 and 429 are retried after their Retry-After (seconds or HTTP date), then delivered once", async () => {
  await using receiver = startReceiver();
  await using s = sink(receiver.url);
  const start = s.clock.now();
  receiver.script(
    { status: 503, headers: { "Retry-After": "1" }, body: "busy" },
    // Answered after the first wait: three seconds after the start is two from then.
    { status: 429, headers: { "Retry-After": new Date(start + 3000).toUTCString() } },
  );
  await s.sink.send([record("a")], never);
  assert.equal(receiver.requests.length, 3);
  assert.deepEqual(s.clock.sleeps, [1000, 2000]);
  assert.deepEqual(receiver.requests.map((r) => r.body), Array(3).fill(receiver.requests[0]!.body));
});

Deno.test("without Retry-After the waits grow exponentially; network errors are retried too", async (t) => {
  await t.step("5xx", async () => {
    await using receiver = startReceiver();
    await using s = sink(receiver.url, { initialBackoffMs: 100 });
    receiver.script({ status: 500 }, { status: 502 }, { status: 504 });
    await s.sink.send([record("a")], never);
    assert.equal(receiver.requests.length, 4);
    assert.deepEqual(s.clock.sleeps, [100, 200, 400]);
  });

  await t.step("connection refused", async () => {
    const receiver = startReceiver();
    const url = receiver.url;
    await receiver.shutdown();
    await using s = sink(url, { maxAttempts: 3, initialBackoffMs: 100 });
    const error = await rejection(s.sink.send([record("a")], never));
    assert.ok(error instanceof HttpSinkError);
    assert.equal(error.retryable, true);
    assert.equal(error.attempts, 3);
    assert.match(error.message, /ECONNREFUSED|refused/i);
    assert.deepEqual(s.clock.sleeps, [100, 200]);
  });
});

Deno.test("after maxAttempts the send rejects with the status; the next send delivers", async () => {
  await using receiver = startReceiver();
  await using s = sink(receiver.url, { maxAttempts: 3 });
  receiver.script({ status: 502, body: "bad gateway" }, { status: 502 }, {
    status: 503,
    body: "still down",
  });
  const error = await rejection(s.sink.send([record("a")], never));
  assert.ok(error instanceof HttpSinkError);
  assert.equal(error.status, 503);
  assert.equal(error.attempts, 3);
  assert.match(error.message, /answered 503 Service Unavailable: still down$/);
  assert.equal(receiver.requests.length, 3);
  await s.sink.send([record("a")], never);
  assert.equal(receiver.requests.length, 4);
});

Deno.test("a Retry-After beyond the retry budget rejects at once; the next send first waits it out", async () => {
  await using receiver = startReceiver();
  await using s = sink(receiver.url, { maxRetryMs: 1000 });
  receiver.script({ status: 429, headers: { "Retry-After": "5" } });
  const error = await rejection(s.sink.send([record("a")], never));
  assert.ok(error instanceof HttpSinkError);
  assert.equal(error.status, 429);
  assert.equal(error.retryAfterMs, 5000);
  assert.equal(receiver.requests.length, 1);
  assert.deepEqual(s.clock.sleeps, []);
  await s.sink.send([record("a")], never);
  assert.deepEqual(s.clock.sleeps, [5000]);
  assert.equal(receiver.requests.length, 2);
});

Deno.test("404 is not retried within the send: the error carries the status and the truncated body", async () => {
  await using receiver = startReceiver();
  await using s = sink(receiver.url);
  const body = `no such hook: ${"x".repeat(2000)}`;
  receiver.script({ status: 404, body });
  const error = await rejection(s.sink.send([record("a")], never));
  assert.ok(error instanceof HttpSinkError);
  assert.equal(error.status, 404);
  assert.equal(error.retryable, false);
  assert.equal(receiver.requests.length, 1);
  assert.deepEqual(s.clock.sleeps, []);
  assert.ok(
    error.message.startsWith(
      `Webhook POST ${receiver.url}/ answered 404 Not Found: no such hook: xxx`,
    ),
  );
  assert.ok(error.message.endsWith(`... (${body.length} characters)`), error.message);
  assert.ok(error.message.length < 700);
});

Deno.test("parseRetryAfter reads seconds and HTTP dates and refuses the rest", () => {
  const now = Date.UTC(2026, 0, 1);
  assert.equal(parseRetryAfter("0", now), 0);
  assert.equal(parseRetryAfter(" 7 ", now), 7000);
  assert.equal(parseRetryAfter(new Date(now + 4000).toUTCString(), now), 4000);
  assert.equal(parseRetryAfter(new Date(now - 4000).toUTCString(), now), 0);
  assert.equal(parseRetryAfter("86400", now), 600_000, "capped at ten minutes");
  for (const bad of [undefined, "", "-1", "1.5", "soon", "2026-01-01"]) {
    assert.equal(parseRetryAfter(bad, now), undefined, String(bad));
  }
});

// ---- refused for good ----------------------------------------------------------------

/** The keys of the records of an NDJSON body. */
function keysOf(body: string): string[] {
  return lines(body).map((r) => (r as EventRecord).key);
}

/** `n` records named `<prefix>0`...; those at `poisoned` carry POISON in their message. */
function records(n: number, prefix: string, poisoned: number[] = []): EventRecord[] {
  return Array.from({ length: n }, (_, i) => {
    const e = event(`${prefix}${i}`, poisoned.includes(i) ? { message: "POISON pill" } : {});
    return { key: `${e.metadata!.uid}/${e.metadata!.resourceVersion}`, type: "ADDED", event: e };
  });
}

const POISON_REFUSAL = { status: 400, body: '{"error":"cannot index the event: POISON"}' };

/** A receiver refusing (400) any request holding a POISON record; `accepted` gets the keys of the rest. */
function poisonAverse() {
  const accepted: string[] = [];
  const receiver = startReceiver({
    fallback: (req) => {
      if (req.body.includes("POISON")) return POISON_REFUSAL;
      accepted.push(...keysOf(req.body));
      return { status: 200 };
    },
  });
  return { receiver, accepted, [Symbol.asyncDispose]: () => receiver.shutdown() };
}

const FENCE = { holder: "kevents-a", token: 7, assertCurrent: () => {} };

Deno.test("a batch refused with 400 for one poisoned record among 8 is split in halves: the 7 others are delivered exactly once, the poisoned one is set aside, in 7 requests (2 log2(8) + 1)", async () => {
  await using logs = await captureLogs();
  await using r = poisonAverse();
  await using s = sink(r.receiver.url);
  const batch = records(8, "p", [5]);

  const result = await s.sink.send(batch, never, { fence: FENCE });

  const poisoned = batch[5]!.key;
  assert.deepEqual(r.accepted, batch.map((x) => x.key).filter((k) => k !== poisoned));
  assert.deepEqual(result, {
    rejected: [{ key: poisoned, status: 400, reason: POISON_REFUSAL.body }],
  });
  assert.deepEqual(
    r.receiver.requests.map((req) => keysOf(req.body).length),
    [8, 4, 4, 2, 1, 1, 2],
    "whole, halves, quarters around the poisoned record, itself alone",
  );
  for (const req of r.receiver.requests) {
    assert.equal(req.headers.get("kevents-leader"), FENCE.holder, "fenced, every piece");
    assert.equal(req.headers.get("kevents-fencing-token"), String(FENCE.token));
    const keys = keysOf(req.body);
    assert.equal(req.headers.get("idempotency-key"), keys.length === 1 ? keys[0] : null);
  }
  const warnings = logs.records.filter((x) => x.level === "warning").map(logText);
  assert.equal(warnings.length, 1, `one warning for the batch, not one per request: ${warnings}`);
  assert.match(warnings[0]!, /refused a batch of 8 events for good .*400 Bad Request.*in halves/);
});

Deno.test("413 for any batch over 2 records: everything is delivered, in order, in pieces of at most 2; nothing is set aside", async () => {
  const pieces: string[][] = [];
  await using receiver = startReceiver({
    fallback: (req) => {
      const keys = keysOf(req.body);
      if (keys.length > 2) return { status: 413, body: "request entity too large" };
      pieces.push(keys);
      return { status: 202 };
    },
  });
  await using s = sink(receiver.url);
  const batch = records(7, "big");

  const result = await s.sink.send(batch, never);

  assert.equal(result, undefined, "nothing set aside");
  assert.deepEqual(pieces.flat(), batch.map((x) => x.key), "every record exactly once, in order");
  assert.deepEqual(pieces.map((p) => p.length), [2, 2, 2, 1]);
  assert.equal(receiver.requests.length, 7);
});

Deno.test("a receiver refusing every event of a batch (422) is at fault: nothing is set aside, the send fails, and the next tries cost one request each", async () => {
  await using logs = await captureLogs();
  await using receiver = startReceiver({ fallback: { status: 422, body: "schema\nmismatch" } });
  await using s = sink(receiver.url);
  const batch = records(8, "bad");

  await assert.rejects(s.sink.send(batch, never), (e) => {
    assert.ok(e instanceof HttpSinkError && e.retryable, String(e));
    assert.match(e.message, /refused every event of a batch of 8 \(422: schema mismatch\)/);
    return true;
  });
  assert.equal(receiver.requests.length, 2 * 8 - 1, "split down to single events once");
  assert.equal(logs.records.filter((x) => x.level === "warning").length, 1);

  await assert.rejects(s.sink.send(batch, never), HttpSinkError);
  assert.equal(receiver.requests.length, 2 * 8, "not split again while it takes nothing");

  receiver.setFallback({ status: 200 });
  assert.equal(await s.sink.send(batch, never), undefined, "delivered whole once mended");
  assert.equal(receiver.requests.length, 2 * 8 + 1);
});

Deno.test("a single event refused by a receiver that took the one before is set aside; by one that took nothing, it is the receiver's fault", async () => {
  await using receiver = startReceiver();
  await using s = sink(receiver.url);
  await s.sink.send([record("fine")], never);
  receiver.setFallback({ status: 400, body: "too large" });
  const result = await s.sink.send([record("poison")], never);
  assert.deepEqual(result?.rejected.map((r) => r.status), [400]);
  // Refused again, with nothing taken in between: the receiver is at fault.
  await assert.rejects(s.sink.send(records(2, "more"), never), HttpSinkError);
  await assert.rejects(s.sink.send([record("alone")], never), HttpSinkError);
});

Deno.test("the reason of a set-aside record is the receiver's answer on one line, cut short", async () => {
  await using receiver = startReceiver({
    fallback: { status: 400, body: `invalid payload:\n${"x".repeat(2000)}` },
  });
  await using s = sink(receiver.url);
  const result = await s.sink.send([record("a")], never);
  const reason = result?.rejected[0]?.reason ?? "";
  assert.ok(reason.startsWith("invalid payload: xxx"), reason);
  assert.ok(reason.endsWith("..."), reason);
  assert.ok(reason.length <= 203, `${reason.length} characters`);
});

Deno.test("a split batch cut by a transient failure resumes when sent again: what was delivered or set aside is not sent again", async () => {
  const accepted: string[] = [];
  let failed = false;
  await using receiver = startReceiver({
    fallback: (req) => {
      if (req.body.includes("POISON")) return POISON_REFUSAL;
      const keys = keysOf(req.body);
      if (keys.includes("uid-s2/10") && !failed) {
        failed = true;
        return { status: 503, body: "busy" };
      }
      accepted.push(...keys);
      return { status: 200 };
    },
  });
  await using s = sink(receiver.url, { maxAttempts: 1 });
  const batch = records(4, "s", [1]);

  const error = await rejection(s.sink.send(batch, never));
  assert.ok(error instanceof HttpSinkError);
  assert.equal(error.status, 503);
  assert.deepEqual(accepted, ["uid-s0/10"]);

  // The pump sends the same batch again.
  const result = await s.sink.send(batch, never);
  assert.deepEqual(accepted, ["uid-s0/10", "uid-s2/10", "uid-s3/10"], "each exactly once");
  assert.deepEqual(result?.rejected.map((x) => x.key), ["uid-s1/10"]);
  assert.deepEqual(keysOf(receiver.requests.at(-1)!.body), ["uid-s2/10", "uid-s3/10"]);
});

Deno.test("401 and 403 (credentials) are neither split nor set aside: the send fails, for the pump to retry", async () => {
  for (const status of [401, 403]) {
    await using receiver = startReceiver({ fallback: { status, body: "bad token" } });
    await using s = sink(receiver.url);
    const error = await rejection(s.sink.send(records(4, `c${status}-`), never));
    assert.ok(error instanceof HttpSinkError);
    assert.equal(error.status, status);
    assert.equal(receiver.requests.length, 1);
  }
});

// ---- secrets -----------------------------------------------------------------------

Deno.test("secrets never appear in errors or logs, even when the receiver echoes them", async (t) => {
  await using logs = await captureLogs();
  // Echoes the request's headers back, as some proxies' error pages do.
  const echo = (req: ReceivedRequest) => ({
    status: 401,
    body: JSON.stringify(Object.fromEntries(req.headers)),
  });
  await using receiver = startReceiver({ fallback: echo });
  const options: Partial<WebhookSinkOptions> = {
    bearerToken: TOKEN,
    headers: { "X-Api-Key": API_KEY, "X-Trace": "visible-value" },
  };

  await t.step("in an error answer", async () => {
    await using s = sink(receiver.url, options);
    const error = await rejection(s.sink.send([record("a")], never));
    assert.ok(error instanceof HttpSinkError);
    const req = receiver.requests[0]!;
    assert.equal(req.headers.get("authorization"), `Bearer ${TOKEN}`);
    assert.equal(req.headers.get("x-api-key"), API_KEY);
    for (const secret of [TOKEN, API_KEY]) {
      assert.ok(!error.message.includes(secret), error.message);
      assert.ok(!error.body.includes(secret));
    }
    assert.ok(error.message.includes("[redacted]"));
    assert.ok(!error.message.includes("visible-value"), "every configured header is a secret");
    assert.ok(error.message.includes("x-trace"), "header names stay visible");
  });

  await t.step("in drop warnings and retry logs", async () => {
    receiver.setFallback((req) => ({ ...echo(req), status: 503 }));
    await using s = sink(receiver.url, { ...options, onFailure: "drop", maxAttempts: 2 });
    await s.sink.send([record("a")], never);
    assert.equal(s.sink.dropped, 1);
    const texts = logs.records.map(logText);
    assert.ok(texts.some((l) => l.includes("Dropped 1 events")), texts.join("\n"));
    for (const text of texts) {
      assert.ok(!text.includes(TOKEN) && !text.includes(API_KEY), text);
    }
  });

  await t.step(
    "query values and any configured header, whatever its name, echoed in a 403, and in the reason of a record set aside after a 400",
    async () => {
      const query = { token: "s3cret-query-token", apiKey: "0123456789abcdef0123456789abcdef" };
      const headers = {
        "X-Custom-Auth": "custom-auth-value-42",
        "DD-Application-Key": "app-key-abcdef0123456789",
        "X-Tenant": "tenant-7f3a",
      };
      const secrets = [query.token, query.apiKey, ...Object.values(headers)];
      // Echoes the request line and every header, as some receivers' error pages do.
      let status = 403;
      const requestEcho = (req: ReceivedRequest) => ({
        status,
        body: [
          `${req.method} ${req.path} HTTP/1.1`,
          ...[...req.headers].map(([k, v]) => `${k}: ${v}`),
        ]
          .join("\n"),
      });
      await using echoing = startReceiver({ fallback: requestEcho });
      const url = `${echoing.url}/hook?token=${query.token}&api_key=${query.apiKey}`;

      await using s = sink(url, { headers });
      const error = await rejection(s.sink.send([record("a")], never));
      assert.ok(error instanceof HttpSinkError);
      const echoed = echoing.requests[0]!;
      assert.equal(echoed.headers.get("x-custom-auth"), headers["X-Custom-Auth"]);
      assert.ok(echoed.path.includes(query.token), "the receiver got the query");
      assert.equal(error.status, 403);
      assert.match(error.message, /POST \/hook\?token=\[redacted\]&api_key=\[redacted\] HTTP/);
      assert.match(error.message, /x-custom-auth: \[redacted\]/);
      for (const secret of secrets) {
        assert.ok(!error.message.includes(secret), `${secret} in ${error.message}`);
        assert.ok(!error.body.includes(secret), secret);
      }

      const before = logs.records.length;
      await using dropping = sink(url, { headers, onFailure: "drop" });
      await dropping.sink.send([record("b")], never);
      const warnings = logs.records.slice(before).filter((r) => r.level === "warning").map(logText);
      assert.equal(warnings.length, 1, warnings.join("\n"));
      assert.match(warnings[0]!, /Dropped 1 events after 1 attempts .*403 Forbidden/);
      for (const secret of secrets) assert.ok(!warnings[0]!.includes(secret), warnings[0]!);

      status = 400;
      const result = await dropping.sink.send([record("c")], never);
      const reason = result?.rejected[0]?.reason ?? "";
      assert.match(reason, /^POST \/hook\?token=\[redacted\]&api_key=\[redacted\] HTTP/);
      for (const secret of secrets) assert.ok(!reason.includes(secret), reason);
    },
  );

  await t.step("headers named for authentication or keys count as secret by name", () => {
    for (const name of ["X-Custom-Auth", "DD-Application-Key", "DD-APPLICATION-KEY", "App-Key"]) {
      assert.ok(isSecretHeader(name), name);
    }
    for (const name of ["Content-Type", "X-Team", "Idempotency-Key"]) {
      assert.ok(!isSecretHeader(name), name);
    }
  });

  await t.step("urlSecrets gives the user info and query values, as written and decoded", () => {
    assert.deepEqual(
      urlSecrets("https://user:pa%24s@h/p?token=a%2Fb&sig=x+y&flag&empty="),
      ["user", "pa%24s", "a%2Fb", "x+y", "pa$s", "a/b", "x y"],
    );
    assert.deepEqual(urlSecrets("https://h/p"), []);
    assert.deepEqual(urlSecrets(undefined), []);
  });

  await t.step("redact replaces every occurrence, longest first", () => {
    assert.equal(redact("a abcdef b abcd c", ["abcd", "abcdef"]), "a [redacted] b [redacted] c");
    assert.equal(redact("key ab", ["ab"]), "key ab", "too short to redact safely");
  });
});

// ---- drop policy and lifecycle -------------------------------------------------------

Deno.test("by default a failing send rejects (the pump retries); with drop the batch is dropped and counted", async (t) => {
  await using receiver = startReceiver({ fallback: { status: 503 } });

  await t.step("retry (default): rejects, nothing counted", async () => {
    await using s = sink(receiver.url, { maxAttempts: 2 });
    await rejection(s.sink.send([record("a"), record("b")], never));
    assert.equal(s.sink.dropped, 0);
    assert.equal(receiver.requests.length, 2);
  });

  await t.step("drop: resolves after the attempts; the count adds up over batches", async () => {
    await using logs = await captureLogs();
    await using s = sink(receiver.url, { maxAttempts: 2, onFailure: "drop" });
    await s.sink.send([record("a"), record("b")], never);
    assert.equal(s.sink.dropped, 2);
    assert.equal(receiver.requests.length, 4);
    receiver.script({ status: 403, body: "refused" });
    await s.sink.send([record("c")], never);
    assert.equal(s.sink.dropped, 3, "a 403 is dropped after its single attempt");
    assert.equal(receiver.requests.length, 5);
    receiver.script({ status: 400, body: "rejected" });
    const result = await s.sink.send([record("d")], never);
    assert.equal(s.sink.dropped, 3, "a 400 is not dropped: the record is set aside");
    assert.deepEqual(result?.rejected.map((r) => r.key), ["uid-d/10"]);
    const warnings = logs.records.filter((r) => r.level === "warning").map(logText);
    assert.equal(warnings.length, 2);
    assert.match(warnings[0]!, /Dropped 2 events after 2 attempts \(2 dropped so far\)/);
    assert.match(warnings[1]!, /Dropped 1 events after 1 attempts \(3 dropped so far\).*403/);
  });
});

Deno.test("a send rejects with the signal's reason: already aborted, or aborted while waiting for the answer", async (t) => {
  const held = Promise.withResolvers<void>();
  await using receiver = startReceiver({
    fallback: async () => {
      await held.promise;
      return { status: 200 };
    },
  });
  await using s = sink(receiver.url);

  await t.step("already aborted: nothing is sent", async () => {
    const reason = new Error("stopped before");
    const error = await rejection(s.sink.send([record("a")], AbortSignal.abort(reason)));
    assert.equal(error, reason);
    assert.equal(receiver.requests.length, 0);
  });

  await t.step("aborted midway", async () => {
    const controller = new AbortController();
    const sending = s.sink.send([record("a")], controller.signal);
    await receiver.received(1);
    const reason = new Error("stopped midway");
    controller.abort(reason);
    assert.equal(await rejection(sending), reason);
  });
  held.resolve();
});

Deno.test("close() closes the pool: later sends reject", async () => {
  await using receiver = startReceiver();
  const s = new WebhookSink({ url: receiver.url });
  await s.send([record("a")], never);
  await s.close();
  await s.close();
  const error = await rejection(s.send([record("b")], never));
  assert.match(String(error), /webhook sink is closed|Webhook sink is closed/i);
  assert.equal(receiver.requests.length, 1);
});

Deno.test("the constructor refuses a URL that is not http(s)", () => {
  assert.throws(
    () => new WebhookSink({ url: "ftp://example.com/x" }),
    /Cannot create the webhook sink: ftp:\/\/example\.com\/x is not an http\(s\) URL/,
  );
});

// ---- configuration -------------------------------------------------------------------

Deno.test("webhook settings: file and environment, requirements, warnings, masked secrets", async (t) => {
  const base = { KEVENTS_SINKS: "stdout,webhook" };

  await t.step("the environment gives every setting", () => {
    const config = parseConfig({
      env: {
        ...base,
        KEVENTS_WEBHOOK_URL: "https://hooks.example.com/k8s",
        KEVENTS_WEBHOOK_FORMAT: "JSON",
        KEVENTS_WEBHOOK_HEADERS: "X-Team=platform, X-Sig=a=b",
        KEVENTS_WEBHOOK_BEARER_TOKEN: ` ${TOKEN}\n`,
        KEVENTS_WEBHOOK_CA_FILE: "/etc/ca.pem",
        KEVENTS_WEBHOOK_CERT_FILE: "/etc/cert.pem",
        KEVENTS_WEBHOOK_KEY_FILE: "/etc/key.pem",
        KEVENTS_WEBHOOK_ON_FAILURE: "drop",
        KEVENTS_WEBHOOK_MAX_ATTEMPTS: "3",
      },
    });
    assert.deepEqual(config.sinks, ["stdout", "webhook"]);
    assert.deepEqual(config.webhook, {
      url: "https://hooks.example.com/k8s",
      format: "json",
      headers: { "X-Team": "platform", "X-Sig": "a=b" },
      bearerToken: TOKEN,
      caFile: "/etc/ca.pem",
      certFile: "/etc/cert.pem",
      keyFile: "/etc/key.pem",
      fileSources: {
        caFile: "env KEVENTS_WEBHOOK_CA_FILE",
        certFile: "env KEVENTS_WEBHOOK_CERT_FILE",
        keyFile: "env KEVENTS_WEBHOOK_KEY_FILE",
      },
      insecureSkipVerify: false,
      onFailure: "drop",
      maxAttempts: 3,
    });
    assert.deepEqual(config.warnings, []);
  });

  await t.step("the file takes headers as a mapping", () => {
    const config = parseConfig({
      env: {},
      file: {
        path: "/etc/datadog.yaml",
        text: "kevents_sinks: [webhook]\nkevents_webhook_url: http://10.0.0.1:8080/\n" +
          "kevents_webhook_headers:\n  X-Team: platform\n  X-Empty:\n",
      },
    });
    assert.deepEqual(config.webhook.headers, { "X-Team": "platform", "X-Empty": "" });
    assert.equal(config.webhook.url, "http://10.0.0.1:8080/");
  });

  await t.step("the URL is required with the webhook sink, and must be http(s)", () => {
    assert.throws(() => parseConfig({ env: base }), {
      name: "ConfigError",
      message: "Cannot use the webhook sink: kevents_webhook_url (KEVENTS_WEBHOOK_URL) is not set",
    });
    assert.throws(
      () => parseConfig({ env: { ...base, KEVENTS_WEBHOOK_URL: "ftp://x/" } }),
      {
        message: 'Cannot parse kevents_webhook_url "ftp://x/" (env KEVENTS_WEBHOOK_URL): ' +
          "must be an http:// or https:// URL",
      },
    );
    // Without the sink a URL is not needed.
    assert.equal(parseConfig({ env: {} }).webhook.url, undefined);
  });

  await t.step("a client certificate needs its key", () => {
    assert.throws(
      () =>
        parseConfig({
          env: { ...base, KEVENTS_WEBHOOK_URL: "https://h/", KEVENTS_WEBHOOK_CERT_FILE: "/c" },
        }),
      /Cannot use kevents_webhook_cert_file \(env KEVENTS_WEBHOOK_CERT_FILE\) without kevents_webhook_key_file/,
    );
  });

  await t.step("skipping verification and credentials over plain HTTP are warned about", () => {
    const insecure = parseConfig({
      env: {
        ...base,
        KEVENTS_WEBHOOK_URL: "https://hooks.example.com/k8s?sig=1",
        KEVENTS_WEBHOOK_INSECURE_SKIP_VERIFY: "yes",
      },
    });
    assert.equal(insecure.webhook.insecureSkipVerify, true);
    assert.deepEqual(insecure.warnings, [
      "TLS verification of the webhook receiver https://hooks.example.com/k8s is off " +
      "(kevents_webhook_insecure_skip_verify, env KEVENTS_WEBHOOK_INSECURE_SKIP_VERIFY): " +
      "anyone on the path can read and forge what is sent",
    ]);
    const plain = parseConfig({
      env: { ...base, KEVENTS_WEBHOOK_URL: "http://h/", KEVENTS_WEBHOOK_BEARER_TOKEN: TOKEN },
    });
    assert.deepEqual(plain.warnings, [
      "The webhook sink sends credentials to http://h/ over plain HTTP",
    ]);
  });

  await t.step("bad values are refused without showing secrets", () => {
    const cases: [Record<string, string>, string, string][] = [
      [
        { KEVENTS_WEBHOOK_BEARER_TOKEN: `${TOKEN} with space` },
        TOKEN,
        "kevents_webhook_bearer_token",
      ],
      [
        { KEVENTS_WEBHOOK_HEADERS: `Authorization=Bearer ${TOKEN},Bad Name=x` },
        TOKEN,
        "kevents_webhook_headers",
      ],
      [{ KEVENTS_WEBHOOK_URL: `https://u:${PASSWORD}@h:99999/` }, PASSWORD, "kevents_webhook_url"],
      [{ KEVENTS_WEBHOOK_URL: `gopher://h/?token=${TOKEN}` }, TOKEN, "kevents_webhook_url"],
    ];
    for (const [env, secret, key] of cases) {
      const error = (() => {
        try {
          parseConfig({ env: { ...env } });
        } catch (e) {
          return e;
        }
        assert.fail(`expected ${key} to be refused`);
      })();
      assert.ok(error instanceof ConfigError);
      assert.equal(error.key, key);
      assert.ok(!error.message.includes(secret), error.message);
      assert.ok(!error.value.includes(secret), error.value);
      assert.ok(error.message.startsWith(`Cannot parse ${key} `), error.message);
    }
  });

  await t.step("the headers' names stay visible in the message", () => {
    assert.throws(
      () => parseConfig({ env: { KEVENTS_WEBHOOK_HEADERS: "X-A=1,X-A=2" } }),
      { message: /^Cannot parse kevents_webhook_headers "X-A=\*\*\*\*,X-A=\*\*\*\*" \(env/ },
    );
  });
});

Deno.test("createSinks builds the configured sinks in order and reads the webhook's TLS files", async (t) => {
  const tls = await generateTlsMaterial();
  const files: Record<string, string> = { "/ca.pem": tls.caCertPem };
  const readTextFile = (path: string) => {
    const text = files[path];
    if (text === undefined) throw new Deno.errors.NotFound(`No such file: ${path}`);
    return text;
  };
  await using receiver = startReceiver({ tls: { cert: tls.certPem, key: tls.keyPem } });

  await t.step("webhook with a CA file, then null and datadog", async () => {
    const config = parseConfig({
      env: {
        KEVENTS_SINKS: "webhook,null,datadog",
        KEVENTS_WEBHOOK_URL: receiver.url,
        KEVENTS_WEBHOOK_CA_FILE: "/ca.pem",
        DD_API_KEY: API_KEY,
      },
    });
    const sinks = createSinks(config, { readTextFile });
    try {
      assert.deepEqual(sinks.map((s) => s.name), ["webhook", "null", "datadog"]);
      assert.deepEqual(sinks.map(isServiceCheckSink), [false, false, true]);
      await sinks[0]!.send([record("configured")], never);
      assert.equal(receiver.requests.length, 1);
    } finally {
      await Promise.all(sinks.map((s) => s.close()));
    }
  });

  await t.step(
    "an unreadable file is a ConfigError naming the setting, its source and the rule",
    () => {
      const config = parseConfig({
        env: {
          KEVENTS_SINKS: "webhook",
          KEVENTS_WEBHOOK_URL: receiver.url,
          KEVENTS_WEBHOOK_CA_FILE: "/missing.pem",
        },
      });
      assert.throws(() => createSinks(config, { readTextFile }), {
        name: "ConfigError",
        message:
          'Cannot use kevents_webhook_ca_file "/missing.pem" (env KEVENTS_WEBHOOK_CA_FILE): ' +
          `cannot read it: No such file: /missing.pem; it ${CA_RULE}`,
      });
    },
  );
});

const CA_RULE = "must name a readable PEM file of one or more CA certificates " +
  "(-----BEGIN CERTIFICATE----- blocks)";
const CERT_RULE = "must name a readable PEM file of the client certificate " +
  "(a -----BEGIN CERTIFICATE----- block, then any intermediates)";
const KEY_RULE = "must name a readable PEM file of the unencrypted private key of " +
  "kevents_webhook_cert_file (a -----BEGIN PRIVATE KEY-----, RSA PRIVATE KEY or " +
  "EC PRIVATE KEY block)";

Deno.test("createSinks refuses webhook TLS files that do not hold what they must, naming the setting, its source, the path and the rule", async (t) => {
  const tls = await generateTlsMaterial();
  const other = await generateTlsMaterial();
  /** A base64 body that is no DER certificate, between valid markers. */
  const garbageCert = "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n" +
    "-----END CERTIFICATE-----\n";
  const files: Record<string, string> = {
    "/ca.pem": tls.caCertPem,
    "/bundle.pem": `# Issuer: kevents test\n${tls.caCertPem}\n${other.caCertPem}`,
    "/cert.pem": tls.certPem,
    "/key.pem": tls.keyPem,
    "/other-key.pem": other.keyPem,
    "/notes.txt": "the CA is in the vault\n",
    "/garbage-cert.pem": garbageCert,
    "/bundle-with-garbage.pem": `${tls.caCertPem}${garbageCert}`,
    "/garbage-key.pem": "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n",
    "/encrypted-key.pem": "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n" +
      "-----END ENCRYPTED PRIVATE KEY-----\n",
  };
  const readTextFile = (path: string) => {
    const text = files[path];
    if (text === undefined) throw new Deno.errors.NotFound(`No such file: ${path}`);
    return text;
  };
  const base = { KEVENTS_SINKS: "webhook", KEVENTS_WEBHOOK_URL: "https://hooks.example.com/k" };
  /** createSinks' ConfigError for these settings. */
  const refusal = (env: Record<string, string>, file?: string): ConfigError => {
    const config = parseConfig({
      env: { ...base, ...env },
      ...(file === undefined ? {} : { file: { path: "/etc/datadog.yaml", text: file } }),
    });
    try {
      const sinks = createSinks(config, { readTextFile });
      void Promise.all(sinks.map((s) => s.close()));
    } catch (e) {
      assert.ok(e instanceof ConfigError, `not a ConfigError: ${e}`);
      return e;
    }
    assert.fail("createSinks accepted it");
  };

  await t.step("a CA bundle with several certificates and comments is taken", async () => {
    const config = parseConfig({
      env: { ...base, KEVENTS_WEBHOOK_CA_FILE: "/bundle.pem" },
    });
    const sinks = createSinks(config, { readTextFile });
    await Promise.all(sinks.map((s) => s.close()));
  });

  const cases: {
    name: string;
    env: Record<string, string>;
    file?: string;
    key: string;
    source: string;
    path: string;
    problem: string;
    rule: string;
  }[] = [
    {
      name: "a CA file that is not PEM",
      env: { KEVENTS_WEBHOOK_CA_FILE: "/notes.txt" },
      key: "kevents_webhook_ca_file",
      source: "env KEVENTS_WEBHOOK_CA_FILE",
      path: "/notes.txt",
      problem: "it holds no -----BEGIN CERTIFICATE----- block",
      rule: CA_RULE,
    },
    {
      name: "a CA file with garbage between BEGIN and END",
      env: {},
      file: "# webhook\nkevents_webhook_ca_file: /garbage-cert.pem\n",
      key: "kevents_webhook_ca_file",
      source: "/etc/datadog.yaml line 2",
      path: "/garbage-cert.pem",
      problem: "its certificate 1 of 1 is not a valid X.509 certificate",
      rule: CA_RULE,
    },
    {
      name: "a CA bundle whose second certificate is garbage",
      env: { KEVENTS_WEBHOOK_CA_FILE: "/bundle-with-garbage.pem" },
      key: "kevents_webhook_ca_file",
      source: "env KEVENTS_WEBHOOK_CA_FILE",
      path: "/bundle-with-garbage.pem",
      problem: "its certificate 2 of 2 is not a valid X.509 certificate",
      rule: CA_RULE,
    },
    {
      name: "a client certificate file holding a key",
      env: { KEVENTS_WEBHOOK_CERT_FILE: "/key.pem", KEVENTS_WEBHOOK_KEY_FILE: "/key.pem" },
      key: "kevents_webhook_cert_file",
      source: "env KEVENTS_WEBHOOK_CERT_FILE",
      path: "/key.pem",
      problem: "it holds no -----BEGIN CERTIFICATE----- block",
      rule: CERT_RULE,
    },
    {
      name: "a key file holding a certificate",
      env: { KEVENTS_WEBHOOK_CERT_FILE: "/cert.pem", KEVENTS_WEBHOOK_KEY_FILE: "/cert.pem" },
      key: "kevents_webhook_key_file",
      source: "env KEVENTS_WEBHOOK_KEY_FILE",
      path: "/cert.pem",
      problem: "it holds no PEM private key block",
      rule: KEY_RULE,
    },
    {
      name: "a key file with garbage between BEGIN and END",
      env: { KEVENTS_WEBHOOK_CERT_FILE: "/cert.pem", KEVENTS_WEBHOOK_KEY_FILE: "/garbage-key.pem" },
      key: "kevents_webhook_key_file",
      source: "env KEVENTS_WEBHOOK_KEY_FILE",
      path: "/garbage-key.pem",
      problem: "its private key block is not a valid key",
      rule: KEY_RULE,
    },
    {
      name: "an encrypted key",
      env: {
        KEVENTS_WEBHOOK_CERT_FILE: "/cert.pem",
        KEVENTS_WEBHOOK_KEY_FILE: "/encrypted-key.pem",
      },
      key: "kevents_webhook_key_file",
      source: "env KEVENTS_WEBHOOK_KEY_FILE",
      path: "/encrypted-key.pem",
      problem: "its key is encrypted, and kevents takes no passphrase",
      rule: KEY_RULE,
    },
    {
      name: "a key that is not the client certificate's",
      env: { KEVENTS_WEBHOOK_CERT_FILE: "/cert.pem", KEVENTS_WEBHOOK_KEY_FILE: "/other-key.pem" },
      key: "kevents_webhook_key_file",
      source: "env KEVENTS_WEBHOOK_KEY_FILE",
      path: "/other-key.pem",
      problem: "it is not the key of the certificate in /cert.pem",
      rule: KEY_RULE,
    },
  ];
  for (const c of cases) {
    await t.step(c.name, () => {
      const e = refusal(c.env, c.file);
      assert.equal(e.key, c.key);
      assert.equal(e.source, c.source);
      assert.equal(e.value, c.path);
      assert.equal(e.rule, c.rule);
      assert.equal(
        e.message,
        `Cannot use ${c.key} ${JSON.stringify(c.path)} (${c.source}): ${c.problem}; it ${c.rule}`,
      );
    });
  }
});

// ---- end to end ------------------------------------------------------------------------

Deno.test("a term delivers every generated event to the webhook; a receiver failing with 503 delays delivery, loses nothing and holds the checkpoint back", async () => {
  await using server = await startFakeApiServer();
  const kc = new PooledKubeConfig();
  kc.loadFromString(server.kubeconfig());
  const client = new KubeClient(kc);
  await using _client = { [Symbol.asyncDispose]: () => client.close() };

  // Everything after this position is to be delivered.
  const startRv = server.store.currentRv;
  server.create("configmaps", "default", {
    metadata: { name: "datadogtoken" },
    data: { [TOKEN_KEY]: String(startRv) },
  });

  /** Keys of the records the receiver accepted (answered 200), in order. */
  const accepted: string[] = [];
  let failing = false;
  let refused = 0;
  await using receiver = startReceiver({
    fallback: (req) => {
      if (failing) {
        refused++;
        return { status: 503, headers: { "Retry-After": "0" }, body: "maintenance" };
      }
      accepted.push(...lines(req.body).map((r) => (r as EventRecord).key));
      return { status: 200 };
    },
  });
  const config = parseConfig({
    env: {
      KUBERNETES: "1",
      KEVENTS_LEASE_DURATION_MS: "30000",
      KEVENTS_CHECKPOINT_INTERVAL_MS: "20",
      KEVENTS_CHECKPOINT_IDLE_INTERVAL_MS: "20",
      KEVENTS_SINKS: "webhook",
      KEVENTS_WEBHOOK_URL: `${receiver.url}/events`,
      KEVENTS_WEBHOOK_MAX_ATTEMPTS: "2",
    },
  });
  const [webhook] = createSinks(config);
  await using _sink = { [Symbol.asyncDispose]: () => webhook!.close() };

  /** Keys of every event change after `startRv` up to now, in order (what must arrive). */
  const expectedKeys = () => {
    const keys: string[] = [];
    for (let rv = startRv + 1; rv <= server.store.currentRv; rv++) {
      const change = server.store.changeAt(rv);
      if (change?.record.storage !== "/events" || change.type === "DELETED") continue;
      const o = change.record.object;
      keys.push(`${o.metadata.uid}/${o.metadata.resourceVersion}`);
    }
    return keys;
  };
  /** The resourceVersion of the last event change (the checkpoint's own writes come after it). */
  const lastEventRv = () => {
    for (let rv = server.store.currentRv; rv > startRv; rv--) {
      if (server.store.changeAt(rv)?.record.storage === "/events") return rv;
    }
    return startRv;
  };
  const checkpointRv = () => {
    const data = server.get("configmaps", "default", "datadogtoken")?.data as
      | Record<string, string>
      | undefined;
    return Number(data?.[TOKEN_KEY]);
  };
  const until = async (what: string, condition: () => boolean) => {
    const deadline = Date.now() + 30_000;
    while (!condition()) {
      if (Date.now() > deadline) assert.fail(`Gave up waiting until ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  };

  const controller = new AbortController();
  const term = runTerm(
    { client, config, identity: "e2e", sinks: [webhook!] },
    { identity: "e2e", transitions: 0, signal: controller.signal },
  );
  try {
    const generator = new EventGenerator({ seed: 7, repeatRatio: 0.3 });
    const generate = (n: number) => {
      for (let i = 0; i < n; i++) server.applyGenerated(generator.next());
    };

    generate(40);
    const first = expectedKeys();
    await until(
      `the receiver accepted ${first.length} events`,
      () => accepted.length >= first.length,
    );
    assert.deepEqual(accepted, first);
    await until(
      "the checkpoint reached the last delivered event",
      () => checkpointRv() === lastEventRv(),
    );

    failing = true;
    const deliveredRv = lastEventRv();
    generate(30);
    await until("the receiver refused a few requests", () => refused >= 4);
    assert.deepEqual(accepted, first, "nothing new was accepted");
    assert.equal(checkpointRv(), deliveredRv, "the checkpoint stays at the last delivered event");

    failing = false;
    const all = expectedKeys();
    await until(
      `the receiver accepted all ${all.length} events`,
      () => accepted.length >= all.length,
    );
    assert.deepEqual(accepted, all, "every event exactly once, in order");
    await until("the checkpoint reached the end", () => checkpointRv() === lastEventRv());
    assert.equal(new Set(all).size, 70);
  } finally {
    controller.abort(new Error("Test over"));
    await term;
  }
});
