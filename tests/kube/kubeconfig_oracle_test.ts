/**
 * kubectl is the judge of what a kubeconfig means. For every case, the same
 * files are given to kevents' loader and to `kubectl config view --minify
 * --raw --flatten -o json` (same KUBECONFIG or --kubeconfig, HOME and
 * working folder the temporary folder), and the two views must be equal.
 * Kubeconfigs kevents refuses are refused at start, naming the file, the
 * field, the value and the rule, and kubectl refuses them too where it does.
 * tls-server-name and proxy-url are shown to work against the fake API
 * server, for kevents and for kubectl alike.
 */

import assert from "node:assert/strict";
import { startFakeApiServer } from "../../lib/fake_apiserver/mod.ts";
import { generateTlsMaterial } from "../../lib/fake_apiserver/tls.ts";
import { EVENTS, KubeClient } from "../../lib/kube/client.ts";
import {
  KubeConfigError,
  type LoadedKubeConfig,
  loadKubeConfig,
} from "../../lib/kube/kubeconfig.ts";
import type { Json } from "../_fake_api.ts";
import { ConnectProxy } from "../_connect_proxy.ts";
import {
  fakeServerKubeconfig,
  HAVE_KUBECTL,
  type KubeconfigSource,
  kubeconfigYaml,
  kubectl,
  kubectlView,
  listAndWatchEvents,
} from "../_kubeconfigs.ts";
import { runMain, withTempDir } from "../_process.ts";

if (!HAVE_KUBECTL) {
  console.log("SKIPPED: kubectl not found on PATH; the kubeconfig oracle tests need it");
}

/** PEM files the cases write: a CA, and a certificate and key used as the client's. */
const tls = await generateTlsMaterial();
const CA = tls.caCertPem;
const CLIENT_CERT = tls.certPem;
const CLIENT_KEY = tls.keyPem;

const V1 = "client.authentication.k8s.io/v1";
const V1BETA1 = "client.authentication.k8s.io/v1beta1";

/** Writes `files` (paths relative to `dir`), making folders as needed. */
async function writeFiles(dir: string, files: Record<string, string>): Promise<void> {
  for (const [path, text] of Object.entries(files)) {
    const full = `${dir}/${path}`;
    await Deno.mkdir(full.slice(0, full.lastIndexOf("/")), { recursive: true });
    await Deno.writeTextFile(full, text);
  }
}

/** One kubeconfig case: its files and how kubectl and kevents are pointed at them. */
interface ViewCase {
  name: string;
  /** Files by path relative to the temporary folder. */
  files: Record<string, string>;
  /** KUBECONFIG entries (relative to the temporary folder), or the --kubeconfig path. */
  kubeconfig: string[] | { path: string };
  /** What else kevents must make of it. */
  also?: (loaded: LoadedKubeConfig, dir: string) => Promise<void> | void;
}

/** A cluster, user and context named c1, u1 and ctx, ctx current. */
function single(cluster: Json, user: Json, context: Json = {}): string {
  return kubeconfigYaml({
    clusters: { c1: cluster },
    users: { u1: user },
    contexts: { ctx: { cluster: "c1", user: "u1", ...context } },
    currentContext: "ctx",
  });
}

const SERVER = "https://127.0.0.1:6443";

