import assert from "node:assert/strict";
import YAML from "yaml";
import { UnauthorizedError } from "../../lib/kube/errors.ts";
import { startFakeApiServer } from "../../lib/fake_apiserver/mod.ts";
import { generateTlsMaterial } from "../../lib/fake_apiserver/tls.ts";
import { CONFIGMAPS, EVENTS, KubeClient } from "../../lib/kube/client.ts";
import {
  KubeConfigError,
  type LoadedKubeConfig,
  loadKubeConfig,
  PooledKubeConfig,
} from "../../lib/kube/kubeconfig.ts";
import type { Json } from "../_fake_api.ts";
import { listAndWatchEvents } from "../_kubeconfigs.ts";
import { commandSucceeds, LineReader } from "../_process.ts";

/** A kubeconfig (YAML) for a cluster that nobody listens on; loading never connects. */
function kubeconfigYaml(
  options: { currentContext?: string | null; skipTls?: boolean; namespace?: string } = {},
): string {
  const cluster: Record<string, unknown> = { server: "https://127.0.0.1:1" };
  if (options.skipTls === true) cluster["insecure-skip-tls-verify"] = true;
  const doc: Record<string, unknown> = {
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "c", cluster }],
    users: [{ name: "u", user: { token: "secret-token" } }],
    contexts: [{
      name: "ctx",
      context: { cluster: "c", user: "u", namespace: options.namespace ?? "team-a" },
    }],
  };
  if (options.currentContext !== null) doc["current-context"] = options.currentContext ?? "ctx";
  return YAML.stringify(doc);
}

/** Runs `use` with a fresh temporary folder, removed afterwards. */
async function withTempDir(use: (dir: string) => Promise<void> | void): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "kevents_kube_config_test_" });
  try {
    await use(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function rejectsWith(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof KubeConfigError, `expected KubeConfigError, got ${error}`);
    assert.match(error.message, pattern);
    return true;
  });
}

