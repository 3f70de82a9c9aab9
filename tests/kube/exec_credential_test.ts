/**
 * Exec credential plugins (users[].user.exec) against the fake API server,
 * with a small plugin script whose every run the test can count and whose
 * answer it controls, and kubectl running the same plugin from the same
 * kubeconfig as the oracle. Also: a rotated token file (in-cluster and in a
 * kubeconfig) is read again after a 401, not a minute later.
 */

import assert from "node:assert/strict";
import { KubeNetworkError, UnauthorizedError } from "../../lib/kube/errors.ts";
import { type FakeApiServer, startFakeApiServer } from "../../lib/fake_apiserver/mod.ts";
import { EVENTS, KubeClient } from "../../lib/kube/client.ts";
import { type LoadedKubeConfig, loadKubeConfig } from "../../lib/kube/kubeconfig.ts";
import type { Json } from "../_fake_api.ts";
import {
  fakeServerKubeconfig,
  HAVE_KUBECTL,
  kubectl,
  type KubectlResult,
  listAndWatchEvents,
} from "../_kubeconfigs.ts";
import { withTempDir } from "../_process.ts";

if (!HAVE_KUBECTL) {
  console.log("SKIPPED: kubectl not found on PATH; the exec plugin oracle checks need it");
}

const V1 = "client.authentication.k8s.io/v1";
const V1BETA1 = "client.authentication.k8s.io/v1beta1";

/**
 * The plugin. Each run appends a line to `runs` and keeps its arguments and
 * KUBERNETES_EXEC_INFO; then, going by the files beside it: with `fail`, it
 * prints that to stderr and exits 1; with `output`, it prints that; else an
 * ExecCredential of apiVersion $1 whose token is $PLUGIN_TOKEN (the
 * kubeconfig's exec env) or the content of `token`, with the
 * expirationTimestamp in `expiry` when there is one.
 */
const PLUGIN = `#!/bin/bash
set -eu
here=$(dirname "$0")
echo run >> "$here/runs"
printf '%s\\n' "$@" > "$here/args"
printf '%s' "\${KUBERNETES_EXEC_INFO-}" > "$here/exec-info.json"
if [ -f "$here/fail" ]; then cat "$here/fail" >&2; exit 1; fi
if [ -f "$here/output" ]; then cat "$here/output"; exit 0; fi
token=\${PLUGIN_TOKEN:-$(cat "$here/token")}
expiry=
if [ -f "$here/expiry" ]; then expiry=",\\"expirationTimestamp\\":\\"$(cat "$here/expiry")\\""; fi
printf '{"apiVersion":"%s","kind":"ExecCredential","status":{"token":"%s"%s}}\\n' "$1" "$token" "$expiry"
`;

/** What the plugin's exec entry in the kubeconfig holds besides its command. */
interface ExecOptions {
  apiVersion?: string;
  /** Arguments after the apiVersion the plugin echoes. */
  args?: string[];
  env?: { name: string; value: string }[];
  provideClusterInfo?: boolean;
  installHint?: string;
}

/** A plugin and its kubeconfig in `<tmp>/conf`, and the files that steer and record it. */
class Plugin {
  /** The temporary folder (HOME and working folder of kubectl). */
  readonly home: string;
  /** The kubeconfig's (and the plugin's) folder. */
  readonly dir: string;
  readonly kubeconfig: string;

  constructor(home: string) {
    this.home = home;
    this.dir = `${home}/conf`;
    this.kubeconfig = `${this.dir}/kubeconfig`;
  }

  /** Writes the plugin and a kubeconfig for `server` whose user runs it as `./plugin.sh`. */
  async install(server: FakeApiServer, exec: ExecOptions = {}): Promise<void> {
    await Deno.mkdir(this.dir, { recursive: true });
    await Deno.writeTextFile(`${this.dir}/plugin.sh`, PLUGIN);
    await Deno.chmod(`${this.dir}/plugin.sh`, 0o755);
    const apiVersion = exec.apiVersion ?? V1;
    await Deno.writeTextFile(
      this.kubeconfig,
      fakeServerKubeconfig(server, (d) => {
        d.users[0].user = {
          exec: {
            apiVersion,
            command: "./plugin.sh",
            args: [apiVersion, ...exec.args ?? []],
            env: exec.env ?? null,
            provideClusterInfo: exec.provideClusterInfo ?? false,
            // client-go requires it for v1; kevents never has a terminal anyway.
            interactiveMode: "Never",
            installHint: exec.installHint,
          },
        };
      }),
    );
  }