const VIEW_CASES: ViewCase[] = [
  {
    name: "relative certificate-authority, client-certificate, client-key and tokenFile are the " +
      "kubeconfig's folder's, not the working folder's",
    files: {
      "pki/ca.pem": CA,
      "conf/client.pem": CLIENT_CERT,
      "conf/client-key.pem": CLIENT_KEY,
      "conf/token": "token-from-file\n",
      "conf/kubeconfig": single(
        { server: SERVER, "certificate-authority": "../pki/ca.pem" },
        { "client-certificate": "client.pem", "client-key": "client-key.pem", tokenFile: "token" },
      ),
    },
    kubeconfig: { path: "conf/kubeconfig" },
    also: async (loaded) => {
      const view = loaded.config.view() as Json;
      assert.equal(view.clusters[0].cluster["certificate-authority-data"], btoa(CA));
      assert.equal(view.users[0].user["client-key-data"], btoa(CLIENT_KEY));
      assert.deepEqual(await loaded.config.authHeaders(), {
        Authorization: "Bearer token-from-file",
      });
    },
  },
  {
    name: "the same files through a relative KUBECONFIG entry",
    files: {
      "conf/ca.pem": CA,
      "conf/kubeconfig": single({ server: SERVER, "certificate-authority": "ca.pem" }, {
        token: "t",
      }),
    },
    kubeconfig: ["conf/kubeconfig"],
  },
  {
    name: "KUBECONFIG=a:b, both naming cluster c1: a's c1 and a's current-context win, b's " +
      "users still count",
    files: {
      a: kubeconfigYaml({
        clusters: { c1: { server: "https://a.example:6443" } },
        contexts: { "ctx-a": { cluster: "c1", user: "from-b", namespace: "a" } },
        currentContext: "ctx-a",
      }),
      b: kubeconfigYaml({
        clusters: { c1: { server: "https://b.example:6443" } },
        users: { "from-b": { token: "token-b" } },
        contexts: { "ctx-b": { cluster: "c1", user: "from-b" } },
        currentContext: "ctx-b",
      }),
    },
    kubeconfig: ["a", "b"],
    also: async (loaded, dir) => {
      assert.equal(loaded.origin, `files ${dir}/a:${dir}/b`);
      assert.equal(loaded.config.getCurrentCluster()?.server, "https://a.example:6443");
      assert.deepEqual(await loaded.config.authHeaders(), { Authorization: "Bearer token-b" });
    },
  },
  {
    name: "KUBECONFIG=a:b where a sets no current-context: b's wins, a's c1 still wins",
    files: {
      a: kubeconfigYaml({ clusters: { c1: { server: "https://a.example:6443" } } }),
      b: kubeconfigYaml({
        clusters: { c1: { server: "https://b.example:6443" } },
        users: { u1: { token: "token-b" } },
        contexts: { "ctx-b": { cluster: "c1", user: "u1", namespace: "b" } },
        currentContext: "ctx-b",
      }),
    },
    kubeconfig: ["a", "b"],
    also: (loaded) => {
      assert.equal(loaded.config.getCurrentContext(), "ctx-b");
      assert.equal(loaded.config.getCurrentCluster()?.server, "https://a.example:6443");
      assert.equal(loaded.namespace, "b");
    },
  },
  {
    name: "a missing entry in the middle of KUBECONFIG is skipped",
    files: {
      a: kubeconfigYaml({ users: { u1: { token: "token-a" } } }),
      c: single({ server: "https://c.example:6443" }, { token: "token-c" }),
    },
    kubeconfig: ["a", "missing", "c"],
    also: async (loaded, dir) => {
      assert.equal(loaded.origin, `files ${dir}/a:${dir}/c`);
      // u1 is a's: the first file to name it wins.
      assert.deepEqual(await loaded.config.authHeaders(), { Authorization: "Bearer token-a" });
    },
  },
  {
    name: "a context's namespace",
    files: { kubeconfig: single({ server: SERVER }, { token: "t" }, { namespace: "team-a" }) },
    kubeconfig: ["kubeconfig"],
    also: (loaded) => assert.equal(loaded.namespace, "team-a"),
  },
  {
    name: "a token with a trailing newline: shown as written, sent trimmed",
    files: { kubeconfig: single({ server: SERVER }, { token: "secret-token\n" }) },
    kubeconfig: ["kubeconfig"],
    also: async (loaded) => {
      assert.equal((loaded.config.view() as Json).users[0].user.token, "secret-token\n");
      assert.deepEqual(await loaded.config.authHeaders(), {
        Authorization: "Bearer secret-token",
      });
    },
  },
  {
    name: "insecure-skip-tls-verify",
    files: {
      kubeconfig: single({ server: SERVER, "insecure-skip-tls-verify": true }, { token: "t" }),
    },
    kubeconfig: ["kubeconfig"],
    also: (loaded) => {
      assert.equal(loaded.warnings.length, 1);
      assert.match(loaded.warnings[0]!, /TLS verification of https:\/\/127\.0\.0\.1:6443 is off/);
    },
  },
  {
    name: "tls-server-name",
    files: {
      kubeconfig: single({
        server: SERVER,
        "tls-server-name": "kubernetes.default.svc",
        "certificate-authority-data": btoa(CA),
      }, { token: "t" }),
    },
    kubeconfig: ["kubeconfig"],
  },
  {
    name: "proxy-url",
    files: {
      kubeconfig: single({ server: SERVER, "proxy-url": "http://127.0.0.1:3128" }, {
        token: "t",
      }),
    },
    kubeconfig: ["kubeconfig"],
  },
  {
    name: "an http:// server (kubectl proxy): the token stays at home",
    files: { kubeconfig: single({ server: "http://127.0.0.1:8001" }, { token: "t" }) },
    kubeconfig: ["kubeconfig"],
    also: async (loaded) => assert.deepEqual(await loaded.config.authHeaders(), {}),
  },
  {
    name: "impersonation: as, as-uid and as-groups",
    files: {
      kubeconfig: single({ server: SERVER }, {
        token: "t",
        as: "jane",
        "as-uid": "42",
        "as-groups": ["devs", "ops"],
      }),
    },
    kubeconfig: ["kubeconfig"],
    also: async (loaded) => {
      assert.deepEqual(await loaded.config.authHeaders(), {
        Authorization: "Bearer t",
        "Impersonate-User": "jane",
        "Impersonate-Uid": "42",
        "Impersonate-Group": "devs, ops",
      });
    },
  },
  {
    name: "username and password",
    files: { kubeconfig: single({ server: SERVER }, { username: "jane", password: "pa:ss" }) },
    kubeconfig: ["kubeconfig"],
    also: async (loaded) => {
      assert.deepEqual(await loaded.config.authHeaders(), {
        Authorization: `Basic ${btoa("jane:pa:ss")}`,
      });
    },
  },
  {
    name: "an exec plugin (v1) with args, env, provideClusterInfo, interactiveMode and installHint",
    files: {
      kubeconfig: single({ server: SERVER }, {
        exec: {
          apiVersion: V1,
          command: "./bin/plugin",
          args: ["token", "--cluster=c1"],
          env: [{ name: "PLUGIN_MODE", value: "ci" }, { name: "EMPTY", value: "" }],
          provideClusterInfo: true,
          interactiveMode: "Never",
          installHint: "Install the plugin with make plugin",
        },
      }),
    },
    kubeconfig: ["kubeconfig"],
  },
  {
    name: "an exec plugin (v1beta1) without interactiveMode: client-go's IfAvailable",
    files: {
      kubeconfig: single({ server: SERVER }, {
        exec: {
          apiVersion: V1BETA1,
          command: "plugin-on-path",
          args: ["get-token"],
          env: [{ name: "PLUGIN_MODE", value: "ci" }],
        },
      }),
    },
    kubeconfig: ["kubeconfig"],
  },
  {
    name: "certificate-authority-data, client-certificate-data and client-key-data inline",
    files: {
      kubeconfig: single({ server: SERVER, "certificate-authority-data": btoa(CA) }, {
        "client-certificate-data": btoa(CLIENT_CERT),
        "client-key-data": btoa(CLIENT_KEY),
      }),
    },
    kubeconfig: ["kubeconfig"],
  },
  {
    name: "a context without a user (anonymous)",
    files: {
      kubeconfig: kubeconfigYaml({
        clusters: { c1: { server: SERVER } },
        contexts: { ctx: { cluster: "c1" } },
        currentContext: "ctx",
      }),
    },
    kubeconfig: ["kubeconfig"],
    also: async (loaded) => assert.deepEqual(await loaded.config.authHeaders(), {}),
  },
];

