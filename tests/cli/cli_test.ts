import assert from "node:assert/strict";
import { type Command, parseCommandLine, UsageError } from "../../lib/cli/mod.ts";
import { PooledKubeConfig } from "../../lib/kube/kubeconfig.ts";
import { EVENTS, KubeClient } from "../../lib/kube/client.ts";

Deno.test("the command line parser", async (t) => {
  const defaults = {
    name: "fake-apiserver",
    kubeconfigOut: "./kevents-fake.kubeconfig",
    port: 0,
    plainHttp: false,
    eventsPerSecond: 5,
    seed: 1,
    eventTtlSeconds: 3600,
    eventsWatchQuirk: false,
  };
  const accepted: [string[], Command][] = [
    [[], { name: "run" }],
    [["run", "--kubeconfig", "/k", "--config=/etc/dd"], {
      name: "run",
      kubeconfig: "/k",
      config: "/etc/dd",
    }],
    [["--kubeconfig", "/k"], { name: "run", kubeconfig: "/k" }],
    [["status"], { name: "status", output: "text" }],
    [["status", "--kubeconfig", "/k", "--config=/etc/dd", "--output", "json"], {
      name: "status",
      kubeconfig: "/k",
      config: "/etc/dd",
      output: "json",
    }],
    [["status", "-o", "text", "--output=json"], { name: "status", output: "json" }],
    [["status", "--help"], { name: "help", topic: "status" }],
    [["demo"], { name: "demo", eventsPerSecond: 200, seed: 1 }],
    [["demo", "--events-per-second=50", "--seed", "3"], {
      name: "demo",
      eventsPerSecond: 50,
      seed: 3,
    }],
    [["--help"], { name: "help" }],
    [["version"], { name: "version" }],
    [["fake-apiserver"], defaults as Command],
    [
      ["fake-apiserver", "--port", "8080", "--plain-http", "--seed=7", "--events-per-second", "0"],
      { ...defaults, port: 8080, plainHttp: true, seed: 7, eventsPerSecond: 0 } as Command,
    ],
    [
      ["fake-apiserver", "--kubeconfig-out", "/tmp/k", "--event-ttl", "2", "--events-watch-quirk"],
      {
        ...defaults,
        kubeconfigOut: "/tmp/k",
        eventTtlSeconds: 2,
        eventsWatchQuirk: true,
      } as Command,
    ],
  ];
  for (const [args, expected] of accepted) {
    await t.step(`accepts ${JSON.stringify(args)}`, () => {
      assert.deepEqual(parseCommandLine(args), expected);
    });
  }
  const rejected: [string[], RegExp][] = [
    [["frobnicate"], /Unknown command "frobnicate"/],
    [
      ["fake-apiserver", "--port", "abc"],
      /Cannot parse --port "abc": must be an integer from 0 to 65535/,
    ],
    [["fake-apiserver", "--port", "70000"], /--port "70000"/],
    [["fake-apiserver", "--port"], /Cannot parse --port: a value is required/],
    [["fake-apiserver", "--events-per-second", "-1"], /--events-per-second "-1"/],
    [
      ["fake-apiserver", "--event-ttl", "0"],
      /--event-ttl "0": must be a number of seconds greater than 0/,
    ],
    [["fake-apiserver", "--bogus"], /Unknown option "--bogus"/],
    [["run", "--kubeconfig"], /Cannot parse --kubeconfig: a path is required/],
    [["run", "--frob"], /Unknown option "--frob" for run/],
    [["status", "--output", "yaml"], /Cannot parse --output "yaml": must be text or json/],
    [["status", "-o"], /Cannot parse -o: a value is required/],
    [["status", "--kubeconfig="], /Cannot parse --kubeconfig: a path is required/],
    [["status", "--watch"], /Unknown option "--watch" for status/],
    [
      ["demo", "--events-per-second", "0"],
      /--events-per-second "0": must be a number from 1 to 100000/,
    ],
  ];
  for (const [args, message] of rejected) {
    await t.step(`rejects ${JSON.stringify(args)} naming the flag, the value and the rule`, () => {
      assert.throws(
        () => parseCommandLine(args),
        (e) => e instanceof UsageError && message.test(e.message),
      );
    });
  }
});

async function readUntil(
  reader: ReadableStreamDefaultReader<string>,
  pattern: RegExp,
): Promise<string> {
  let seen = "";
  while (!pattern.test(seen)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`Output ended before ${pattern}: ${seen}`);
    seen += value;
  }
  return seen;
}

Deno.test("the standalone fake API server writes a kubeconfig, serves generated events and stops on SIGTERM", async () => {
  const dir = await Deno.makeTempDir();
  const kubeconfig = `${dir}/kubeconfig`;
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net=127.0.0.1,localhost",
      "--allow-read",
      "--allow-write",
      "--allow-env",
      new URL("../../main.ts", import.meta.url).pathname,
      "fake-apiserver",
      "--kubeconfig-out",
      kubeconfig,
      "--events-per-second",
      "200",
    ],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stdout = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const stderr = child.stderr.pipeThrough(new TextDecoderStream());
  const stderrText = (async () => {
    let s = "";
    for await (const chunk of stderr) s += chunk;
    return s;
  })();
  let client: KubeClient | undefined;
  try {
    const banner = await readUntil(stdout, /Generating 200 events per second/);
    assert.match(banner, /listening on https:\/\/127\.0\.0\.1:\d+/);
    assert.equal((await Deno.stat(kubeconfig)).mode! & 0o777, 0o600);
    const kc = new PooledKubeConfig();
    kc.loadFromFile(kubeconfig);
    client = new KubeClient(kc);
    // Wait until the generator has produced something visible through the API.
    let items = 0;
    for (let i = 0; i < 500 && items === 0; i++) {
      items = (await client.list(EVENTS, { limit: 10 })).items.length;
      if (items === 0) await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(items > 0, "generated events are listed");
    child.kill("SIGTERM");
    const rest = await readUntil(stdout, /Stopping on SIGTERM after \d+ generated changes/);
    assert.match(rest, /Stopping on SIGTERM/);
    const status = await child.status;
    assert.equal(status.code, 0, await stderrText);
  } finally {
    await client?.close();
    try {
      child.kill("SIGKILL");
    } catch {
      // Already exited: nothing to kill.
    }
    await stdout.cancel().catch(() => {});
    await child.status;
    await stderrText;
    await Deno.remove(dir, { recursive: true });
  }
});