  /** Sets (or with undefined removes) one of the files that steer the plugin. */
  async set(name: "token" | "expiry" | "output" | "fail", text: string | undefined) {
    const path = `${this.dir}/${name}`;
    if (text !== undefined) await Deno.writeTextFile(path, text);
    else await Deno.remove(path).catch(() => {});
  }

  /** How many times the plugin has run. */
  async runs(): Promise<number> {
    try {
      return (await Deno.readTextFile(`${this.dir}/runs`)).split("\n").filter((l) => l).length;
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return 0;
      throw e;
    }
  }

  /** The arguments of the last run. */
  async args(): Promise<string[]> {
    return (await Deno.readTextFile(`${this.dir}/args`)).split("\n").filter((l) => l);
  }

  /** KUBERNETES_EXEC_INFO of the last run, parsed. */
  async execInfo(): Promise<Json> {
    return JSON.parse(await Deno.readTextFile(`${this.dir}/exec-info.json`));
  }

  load(): LoadedKubeConfig {
    return loadKubeConfig({ path: this.kubeconfig });
  }

  /** kubectl with this kubeconfig, run from the temporary folder (not the kubeconfig's). */
  kubectl(...args: string[]): Promise<KubectlResult> {
    return kubectl(args, { source: { path: this.kubeconfig }, home: this.home });
  }
}

/** Runs `use` with a plugin installed for `server` in a fresh temporary folder. */
async function withPlugin(
  server: FakeApiServer,
  exec: ExecOptions,
  use: (plugin: Plugin) => Promise<void>,
): Promise<void> {
  await withTempDir("kevents-exec-credential-", async (home) => {
    const plugin = new Plugin(home);
    await plugin.install(server, exec);
    await use(plugin);
  });
}

/** Runs `use` with a client of `loaded`, closed afterwards. */
async function withClient(
  loaded: LoadedKubeConfig,
  use: (client: KubeClient) => Promise<void>,
): Promise<void> {
  const client = new KubeClient(loaded.config, { requestTimeoutMs: 5_000 });
  try {
    await use(client);
  } finally {
    await client.close();
  }
}

/** The first watch batch (or the watch's error). */
async function firstWatchBatch(client: KubeClient): Promise<void> {
  for await (const _ of client.watchBatches(EVENTS, { timeoutSeconds: 1 })) return;
}

for (
  const [apiVersion, via] of [[V1, "the kubeconfig's exec env"], [V1BETA1, "a file"]] as const
) {
  Deno.test({
    name: `a ${apiVersion} plugin's token (given it through ${via}) authenticates a list and a ` +
      "watch as its user, and kubectl reaches the server as the same user",
    ignore: !HAVE_KUBECTL,
    fn: async () => {
      await using server = await startFakeApiServer();
      const user = `exec-${apiVersion.slice(apiVersion.lastIndexOf("/") + 1)}`;
      const token = server.addUser(user);
      const byEnv = apiVersion === V1;
      await withPlugin(server, {
        apiVersion,
        args: ["--cluster=kevents-fake"],
        env: byEnv ? [{ name: "PLUGIN_TOKEN", value: token }] : undefined,
      }, async (plugin) => {
        if (!byEnv) await plugin.set("token", token);
        const { listed, watched } = await listAndWatchEvents(plugin.load(), server, "exec");
        assert.ok(listed.includes("exec-listed.1"), listed.join(", "));
        assert.deepEqual(watched, ["exec-watched.1"]);
        assert.equal(server.requestLog.count({ identity: user, verb: "list", code: 200 }), 1);
        assert.equal(server.requestLog.count({ identity: user, verb: "watch", code: 200 }), 1);
        assert.equal(server.requestLog.count({ identity: "admin" }), 0);
        assert.equal(await plugin.runs(), 1, "one run for the list and the watch");
        assert.deepEqual(await plugin.args(), [apiVersion, "--cluster=kevents-fake"]);

        // The oracle: kubectl runs the same plugin from the same kubeconfig.
        const before = server.requestLog.count({ identity: user });
        const seen = await plugin.kubectl("get", "events", "-A", "-o", "name");
        assert.equal(seen.code, 0, seen.stderr);
        assert.match(seen.stdout, /event\/exec-watched\.1/);
        assert.ok(server.requestLog.count({ identity: user }) > before);
        assert.equal(server.requestLog.count({ identity: "admin" }), 0);
        assert.equal(await plugin.runs(), 2);
      });
    },
  });
}

