/**
 * Specification of kevents' security properties, checked on real runs:
 *
 * - TLS to the API server is verified unless the kubeconfig says
 *   `insecure-skip-tls-verify: true`, which is then warned about at start.
 * - No credential (the kubeconfig's token, the Datadog API key, the webhook's
 *   bearer token and secret headers) shows in a log line, an error message,
 *   `/metrics`, `/healthz`, `/readyz` or `kevents status` output, including
 *   on error paths: a 401 from the API server, a 403 from Datadog and a
 *   webhook receiver that echoes its Authorization header in a 400.
 * - The health endpoint bound to 127.0.0.1 is not reachable on the host's
 *   other addresses.
 * - The ClusterRole grants exactly what kevents uses: every rule of
 *   manifests/rbac/clusterrole.yaml is exercised by a request of a real run,
 *   and every request of those runs is allowed by it.
 *
 * The compiled binary's least permissions are specified in
 * tests/manifests_test.ts ("kevents run needs no more than the permissions
 * deno task compile gives the binary").
 *
 * Each case prints one `BADINPUT <case>: <outcome>` line for the report.
 */

import assert from "node:assert/strict";
import { parseAllDocuments } from "yaml";
import YAML from "yaml";
import { runCollector } from "../lib/collector.ts";
import { parseConfig } from "../lib/config/mod.ts";
import {
  type FakeApiServer,
  type PolicyRule,
  type RequestLogEntry,
  startFakeApiServer,
} from "../lib/fake_apiserver/mod.ts";
import { KubeClient } from "../lib/kube/client.ts";
import { PooledKubeConfig } from "../lib/kube/kubeconfig.ts";
import { readStatus } from "../lib/ops/status.ts";
import type { EventRecord, Sink } from "../lib/sinks/sink.ts";
import { coreEvent, type Json } from "./_fake_api.ts";
import { startReceiver } from "./_http_receiver.ts";
import { KeventsProcess, runMain, withTempDir } from "./_process.ts";

const ROOT = decodeURIComponent(new URL("../", import.meta.url).pathname);
/** Bound of every wait: generous, for a loaded 2-core machine. */
const BOUND_MS = 30_000;

const KUBE_TOKEN = "kube-token-SECRET-7d41c9e2";
const BAD_KUBE_TOKEN = "kube-token-UNKNOWN-SECRET-0b5e";
const API_KEY = "ddapikey-SECRET-4be8a1f3";
const WEBHOOK_TOKEN = "webhook-token-SECRET-c3a9";
const HEADER_SECRET = "header-SECRET-91fe";
const SECRETS = [KUBE_TOKEN, BAD_KUBE_TOKEN, API_KEY, WEBHOOK_TOKEN, HEADER_SECRET];

/** One line of the report table. */
function report(name: string, outcome: string): void {
  console.log(`BADINPUT ${name}: ${outcome}`);
}

/** Fails naming every secret `text` shows, and where. */
function assertNoSecret(where: string, text: string): void {
  const shown = SECRETS.filter((s) => text.includes(s));
  assert.deepEqual(shown, [], `${where} shows a credential`);
}