Deno.test("loadKubeConfig finds the kubeconfig the way kubectl users expect", async (t) => {
  await withTempDir(async (dir) => {
    const real = `${dir}/real`;
    await Deno.writeTextFile(real, kubeconfigYaml());

    await t.step("--kubeconfig naming a missing file fails with the path and the flag", () => {
      rejectsWith(
        () => loadKubeConfig({ path: `${dir}/missing`, envKubeconfig: real, home: dir }),
        new RegExp(`--kubeconfig "${dir}/missing": no such file`),
      );
    });

    await t.step("--kubeconfig wins over KUBECONFIG and ~/.kube/config", () => {
      const loaded = loadKubeConfig({ path: real, envKubeconfig: "/nope", home: "/nope" });
      assert.equal(loaded.origin, `file ${real}`);
      assert.equal(loaded.namespace, "team-a");
      assert.deepEqual(loaded.warnings, []);
      assert.ok(loaded.config instanceof PooledKubeConfig);
      assert.equal(loaded.config.getCurrentCluster()?.server, "https://127.0.0.1:1");
    });

    await t.step("KUBECONFIG picks its first existing entry", () => {
      const loaded = loadKubeConfig({ envKubeconfig: `/nope:${real}`, home: "/nope" });
      assert.equal(loaded.origin, `file ${real}`);
    });

    await t.step("KUBECONFIG without any existing entry fails naming KUBECONFIG", () => {
      rejectsWith(
        () => loadKubeConfig({ envKubeconfig: "/nope:/also-nope", home: dir }),
        /KUBECONFIG "\/nope:\/also-nope": no such file/,
      );
    });

    await t.step("without --kubeconfig or KUBECONFIG, ~/.kube/config is used", async () => {
      await Deno.mkdir(`${dir}/home/.kube`, { recursive: true });
      await Deno.writeTextFile(`${dir}/home/.kube/config`, kubeconfigYaml({ namespace: "home" }));
      const loaded = loadKubeConfig({ envKubeconfig: "", home: `${dir}/home` });
      assert.equal(loaded.origin, `file ${dir}/home/.kube/config`);
      assert.equal(loaded.namespace, "home");
    });

    await t.step("a kubeconfig without current-context is refused", async () => {
      const file = `${dir}/no-context`;
      await Deno.writeTextFile(file, kubeconfigYaml({ currentContext: null }));
      rejectsWith(() => loadKubeConfig({ path: file }), /has no current context/);
    });

    await t.step("a current-context that names no context is refused", async () => {
      const file = `${dir}/bad-context`;
      await Deno.writeTextFile(file, kubeconfigYaml({ currentContext: "elsewhere" }));
      rejectsWith(() => loadKubeConfig({ path: file }), /has no current context/);
    });

    await t.step("a file that is not a kubeconfig is refused with its path", async () => {
      const file = `${dir}/garbage`;
      await Deno.writeTextFile(file, "clusters: [unclosed\n");
      rejectsWith(
        () => loadKubeConfig({ path: file }),
        new RegExp(`Cannot parse kubeconfig ${file}`),
      );
    });

    await t.step("insecure-skip-tls-verify loads with a warning", async () => {
      const file = `${dir}/insecure`;
      await Deno.writeTextFile(file, kubeconfigYaml({ skipTls: true }));
      const loaded = loadKubeConfig({ path: file });
      assert.equal(loaded.warnings.length, 1);
      assert.match(loaded.warnings[0]!, /TLS verification of https:\/\/127\.0\.0\.1:1 is off/);
    });

    await t.step("a context naming an undefined user is refused, naming both", async () => {
      const file = `${dir}/ghost-user`;
      const doc = YAML.parse(kubeconfigYaml());
      doc.contexts[0].context.user = "ghost";
      await Deno.writeTextFile(file, YAML.stringify(doc));
      rejectsWith(
        () => loadKubeConfig({ path: file }),
        /context "ctx" names user "ghost", which the kubeconfig does not define/,
      );
    });

    await t.step(
      "an auth-provider is refused naming the context, the user and the provider",
      async () => {
        for (const name of ["oidc", "gcp", "azure", "something"]) {
          const file = `${dir}/provider-${name}`;
          const doc = YAML.parse(kubeconfigYaml());
          doc.users[0].user = { "auth-provider": { name, config: {} } };
          await Deno.writeTextFile(file, YAML.stringify(doc));
          rejectsWith(
            () => loadKubeConfig({ path: file }),
            new RegExp(
              `^Cannot use kubeconfig file ${file}: context "ctx", user "u": auth-provider "${name}"`,
            ),
          );
        }
      },
    );

    await t.step("an exec plugin needs a known apiVersion and a command", async () => {
      const write = async (exec: Record<string, unknown>) => {
        const file = `${dir}/exec`;
        const doc = YAML.parse(kubeconfigYaml());
        doc.users[0].user = { exec };
        await Deno.writeTextFile(file, YAML.stringify(doc));
        return file;
      };
      for (const apiVersion of [undefined, "client.authentication.k8s.io/v1alpha1", "v1"]) {
        const file = await write({ apiVersion, command: "/bin/true" });
        rejectsWith(
          () => loadKubeConfig({ path: file }),
          new RegExp(`exec apiVersion "${apiVersion ?? ""}" is not supported`),
        );
      }
      const noCommand = await write({ apiVersion: "client.authentication.k8s.io/v1" });
      rejectsWith(() => loadKubeConfig({ path: noCommand }), /exec names no command/);
      // This test runs with every permission: a plugin of a known version loads.
      for (
        const apiVersion of [
          "client.authentication.k8s.io/v1",
          "client.authentication.k8s.io/v1beta1",
        ]
      ) {
        const file = await write({ apiVersion, command: "/bin/true" });
        assert.equal(loadKubeConfig({ path: file }).origin, `file ${file}`);
      }
    });

    await t.step("relative certificate paths are the kubeconfig's folder's", async () => {
      await Deno.mkdir(`${dir}/certs`, { recursive: true });
      await Deno.writeTextFile(`${dir}/certs/ca.pem`, (await generateTlsMaterial()).caCertPem);
      const doc = YAML.parse(kubeconfigYaml());
      doc.clusters[0].cluster["certificate-authority"] = "ca.pem";
      await Deno.writeTextFile(`${dir}/certs/kubeconfig`, YAML.stringify(doc));
      const loaded = loadKubeConfig({ path: `${dir}/certs/kubeconfig` });
      assert.equal(loaded.config.getCurrentCluster()?.caFile, `${dir}/certs/ca.pem`);
    });

    await t.step("authHeaders() gives the user's bearer token", async () => {
      const { config } = loadKubeConfig({ path: real });
      assert.deepEqual(await config.authHeaders(), { Authorization: "Bearer secret-token" });
    });

    await t.step("with nothing to find, the error lists every source", () => {
      assert.throws(
        () => loadKubeConfig({ home: `${dir}/empty-home`, serviceAccountDir: dir }),
        (error: unknown) => {
          assert.ok(error instanceof KubeConfigError);
          assert.match(error.message, /--kubeconfig/);
          assert.match(error.message, /KUBECONFIG/);
          assert.match(error.message, /~\/\.kube\/config/);
          assert.match(error.message, /pod/);
          return true;
        },
      );
    });
  });
});