Deno.test("the plugin runs again only when its credential expires, or will within 10 s", async (t) => {
  await using server = await startFakeApiServer();
  const token = server.addUser("exec");
  const cases: { name: string; expiry: () => string | undefined; runs: number }[] = [
    {
      name: "no expirationTimestamp: one run for three requests",
      expiry: () => undefined,
      runs: 1,
    },
    {
      name: "expiring in an hour: one run for three requests",
      expiry: () => new Date(Date.now() + 3_600_000).toISOString(),
      runs: 1,
    },
    {
      name: "expired an hour ago: a run for each request",
      expiry: () => new Date(Date.now() - 3_600_000).toISOString(),
      runs: 3,
    },
    {
      name: "expiring in 5 s, within the 10 s margin: a run for each request",
      expiry: () => new Date(Date.now() + 5_000).toISOString(),
      runs: 3,
    },
  ];
  for (const c of cases) {
    await t.step(c.name, async () => {
      await withPlugin(server, {}, async (plugin) => {
        await plugin.set("token", token);
        await plugin.set("expiry", c.expiry());
        await withClient(plugin.load(), async (client) => {
          for (let i = 0; i < 3; i++) await client.list(EVENTS);
        });
        assert.equal(await plugin.runs(), c.runs);
      });
    });
  }
});

Deno.test("after a 401 the next request runs the plugin again, and succeeds with its new token", async (t) => {
  await using server = await startFakeApiServer();
  const token = server.addUser("exec");
  for (const verb of ["list", "watch"] as const) {
    await t.step(`refused on a ${verb}`, async () => {
      await withPlugin(server, {}, async (plugin) => {
        await plugin.set("token", "a-token-the-server-does-not-know");
        server.requestLog.clear();
        await withClient(plugin.load(), async (client) => {
          const refused = verb === "list" ? client.list(EVENTS) : firstWatchBatch(client);
          await assert.rejects(refused, UnauthorizedError);
          assert.equal(await plugin.runs(), 1);
          await plugin.set("token", token);
          await client.list(EVENTS);
          assert.equal(await plugin.runs(), 2);
          // The new credential is kept again.
          await client.list(EVENTS);
          assert.equal(await plugin.runs(), 2);
        });
        assert.equal(server.requestLog.count({ code: 401 }), 1);
        assert.equal(server.requestLog.count({ identity: "exec", verb: "list", code: 200 }), 2);
      });
    });
  }
});

Deno.test("concurrent requests share one run of the plugin", async () => {
  await using server = await startFakeApiServer();
  const token = server.addUser("exec");
  await withPlugin(server, {}, async (plugin) => {
    await plugin.set("token", token);
    await withClient(plugin.load(), async (client) => {
      await Promise.all(Array.from({ length: 5 }, () => client.list(EVENTS)));
    });
    assert.equal(await plugin.runs(), 1);
    assert.equal(server.requestLog.count({ identity: "exec", verb: "list", code: 200 }), 5);
  });
});

Deno.test({
  name: "KUBERNETES_EXEC_INFO holds apiVersion, kind, spec.interactive false, and the cluster " +
    "only with provideClusterInfo, as kubectl gives it",
  ignore: !HAVE_KUBECTL,
  fn: async (t) => {
    await using server = await startFakeApiServer();
    const token = server.addUser("exec");
    for (const apiVersion of [V1, V1BETA1]) {
      for (const provideClusterInfo of [true, false]) {
        await t.step(`${apiVersion}, provideClusterInfo: ${provideClusterInfo}`, async () => {
          await withPlugin(server, { apiVersion, provideClusterInfo }, async (plugin) => {
            await plugin.set("token", token);
            await withClient(plugin.load(), (client) => client.list(EVENTS).then(() => {}));
            const fromKevents = await plugin.execInfo();
            const spec: Json = { interactive: false };
            if (provideClusterInfo) {
              spec.cluster = {
                server: server.url,
                "certificate-authority-data": btoa(server.caCertPem!),
              };
            }
            assert.deepEqual(fromKevents, { apiVersion, kind: "ExecCredential", spec });

            const seen = await plugin.kubectl("get", "--raw", "/api");
            assert.equal(seen.code, 0, seen.stderr);
            const fromKubectl = await plugin.execInfo();
            // client-go adds the cluster's exec extension as `config`: null without one.
            // kevents reads no extensions, and leaves it out.
            if (provideClusterInfo) {
              assert.equal(fromKubectl.spec.cluster.config, null);
              delete fromKubectl.spec.cluster.config;
            }
            assert.deepEqual(fromKevents, fromKubectl);
          });
        });
      }
    }
  },
});