/** Resolves once `condition` holds, re-checked every 20 ms; fails naming `what`. */
async function waitFor(what: () => string, condition: () => boolean): Promise<void> {
  const deadline = Date.now() + BOUND_MS;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`Gave up waiting for ${what()}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

// ---- subprocesses -------------------------------------------------------------------------

/** A running kevents' health port, once logged. */
async function healthPort(proc: KeventsProcess): Promise<number> {
  const listening = () => proc.logs().find((l) => /^Health and metrics on/.test(l.message));
  await proc.until("the health endpoint", () => listening() !== undefined);
  return listening()!.properties.port as number;
}
/** A kubeconfig for `server` as `user`, changed by `edit`. */
function kubeconfigFor(server: FakeApiServer, user: string, edit: (doc: Json) => void): string {
  const doc = YAML.parse(server.kubeconfig({ user }));
  edit(doc);
  return YAML.stringify(doc);
}

const COMMON_ENV = {
  KUBERNETES: "1",
  KEVENTS_LEASE_DURATION_MS: "4000",
  KEVENTS_HEALTH_PORT: "0",
};

// ---- TLS ---------------------------------------------------------------------------------

Deno.test("TLS to the API server is verified unless the kubeconfig turns it off, which is warned about", async (t) => {
  await using server = await startFakeApiServer({ serveComponentStatuses: false });
  server.addUser("no-ca");
  server.addUser("skip");
  await withTempDir("kevents-security-", async (dir) => {
    const withoutCa = (doc: Json) => delete doc.clusters[0].cluster["certificate-authority-data"];
    await Deno.writeTextFile(`${dir}/no-ca`, kubeconfigFor(server, "no-ca", withoutCa));
    await Deno.writeTextFile(
      `${dir}/skip`,
      kubeconfigFor(server, "skip", (doc) => {
        withoutCa(doc);
        doc.clusters[0].cluster["insecure-skip-tls-verify"] = true;
      }),
    );
    await using noCa = new KeventsProcess(["run", "--kubeconfig", `${dir}/no-ca`], {
      env: COMMON_ENV,
      cwd: dir,
    });
    await using skip = new KeventsProcess(["run", "--kubeconfig", `${dir}/skip`], {
      env: { ...COMMON_ENV, DD_KUBE_RESOURCES_NAMESPACE: "kube-system" },
      cwd: dir,
    });

    await t.step(
      "without the CA, every request fails on the certificate, naming the server",
      async () => {
        const certificate = /UNABLE_TO_VERIFY_LEAF_SIGNATURE|certificate/i;
        await noCa.until(
          "two certificate failures",
          () =>
            noCa.logs().filter((l) => l.level === "WARN" && certificate.test(l.message)).length >=
              2,
        );
        assert.ok(
          noCa.logged("INFO", new RegExp(`Using .*${server.url.replaceAll(".", "\\.")}`)),
          "the start names the server",
        );
        assert.equal(server.requestLog.count({ identity: "no-ca" }), 0, "no request got through");
        assert.ok(!noCa.logged("WARN", /TLS verification .* is off/), "no insecure warning");
        report(
          "kubeconfig without the server's CA",
          "every request fails on certificate verification, retried; 0 requests reach the server",
        );
      },
    );

    await t.step("with insecure-skip-tls-verify, it works and warns at start", async () => {
      await skip.until(
        "the events watch",
        () => server.requestLog.count({ identity: "skip", verb: "watch", code: 200 }) > 0,
      );
      const warning = `TLS verification of ${server.url} is off (insecure-skip-tls-verify in ` +
        `file ${dir}/skip)`;
      assert.ok(
        skip.logs().some((l) => l.level === "WARN" && l.message.includes(warning)),
        skip.stderr,
      );
      report("kubeconfig with insecure-skip-tls-verify: true", "works, warns at start");
    });

    assert.equal(await noCa.stop(), 0, noCa.stderr);
    assert.equal(await skip.stop(), 0, skip.stderr);
  });
});

// ---- secrets ------------------------------------------------------------------------------

/** A non-loopback IPv4 address of this host, if it has one. */
function otherAddress(): string | undefined {
  return Deno.networkInterfaces().find((i) => i.family === "IPv4" && !i.address.startsWith("127."))
    ?.address;
}

/** Whether a TCP connection to `hostname`:`port` is accepted. */
async function reachable(hostname: string, port: number): Promise<boolean> {
  try {
    const conn = await Deno.connect({ hostname, port });
    conn.close();
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.ConnectionRefused) return false;
    throw e;
  }
}

Deno.test("no credential shows in logs, error messages, the health endpoint or kevents status, even on error paths", async (t) => {
  await using server = await startFakeApiServer({
    users: [{ name: "kevents", token: KUBE_TOKEN }],
    serveComponentStatuses: false,
  });
  // Both receivers answer with what they were sent: the credential comes back in the body.
  await using datadog = startReceiver({
    fallback: (req) => ({
      status: 403,
      body: `{"errors":["Forbidden: API key ${req.headers.get("dd-api-key")} is invalid"]}`,
    }),
  });
  await using webhook = startReceiver({
    fallback: (req) => ({
      status: 400,
      body: `bad request from ${req.headers.get("authorization")} with ${
        req.headers.get("x-api-token")
      }`,
    }),
  });
  await withTempDir("kevents-security-", async (dir) => {
    await Deno.writeTextFile(
      `${dir}/kubeconfig`,
      kubeconfigFor(server, "kevents", () => {}),
    );
    await Deno.writeTextFile(
      `${dir}/bad-token`,
      kubeconfigFor(server, "kevents", (doc) => doc.users[0].user.token = BAD_KUBE_TOKEN),
    );
    const env = {
      ...COMMON_ENV,
      DD_LOG_LEVEL: "debug",
      DD_API_KEY: API_KEY,
      DD_DD_URL: datadog.url,
      KEVENTS_SINKS: "datadog,webhook",
      // Bundling would hold the first send back 15 s.
      KEVENTS_DATADOG_BUNDLE_WINDOW_SECONDS: "0",
      KEVENTS_WEBHOOK_URL: webhook.url,
      KEVENTS_WEBHOOK_BEARER_TOKEN: WEBHOOK_TOKEN,
      KEVENTS_WEBHOOK_HEADERS: `X-Api-Token=${HEADER_SECRET}`,
    };
    await using failing = new KeventsProcess(["run", "--kubeconfig", `${dir}/kubeconfig`], {
      env: { ...env, KEVENTS_HEALTH_ADDRESS: "127.0.0.1" },
      cwd: dir,
    });
    await using unauthorized = new KeventsProcess(["run", "--kubeconfig", `${dir}/bad-token`], {
      env: { ...env, KEVENTS_HEALTH_ADDRESS: "0.0.0.0" },
      cwd: dir,
    });
    const outputs: [string, string][] = [];

    await t.step(
      "the sinks' 403 and echoing 400 are logged without the key or the token",
      async () => {
        await failing.until("the pump", () => failing.logged("INFO", /Pump started for term/));
        for (let i = 0; i < 3; i++) {
          server.create("events", "default", coreEvent("default", `secret-test-${i}.17f0`));
        }
        await failing.until(
          "both sinks' failures",
          () =>
            failing.logged("WARN", /Sink datadog failed .*Datadog rejected the API key \(403/) &&
            failing.logged("WARN", /Sink webhook failed .*answered 400/),
        );
        // The receivers were sent the credentials and echoed them back: the redaction is what hid them.
        assert.ok(datadog.requests.some((r) => r.headers.get("dd-api-key") === API_KEY));
        assert.ok(
          webhook.requests.some((r) => r.headers.get("authorization")?.includes(WEBHOOK_TOKEN)),
        );
        assertNoSecret("the failing run's stderr", failing.stderr);
        report(
          "Datadog sink answering 403 with the API key in its body",
          "retried with a warning naming the 403; key redacted everywhere; 0 events acknowledged",
        );
        report(
          "webhook answering 400 echoing Authorization and a secret header",
          "a receiver refusing every event: nothing set aside, retried with a warning naming the " +
            "400; token and header redacted",
        );
      },
    );

    await t.step("a 401 from the API server is logged without the token", async () => {
      await unauthorized.until(
        "two 401 warnings",
        () =>
          unauthorized.logs().filter((l) => l.level === "WARN" && /401/.test(l.message)).length >=
            2,
      );
      assert.ok(
        server.requestLog.count({ identity: "system:unauthenticated", code: 401 }) >= 2,
        JSON.stringify(server.requestLog.summary()),
      );
      assertNoSecret("the unauthorized run's stderr", unauthorized.stderr);
      report(
        "API server answering 401 to an unknown token",
        "retried with warnings; token not shown",
      );
    });

    await t.step("/metrics, /healthz and /readyz show no credential", async () => {
      for (const proc of [failing, unauthorized]) {
        const port = await healthPort(proc);
        for (const path of ["/metrics", "/healthz", "/readyz", "/debug/vars", "/"]) {
          const res = await fetch(`http://127.0.0.1:${port}${path}`);
          const body = await res.text();
          outputs.push([`${path} (${res.status})`, body]);
          assertNoSecret(path, body);
          if (path === "/debug/vars" || path === "/") assert.equal(res.status, 404, path);
        }
      }
      const metrics = outputs.find(([where]) => where.startsWith("/metrics"))![1];
      assert.match(metrics, /kevents_sink_errors_total|kevents_/, "the metrics are there");
      report("health endpoint /metrics /healthz /readyz", "no credential; other paths 404");
    });

    await t.step(
      "the health endpoint bound to 127.0.0.1 is not reachable on another address",
      async () => {
        const address = otherAddress();
        if (address === undefined) {
          console.log(
            "SKIPPED: this host has no non-loopback IPv4 address to try the health port on",
          );
          return;
        }
        const local = await healthPort(failing);
        const everywhere = await healthPort(unauthorized);
        // The check must be able to fail: bound to 0.0.0.0, the other replica answers there.
        if (!await reachable(address, everywhere)) {
          console.log(`SKIPPED: ${address} does not reach this host's own listeners`);
          return;
        }
        assert.equal(await reachable("127.0.0.1", local), true);
        assert.equal(await reachable(address, local), false, `reachable on ${address}`);
        report(
          "KEVENTS_HEALTH_ADDRESS=127.0.0.1",
          `health port refused on ${address}, answered on 127.0.0.1 (0.0.0.0 answers on both)`,
        );
      },
    );

    await t.step(
      "kevents status shows no credential, with a good token or a refused one",
      async () => {
        for (const [file, expected] of [["kubeconfig", 0], ["bad-token", 1]] as const) {
          for (const output of ["text", "json"]) {
            const out = await runMain(
              ["status", "--kubeconfig", `${dir}/${file}`, "--output", output],
              { env, cwd: dir },
            );
            assert.equal(out.code, expected, out.stderr);
            assertNoSecret(`kevents status (${file}, ${output})`, out.stdout + out.stderr);
          }
        }
        report("kevents status with a recognisable token and API key", "no credential in output");
        report("kevents status answered 401", "exit 1, token not shown");
      },
    );

    await t.step("a credential in a refused setting is not repeated in the error", async () => {
      const out = await runMain(["run", "--kubeconfig", `${dir}/kubeconfig`], {
        env: {
          ...env,
          DD_API_KEY: `${API_KEY} with a space`,
          KEVENTS_WEBHOOK_URL:
            `https://user:${WEBHOOK_TOKEN}@hooks.example/path?token=${HEADER_SECRET}`,
        },
        cwd: dir,
      });
      assert.equal(out.code, 2, out.stderr);
      const lines = out.stderr.split("\n").filter((l) => l.trim() !== "");
      assert.equal(lines.length, 1, out.stderr);
      assert.match(
        JSON.parse(lines[0]!).message,
        /^Cannot parse api_key "\*\*\*\*pace" \(\d+ characters, hidden\) \(env DD_API_KEY\): /,
      );
      assertNoSecret("a refused API key's error", out.stdout + out.stderr);
      report("DD_API_KEY refused by its rule", "exit 2, the key shown as ****pace (length only)");
    });

    await t.step("the runs' whole output shows no credential", async () => {
      assert.equal(await failing.stop(), 0);
      assert.equal(await unauthorized.stop(), 0);
      for (const proc of [failing, unauthorized]) {
        assert.ok(proc.stderr.split("\n").length > 5, "the replica logged its lifecycle");
        assertNoSecret("stdout", proc.stdout);
        assertNoSecret("stderr", proc.stderr);
      }
    });
  });
});