Deno.test("loadKubeConfig in a pod uses the service account and reaches the API server", async (t) => {
  await using server = await startFakeApiServer();
  const token = server.addUser("system:serviceaccount:kevents:kevents");
  await withTempDir(async (dir) => {
    await t.step("the service host without a token file is refused", () => {
      rejectsWith(
        () => loadKubeConfig({ serviceHost: "127.0.0.1", serviceAccountDir: dir }),
        new RegExp(`${dir}/token does not exist`),
      );
    });

    await Deno.writeTextFile(`${dir}/token`, token);
    await Deno.writeTextFile(`${dir}/ca.crt`, server.caCertPem!);
    await Deno.writeTextFile(`${dir}/namespace`, "kevents\n");

    await t.step("a kubeconfig file still wins over the service account", async () => {
      const file = `${dir}/kubeconfig`;
      await Deno.writeTextFile(file, kubeconfigYaml());
      const loaded = loadKubeConfig({
        envKubeconfig: file,
        serviceHost: "127.0.0.1",
        serviceAccountDir: dir,
      });
      assert.equal(loaded.origin, `file ${file}`);
    });

    await t.step("it loads, reports the pod's namespace, and talks to the server", async () => {
      const loaded = loadKubeConfig({
        home: `${dir}/no-home`,
        serviceHost: "127.0.0.1",
        servicePort: String(server.port),
        serviceAccountDir: dir,
      });
      assert.equal(loaded.origin, "in-cluster");
      assert.equal(loaded.namespace, "kevents");
      assert.deepEqual(loaded.warnings, []);
      assert.equal(loaded.config.getCurrentCluster()?.server, server.url);
      // The token is nowhere but in the file.
      assert.deepEqual(await loaded.config.authHeaders(), { Authorization: `Bearer ${token}` });
      const client = new KubeClient(loaded.config, { requestTimeoutMs: 5_000 });
      try {
        server.create("configmaps", "default", { metadata: { name: "hello" }, data: { a: "b" } });
        const cm = await client.get<{ data: Record<string, string> }>(
          CONFIGMAPS,
          "default",
          "hello",
        );
        assert.deepEqual(cm.data, { a: "b" });
      } finally {
        await client.close();
      }
      assert.equal(
        server.requestLog.count({ identity: "system:serviceaccount:kevents:kevents", code: 200 }),
        1,
      );
    });

    await t.step("without a namespace file the namespace is left undefined", async () => {
      await Deno.remove(`${dir}/namespace`);
      const loaded = loadKubeConfig({
        serviceHost: "127.0.0.1",
        servicePort: String(server.port),
        serviceAccountDir: dir,
      });
      assert.equal(loaded.namespace, undefined);
    });
  });
});

// ---- tokens with a trailing newline ---------------------------------------------------