Deno.test("a plugin that fails, or prints something that is not a credential, fails the request naming the plugin and what went wrong", async (t) => {
  await using server = await startFakeApiServer();
  const what = 'The exec credential plugin "./plugin.sh"';
  const credential = (status: Json, apiVersion = V1) =>
    JSON.stringify({ apiVersion, kind: "ExecCredential", status });
  const hint = "Install it with: make cloud-login";
  const cases: {
    name: string;
    set: (p: Plugin) => Promise<void>;
    /** The error's message after the request's method and URL. */
    message: string | ((p: Plugin) => string);
    /** The plugin's runs for a list and a watch (default 2: a failure is not kept). */
    runs?: number;
  }[] = [
    {
      name: "a plugin that is not there: the message gives the kubeconfig's installHint",
      set: (p) => Deno.remove(`${p.dir}/plugin.sh`),
      message: (p) =>
        `${what} cannot be run: Failed to spawn '${p.dir}/plugin.sh': No such file or ` +
        `directory (os error 2) (${hint})`,
      runs: 0,
    },
    {
      name: "exit code 1 with a message on stderr",
      set: (p) => p.set("fail", "token expired: run `cloud login` again\n"),
      message: `${what} exited with code 1: token expired: run \`cloud login\` again`,
    },
    {
      name: "output that is not JSON",
      set: (p) => p.set("output", "Please log in\n"),
      message: `${what} printed something that is not JSON`,
    },
    {
      name: "JSON that is not an ExecCredential",
      set: (p) => p.set("output", JSON.stringify({ kind: "Status", status: "Failure" })),
      message: `${what} printed JSON that is not an ExecCredential`,
    },
    {
      name: "the wrong apiVersion",
      set: (p) => p.set("output", credential({ token: "t" }, V1BETA1)),
      message: `${what} printed an ExecCredential of apiVersion "${V1BETA1}", not the ` +
        `kubeconfig's "${V1}"`,
    },
    {
      name: "no token",
      set: (p) => p.set("output", credential({ expirationTimestamp: null })),
      message: `${what} printed an ExecCredential with neither a token nor a client certificate`,
    },
    {
      name: "an expirationTimestamp that is not a time",
      set: (p) => p.set("output", credential({ token: "t", expirationTimestamp: "tomorrow" })),
      message: `${what} printed an expirationTimestamp that is not an RFC 3339 time: "tomorrow"`,
    },
  ];
  for (const c of cases) {
    await t.step(c.name, async () => {
      await withPlugin(server, { installHint: hint }, async (plugin) => {
        await c.set(plugin);
        server.requestLog.clear();
        await withClient(plugin.load(), async (client) => {
          for (const request of [() => client.list(EVENTS), () => firstWatchBatch(client)]) {
            await assert.rejects(request(), (e: unknown) => {
              assert.ok(e instanceof KubeNetworkError, `not a KubeNetworkError: ${e}`);
              const message = typeof c.message === "string" ? c.message : c.message(plugin);
              assert.ok(e.message.endsWith(`: ${message}`), e.message);
              return true;
            });
          }
        });
        assert.equal(await plugin.runs(), c.runs ?? 2, "a failure is not kept");
        assert.equal(server.requestLog.count(), 0, "no request went out without credentials");
      });
    });
  }
});