// ---- RBAC ---------------------------------------------------------------------------------

/** The rules of manifests/rbac/clusterrole.yaml. */
function clusterRoleRules(): PolicyRule[] {
  const docs = Array.from(
    parseAllDocuments(Deno.readTextFileSync(`${ROOT}manifests/rbac/clusterrole.yaml`)),
  );
  assert.equal(docs.length, 1);
  const role = docs[0]!.toJS() as Json;
  assert.equal(role.kind, "ClusterRole");
  return role.rules as PolicyRule[];
}

/** One permission: `group/resource verb name` (name `*` for any), or `URL verb`. */
interface Grant {
  text: string;
  allows: (e: RequestLogEntry) => boolean;
}

/** Every verb on every resource and name, and every URL, a set of rules grants. */
function grantsOf(rules: readonly PolicyRule[]): Grant[] {
  const out: Grant[] = [];
  for (const r of rules) {
    for (const verb of r.verbs) {
      for (const url of r.nonResourceURLs ?? []) {
        out.push({
          text: `${url} ${verb}`,
          allows: (e) => e.resource === url && e.verb.toLowerCase() === verb,
        });
      }
      for (const group of r.apiGroups ?? []) {
        for (const resource of r.resources ?? []) {
          const qualified = group === "" ? resource : `${resource}.${group}`;
          for (const name of r.resourceNames ?? ["*"]) {
            out.push({
              text: `${group}/${resource} ${verb} ${name}`,
              allows: (e) =>
                e.resource === qualified && e.verb === verb && (name === "*" || e.name === name),
            });
          }
        }
      }
    }
  }
  return out;
}