Deno.test({
  name:
    "kevents reads every kubeconfig case as `kubectl config view --minify --raw --flatten` does",
  ignore: !HAVE_KUBECTL,
  fn: async (t) => {
    for (const c of VIEW_CASES) {
      await t.step(c.name, async () => {
        await withTempDir("kevents-kubeconfig-oracle-", async (dir) => {
          await writeFiles(dir, c.files);
          const source: KubeconfigSource = Array.isArray(c.kubeconfig)
            ? { envKubeconfig: c.kubeconfig.join(":") }
            : { path: c.kubeconfig.path };
          const expected = await kubectlView({ source, home: dir });
          // kevents gets absolute paths: the test runs in another working folder.
          const loaded = loadKubeConfig(
            Array.isArray(c.kubeconfig)
              ? {
                envKubeconfig: c.kubeconfig.map((p) => `${dir}/${p}`).join(":"),
                home: dir,
              }
              : { path: `${dir}/${c.kubeconfig.path}`, home: dir },
          );
          assert.deepEqual(loaded.config.view(), expected);
          await c.also?.(loaded, dir);
        });
      });
    }
  },
});

// ---- kubeconfigs kevents refuses ----------------------------------------------------------

/** The message of a field's KubeConfigError. */
function fieldMessage(file: string, field: string, value: string, rule: string): string {
  return `Cannot use kubeconfig file ${file}: ${field} ${JSON.stringify(value)}: ${rule}`;
}