Deno.test({
  name: "a relative command (./plugin.sh) is the kubeconfig folder's, not the working folder's, " +
    "for kevents and kubectl alike",
  ignore: !HAVE_KUBECTL,
  fn: async () => {
    await using server = await startFakeApiServer();
    const token = server.addUser("exec");
    await withPlugin(server, {}, async (plugin) => {
      await plugin.set("token", token);
      assert.notEqual(Deno.cwd(), plugin.dir);
      await assert.rejects(Deno.stat(`${Deno.cwd()}/plugin.sh`), Deno.errors.NotFound);
      await withClient(plugin.load(), (client) => client.list(EVENTS).then(() => {}));
      assert.equal(server.requestLog.count({ identity: "exec", code: 200 }), 1);
      // kubectl runs in the temporary folder, the kubeconfig's parent.
      const seen = await plugin.kubectl("get", "--raw", "/api");
      assert.equal(seen.code, 0, seen.stderr);
      assert.equal(await plugin.runs(), 2);
    });
  },
});

Deno.test({
  name: "a token the plugin prints with a trailing newline is sent trimmed (kubectl refuses it)",
  ignore: !HAVE_KUBECTL,
  fn: async () => {
    await using server = await startFakeApiServer();
    const token = server.addUser("exec");
    await withPlugin(server, {}, async (plugin) => {
      // The plugin prints the file into a JSON string: `\n` there is a newline in the token.
      await plugin.set("token", `${token}\\n`);
      const loaded = plugin.load();
      assert.deepEqual(await loaded.config.authHeaders(), { Authorization: `Bearer ${token}` });
      await withClient(loaded, (client) => client.list(EVENTS).then(() => {}));
      assert.equal(server.requestLog.count({ identity: "exec", code: 200 }), 1);
      // client-go sends the token as printed, which Go's HTTP client will not put in a header.
      const seen = await plugin.kubectl("get", "--raw", "/api");
      assert.equal(seen.code, 1);
      assert.match(seen.stderr, /invalid header field value for "Authorization"/);
    });
  },
});

Deno.test("the plugin's token is given to onSecret, for the log redactor", async () => {
  await using server = await startFakeApiServer();
  const token = server.addUser("exec");
  await withPlugin(server, {}, async (plugin) => {
    await plugin.set("token", token);
    const loaded = plugin.load();
    const secrets: string[] = [];
    loaded.config.onSecret = (secret) => secrets.push(secret);
    assert.deepEqual(secrets, [], "nothing before the plugin runs");
    await withClient(loaded, (client) => client.list(EVENTS).then(() => {}));
    assert.deepEqual(secrets, [token]);
  });
});

Deno.test("a rotated token file is read again after a 401, not a minute later", async (t) => {
  await using server = await startFakeApiServer();
  const user = "system:serviceaccount:kevents:kevents";

  /**
   * Lists once with the first token; rotates it (the server forgets it and
   * the file gets the new one); the next list still sends the old token (the
   * file is read at most once a minute) and gets a 401; the one after reads
   * the file again and succeeds.
   */
  const rotate = async (tokenFile: string, load: () => LoadedKubeConfig) => {
    await Deno.writeTextFile(tokenFile, `${server.addUser(user)}\n`);
    server.requestLog.clear();
    await withClient(load(), async (client) => {
      await client.list(EVENTS);
      // addUser again replaces the user's token: the old one is refused from now on.
      await Deno.writeTextFile(tokenFile, `${server.addUser(user)}\n`);
      await assert.rejects(client.list(EVENTS), UnauthorizedError);
      await client.list(EVENTS);
    });
    assert.deepEqual(server.requestLog.entries({ verb: "list" }).map((e) => e.code), [
      200,
      401,
      200,
    ]);
    assert.equal(server.requestLog.count({ identity: user, code: 200 }), 2);
  };

  await withTempDir("kevents-token-rotation-", async (dir) => {
    await t.step("the in-cluster service-account token", async () => {
      const sa = `${dir}/serviceaccount`;
      await Deno.mkdir(sa);
      await Deno.writeTextFile(`${sa}/ca.crt`, server.caCertPem!);
      await rotate(`${sa}/token`, () =>
        loadKubeConfig({
          serviceHost: "127.0.0.1",
          servicePort: String(server.port),
          serviceAccountDir: sa,
          home: dir,
        }));
    });

    await t.step("a kubeconfig's tokenFile", async () => {
      const file = `${dir}/kubeconfig`;
      await Deno.writeTextFile(
        file,
        fakeServerKubeconfig(server, (d) => d.users[0].user = { tokenFile: "token" }),
      );
      await rotate(`${dir}/token`, () => loadKubeConfig({ path: file }));
    });
  });
});