Deno.test("a token that ends in a newline authenticates lists and watches, as with kubectl", async (t) => {
  await using server = await startFakeApiServer();
  await withTempDir(async (dir) => {
    /** The fake server's kubeconfig with the admin user's credentials replaced by `user`. */
    const kubeconfigWith = async (file: string, user: Json) => {
      const doc = YAML.parse(server.kubeconfig());
      doc.users[0].user = user;
      await Deno.writeTextFile(file, YAML.stringify(doc));
      return file;
    };
    const expectEvents = async (loaded: LoadedKubeConfig, name: string) => {
      const { listed, watched } = await listAndWatchEvents(loaded, server, name);
      assert.ok(listed.includes(`${name}-listed.1`), listed.join(", "));
      assert.deepEqual(watched, [`${name}-watched.1`]);
    };

    await t.step('a kubeconfig token "...\\n"', async () => {
      const file = await kubeconfigWith(`${dir}/token-nl`, { token: `${server.adminToken}\n` });
      assert.match(await Deno.readTextFile(file), /token: \|/, "the newline is in the file");
      const loaded = loadKubeConfig({ path: file });
      assert.deepEqual(await loaded.config.authHeaders(), {
        Authorization: `Bearer ${server.adminToken}`,
      });
      assert.equal(loaded.config.getCurrentUser()?.token, server.adminToken, "logs redact it");
      await expectEvents(loaded, "inline");
    });

    await t.step("a tokenFile (kubectl's key) whose content ends in a newline", async () => {
      await Deno.mkdir(`${dir}/creds`);
      await Deno.writeTextFile(`${dir}/creds/token`, `${server.adminToken}\n`);
      // Relative to the kubeconfig's folder, as kubectl reads it.
      const file = await kubeconfigWith(`${dir}/creds/kubeconfig`, { tokenFile: "token" });
      const loaded = loadKubeConfig({ path: file });
      assert.deepEqual(loaded.warnings, []);
      await expectEvents(loaded, "file");
    });

    await t.step("a token wins over a tokenFile, as in kubectl", async () => {
      const file = await kubeconfigWith(`${dir}/both`, {
        token: server.adminToken,
        tokenFile: `${dir}/nowhere`,
      });
      assert.deepEqual(await loadKubeConfig({ path: file }).config.authHeaders(), {
        Authorization: `Bearer ${server.adminToken}`,
      });
    });

    await t.step("a tokenFile that cannot be read is refused, naming it", async () => {
      const file = await kubeconfigWith(`${dir}/missing-token-file`, {
        tokenFile: `${dir}/nowhere`,
      });
      assert.throws(() => loadKubeConfig({ path: file }), {
        name: "KubeConfigError",
        message: new RegExp(
          `^Cannot use kubeconfig file ${file}: context "kevents-fake", user "admin": cannot ` +
            `read its tokenFile ${dir}/nowhere: `,
        ),
      });
    });

    await t.step("the in-cluster service-account token file ending in a newline", async () => {
      const sa = `${dir}/serviceaccount`;
      await Deno.mkdir(sa);
      await Deno.writeTextFile(`${sa}/token`, `${server.adminToken}\n`);
      await Deno.writeTextFile(`${sa}/ca.crt`, server.caCertPem!);
      const loaded = loadKubeConfig({
        serviceHost: "127.0.0.1",
        servicePort: String(server.port),
        serviceAccountDir: sa,
      });
      assert.equal(loaded.origin, "in-cluster");
      await expectEvents(loaded, "in-cluster");
    });
  });
});

// ---- plain-HTTP servers --------------------------------------------------------------

function kubectlAvailable(): Promise<boolean> {
  return commandSucceeds("kubectl", ["version", "--client"]);
}

const HAVE_KUBECTL = await kubectlAvailable();
if (!HAVE_KUBECTL) {
  console.log("SKIPPED: kubectl not found on PATH; the plain-HTTP kubeconfig tests need it");
}

/** Runs kubectl to its end with `kubeconfig` and an empty HOME. */
async function kubectl(kubeconfig: string, home: string, ...args: string[]) {
  const out = await new Deno.Command("kubectl", {
    args,
    env: { KUBECONFIG: kubeconfig, HOME: home },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

/** A kubeconfig for `server` (an http:// URL) as `user`. */
function plainKubeconfig(server: string, user: Json): string {
  return YAML.stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "plain", cluster: { server } }],
    users: [{ name: "proxy", user }],
    contexts: [{ name: "plain", context: { cluster: "plain", user: "proxy" } }],
    "current-context": "plain",
  });
}