/** What kevents must say about a refused kubeconfig. */
interface Refusal {
  message: string;
  field: string;
  value: string;
  rule: string;
}

/** A kubeconfig kevents refuses, and what kubectl makes of it. */
interface RefusedCase {
  name: string;
  /** Changes the fake server's kubeconfig (cluster and context "kevents-fake", user "admin"). */
  edit: (doc: Json, port: number) => void;
  /** Other files, relative to the temporary folder (next to the kubeconfig). */
  files?: Record<string, string>;
  refusal: (file: string, dir: string, port: number) => Refusal;
  /** kubectl's refusal: the command and what it prints; a string says why kubectl is not asked. */
  kubectl: { args: string[]; stderr: RegExp } | string;
}

const CLUSTER = "clusters[kevents-fake].cluster";
const USER = "users[admin].user";
const VIEW = ["config", "view", "--minify", "--raw", "--flatten", "-o", "json"];
const GET = ["get", "--raw", "/api", "--request-timeout=5s"];

/** The field's KubeConfigError, as fieldError builds it. */
function refusal(file: string, field: string, value: string, rule: string): Refusal {
  return { message: fieldMessage(file, field, value, rule), field, value, rule };
}

const NO_SCHEME_RULE = "must be a URL with a scheme (https:// or http://host:port)";

const REFUSED_CASES: RefusedCase[] = [
  {
    name: "a server without a scheme (127.0.0.1:PORT)",
    edit: (d, port) => d.clusters[0].cluster.server = `127.0.0.1:${port}`,
    refusal: (file, _dir, port) =>
      refusal(file, `${CLUSTER}.server`, `127.0.0.1:${port}`, NO_SCHEME_RULE),
    // kubectl guesses: it speaks plain HTTP to the port (with the token in clear text), which a
    // TLS server cannot answer.
    kubectl: { args: GET, stderr: /malformed HTTP response/ },
  },
  {
    name: "a server without a scheme (localhost:PORT)",
    edit: (d, port) => d.clusters[0].cluster.server = `localhost:${port}`,
    refusal: (file, _dir, port) =>
      refusal(file, `${CLUSTER}.server`, `localhost:${port}`, NO_SCHEME_RULE),
    kubectl: { args: GET, stderr: /malformed HTTP response/ },
  },
  {
    name: "a port out of range",
    edit: (d) => d.clusters[0].cluster.server = "https://127.0.0.1:70000",
    refusal: (file) =>
      refusal(
        file,
        `${CLUSTER}.server`,
        "https://127.0.0.1:70000",
        "its port must be a number from 1 to 65535",
      ),
    kubectl: { args: GET, stderr: /invalid port/ },
  },
  {
    name: "spaces in the URL",
    edit: (d, port) => d.clusters[0].cluster.server = `https://api server:${port}`,
    refusal: (file, _dir, port) =>
      refusal(file, `${CLUSTER}.server`, `https://api server:${port}`, "must not contain spaces"),
    kubectl: { args: GET, stderr: /host must be a URL or a host:port pair/ },
  },
  {
    name: "a missing certificate-authority file",
    edit: (d) => {
      delete d.clusters[0].cluster["certificate-authority-data"];
      d.clusters[0].cluster["certificate-authority"] = "missing-ca.pem";
    },
    refusal: (file, dir) =>
      refusal(
        file,
        `${CLUSTER}.certificate-authority`,
        `${dir}/missing-ca.pem`,
        "cannot be read: no such file",
      ),
    kubectl: { args: VIEW, stderr: /missing-ca\.pem: no such file or directory/ },
  },
  {
    name: "certificate-authority-data that is not base64",
    edit: (d) => d.clusters[0].cluster["certificate-authority-data"] = "not base64!",
    refusal: (file) =>
      refusal(
        file,
        `${CLUSTER}.certificate-authority-data`,
        "not base64!",
        "must be base64 (of PEM text)",
      ),
    kubectl: { args: VIEW, stderr: /illegal base64 data/ },
  },
  {
    name: "certificate-authority-data that is base64 but not PEM",
    edit: (d) => d.clusters[0].cluster["certificate-authority-data"] = btoa("hello"),
    refusal: (file) =>
      refusal(
        file,
        `${CLUSTER}.certificate-authority-data`,
        btoa("hello"),
        "once decoded from base64, must hold PEM certificates (-----BEGIN CERTIFICATE-----)",
      ),
    kubectl: { args: GET, stderr: /unable to load root certificates/ },
  },
  {
    name: "a missing tokenFile",
    edit: (d) => d.users[0].user = { tokenFile: "missing-token" },
    refusal: (file, dir) => ({
      message: `Cannot use kubeconfig file ${file}: context "kevents-fake", user "admin": ` +
        `cannot read its tokenFile ${dir}/missing-token: no such file`,
      field: `${USER}.tokenFile`,
      value: `${dir}/missing-token`,
      rule: "must be readable",
    }),
    kubectl: { args: GET, stderr: /missing-token: no such file or directory/ },
  },
  {
    name: "client-certificate without client-key",
    edit: (d) => d.users[0].user = { "client-certificate": "client.pem" },
    files: { "client.pem": CLIENT_CERT },
    refusal: (file, dir) =>
      refusal(
        file,
        `${USER}.client-certificate`,
        `${dir}/client.pem`,
        "needs client-key as well",
      ),
    kubectl: { args: GET, stderr: /client-key-data or client-key must be specified for admin/ },
  },
  {
    name: "a socks5 proxy-url",
    edit: (d) => d.clusters[0].cluster["proxy-url"] = "socks5://127.0.0.1:1080",
    refusal: (file) =>
      refusal(
        file,
        `${CLUSTER}.proxy-url`,
        "socks5://127.0.0.1:1080",
        "kevents supports http:// and https:// proxies, not SOCKS",
      ),
    kubectl: "kubectl (client-go) supports SOCKS5 proxies; kevents does not, and says so",
  },
  {
    name: "a context naming a cluster the kubeconfig does not define",
    edit: (d) => d.contexts[0].context.cluster = "ghost",
    refusal: (file) => ({
      message:
        `Cannot use kubeconfig file ${file}: context "kevents-fake" names no cluster ("ghost" ` +
        "is not defined)",
      field: "contexts[kevents-fake].context.cluster",
      value: "ghost",
      rule: "must name a cluster the kubeconfig defines",
    }),
    kubectl: { args: VIEW, stderr: /cannot locate cluster ghost/ },
  },
];