/** A sink that records keys. */
class KeySink implements Sink {
  readonly name = "keys";
  readonly keys: string[] = [];
  send(batch: readonly EventRecord[]): Promise<void> {
    this.keys.push(...batch.map((r) => r.key));
    return Promise.resolve();
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

Deno.test("a named sink's credentials are hidden as the flat settings' are", async () => {
  await using server = await startFakeApiServer({
    users: [{ name: "kevents", token: KUBE_TOKEN }],
    serveComponentStatuses: false,
  });
  await using webhook = startReceiver({
    fallback: (req) => ({
      status: 400,
      body: `bad request from ${req.headers.get("authorization")} with ${
        req.headers.get("x-api-token")
      }`,
    }),
  });
  await withTempDir("kevents-named-secrets-", async (dir) => {
    await Deno.writeTextFile(`${dir}/kubeconfig`, kubeconfigFor(server, "kevents", () => {}));
    await Deno.writeTextFile(
      `${dir}/datadog.yaml`,
      YAML.stringify({
        kevents_sinks: [{
          name: "audit",
          type: "webhook",
          url: webhook.url,
          bearer_token: WEBHOOK_TOKEN,
          headers: { "X-Api-Token": HEADER_SECRET },
        }],
      }),
    );
    await using proc = new KeventsProcess(
      ["run", "--kubeconfig", `${dir}/kubeconfig`, "--config", `${dir}/datadog.yaml`],
      {
        env: { ...COMMON_ENV, DD_LOG_LEVEL: "debug", KEVENTS_HEALTH_ADDRESS: "127.0.0.1" },
        cwd: dir,
      },
    );
    await proc.until("the pump", () => proc.logged("INFO", /Pump started for term/));
    server.create("events", "default", coreEvent("default", "named-secret.17f0"));
    await proc.until(
      "the named sink's failure",
      () => proc.logged("WARN", /Sink audit set aside event .*refused for good \(400/),
    );
    // The receiver got both credentials and echoed them back: the redaction is what hid them.
    assert.ok(webhook.requests.some((r) => r.headers.get("x-api-token") === HEADER_SECRET));
    assert.ok(
      webhook.requests.some((r) => r.headers.get("authorization")?.includes(WEBHOOK_TOKEN)),
    );
    assertNoSecret("the run's stderr", proc.stderr);
    report("named webhook sink echoing its token and header", "token and header redacted");
  });
});

Deno.test("the ClusterRole grants exactly what real runs use: every rule exercised, every request allowed", async () => {
  const rules = clusterRoleRules();
  const grants = grantsOf(rules);
  // Each lock kind, and a cluster without componentstatuses (where the check reads /readyz).
  await using withStatuses = await startFakeApiServer();
  await using withoutStatuses = await startFakeApiServer({ serveComponentStatuses: false });
  const runs = [
    { server: withStatuses, lock: "lease" as const },
    { server: withStatuses, lock: "configmap" as const },
    { server: withStatuses, lock: "endpoints" as const },
    { server: withoutStatuses, lock: "lease" as const },
  ].map(({ server, lock }, i) => {
    const slug = `rbac-${lock}-${i}`;
    server.create("namespaces", "", { metadata: { name: slug } });
    server.addUser(slug, rules);
    const config = parseConfig({
      env: {
        KUBERNETES: "1",
        // Renewals more than a second apart, as the annotation locks need.
        KEVENTS_LEASE_DURATION_MS: "6000",
        KEVENTS_CHECKPOINT_INTERVAL_MS: "50",
        KEVENTS_CONTROL_PLANE_CHECK_INTERVAL_MS: "1000",
        DD_KUBE_RESOURCES_NAMESPACE: slug,
        DD_LEADER_ELECTION_DEFAULT_RESOURCE: lock,
        // Enrichment (on with the datadog sink; here with a test sink) reads the
        // namespace only to map its labels.
        KEVENTS_ENRICH: "true",
        DD_KUBERNETES_NAMESPACE_LABELS_AS_TAGS: '{"team":"team"}',
      },
    });
    const kc = new PooledKubeConfig();
    kc.loadFromString(server.kubeconfig({ user: slug }));
    const client = new KubeClient(kc, { requestTimeoutMs: config.timings.requestTimeoutMs });
    const sink = new KeySink();
    const controller = new AbortController();
    const done = runCollector(
      { client, config, identity: slug, sinks: [sink] },
      controller.signal,
    );
    // A follower, started once the leader holds the lock: it watches the lock.
    const follower = (async () => {
      await waitFor(
        () => `${slug}'s lock to be held`,
        () =>
          server.requestLog.entries({ identity: slug }).some((e) =>
            e.verb === "update" && e.code === 200 && e.name === config.leaseName
          ) ||
          server.requestLog.entries({ identity: slug }).some((e) =>
            e.verb === "create" && e.code === 201 && e.name === config.leaseName
          ),
      );
      await runCollector(
        { client, config, identity: `${slug}-follower`, sinks: [new KeySink()] },
        controller.signal,
      );
    })();
    return { server, slug, lock, config, client, sink, controller, done, follower };
  });
  try {
    const entries = (r: (typeof runs)[number]) => r.server.requestLog.entries({ identity: r.slug });
    // Leading, renewing, delivering, checkpointing and checking the control plane.
    await waitFor(
      () =>
        `every run's lock renewal and events watch; requests: ${
          JSON.stringify(runs.map((r) => r.server.requestLog.summary({ identity: r.slug })))
        }`,
      () =>
        runs.every((r) => {
          const mine = entries(r);
          const lockResource = {
            lease: "leases.coordination.k8s.io",
            configmap: "configmaps",
            endpoints: "endpoints",
          }[r.lock];
          return mine.some((e) =>
            e.verb === "watch" && e.resource === "events" && e.code === 200
          ) &&
            mine.some((e) =>
              e.verb === "update" && e.resource === lockResource && e.code === 200
            ) &&
            mine.some((e) => e.verb === "watch" && e.resource === lockResource && e.code === 200);
        }),
    );
    for (const server of [withStatuses, withoutStatuses]) {
      for (let i = 0; i < 2; i++) {
        server.create("events", "default", coreEvent("default", `rbac-${i}.17f0`));
      }
      // A Job's event: enrichment reads the Job for its CronJob.
      server.create(
        "events",
        "default",
        coreEvent("default", "rbac-job.17f0", {
          involvedObject: {
            kind: "Job",
            namespace: "default",
            name: "rbac-job",
            apiVersion: "batch/v1",
          },
        }),
      );
    }
    await waitFor(
      () => "every run's events, checkpoint and control-plane check",
      () =>
        runs.every((r) => {
          const mine = entries(r);
          return r.sink.keys.length >= 3 &&
            mine.some((e) =>
              e.verb === "update" && e.resource === "configmaps" &&
              e.name === r.config.tokenConfigMapName
            ) &&
            mine.some((e) =>
              (e.resource === "componentstatuses" || e.resource === "/readyz") && e.code === 200
            );
        }),
    );
    // kevents status, read-only, as the same user.
    const statusRun = runs[0]!;
    await readStatus(statusRun.client, statusRun.config);
  } finally {
    for (const r of runs) r.controller.abort(new Error("Test over"));
    for (const r of runs) {
      await r.done.catch(() => {});
      await r.follower.catch(() => {});
      await r.client.close();
    }
  }
  const requests = runs.flatMap((r) => r.server.requestLog.entries({ identity: r.slug }));
  const refused = requests.filter((e) => e.code === 403 || !grants.some((g) => g.allows(e)));
  assert.deepEqual(
    refused.map((e) => `${e.verb} ${e.resource} ${e.namespace}/${e.name} ${e.code}`),
    [],
    "requests the ClusterRole does not allow",
  );
  const unused = grants.filter((g) => !requests.some((e) => g.allows(e)));
  assert.deepEqual(unused.map((g) => g.text), [], "permissions no request used");
  report(
    `RBAC: ${grants.length} permissions of clusterrole.yaml vs ${requests.length} requests of 4 runs and kevents status`,
    "every permission used, every request allowed",
  );
});
