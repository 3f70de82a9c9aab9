/**
 * kubectl against the fake API server: the proof that the fake is faithful.
 * Every step drives the real kubectl client (v1.32) as a subprocess over TLS
 * and checks what a user would see against a real cluster.
 */

import { commandSucceeds } from "../_process.ts";
import assert from "node:assert/strict";
import YAML from "yaml";
import { type FakeApiServer, startFakeApiServer } from "../../lib/fake_apiserver/mod.ts";

/** Failure timeout for output a subprocess should print; generous for a loaded machine. */
const OUTPUT_TIMEOUT_MS = 30_000;

function kubectlAvailable(): Promise<boolean> {
  return commandSucceeds("kubectl", ["version", "--client"]);
}

const HAVE_KUBECTL = await kubectlAvailable();
if (!HAVE_KUBECTL) {
  console.log("SKIPPED: kubectl not found on PATH; tests/fake_apiserver/kubectl_test.ts needs it");
}

interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs kubectl to completion with an isolated HOME and the given kubeconfig. */
async function kubectl(env: KubectlEnv, ...args: string[]): Promise<KubectlResult> {
  const out = await new Deno.Command("kubectl", {
    args,
    env: { KUBECONFIG: env.kubeconfig, HOME: env.home },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

/** Runs kubectl and fails with its output unless it exits 0. */
async function kubectlOk(env: KubectlEnv, ...args: string[]): Promise<string> {
  const r = await kubectl(env, ...args);
  assert.equal(
    r.code,
    0,
    `kubectl ${args.join(" ")} exited ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`,
  );
  return r.stdout;
}

interface KubectlEnv {
  kubeconfig: string;
  home: string;
}

/** A long-running kubectl (a watch) whose stdout is read as it arrives. */
class RunningKubectl {
  readonly #child: Deno.ChildProcess;
  readonly #reader: ReadableStreamDefaultReader<string>;
  readonly #stderr: Promise<string>;
  #pending: Promise<ReadableStreamReadResult<string>> | undefined;
  #ended = false;
  /** Everything printed on stdout so far. */
  stdout = "";

  constructor(env: KubectlEnv, args: string[]) {
    this.#child = new Deno.Command("kubectl", {
      args,
      env: { KUBECONFIG: env.kubeconfig, HOME: env.home },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#reader = this.#child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    this.#stderr = new Response(this.#child.stderr).text();
  }

  /** Reads stdout until `done(stdout)` holds; fails after a generous timeout or at exit. */
  async waitFor(what: string, done: (stdout: string) => boolean): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), OUTPUT_TIMEOUT_MS);
    });
    try {
      while (!done(this.stdout)) {
        if (this.#ended) {
          const stderr = await this.#stderr;
          assert.fail(`kubectl exited before printing ${what}:\n${this.stdout}\n${stderr}`);
        }
        this.#pending ??= this.#reader.read();
        const result = await Promise.race([this.#pending, timeout]);
        if (result === "timeout") {
          assert.fail(
            `Timed out waiting for kubectl to print ${what}; stdout so far:\n${this.stdout}`,
          );
        }
        this.#pending = undefined;
        if (result.done) this.#ended = true;
        else this.stdout += result.value;
      }
    } finally {
      clearTimeout(timer);
    }
  }

  /** Kills the process, waits for it to exit and releases its pipes; returns its stderr. */
  async stop(): Promise<string> {
    try {
      this.#child.kill("SIGTERM");
    } catch (e) {
      // Already exited: nothing to kill.
      if (!(e instanceof TypeError)) throw e;
    }
    await this.#child.status;
    await this.#reader.cancel();
    return await this.#stderr;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}

/** A core/v1 Event body as a kubelet would write it. */
function eventBody(
  name: string,
  namespace: string,
  fields: { type: string; reason: string; message: string; pod: string },
): Record<string, unknown> {
  const now = new Date().toISOString();
  return {
    metadata: { name, namespace },
    involvedObject: { kind: "Pod", namespace, name: fields.pod, apiVersion: "v1" },
    reason: fields.reason,
    message: fields.message,
    source: { component: "kubelet", host: "node-1" },
    firstTimestamp: now,
    lastTimestamp: now,
    count: 1,
    type: fields.type,
  };
}

/** Lines of a kubectl table, split into cells on runs of two or more spaces. */
function tableRows(stdout: string): string[][] {
  return stdout.split("\n").filter((l) => l.trim() !== "").map((l) => l.trim().split(/\s{2,}/));
}

interface PrintedObject {
  kind?: string;
  apiVersion?: string;
  reason?: string;
  message?: string;
  metadata?: { name?: string; resourceVersion?: string };
}

/**
 * The complete objects in the output of `kubectl get --watch -o json`: one
 * indented JSON document per object, each ending with "}" alone on a line.
 * A document still being printed is left out.
 */
function printedObjects(stdout: string): PrintedObject[] {
  return stdout.split(/^\}$/m).slice(0, -1).map((doc) => JSON.parse(`${doc}}`) as PrintedObject);
}

function countLines(stdout: string, pattern: RegExp): number {
  return stdout.split("\n").filter((l) => pattern.test(l)).length;
}

const MANIFEST = `apiVersion: v1
kind: ServiceAccount
metadata:
  name: kevents
  namespace: default
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: kevents
rules:
  - apiGroups: [""]
    resources: ["events"]
    verbs: ["get", "list", "watch"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: kevents
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: kevents
subjects:
  - kind: ServiceAccount
    name: kevents
    namespace: default
---
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata:
  name: kevents-leader
  namespace: default
spec:
  holderIdentity: kevents-0
  leaseDurationSeconds: 15
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: kevents-config
  namespace: default
data:
  sink: stdout
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: kevents
  namespace: default
spec:
  selector:
    matchLabels:
      app: kevents
  template:
    metadata:
      labels:
        app: kevents
    spec:
      serviceAccountName: kevents
      containers:
        - name: kevents
          image: kevents:latest
`;

/** Resources of the manifest, as `server.get` names them. */
const MANIFEST_OBJECTS: [resource: string, namespace: string, name: string][] = [
  ["serviceaccounts", "default", "kevents"],
  ["clusterroles.rbac.authorization.k8s.io", "", "kevents"],
  ["clusterrolebindings.rbac.authorization.k8s.io", "", "kevents"],
  ["leases.coordination.k8s.io", "default", "kevents-leader"],
  ["configmaps", "default", "kevents-config"],
  ["daemonsets.apps", "default", "kevents"],
];

async function writeKubeconfig(
  server: FakeApiServer,
  dir: string,
  user: string,
): Promise<KubectlEnv> {
  const kubeconfig = `${dir}/${user}.kubeconfig`;
  await Deno.writeTextFile(kubeconfig, server.kubeconfig({ user }));
  return { kubeconfig, home: dir };
}

Deno.test({
  name: "kubectl works against the fake API server as against a real cluster",
  ignore: !HAVE_KUBECTL,
  async fn(t) {
    const dir = await Deno.makeTempDir({ prefix: "kevents_kubectl_" });
    try {
      await using server = await startFakeApiServer();
      const admin = await writeKubeconfig(server, dir, "admin");

      await t.step("kubectl version -o json reports the server version", async () => {
        const version = JSON.parse(await kubectlOk(admin, "version", "-o", "json"));
        assert.equal(version.serverVersion.major, "1");
        assert.equal(version.serverVersion.minor, "32");
        assert.match(version.serverVersion.gitVersion, /^v1\.32\./);
      });

      await t.step(
        "kubectl create configmap (a protobuf body) stores the literal, and get -o yaml shows it with server-set metadata only",
        async () => {
          const created = await kubectlOk(
            admin,
            "create",
            "configmap",
            "datadogtoken",
            "--from-literal=event.tokenKey=0",
          );
          assert.equal(created.trim(), "configmap/datadogtoken created");
          assert.deepEqual(server.get("configmaps", "default", "datadogtoken")?.data, {
            "event.tokenKey": "0",
          });

          const yaml = await kubectlOk(admin, "get", "configmap", "datadogtoken", "-o", "yaml");
          assert.match(yaml, /^ {2}event\.tokenKey: "0"$/m);
          const cm = YAML.parse(yaml);
          assert.equal(cm.kind, "ConfigMap");
          assert.equal(cm.apiVersion, "v1");
          assert.equal(cm.metadata.name, "datadogtoken");
          assert.equal(cm.metadata.namespace, "default");
          assert.match(cm.metadata.uid, /^[0-9a-f-]{36}$/);
          assert.match(cm.metadata.resourceVersion, /^\d+$/);
          assert.match(cm.metadata.creationTimestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
          assert.deepEqual(Object.keys(cm.metadata).sort(), [
            "creationTimestamp",
            "name",
            "namespace",
            "resourceVersion",
            "uid",
          ]);
          assert.doesNotMatch(yaml, /generation:/);
          assert.doesNotMatch(yaml, /generateName:/);
        },
      );

      server.create(
        "events",
        "default",
        eventBody("web-1.started", "default", {
          type: "Normal",
          reason: "Started",
          message: "Started container web",
          pod: "web-1",
        }),
      );
      server.create(
        "events",
        "kube-system",
        eventBody("dns-1.backoff", "kube-system", {
          type: "Warning",
          reason: "BackOff",
          message: "Back-off restarting failed container",
          pod: "dns-1",
        }),
      );

      await t.step(
        "kubectl get events -A prints the event columns and one row per event",
        async () => {
          const rows = tableRows(await kubectlOk(admin, "get", "events", "-A"));
          assert.deepEqual(rows[0], [
            "NAMESPACE",
            "LAST SEEN",
            "TYPE",
            "REASON",
            "OBJECT",
            "MESSAGE",
          ]);
          const body = rows.slice(1).map(([ns, _lastSeen, ...rest]) => [ns, ...rest]);
          assert.deepEqual(body, [
            ["default", "Normal", "Started", "pod/web-1", "Started container web"],
            [
              "kube-system",
              "Warning",
              "BackOff",
              "pod/dns-1",
              "Back-off restarting failed container",
            ],
          ]);
          for (const row of rows.slice(1)) assert.match(row[1]!, /^\d+[smhd]/);
        },
      );

      await t.step(
        "kubectl get events -A --watch -o json shows existing events, then one created after the watch started",
        async () => {
          await using watch = new RunningKubectl(admin, [
            "get",
            "events",
            "-A",
            "--watch",
            "-o",
            "json",
          ]);
          const names = () => printedObjects(watch.stdout).map((o) => o.metadata?.name);
          await watch.waitFor("the existing events", () => {
            const printed = names();
            return printed.includes("web-1.started") && printed.includes("dns-1.backoff");
          });
          assert.ok(!names().includes("json-watch.late"));
          server.create(
            "events",
            "default",
            eventBody("json-watch.late", "default", {
              type: "Normal",
              reason: "Pulled",
              message: "Pulled image after the watch started",
              pod: "web-2",
            }),
          );
          await watch.waitFor(
            "the event created after the watch started",
            () => names().includes("json-watch.late"),
          );
          const late = printedObjects(watch.stdout).find((o) =>
            o.metadata?.name === "json-watch.late"
          );
          assert.equal(late?.kind, "Event");
          assert.equal(late?.apiVersion, "v1");
          assert.equal(late?.reason, "Pulled");
          assert.equal(late?.message, "Pulled image after the watch started");
          assert.match(late?.metadata?.resourceVersion ?? "", /^\d+$/);
          assert.equal(names().at(-1), "json-watch.late");
        },
      );

      await t.step(
        "kubectl get events -A --watch prints the header once and a row for each new event",
        async () => {
          await using watch = new RunningKubectl(admin, ["get", "events", "-A", "--watch"]);
          await watch.waitFor("the existing events", (out) => out.includes("Back-off restarting"));
          server.create(
            "events",
            "kube-system",
            eventBody("table-watch.late", "kube-system", {
              type: "Warning",
              reason: "Unhealthy",
              message: "Readiness probe failed after the watch started",
              pod: "dns-2",
            }),
          );
          await watch.waitFor(
            "a row for the new event",
            (out) => /Readiness probe failed after the watch started\n/.test(out),
          );
          assert.equal(countLines(watch.stdout, /^NAMESPACE\s+LAST SEEN\s+TYPE/), 1);
          assert.match(watch.stdout, /^NAMESPACE\s+LAST SEEN\s+TYPE\s+REASON\s+OBJECT\s+MESSAGE$/m);
          const row = tableRows(watch.stdout).find((r) => r.includes("pod/dns-2"));
          assert.deepEqual(row?.filter((_, i) => i !== 1), [
            "kube-system",
            "Warning",
            "Unhealthy",
            "pod/dns-2",
            "Readiness probe failed after the watch started",
          ]);
        },
      );

      await t.step("kubectl get leases -A shows each lease with its holder", async () => {
        server.create("leases.coordination.k8s.io", "kube-system", {
          metadata: { name: "kevents-lock" },
          spec: { holderIdentity: "kevents-7d9f", leaseDurationSeconds: 15 },
        });
        const rows = tableRows(await kubectlOk(admin, "get", "leases", "-A"));
        assert.deepEqual(rows[0], ["NAMESPACE", "NAME", "HOLDER", "AGE"]);
        assert.deepEqual(rows[1]?.slice(0, 3), ["kube-system", "kevents-lock", "kevents-7d9f"]);
        assert.equal(rows.length, 2);
      });

      await t.step(
        "kubectl create, get and delete -f handle a multi-document manifest across API groups",
        async () => {
          const manifest = `${dir}/kevents.yaml`;
          await Deno.writeTextFile(manifest, MANIFEST);

          const created = await kubectlOk(admin, "create", "-f", manifest);
          assert.deepEqual(created.trim().split("\n"), [
            "serviceaccount/kevents created",
            "clusterrole.rbac.authorization.k8s.io/kevents created",
            "clusterrolebinding.rbac.authorization.k8s.io/kevents created",
            "lease.coordination.k8s.io/kevents-leader created",
            "configmap/kevents-config created",
            "daemonset.apps/kevents created",
          ]);
          for (const [resource, ns, name] of MANIFEST_OBJECTS) {
            assert.notEqual(server.get(resource, ns, name), undefined, `${resource} ${name}`);
          }
          const binding = server.get(
            "clusterrolebindings.rbac.authorization.k8s.io",
            "",
            "kevents",
          );
          assert.deepEqual(binding?.roleRef, {
            apiGroup: "rbac.authorization.k8s.io",
            kind: "ClusterRole",
            name: "kevents",
          });

          const listed = await kubectlOk(admin, "get", "-f", manifest);
          for (
            const name of [
              "serviceaccount/kevents",
              "clusterrole.rbac.authorization.k8s.io/kevents",
              "clusterrolebinding.rbac.authorization.k8s.io/kevents",
              "lease.coordination.k8s.io/kevents-leader",
              "configmap/kevents-config",
              "daemonset.apps/kevents",
            ]
          ) {
            assert.match(listed, new RegExp(`^${name.replaceAll(".", "\\.")}\\s`, "m"));
          }
          assert.match(listed, /^lease\.coordination\.k8s\.io\/kevents-leader\s+kevents-0\s/m);

          const deleted = await kubectlOk(admin, "delete", "-f", manifest);
          assert.deepEqual(deleted.trim().split("\n"), [
            'serviceaccount "kevents" deleted',
            'clusterrole.rbac.authorization.k8s.io "kevents" deleted',
            'clusterrolebinding.rbac.authorization.k8s.io "kevents" deleted',
            'lease.coordination.k8s.io "kevents-leader" deleted',
            'configmap "kevents-config" deleted',
            'daemonset.apps "kevents" deleted',
          ]);
          for (const [resource, ns, name] of MANIFEST_OBJECTS) {
            assert.equal(server.get(resource, ns, name), undefined, `${resource} ${name}`);
          }
        },
      );

      await t.step(
        "kubectl delete configmap removes it, and a second delete reports NotFound",
        async () => {
          const first = await kubectlOk(admin, "delete", "configmap", "datadogtoken");
          assert.equal(first.trim(), 'configmap "datadogtoken" deleted');
          assert.equal(server.get("configmaps", "default", "datadogtoken"), undefined);

          const second = await kubectl(admin, "delete", "configmap", "datadogtoken");
          assert.equal(second.code, 1);
          assert.equal(
            second.stderr.trim(),
            'Error from server (NotFound): configmaps "datadogtoken" not found',
          );
        },
      );

      await t.step("kubectl get of a missing configmap exits 1 with NotFound", async () => {
        const r = await kubectl(admin, "get", "configmap", "missing");
        assert.equal(r.code, 1);
        assert.equal(r.stdout, "");
        assert.equal(
          r.stderr.trim(),
          'Error from server (NotFound): configmaps "missing" not found',
        );
      });

      await t.step("kubectl get cs lists the component statuses", async () => {
        const rows = tableRows(await kubectlOk(admin, "get", "cs"));
        assert.deepEqual(rows[0], ["NAME", "STATUS", "MESSAGE", "ERROR"]);
        assert.deepEqual(rows.slice(1).map((r) => r.slice(0, 2)), [
          ["controller-manager", "Healthy"],
          ["etcd-0", "Healthy"],
          ["scheduler", "Healthy"],
        ]);
      });

      await t.step("kubectl patch applies merge, JSON and strategic merge patches", async () => {
        server.create("configmaps", "default", { metadata: { name: "x" }, data: { k: "v" } });
        const data = () => server.get("configmaps", "default", "x")?.data;

        const merge = await kubectlOk(
          admin,
          "patch",
          "configmap",
          "x",
          "--type",
          "merge",
          "-p",
          '{"data":{"a":"b"}}',
        );
        assert.equal(merge.trim(), "configmap/x patched");
        assert.deepEqual(data(), { k: "v", a: "b" });

        await kubectlOk(
          admin,
          "patch",
          "configmap",
          "x",
          "--type",
          "json",
          "-p",
          '[{"op":"add","path":"/data/c","value":"d"},{"op":"remove","path":"/data/k"}]',
        );
        assert.deepEqual(data(), { a: "b", c: "d" });

        const strategic = await kubectlOk(
          admin,
          "patch",
          "configmap",
          "x",
          "-p",
          '{"data":{"e":"f","a":null}}',
        );
        assert.equal(strategic.trim(), "configmap/x patched");
        assert.deepEqual(data(), { c: "d", e: "f" });

        const again = await kubectlOk(admin, "patch", "configmap", "x", "-p", '{"data":{"e":"f"}}');
        assert.equal(again.trim(), "configmap/x patched (no change)");
      });

      await t.step("kubectl get events --field-selector filters on the server", async () => {
        const rows = tableRows(
          await kubectlOk(admin, "get", "events", "--field-selector", "type=Warning", "-A"),
        );
        assert.equal(rows[0]?.[0], "NAMESPACE");
        assert.ok(rows.length > 1, "at least one Warning event is listed");
        for (const row of rows.slice(1)) assert.equal(row[2], "Warning", row.join(" | "));
        assert.ok(rows.some((r) => r.includes("pod/dns-1")));
        assert.ok(!rows.some((r) => r.includes("pod/web-1")));
      });

      await t.step(
        "kubectl get events with an unsupported field selector reports the server's error",
        async () => {
          const r = await kubectl(admin, "get", "events", "--field-selector", "foo=bar", "-A");
          assert.equal(r.code, 1);
          assert.equal(
            r.stderr.trim(),
            'Error from server (BadRequest): Unable to find "/v1, Resource=events" that match label selector "", field selector "foo=bar": field label not supported: foo',
          );
        },
      );

      await t.step(
        "a user without the delete verb is Forbidden from deleting a configmap",
        async () => {
          server.addUser("viewer", [{
            verbs: ["get", "list"],
            apiGroups: [""],
            resources: ["configmaps"],
          }]);
          const viewer = await writeKubeconfig(server, dir, "viewer");

          const listed = tableRows(await kubectlOk(viewer, "get", "configmaps"));
          assert.ok(listed.some((r) => r[0] === "x"));

          const r = await kubectl(viewer, "delete", "configmap", "x");
          assert.equal(r.code, 1);
          assert.equal(
            r.stderr.trim(),
            'Error from server (Forbidden): configmaps "x" is forbidden: User "viewer" cannot delete resource "configmaps" in API group "" in the namespace "default"',
          );
          assert.notEqual(server.get("configmaps", "default", "x"), undefined);
        },
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