/** The lines of a process's stderr that are not blank. */
function linesOf(text: string): string[] {
  return text.split("\n").filter((l) => l.trim() !== "");
}

/** The message of a JSON log line (or the line itself when it is not JSON). */
function messageOf(line: string): string {
  try {
    return String(JSON.parse(line).message);
  } catch {
    return line;
  }
}

/** The KubeConfigError `fn` throws; fails when it throws nothing or something else. */
function kubeConfigError(fn: () => unknown): KubeConfigError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof KubeConfigError, `expected a KubeConfigError, got ${e}`);
    return e;
  }
  assert.fail("expected a KubeConfigError, but the kubeconfig loaded");
}

Deno.test({
  name: "a kubeconfig kevents cannot use is refused at start, naming the file, the field, the " +
    "value and the rule (exit 2, nothing started), and kubectl refuses it too",
  ignore: !HAVE_KUBECTL,
  fn: async (t) => {
    await using server = await startFakeApiServer();
    for (const c of REFUSED_CASES) {
      await t.step(c.name, async () => {
        await withTempDir("kevents-kubeconfig-refused-", async (dir) => {
          await writeFiles(dir, c.files ?? {});
          const file = `${dir}/kubeconfig`;
          await Deno.writeTextFile(
            file,
            fakeServerKubeconfig(server, (d) => c.edit(d, server.port)),
          );
          const want = c.refusal(file, dir, server.port);

          const error = kubeConfigError(() => loadKubeConfig({ path: file, home: dir }));
          assert.equal(error.message, want.message);
          assert.deepEqual(
            { file: error.file, field: error.field, value: error.value, rule: error.rule },
            { file, field: want.field, value: want.value, rule: want.rule },
          );

          server.requestLog.clear();
          if (typeof c.kubectl !== "string") {
            const out = await kubectl(c.kubectl.args, { source: { path: file }, home: dir });
            assert.notEqual(out.code, 0, `kubectl took it: ${out.stdout}`);
            assert.match(out.stderr, c.kubectl.stderr);
          }

          const run = await runMain(["run", "--kubeconfig", file], {
            cwd: dir,
            env: { KUBERNETES: "1", KEVENTS_HEALTH_PORT: "0", KEVENTS_LEASE_DURATION_MS: "4000" },
            permissions: ["--allow-all"],
          });
          assert.equal(run.code, 2, run.stderr);
          const lines = linesOf(run.stderr);
          assert.equal(lines.length, 1, run.stderr);
          assert.equal(messageOf(lines[0]!), want.message);
          assert.equal(server.requestLog.count(), 0, "no request reached the API server");
        });
      });
    }
  },
});