Deno.test({
  name: "an http:// server such as kubectl proxy: kevents lists and watches through it, and " +
    "kubectl takes the same kubeconfig",
  ignore: !HAVE_KUBECTL,
  fn: async () => {
    await using server = await startFakeApiServer();
    await withTempDir(async (dir) => {
      await Deno.writeTextFile(`${dir}/admin`, server.kubeconfig());
      const proxy = new Deno.Command("kubectl", {
        args: ["proxy", "--port=0", "--address=127.0.0.1"],
        env: { KUBECONFIG: `${dir}/admin`, HOME: dir },
        stdin: "null",
        stdout: "piped",
        stderr: "null",
      }).spawn();
      const stdout = new LineReader(proxy.stdout);
      try {
        const line = await stdout.waitFor(/^Starting to serve on /);
        const url = `http://${line.replace(/^Starting to serve on /, "").trim()}`;
        const file = `${dir}/plain`;
        await Deno.writeTextFile(file, plainKubeconfig(url, {}));

        const loaded = loadKubeConfig({ path: file });
        assert.deepEqual(loaded.warnings, []);
        assert.equal(loaded.config.getCurrentCluster()?.server, url);
        const { listed, watched } = await listAndWatchEvents(loaded, server, "proxied");
        assert.ok(listed.includes("proxied-listed.1"), listed.join(", "));
        assert.deepEqual(watched, ["proxied-watched.1"]);

        // The judge: kubectl reads the same file and sees the same events.
        const seen = await kubectl(file, dir, "get", "events", "-A", "-o", "name");
        assert.equal(seen.code, 0, seen.stderr);
        assert.match(seen.stdout, /event\/proxied-listed\.1/);
        assert.match(seen.stdout, /event\/proxied-watched\.1/);
      } finally {
        proxy.kill("SIGTERM");
        await proxy.status;
        await stdout.done;
      }
    });
  },
});

Deno.test({
  name: "a plain-HTTP API server is reached without the kubeconfig's token, as kubectl does, " +
    "with a warning",
  ignore: !HAVE_KUBECTL,
  fn: async () => {
    await using server = await startFakeApiServer({ tls: false });
    await withTempDir(async (dir) => {
      const file = `${dir}/kubeconfig`;
      // A kubeconfig that names an http:// server and a token.
      const withToken = server.kubeconfig().replace(
        /user: \{\}/,
        `user:\n      token: ${server.adminToken}`,
      );
      assert.ok(withToken.includes(server.adminToken));
      await Deno.writeTextFile(file, withToken);
      assert.match(server.url, /^http:\/\//);

      const loaded = loadKubeConfig({ path: file });
      assert.deepEqual(loaded.warnings, [
        `The credentials of user "admin" (file ${file}) are not sent to ${server.url}: as ` +
        "with kubectl, they go only over TLS (https://); a plain-HTTP server such as kubectl " +
        "proxy adds its own",
      ]);
      assert.deepEqual(await loaded.config.authHeaders(), {});
      const client = new KubeClient(loaded.config, { requestTimeoutMs: 5_000 });
      try {
        // The request reaches the server, which asks for credentials.
        await assert.rejects(client.list(EVENTS), UnauthorizedError);
      } finally {
        await client.close();
      }
      const fromKevents = server.requestLog.count({ identity: "system:unauthenticated" });
      assert.equal(fromKevents, 1);
      assert.equal(server.requestLog.count({ identity: "admin" }), 0, "no token went over HTTP");

      // The judge: kubectl loads the same file, reaches the server, sends no token either.
      const seen = await kubectl(file, dir, "get", "events", "-A");
      assert.equal(seen.code, 1);
      assert.match(seen.stderr, /You must be logged in to the server/);
      assert.ok(server.requestLog.count({ identity: "system:unauthenticated" }) > fromKevents);
      assert.equal(server.requestLog.count({ identity: "admin" }), 0);
    });
  },
});

Deno.test({
  name: "the kubeconfig of `fake-apiserver --plain-http` works for kevents and for kubectl alike",
  ignore: !HAVE_KUBECTL,
  fn: async () => {
    // What the command starts: requests without credentials act as the admin, as behind kubectl proxy.
    await using server = await startFakeApiServer({ tls: false, anonymousAuth: "admin" });
    await withTempDir(async (dir) => {
      const file = `${dir}/kubeconfig`;
      await Deno.writeTextFile(file, server.kubeconfig());
      assert.doesNotMatch(await Deno.readTextFile(file), /token/, "no credentials over HTTP");
      const loaded = loadKubeConfig({ path: file });
      assert.deepEqual(loaded.warnings, []);
      const client = new KubeClient(loaded.config, { requestTimeoutMs: 5_000 });
      try {
        const list = await client.list(EVENTS);
        assert.ok(list.resourceVersion !== undefined);
      } finally {
        await client.close();
      }
      const seen = await kubectl(file, dir, "get", "events", "-A");
      assert.equal(seen.code, 0, seen.stderr);
    });
  },
});
