import assert from "node:assert/strict";
import YAML from "yaml";
import { startFakeApiServer } from "../lib/fake_apiserver/mod.ts";
import { CONFIGMAPS, KubeClient } from "../lib/kube_client.ts";
import { KubeConfigError, loadKubeConfig, PooledKubeConfig } from "../lib/kube_config.ts";

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