// ---- tls-server-name and proxy-url against the fake API server -----------------------------

Deno.test({
  name: "tls-server-name names the certificate to expect: localhost connects to " +
    "https://127.0.0.1:PORT, wrong.example fails the TLS check, for kevents and kubectl alike",
  ignore: !HAVE_KUBECTL,
  fn: async (t) => {
    // The fake server's certificate covers 127.0.0.1 and localhost only.
    await using server = await startFakeApiServer();
    await withTempDir("kevents-kubeconfig-sni-", async (dir) => {
      const write = async (name: string) => {
        const file = `${dir}/${name}`;
        await Deno.writeTextFile(
          file,
          fakeServerKubeconfig(server, (d) => d.clusters[0].cluster["tls-server-name"] = name),
        );
        return file;
      };

      await t.step("tls-server-name: localhost", async () => {
        const file = await write("localhost");
        const loaded = loadKubeConfig({ path: file });
        assert.equal(loaded.config.getCurrentCluster()?.server, server.url);
        const { listed, watched } = await listAndWatchEvents(loaded, server, "sni");
        assert.ok(listed.includes("sni-listed.1"), listed.join(", "));
        assert.deepEqual(watched, ["sni-watched.1"]);

        const seen = await kubectl(["get", "events", "-A", "-o", "name"], {
          source: { path: file },
          home: dir,
        });
        assert.equal(seen.code, 0, seen.stderr);
        assert.match(seen.stdout, /event\/sni-watched\.1/);
      });

      await t.step("tls-server-name: wrong.example", async () => {
        const file = await write("wrong.example");
        server.requestLog.clear();
        const loaded = loadKubeConfig({ path: file });
        const client = new KubeClient(loaded.config, { requestTimeoutMs: 5_000 });
        try {
          await assert.rejects(client.list(EVENTS), (e: unknown) => {
            assert.ok(e instanceof Error);
            assert.equal(e.name, "KubeNetworkError");
            assert.match(e.message, /wrong\.example/);
            assert.match(e.message, /altnames|certificate/i);
            return true;
          });
        } finally {
          await client.close();
        }
        const seen = await kubectl(["get", "events", "-A"], { source: { path: file }, home: dir });
        assert.equal(seen.code, 1);
        assert.match(seen.stderr, /x509: certificate is valid for .*not wrong\.example/);
        assert.equal(server.requestLog.count(), 0, "no request got through the handshake");
      });
    });
  },
});

Deno.test({
  name: "proxy-url: kevents lists and watches events through an HTTP CONNECT proxy, and kubectl " +
    "goes through it with the same kubeconfig",
  ignore: !HAVE_KUBECTL,
  fn: async () => {
    await using server = await startFakeApiServer();
    await using proxy = new ConnectProxy();
    await withTempDir("kevents-kubeconfig-proxy-", async (dir) => {
      const file = `${dir}/kubeconfig`;
      await Deno.writeTextFile(
        file,
        fakeServerKubeconfig(server, (d) => d.clusters[0].cluster["proxy-url"] = proxy.url),
      );
      const loaded = loadKubeConfig({ path: file });
      const { listed, watched } = await listAndWatchEvents(loaded, server, "proxied");
      assert.ok(listed.includes("proxied-listed.1"), listed.join(", "));
      assert.deepEqual(watched, ["proxied-watched.1"]);
      const target = `127.0.0.1:${server.port}`;
      assert.ok(proxy.targets.length >= 1, "kevents went through the proxy");
      assert.deepEqual(new Set(proxy.targets), new Set([target]));
      const byKevents = proxy.targets.length;

      const seen = await kubectl(["get", "events", "-A", "-o", "name"], {
        source: { path: file },
        home: dir,
      });
      assert.equal(seen.code, 0, seen.stderr);
      assert.match(seen.stdout, /event\/proxied-watched\.1/);
      assert.ok(proxy.targets.length > byKevents, "kubectl went through the proxy");
      assert.deepEqual(new Set(proxy.targets), new Set([target]));
    });
  },
});
